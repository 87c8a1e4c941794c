/* 2-D max / average pooling and global pooling, NCHW, portable reference. */
#include <math.h>

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

void cnn_f32_pool2d__scalar(const cnn_pool2d_desc* d, size_t nc, size_t h, size_t w, size_t oh, size_t ow,
                            const float* x, float* y) {
  const size_t kh = d->kernel_h, kw = d->kernel_w, dh = d->dilation_h, dw = d->dilation_w;
  const int is_max = d->type == 0, cip = d->count_include_pad;
  for (size_t p = 0; p < nc; p++) {
    const float* xp = x + p * h * w;
    float* yp = y + p * oh * ow;
    for (size_t oy = 0; oy < oh; oy++) {
      size_t ky0, ky1, kyp;
      window_1d(oy, d->stride_h, d->pad_top, d->pad_bottom, dh, kh, h, &ky0, &ky1, &kyp);
      const ptrdiff_t iy0 = (ptrdiff_t)(oy * d->stride_h) - (ptrdiff_t)d->pad_top;
      for (size_t ox = 0; ox < ow; ox++) {
        size_t kx0, kx1, kxp;
        window_1d(ox, d->stride_w, d->pad_left, d->pad_right, dw, kw, w, &kx0, &kx1, &kxp);
        const ptrdiff_t ix0 = (ptrdiff_t)(ox * d->stride_w) - (ptrdiff_t)d->pad_left;
        float out;
        if (is_max) {
          float m = -INFINITY;
          for (size_t ky = ky0; ky < ky1; ky++) {
            const float* row = xp + (size_t)(iy0 + (ptrdiff_t)(ky * dh)) * w;
            for (size_t kx = kx0; kx < kx1; kx++) {
              const float v = row[ix0 + (ptrdiff_t)(kx * dw)];
              m = v > m ? v : m;
            }
          }
          out = m;
        } else {
          float s = 0.0f;
          for (size_t ky = ky0; ky < ky1; ky++) {
            const float* row = xp + (size_t)(iy0 + (ptrdiff_t)(ky * dh)) * w;
            for (size_t kx = kx0; kx < kx1; kx++) s += row[ix0 + (ptrdiff_t)(kx * dw)];
          }
          const size_t div = cip ? kyp * kxp : (ky1 - ky0) * (kx1 - kx0);
          out = div ? s / (float)div : 0.0f;
        }
        yp[oy * ow + ox] = out;
      }
    }
  }
}

/* Mean accumulates in double (then one rounding); max keeps m unless v > m (NaN skipped). hw == 0: 0 / -inf. */
void cnn_f32_global_pool__scalar(int type, size_t nc, size_t hw, const float* x, float* y) {
  for (size_t p = 0; p < nc; p++) {
    const float* xp = x + p * hw;
    if (type == 0) {
      float m = -INFINITY;
      for (size_t i = 0; i < hw; i++) m = xp[i] > m ? xp[i] : m;
      y[p] = m;
    } else {
      double s = 0.0;
      for (size_t i = 0; i < hw; i++) s += xp[i];
      y[p] = hw ? (float)(s / (double)hw) : 0.0f;
    }
  }
}
