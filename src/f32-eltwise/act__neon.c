/* Unary activations, NEON (aarch64). Exact ops (none, relu, clip, leaky, hardsigmoid, hardswish) give the scalar
 * kernel's bits (compare + select, so NaN and -0 behave as the scalar ternaries; separate multiply and add, no FMA);
 * sigmoid, silu and tanh use the vector exp of neon-math.h (a few ulp from libm). Sigmoid and silu take
 * cnn_neon_sig4_fast and patch the rare lanes with |x| > 87 or NaN with the general cnn_neon_sigmoid: each output
 * depends on its own input only. */
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

/* Sigmoid (silu = 0) or silu (silu = 1) of one vector from the general sigmoid. */
static inline float32x4_t sig4_general(int silu, float32x4_t v) {
  const float32x4_t s = cnn_neon_sigmoid(v);
  if (!silu) return s;
  return vbslq_f32(vceqq_f32(s, vdupq_n_f32(0.0f)), vdupq_n_f32(0.0f), vmulq_f32(v, s));
}

static __attribute__((noinline)) float32x4_t sig4_patch(int silu, float32x4_t v, float32x4_t f) {
  return vbslq_f32(cnn_neon_sigmoid_slow_lanes(v), sig4_general(silu, v), f);
}

static inline __attribute__((always_inline)) float32x4_t sig4_fast(int silu, float32x4_t v) {
  return cnn_neon_sig4_fast(silu, v);
}

/* 4 vectors per step with one test for the rare slow lanes, then single vectors, then the tail. */
static inline __attribute__((always_inline)) void sig_loop(int silu, const float* x, float* y, size_t n) {
  size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const float32x4_t v0 = vld1q_f32(x + i), v1 = vld1q_f32(x + i + 4);
    const float32x4_t v2 = vld1q_f32(x + i + 8), v3 = vld1q_f32(x + i + 12);
    float32x4_t f0 = sig4_fast(silu, v0), f1 = sig4_fast(silu, v1), f2 = sig4_fast(silu, v2), f3 = sig4_fast(silu, v3);
    const uint32x4_t slow = vorrq_u32(vorrq_u32(cnn_neon_sigmoid_slow_lanes(v0), cnn_neon_sigmoid_slow_lanes(v1)),
                                      vorrq_u32(cnn_neon_sigmoid_slow_lanes(v2), cnn_neon_sigmoid_slow_lanes(v3)));
    if (vmaxvq_u32(slow)) {
      f0 = sig4_patch(silu, v0, f0);
      f1 = sig4_patch(silu, v1, f1);
      f2 = sig4_patch(silu, v2, f2);
      f3 = sig4_patch(silu, v3, f3);
    }
    vst1q_f32(y + i, f0);
    vst1q_f32(y + i + 4, f1);
    vst1q_f32(y + i + 8, f2);
    vst1q_f32(y + i + 12, f3);
  }
  for (; i < n; i += 4) {
    const size_t r = n - i < 4 ? n - i : 4;
    const float32x4_t v = r == 4 ? vld1q_f32(x + i) : cnn_neon_load_tail(x + i, r, 0.0f);
    float32x4_t f = sig4_fast(silu, v);
    if (vmaxvq_u32(cnn_neon_sigmoid_slow_lanes(v))) f = sig4_patch(silu, v, f);
    if (r == 4)
      vst1q_f32(y + i, f);
    else
      cnn_neon_store_tail(y + i, r, f);
  }
}

void cnn_f32_act__neon(const cnn_act* act, const float* x, float* y, size_t n) {
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
