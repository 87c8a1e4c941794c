/* Private helpers shared by the pool2d kernels of every ISA (pool2d__scalar.c, __avx2.c, __neon.c): the window of an
 * output position, one output (the scalar kernel is this for every output; the SIMD kernels use it for the outputs
 * they do not vectorize), and the maximum over a clipped window. Include only from those files. */
#ifndef CNNRT_F32_POOL_COMMON_H
#define CNNRT_F32_POOL_COMMON_H

#include <math.h>
#include <stddef.h>

#include "cnnrt/eltwise.h"

/* Window of output position o along one axis: taps k in [*k_lo, *k_hi) fall inside the input [0, in); *k_pad counts
 * the taps inside the padded input [-pad_begin, in + pad_end) (the ONNX count_include_pad divisor). */
static inline void window_1d(size_t o, size_t stride, size_t pad_begin, size_t pad_end, size_t dil, size_t k,
                             size_t in, size_t* k_lo, size_t* k_hi, size_t* k_pad) {
  const ptrdiff_t start = (ptrdiff_t)(o * stride) - (ptrdiff_t)pad_begin;
  const ptrdiff_t last_in = (ptrdiff_t)in - 1, last_pad = (ptrdiff_t)(in + pad_end) - 1;
  const ptrdiff_t dl = (ptrdiff_t)dil;
  /* (dil == 1 tested first: an integer division costs more than the rest of a small window) */
  size_t lo = start >= 0 ? 0 : (size_t)(dl == 1 ? -start : (-start + dl - 1) / dl);
  size_t hi = start > last_in ? 0 : cnn_min_sz(k, (size_t)(dl == 1 ? last_in - start : (last_in - start) / dl) + 1);
  if (lo > hi) lo = hi;
  *k_lo = lo;
  *k_hi = hi;
  *k_pad = start > last_pad ? 0 : cnn_min_sz(k, (size_t)(dl == 1 ? last_pad - start : (last_pad - start) / dl) + 1);
}

/* One output: taps in (ky, kx) order inside the input; max keeps m unless v > m (a NaN is skipped), average divides
 * the float sum by the tap count (count_include_pad: the taps inside the padded input). Rows [ky0, ky1) of the window
 * are inside the input, kyp inside the padded input; iy0 = the window's first input row. */
static inline float pool_one(const cnn_pool2d_desc* d, const float* xp, size_t w, ptrdiff_t iy0, size_t ky0,
                             size_t ky1, size_t kyp, size_t ox) {
  size_t kx0, kx1, kxp;
  window_1d(ox, d->stride_w, d->pad_left, d->pad_right, d->dilation_w, d->kernel_w, w, &kx0, &kx1, &kxp);
  const ptrdiff_t ix0 = (ptrdiff_t)(ox * d->stride_w) - (ptrdiff_t)d->pad_left;
  const size_t dh = d->dilation_h, dw = d->dilation_w;
  if (d->type == 0) {
    float m = -INFINITY;
    for (size_t ky = ky0; ky < ky1; ky++) {
      const float* row = xp + (size_t)(iy0 + (ptrdiff_t)(ky * dh)) * w;
      for (size_t kx = kx0; kx < kx1; kx++) {
        const float v = row[ix0 + (ptrdiff_t)(kx * dw)];
        m = v > m ? v : m;
      }
    }
    return m;
  }
  float s = 0.0f;
  for (size_t ky = ky0; ky < ky1; ky++) {
    const float* row = xp + (size_t)(iy0 + (ptrdiff_t)(ky * dh)) * w;
    for (size_t kx = kx0; kx < kx1; kx++) s += row[ix0 + (ptrdiff_t)(kx * dw)];
  }
  const size_t div = d->count_include_pad ? kyp * kxp : (ky1 - ky0) * (kx1 - kx0);
  return div ? s / (float)div : 0.0f;
}

/* Maximum over input rows [r0, r1) x columns [c0, c1) of plane xp (an empty window gives -inf), taps in (row,
 * column) order with the scalar kernel's "v > m ? v : m". */
static inline float max_window(const float* xp, size_t w, ptrdiff_t r0, ptrdiff_t r1, ptrdiff_t c0, ptrdiff_t c1) {
  float m = -INFINITY;
  for (ptrdiff_t r = r0; r < r1; r++)
    for (ptrdiff_t c = c0; c < c1; c++) {
      const float v = xp[(size_t)r * w + (size_t)c];
      m = v > m ? v : m;
    }
  return m;
}

/* The 3x3 stride-2 max pools' scalar part (pool2d__avx2.c, pool2d__neon.c): outputs outside the vector columns
 * [left_end, vec_end) of each row, and every output of a row whose window holds no input row, one at a time. Returns
 * without work when there are none (only the first and last output rows can have an empty window). */
static inline void max3x3s2_border(const cnn_pool2d_desc* d, size_t nc, size_t h, size_t w, size_t oh, size_t ow,
                                   size_t left_end, size_t vec_end, const float* x, float* y) {
  const size_t pl = d->pad_left, pt = d->pad_top;
  int border = left_end > 0 || vec_end < ow;
  for (size_t oy = 0; oy < oh && !border; oy = oy + 1 < oh - 1 ? oh - 1 : oy + 1) {
    const ptrdiff_t iy0 = (ptrdiff_t)(oy * 2) - (ptrdiff_t)pt;
    border = (iy0 > 0 ? iy0 : 0) >= (iy0 + 3 < (ptrdiff_t)h ? iy0 + 3 : (ptrdiff_t)h);
  }
  for (size_t p = 0; p < nc && border; p++) {
    const float* xp = x + p * h * w;
    for (size_t oy = 0; oy < oh; oy++) {
      const ptrdiff_t iy0 = (ptrdiff_t)(oy * 2) - (ptrdiff_t)pt;
      const ptrdiff_t r0 = iy0 > 0 ? iy0 : 0, r1 = iy0 + 3 < (ptrdiff_t)h ? iy0 + 3 : (ptrdiff_t)h;
      float* yr = y + (p * oh + oy) * ow;
      /* columns [0, a) and [b, ow): all of them when the window holds no input row */
      const size_t a = r1 <= r0 ? ow : left_end, b = r1 <= r0 ? ow : (vec_end > left_end ? vec_end : left_end);
      for (size_t ox = 0; ox < ow; ox++) {
        if (ox == a) ox = b;
        if (ox >= ow) break;
        const ptrdiff_t ix0 = (ptrdiff_t)(ox * 2) - (ptrdiff_t)pl;
        yr[ox] = max_window(xp, w, r0, r1, ix0 > 0 ? ix0 : 0, ix0 + 3 < (ptrdiff_t)w ? ix0 + 3 : (ptrdiff_t)w);
      }
    }
  }
}

#endif
