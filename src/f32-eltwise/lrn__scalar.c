/* Local response normalization across channels (ONNX LRN), portable. */
#include <math.h>

#include "cnnrt/eltwise.h"

/* y[n,c,i] = x[n,c,i] / (bias + alpha/size * sum_{c'} x[n,c',i]^2)^beta, c' in [c - (size-1)/2, c + size/2] clipped
 * to [0, C) (floor / ceil of (size-1)/2 as ONNX). The sum is built in y's own plane (no scratch), so y must not
 * overlap x. */
void cnn_f32_lrn__scalar(size_t n, size_t c, size_t hw, size_t size, float alpha, float beta, float bias,
                         const float* x, float* y) {
  if (size == 0) return;
  const float k = alpha / (float)size;
  const size_t before = (size - 1) / 2, after = size / 2;
  for (size_t b = 0; b < n; b++) {
    const float* xb = x + b * c * hw;
    float* yb = y + b * c * hw;
    for (size_t ch = 0; ch < c; ch++) {
      const size_t lo = ch >= before ? ch - before : 0, hi = cnn_min_sz(c - 1, ch + after);
      float* yp = yb + ch * hw;
      for (size_t i = 0; i < hw; i++) yp[i] = 0.0f;
      for (size_t cc = lo; cc <= hi; cc++) {
        const float* xp = xb + cc * hw;
        for (size_t i = 0; i < hw; i++) yp[i] += xp[i] * xp[i];
      }
      const float* xc = xb + ch * hw;
      for (size_t i = 0; i < hw; i++) yp[i] = xc[i] / powf(bias + k * yp[i], beta);
    }
  }
}
