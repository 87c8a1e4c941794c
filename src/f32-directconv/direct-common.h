/* Private helper of the SIMD direct-convolution kernels (include from src/f32-directconv only). */
#ifndef CNNRT_F32_DIRECTCONV_COMMON_H
#define CNNRT_F32_DIRECTCONV_COMMON_H

#include <stddef.h>

#include "cnnrt/conv.h"

/* toff[t]: offset of tap t = (ci, ky, kx) from the output column's padded row (stride 2: the column's phase plane);
 * returns the number of taps (cin * kh * kw <= CNN_DIRECT_MAX_CIN * 64) */
static inline size_t cnn_direct_tap_offsets(const cnn_directconv_params* p, ptrdiff_t* toff) {
  size_t t = 0;
  for (size_t ci = 0; ci < p->cin; ci++)
    for (size_t ky = 0; ky < p->kh; ky++)
      for (size_t kx = 0; kx < p->kw; kx++, t++)
        toff[t] = (ptrdiff_t)(ci * p->cstride + ky * p->pw) +
                  (p->sw == 1 ? (ptrdiff_t)kx : (ptrdiff_t)((kx & 1) * p->plane + (kx >> 1)));
  return t;
}

#endif
