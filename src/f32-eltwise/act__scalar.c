/* Unary activations, portable reference (libm expf / tanhf). */
#include <math.h>

#include "cnnrt/eltwise.h"

/* Conventions shared with the SIMD variants (so the exact ops give identical bits):
 *   relu(x) = x < 0 ? 0 : x, clip = (v > b ? b : v) after (x < a ? a : x): NaN propagates, -0 stays -0;
 *   hardsigmoid = clamp(a*x + b) with a separate multiply and add (no FMA);
 *   hardswish = x * clamp(x * (1/6) + 1/2), and 0 where the clamp gives 0 (so -inf gives 0, not NaN);
 *   silu = x * sigmoid(x), and 0 where sigmoid(x) == 0 (x = -inf gives 0, not NaN). */
static inline float sigmoid_ref(float x) {
  /* exp of a non-positive argument only: no overflow, full relative accuracy for negative x. */
  const float e = expf(-fabsf(x));
  return x >= 0.0f ? 1.0f / (1.0f + e) : e / (1.0f + e);
}

void cnn_f32_act__scalar(const cnn_act* act, const float* x, float* y, size_t n) {
  const float a = act->a, b = act->b;
  switch (act->type) {
    case CNN_ACT_RELU:
      for (size_t i = 0; i < n; i++) { const float v = x[i]; y[i] = v < 0.0f ? 0.0f : v; }
      break;
    case CNN_ACT_CLIP:
      for (size_t i = 0; i < n; i++) {
        float v = x[i];
        v = v < a ? a : v;
        y[i] = v > b ? b : v;
      }
      break;
    case CNN_ACT_LEAKY:
      for (size_t i = 0; i < n; i++) { /* both sides computed: a select, no branch */
        const float v = x[i], av = a * v;
        y[i] = v >= 0.0f ? v : av;
      }
      break;
    case CNN_ACT_SIGMOID:
      for (size_t i = 0; i < n; i++) y[i] = sigmoid_ref(x[i]);
      break;
    case CNN_ACT_HARDSIGMOID:
      for (size_t i = 0; i < n; i++) {
        float t = a * x[i];
        t = t + b;
        t = t < 0.0f ? 0.0f : t;
        y[i] = t > 1.0f ? 1.0f : t;
      }
      break;
    case CNN_ACT_HARDSWISH:
      for (size_t i = 0; i < n; i++) {
        const float v = x[i];
        float t = v * (1.0f / 6.0f);
        t = t + 0.5f;
        t = t < 0.0f ? 0.0f : t;
        t = t > 1.0f ? 1.0f : t;
        const float p = v * t;
        y[i] = t == 0.0f ? 0.0f : p;
      }
      break;
    case CNN_ACT_SILU:
      for (size_t i = 0; i < n; i++) {
        const float v = x[i], s = sigmoid_ref(v), p = v * s;
        y[i] = s == 0.0f ? 0.0f : p;
      }
      break;
    case CNN_ACT_TANH:
      for (size_t i = 0; i < n; i++) y[i] = tanhf(x[i]);
      break;
    default: /* CNN_ACT_NONE */
      if (x != y)
        for (size_t i = 0; i < n; i++) y[i] = x[i];
      break;
  }
}
