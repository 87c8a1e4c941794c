/* Unary activations, AVX2 + FMA. Exact ops (none, relu, clip, leaky, hardsigmoid, hardswish) give the scalar
 * kernel's bits; sigmoid, silu and tanh use the vector exp of avx2-math.h (a few ulp from libm). Sigmoid and silu
 * take cnn_avx2_sig8_fast (no clamps, no conversions) and patch the rare lanes with |x| > 87 or NaN with the
 * general cnn_avx2_sigmoid: each output depends on its own input only (not on which vector it shared), so results
 * do not depend on how a caller splits a row. */
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

/* 4 vectors per step (independent chains for the FMA pipes; one test for the rare slow lanes). The 1..31 elements
 * after the last full step also go through one 4-vector step: the full vectors that remain plus, for a ragged end,
 * one vector ending at n (loaded before anything is stored, so x == y is allowed: its first lanes are recomputed
 * from their original inputs and get the same bits); unused slots repeat a loaded vector. A vector's exp chain is
 * ~60 cycles of latency, and rows of 28..64 (the depthwise kernels' output rows, the GEMM epilogue's segments)
 * used to end in up to three short steps (16-, 8-wide and ragged) that kept few chains in flight; when two slots
 * suffice, a 2-vector step (4 would double the work of rows of 9..16). n < 8 uses masked accesses. */
static inline __attribute__((always_inline)) void sig_step4(int silu, __m256* f0, __m256* f1, __m256* f2, __m256* f3,
                                                            __m256 v0, __m256 v1, __m256 v2, __m256 v3) {
  *f0 = cnn_avx2_sig8_fast(silu, v0);
  *f1 = cnn_avx2_sig8_fast(silu, v1);
  *f2 = cnn_avx2_sig8_fast(silu, v2);
  *f3 = cnn_avx2_sig8_fast(silu, v3);
  const __m256 slow = _mm256_or_ps(_mm256_or_ps(cnn_avx2_sigmoid_slow_lanes(v0), cnn_avx2_sigmoid_slow_lanes(v1)),
                                   _mm256_or_ps(cnn_avx2_sigmoid_slow_lanes(v2), cnn_avx2_sigmoid_slow_lanes(v3)));
  if (_mm256_movemask_ps(slow)) {
    *f0 = cnn_avx2_sig8_patch(silu, v0, *f0);
    *f1 = cnn_avx2_sig8_patch(silu, v1, *f1);
    *f2 = cnn_avx2_sig8_patch(silu, v2, *f2);
    *f3 = cnn_avx2_sig8_patch(silu, v3, *f3);
  }
}

static inline __attribute__((always_inline)) void sig_step2(int silu, __m256* f0, __m256* f1, __m256 v0, __m256 v1) {
  *f0 = cnn_avx2_sig8_fast(silu, v0);
  *f1 = cnn_avx2_sig8_fast(silu, v1);
  if (_mm256_movemask_ps(_mm256_or_ps(cnn_avx2_sigmoid_slow_lanes(v0), cnn_avx2_sigmoid_slow_lanes(v1)))) {
    *f0 = cnn_avx2_sig8_patch(silu, v0, *f0);
    *f1 = cnn_avx2_sig8_patch(silu, v1, *f1);
  }
}

static inline __attribute__((always_inline)) void sig_loop(int silu, const float* x, float* y, size_t n) {
  if (n < 8) {
    if (n) {
      const __m256i m = cnn_avx2_tail_mask(n);
      _mm256_maskstore_ps(y, m, cnn_avx2_sig8(silu, _mm256_maskload_ps(x, m)));
    }
    return;
  }
  const size_t rem = n % 8;
  const __m256 vlast = _mm256_loadu_ps(x + n - 8);
  __m256 f0, f1, f2, f3;
  size_t i = 0;
  for (; i + 32 <= n; i += 32) {
    sig_step4(silu, &f0, &f1, &f2, &f3, _mm256_loadu_ps(x + i), _mm256_loadu_ps(x + i + 8),
              _mm256_loadu_ps(x + i + 16), _mm256_loadu_ps(x + i + 24));
    _mm256_storeu_ps(y + i, f0);
    _mm256_storeu_ps(y + i + 8, f1);
    _mm256_storeu_ps(y + i + 16, f2);
    _mm256_storeu_ps(y + i + 24, f3);
  }
  if (i == n) return;
  const size_t q = (n - i) / 8; /* full vectors left: 0..3 */
  if (q + (rem != 0) <= 2) { /* two slots are enough (e.g. rows of 9..16) */
    const __m256 v0 = q > 0 ? _mm256_loadu_ps(x + i) : vlast;
    sig_step2(silu, &f0, &f1, v0, q > 1 ? _mm256_loadu_ps(x + i + 8) : vlast);
    if (q > 0) _mm256_storeu_ps(y + i, f0);
    if (q > 1) _mm256_storeu_ps(y + i + 8, f1);
    if (rem) _mm256_storeu_ps(y + n - 8, f1);
    return;
  }
  const __m256 v0 = q > 0 ? _mm256_loadu_ps(x + i) : vlast;
  const __m256 v1 = q > 1 ? _mm256_loadu_ps(x + i + 8) : v0;
  const __m256 v2 = q > 2 ? _mm256_loadu_ps(x + i + 16) : v0;
  sig_step4(silu, &f0, &f1, &f2, &f3, v0, v1, v2, vlast);
  if (q > 0) _mm256_storeu_ps(y + i, f0);
  if (q > 1) _mm256_storeu_ps(y + i + 8, f1);
  if (q > 2) _mm256_storeu_ps(y + i + 16, f2);
  if (rem) _mm256_storeu_ps(y + n - 8, f3);
}

void cnn_f32_act__avx2(const cnn_act* act, const float* x, float* y, size_t n) {
  switch (act->type) {
    case CNN_ACT_RELU: act_loop(CNN_ACT_RELU, act, x, y, n); break;
    case CNN_ACT_CLIP: act_loop(CNN_ACT_CLIP, act, x, y, n); break;
    case CNN_ACT_LEAKY: act_loop(CNN_ACT_LEAKY, act, x, y, n); break;
    case CNN_ACT_SIGMOID: sig_loop(0, x, y, n); break;
    case CNN_ACT_HARDSIGMOID: act_loop(CNN_ACT_HARDSIGMOID, act, x, y, n); break;
    case CNN_ACT_HARDSWISH: act_loop(CNN_ACT_HARDSWISH, act, x, y, n); break;
    case CNN_ACT_SILU: sig_loop(1, x, y, n); break;
    case CNN_ACT_TANH: act_loop(CNN_ACT_TANH, act, x, y, n); break;
    default:
      if (x != y && n) memmove(y, x, n * sizeof(float));
      break;
  }
}
