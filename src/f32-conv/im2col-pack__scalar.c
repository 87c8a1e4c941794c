/* Implicit-GEMM packing of B straight from the NCHW input (an im2col done inside pack-B), portable C.
 * See cnn_conv_pack_b_fn in include/cnnrt/conv.h.
 *
 * Per call, a table gives for every row k of the block its input offset (ci*h*w + ky*dh*w + kx*dw) and its (dy, dx)
 * = (ky*dh, kx*dw). Per panel of nr output pixels, the pixels are cut into segments lying on one output row; a
 * segment whose every tap is inside the input is "interior" and copied without checks (with stride 1, a contiguous
 * run of the input row), others are clipped against the plane, zeros elsewhere. */
#include <string.h>

#include "cnnrt/conv.h"

#include "im2col.h"

void cnn_conv_pack_b_im2col__scalar(const cnn_conv_im2col* g, const float* in, size_t k0, size_t kc, size_t n0,
                                    size_t n, size_t nr, float* packed, ptrdiff_t* ktab) {
  const ptrdiff_t H = (ptrdiff_t)g->h, W = (ptrdiff_t)g->w, sw = (ptrdiff_t)g->sw;
  const ptrdiff_t* koff = ktab;
  const ptrdiff_t* kyi = ktab + kc;
  const ptrdiff_t* kxi = ktab + 2 * kc;
  const ptrdiff_t dh = (ptrdiff_t)g->dh, dw = (ptrdiff_t)g->dw;
  k_table(g, k0, kc, ktab);
  seg_t s[MAX_NR];
  for (size_t p0 = 0; p0 < n; p0 += nr) {
    const size_t nv = cnn_min_sz(nr, n - p0);
    const size_t ns = segments(g, n0 + p0, nv, s);
    float* dst = packed + p0 * kc;
    if (ns == 1 && s[0].interior && nv == 16 && nr == 16 && sw == 1) {
      /* the hot case: 16 consecutive input floats per row of B */
      const float* src = in + s[0].iy * W + s[0].ix;
      for (size_t t = 0; t < kc; t++) memcpy(dst + t * 16, src + koff[t], 16 * sizeof(float));
      continue;
    }
    for (size_t t = 0; t < kc; t++) {
      float* d = dst + t * nr;
      for (size_t q = 0; q < ns; q++) {
        float* dq = d + s[q].j;
        const size_t len = s[q].len;
        if (s[q].interior) {
          const float* src = in + s[q].iy * W + s[q].ix + koff[t];
          if (sw == 1)
            for (size_t u = 0; u < len; u++) dq[u] = src[u];
          else
            for (size_t u = 0; u < len; u++) dq[u] = src[(ptrdiff_t)u * sw];
          continue;
        }
        const ptrdiff_t dy = kyi[t] * dh, dx = kxi[t] * dw;
        const ptrdiff_t iy = s[q].iy + dy;
        if (iy < 0 || iy >= H) {
          for (size_t u = 0; u < len; u++) dq[u] = 0.0f;
          continue;
        }
        /* row of channel ci at iy: koff - dy*W - dx is the channel's base */
        const float* row = in + (koff[t] - dy * W - dx) + iy * W;
        const ptrdiff_t ix = s[q].ix + dx;
        for (size_t u = 0; u < len; u++) {
          const ptrdiff_t x = ix + (ptrdiff_t)u * sw;
          dq[u] = (x >= 0 && x < W) ? row[x] : 0.0f;
        }
      }
      for (size_t j = nv; j < nr; j++) d[j] = 0.0f;
    }
  }
}
