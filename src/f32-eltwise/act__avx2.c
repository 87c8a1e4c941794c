/* Unary activations, AVX2 + FMA. Exact ops (none, relu, clip, leaky, hardsigmoid, hardswish) give the scalar
 * kernel's bits; sigmoid, silu and tanh use the vector exp of avx2-math.h (a few ulp from libm). */
#include <immintrin.h>
#include <string.h>

#include "avx2-math.h"
#include "cnnrt/eltwise.h"

/* One 8-lane step of activation `type`. Operand order of min/max follows the scalar conventions:
 * _mm256_max_ps(c, v) = c > v ? c : v, i.e. the scalar v < c ? c : v (NaN and -0 pass through). */
static inline __m256 act8(int type, __m256 v, __m256 a, __m256 b) {
  const __m256 zero = _mm256_setzero_ps(), one = _mm256_set1_ps(1.0f);
  switch (type) {
    case CNN_ACT_RELU:
      return _mm256_max_ps(zero, v);
    case CNN_ACT_CLIP:
      return _mm256_min_ps(b, _mm256_max_ps(a, v));
    case CNN_ACT_LEAKY:
      return _mm256_blendv_ps(_mm256_mul_ps(a, v), v, _mm256_cmp_ps(v, zero, _CMP_GE_OQ));
    case CNN_ACT_SIGMOID:
      return cnn_avx2_sigmoid(v);
    case CNN_ACT_HARDSIGMOID: {
      const __m256 t = _mm256_add_ps(_mm256_mul_ps(a, v), b);
      return _mm256_min_ps(one, _mm256_max_ps(zero, t));
    }
    case CNN_ACT_HARDSWISH: {
      __m256 t = _mm256_add_ps(_mm256_mul_ps(v, _mm256_set1_ps(1.0f / 6.0f)), _mm256_set1_ps(0.5f));
      t = _mm256_min_ps(one, _mm256_max_ps(zero, t));
      return _mm256_and_ps(_mm256_mul_ps(v, t), _mm256_cmp_ps(t, zero, _CMP_NEQ_UQ));
    }
    case CNN_ACT_SILU: {
      const __m256 s = cnn_avx2_sigmoid(v);
      return _mm256_and_ps(_mm256_mul_ps(v, s), _mm256_cmp_ps(s, zero, _CMP_NEQ_UQ));
    }
    case CNN_ACT_TANH:
      return cnn_avx2_tanh(v);
    default:
      return v;
  }
}

/* The switch is resolved at compile time in each instantiation (type is a constant after inlining). */
static inline void act_loop(int type, const cnn_act* act, const float* x, float* y, size_t n) {
  const __m256 a = _mm256_set1_ps(act->a), b = _mm256_set1_ps(act->b);
  size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m256 v0 = _mm256_loadu_ps(x + i), v1 = _mm256_loadu_ps(x + i + 8);
    _mm256_storeu_ps(y + i, act8(type, v0, a, b));
    _mm256_storeu_ps(y + i + 8, act8(type, v1, a, b));
  }
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, act8(type, _mm256_loadu_ps(x + i), a, b));
  if (i < n) {
    const __m256i m = cnn_avx2_tail_mask(n - i);
    _mm256_maskstore_ps(y + i, m, act8(type, _mm256_maskload_ps(x + i, m), a, b));
  }
}

void cnn_f32_act__avx2(const cnn_act* act, const float* x, float* y, size_t n) {
  switch (act->type) {
    case CNN_ACT_RELU: act_loop(CNN_ACT_RELU, act, x, y, n); break;
    case CNN_ACT_CLIP: act_loop(CNN_ACT_CLIP, act, x, y, n); break;
    case CNN_ACT_LEAKY: act_loop(CNN_ACT_LEAKY, act, x, y, n); break;
    case CNN_ACT_SIGMOID: act_loop(CNN_ACT_SIGMOID, act, x, y, n); break;
    case CNN_ACT_HARDSIGMOID: act_loop(CNN_ACT_HARDSIGMOID, act, x, y, n); break;
    case CNN_ACT_HARDSWISH: act_loop(CNN_ACT_HARDSWISH, act, x, y, n); break;
    case CNN_ACT_SILU: act_loop(CNN_ACT_SILU, act, x, y, n); break;
    case CNN_ACT_TANH: act_loop(CNN_ACT_TANH, act, x, y, n); break;
    default:
      if (x != y && n) memmove(y, x, n * sizeof(float));
      break;
  }
}
