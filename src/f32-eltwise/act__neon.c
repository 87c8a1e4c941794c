/* Unary activations, NEON (aarch64). Exact ops (none, relu, clip, leaky, hardsigmoid, hardswish) give the scalar
 * kernel's bits (compare + select, so NaN and -0 behave as the scalar ternaries; separate multiply and add, no FMA);
 * sigmoid, silu and tanh use the vector exp of neon-math.h (a few ulp from libm). */
#include <arm_neon.h>
#include <string.h>

#include "cnnrt/eltwise.h"
#include "neon-math.h"

static inline float32x4_t act4(int type, float32x4_t v, float32x4_t a, float32x4_t b) {
  const float32x4_t zero = vdupq_n_f32(0.0f), one = vdupq_n_f32(1.0f);
  switch (type) {
    case CNN_ACT_RELU: /* v < 0 ? 0 : v */
      return vbslq_f32(vcltq_f32(v, zero), zero, v);
    case CNN_ACT_CLIP: {
      const float32x4_t t = vbslq_f32(vcltq_f32(v, a), a, v);
      return vbslq_f32(vcgtq_f32(t, b), b, t);
    }
    case CNN_ACT_LEAKY:
      return vbslq_f32(vcgeq_f32(v, zero), v, vmulq_f32(a, v));
    case CNN_ACT_SIGMOID:
      return cnn_neon_sigmoid(v);
    case CNN_ACT_HARDSIGMOID: {
      float32x4_t t = vaddq_f32(vmulq_f32(a, v), b);
      t = vbslq_f32(vcltq_f32(t, zero), zero, t);
      return vbslq_f32(vcgtq_f32(t, one), one, t);
    }
    case CNN_ACT_HARDSWISH: {
      float32x4_t t = vaddq_f32(vmulq_f32(v, vdupq_n_f32(1.0f / 6.0f)), vdupq_n_f32(0.5f));
      t = vbslq_f32(vcltq_f32(t, zero), zero, t);
      t = vbslq_f32(vcgtq_f32(t, one), one, t);
      return vbslq_f32(vceqq_f32(t, zero), zero, vmulq_f32(v, t));
    }
    case CNN_ACT_SILU: {
      const float32x4_t s = cnn_neon_sigmoid(v);
      return vbslq_f32(vceqq_f32(s, zero), zero, vmulq_f32(v, s));
    }
    case CNN_ACT_TANH:
      return cnn_neon_tanh(v);
    default:
      return v;
  }
}

/* The switch is resolved at compile time in each instantiation (type is a constant after inlining). */
static inline void act_loop(int type, const cnn_act* act, const float* x, float* y, size_t n) {
  const float32x4_t a = vdupq_n_f32(act->a), b = vdupq_n_f32(act->b);
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const float32x4_t v0 = vld1q_f32(x + i), v1 = vld1q_f32(x + i + 4);
    vst1q_f32(y + i, act4(type, v0, a, b));
    vst1q_f32(y + i + 4, act4(type, v1, a, b));
  }
  for (; i + 4 <= n; i += 4) vst1q_f32(y + i, act4(type, vld1q_f32(x + i), a, b));
  if (i < n) cnn_neon_store_tail(y + i, n - i, act4(type, cnn_neon_load_tail(x + i, n - i, 0.0f), a, b));
}

void cnn_f32_act__neon(const cnn_act* act, const float* x, float* y, size_t n) {
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
