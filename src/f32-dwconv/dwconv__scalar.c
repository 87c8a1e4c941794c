/* Depthwise convolution, one channel plane at a time, portable C (see cnn_dwconv_fn in include/cnnrt/conv.h).
 * Rows of the filter that fall into vertical padding are skipped once per output row; output columns in
 * [ox_lo, ox_hi) need no horizontal checks, the few edge columns check every tap. */
#include <math.h>

#include "cnnrt/conv.h"

void cnn_dwconv_params_init(cnn_dwconv_params* p, const cnn_conv2d_desc* d, size_t h, size_t w, size_t oh, size_t ow) {
  p->h = h;
  p->w = w;
  p->oh = oh;
  p->ow = ow;
  p->kh = d->kernel_h;
  p->kw = d->kernel_w;
  p->sh = d->stride_h;
  p->sw = d->stride_w;
  p->dh = d->dilation_h;
  p->dw = d->dilation_w;
  p->pt = d->pad_top;
  p->pl = d->pad_left;
  /* ox >= ox_lo  <=>  ox*sw - pl >= 0 ;  ox < ox_hi  <=>  ox*sw - pl + (kw-1)*dw <= w-1 */
  const size_t ext = (d->kernel_w - 1) * d->dilation_w;
  size_t lo = cnn_min_sz(cnn_div_up(d->pad_left, d->stride_w), ow);
  size_t hi = 0;
  if (w - 1 + d->pad_left >= ext) hi = cnn_min_sz((w - 1 + d->pad_left - ext) / d->stride_w + 1, ow);
  if (hi < lo) hi = lo;
  p->ox_lo = lo;
  p->ox_hi = hi;
  p->min = -INFINITY;
  p->max = INFINITY;
  p->act_fn = NULL;
  p->act = NULL;
}

void cnn_f32_dwconv__scalar(const cnn_dwconv_params* p, const float* in, const float* w, float bias,
                            const float* residual, float* out) {
  const ptrdiff_t H = (ptrdiff_t)p->h, W = (ptrdiff_t)p->w;
  const size_t kh = p->kh, kw = p->kw, dh = p->dh, dw = p->dw, sw = p->sw;
  for (size_t oy = 0; oy < p->oh; oy++) {
    const ptrdiff_t iy0 = (ptrdiff_t)(oy * p->sh) - (ptrdiff_t)p->pt;
    /* filter rows [ky_lo, ky_hi) read inside the plane */
    size_t ky_lo = iy0 >= 0 ? 0 : cnn_div_up((size_t)(-iy0), dh);
    size_t ky_hi = iy0 < H ? cnn_min_sz(kh, (size_t)(H - 1 - iy0) / dh + 1) : 0;
    float* orow = out + oy * p->ow;
    const float* rrow = residual ? residual + oy * p->ow : NULL;
    for (size_t ox = 0; ox < p->ow; ox++) {
      const ptrdiff_t ix0 = (ptrdiff_t)(ox * sw) - (ptrdiff_t)p->pl;
      float acc = bias;
      if (ox >= p->ox_lo && ox < p->ox_hi) {
        for (size_t ky = ky_lo; ky < ky_hi; ky++) {
          const float* row = in + (iy0 + (ptrdiff_t)(ky * dh)) * W + ix0;
          const float* wr = w + ky * kw;
          for (size_t kx = 0; kx < kw; kx++) acc += wr[kx] * row[kx * dw];
        }
      } else {
        for (size_t ky = ky_lo; ky < ky_hi; ky++) {
          const float* row = in + (iy0 + (ptrdiff_t)(ky * dh)) * W;
          const float* wr = w + ky * kw;
          for (size_t kx = 0; kx < kw; kx++) {
            const ptrdiff_t ix = ix0 + (ptrdiff_t)(kx * dw);
            if (ix >= 0 && ix < W) acc += wr[kx] * row[ix];
          }
        }
      }
      if (rrow) acc += rrow[ox];
      acc = acc < p->min ? p->min : acc;
      acc = acc > p->max ? p->max : acc;
      orow[ox] = acc;
    }
  }
  if (p->act_fn) p->act_fn(p->act, out, out, p->oh * p->ow); /* the whole output at once (see cnn_dwconv_params) */
}

/* the shapes of cnn_f32_dwconv_rows__avx2 (int32 column arithmetic: rows well below 2^30) */
int cnn_dwconv_rows_ok(const cnn_conv2d_desc* d, size_t h, size_t w) {
  (void)h;
  return d->dilation_h == 1 && d->dilation_w == 1 && (d->stride_w == 1 || d->stride_w == 2) && d->kernel_w <= 8 &&
         d->kernel_h * d->kernel_w <= 64 && d->stride_h <= 2 && w + d->pad_left + 64 < ((size_t)1 << 30);
}
