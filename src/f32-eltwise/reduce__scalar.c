/* Reductions over the middle axis of [outer, axis, inner]: max (0), mean (1), sum (2). Portable. */
#include <math.h>

#include "cnnrt/eltwise.h"

#define REDUCE_COLS 64 /* inner positions reduced together (stack accumulators, contiguous reads) */

/* Sums and means accumulate in double; max keeps m unless v > m (NaN skipped). Empty axis: max -inf, sum 0,
 * mean NaN (0/0, like numpy). */
void cnn_f32_reduce__scalar(int type, size_t outer, size_t axis, size_t inner, const float* x, float* y) {
  for (size_t o = 0; o < outer; o++) {
    const float* xo = x + o * axis * inner;
    float* yo = y + o * inner;
    for (size_t r0 = 0; r0 < inner; r0 += REDUCE_COLS) {
      const size_t nr = cnn_min_sz(REDUCE_COLS, inner - r0);
      if (type == 0) {
        float m[REDUCE_COLS];
        for (size_t r = 0; r < nr; r++) m[r] = -INFINITY;
        for (size_t a = 0; a < axis; a++)
          for (size_t r = 0; r < nr; r++) {
            const float v = xo[a * inner + r0 + r];
            m[r] = v > m[r] ? v : m[r];
          }
        for (size_t r = 0; r < nr; r++) yo[r0 + r] = m[r];
      } else {
        double s[REDUCE_COLS];
        for (size_t r = 0; r < nr; r++) s[r] = 0.0;
        for (size_t a = 0; a < axis; a++)
          for (size_t r = 0; r < nr; r++) s[r] += xo[a * inner + r0 + r];
        const double div = type == 1 ? (double)axis : 1.0;
        for (size_t r = 0; r < nr; r++) yo[r0 + r] = (float)(s[r] / div);
      }
    }
  }
}
