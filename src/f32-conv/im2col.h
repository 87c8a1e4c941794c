/* Helpers shared by the implicit-GEMM packing kernels (internal to src/f32-conv). */
#ifndef CNNRT_F32_CONV_IM2COL_H
#define CNNRT_F32_CONV_IM2COL_H

#include "cnnrt/conv.h"

#define MAX_NR 32

typedef struct {
  size_t j, len;      /* destination columns [j, j+len) of the panel */
  ptrdiff_t iy, ix;   /* input position of the segment's first pixel for tap (0, 0) */
  int interior;
} seg_t;

/* ktab[t] = input offset of row k0+t of B for output pixel (0, 0) without padding (ci*h*w + ky*dh*w + kx*dw),
 * ktab[kc + t] = ky, ktab[2*kc + t] = kx. */
static inline void k_table(const cnn_conv_im2col* g, size_t k0, size_t kc, ptrdiff_t* ktab) {
  const size_t khw = g->kh * g->kw;
  size_t ci = k0 / khw, r = k0 % khw, ky = r / g->kw, kx = r % g->kw;
  const ptrdiff_t hw = (ptrdiff_t)(g->h * g->w), W = (ptrdiff_t)g->w;
  for (size_t t = 0; t < kc; t++) {
    ktab[t] = (ptrdiff_t)ci * hw + (ptrdiff_t)(ky * g->dh) * W + (ptrdiff_t)(kx * g->dw);
    ktab[kc + t] = (ptrdiff_t)ky;
    ktab[2 * kc + t] = (ptrdiff_t)kx;
    if (++kx == g->kw) {
      kx = 0;
      if (++ky == g->kh) {
        ky = 0;
        ci++;
      }
    }
  }
}

/* Cut the panel of output pixels [p, p+nv) into runs on one output row; returns their count (<= nv). */
static inline size_t segments(const cnn_conv_im2col* g, size_t p, size_t nv, seg_t* s) {
  const ptrdiff_t H = (ptrdiff_t)g->h, W = (ptrdiff_t)g->w;
  const ptrdiff_t ext_y = (ptrdiff_t)((g->kh - 1) * g->dh), ext_x = (ptrdiff_t)((g->kw - 1) * g->dw);
  size_t oy = p / g->ow, ox = p % g->ow, ns = 0;
  for (size_t j = 0; j < nv; ns++) {
    const size_t len = cnn_min_sz(nv - j, g->ow - ox);
    s[ns].j = j;
    s[ns].len = len;
    s[ns].iy = (ptrdiff_t)(oy * g->sh) - (ptrdiff_t)g->pt;
    s[ns].ix = (ptrdiff_t)(ox * g->sw) - (ptrdiff_t)g->pl;
    s[ns].interior = s[ns].iy >= 0 && s[ns].iy + ext_y < H && s[ns].ix >= 0 &&
                     s[ns].ix + (ptrdiff_t)((len - 1) * g->sw) + ext_x < W;
    j += len;
    ox = 0;
    oy++;
  }
  return ns;
}

#endif
