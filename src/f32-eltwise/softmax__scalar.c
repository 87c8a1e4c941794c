/* Softmax / log-softmax over the middle axis of [outer, axis, inner], portable reference.
 * Numerically stable: m = max over the axis, e = exp(x - m), sum accumulated in double;
 * softmax y = e * (1/sum), log-softmax y = (x - m) - log(sum). x == y allowed. */
#include <math.h>

#include "cnnrt/eltwise.h"

#define SOFTMAX_COLS 64 /* inner positions handled together (stack state; keeps the strided passes cache-friendly) */

void cnn_f32_softmax__scalar(int log, size_t outer, size_t axis, size_t inner, const float* x, float* y) {
  if (axis == 0 || inner == 0) return;
  for (size_t o = 0; o < outer; o++) {
    const float* xo = x + o * axis * inner;
    float* yo = y + o * axis * inner;
    for (size_t r0 = 0; r0 < inner; r0 += SOFTMAX_COLS) {
      const size_t nr = cnn_min_sz(SOFTMAX_COLS, inner - r0);
      float m[SOFTMAX_COLS];
      double s[SOFTMAX_COLS];
      for (size_t r = 0; r < nr; r++) {
        m[r] = -INFINITY;
        s[r] = 0.0;
      }
      for (size_t a = 0; a < axis; a++)
        for (size_t r = 0; r < nr; r++) {
          const float v = xo[a * inner + r0 + r];
          m[r] = v > m[r] ? v : m[r];
        }
      for (size_t a = 0; a < axis; a++)
        for (size_t r = 0; r < nr; r++) {
          const float e = expf(xo[a * inner + r0 + r] - m[r]);
          s[r] += e;
          if (!log) yo[a * inner + r0 + r] = e;
        }
      if (log) {
        for (size_t r = 0; r < nr; r++) s[r] = (double)logf((float)s[r]);
        for (size_t a = 0; a < axis; a++)
          for (size_t r = 0; r < nr; r++) {
            const size_t i = a * inner + r0 + r;
            yo[i] = (xo[i] - m[r]) - (float)s[r];
          }
      } else {
        for (size_t r = 0; r < nr; r++) s[r] = 1.0 / s[r];
        for (size_t a = 0; a < axis; a++)
          for (size_t r = 0; r < nr; r++) {
            const size_t i = a * inner + r0 + r;
            yo[i] = (float)((double)yo[i] * s[r]);
          }
      }
    }
  }
}
