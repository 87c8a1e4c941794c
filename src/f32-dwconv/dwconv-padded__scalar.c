/* Depthwise convolution on a zero-padded copy of the input plane, portable C: the reference of
 * cnn_f32_dwconv_padded__avx2 (same tap layout, see cnn_dwconv_padded_params in include/cnnrt/conv.h), and the
 * packer that builds that copy. */
#include <string.h>

#include "cnnrt/conv.h"

int cnn_dwconv_padded_geometry(const cnn_conv2d_desc* d, size_t h, size_t w, size_t oh, size_t ow,
                               cnn_dwconv_padded_params* p, size_t* floats) {
  (void)h;
  (void)w;
  if (d->dilation_h != 1 || d->dilation_w != 1 || (d->stride_w != 1 && d->stride_w != 2)) return 0;
  if (d->kernel_h * d->kernel_w > 64) return 0;
  const size_t owv = cnn_round_up(ow, 8);
  const size_t sw = d->stride_w;
  /* columns of one (phase) plane read: ox + (kx >> (sw - 1)) for ox < owv */
  const size_t pw = cnn_round_up(owv + (d->kernel_w - 1) / sw, 8);
  const size_t ph = (oh - 1) * d->stride_h + d->kernel_h;
  if (pw > ((size_t)1 << 24) || ph > ((size_t)1 << 24) || pw * ph > ((size_t)1 << 24)) return 0;
  p->oh = oh;
  p->ow = ow;
  p->kh = d->kernel_h;
  p->kw = d->kernel_w;
  p->sh = d->stride_h;
  p->sw = sw;
  p->pw = pw;
  p->ph = ph;
  p->pt = d->pad_top;
  p->pl = d->pad_left;
  p->plane = cnn_round_up(pw * ph + 16, 8); /* slack: the AVX2 packer may write 8 floats past a row */
  p->min = -1.0f / 0.0f;
  p->max = 1.0f / 0.0f;
  p->act_fn = NULL;
  p->act = NULL;
  if (floats) *floats = p->plane * sw;
  return 1;
}

void cnn_dwconv_pad_plane(const cnn_dwconv_padded_params* p, const float* in, size_t h, size_t w, float* pad) {
  const size_t pw = p->pw, sw = p->sw, pl = p->pl;
  const size_t cols = pw * sw; /* logical padded row: column c holds in[c - pl] */
  for (size_t r = 0; r < p->ph; r++) {
    const ptrdiff_t iy = (ptrdiff_t)r - (ptrdiff_t)p->pt;
    float* dst = pad + r * pw;
    if (iy < 0 || iy >= (ptrdiff_t)h) {
      memset(dst, 0, pw * sizeof(float));
      if (sw == 2) memset(dst + p->plane, 0, pw * sizeof(float));
      continue;
    }
    const float* src = in + (size_t)iy * w;
    /* valid logical columns [c0, c1) */
    const size_t c0 = pl < cols ? pl : cols;
    const size_t c1 = pl + w < cols ? pl + w : cols;
    if (sw == 1) {
      memset(dst, 0, c0 * sizeof(float));
      memcpy(dst + c0, src, (c1 - c0) * sizeof(float));
      memset(dst + c1, 0, (cols - c1) * sizeof(float));
    } else {
      float* ev = dst;
      float* od = dst + p->plane;
      for (size_t c = 0; c < cols; c++) {
        const float v = c >= c0 && c < c1 ? src[c - pl] : 0.0f;
        if (c & 1)
          od[c >> 1] = v;
        else
          ev[c >> 1] = v;
      }
    }
  }
}

void cnn_f32_dwconv_padded__scalar(const cnn_dwconv_padded_params* p, const float* pad, const float* w, float bias,
                                   const float* residual, float* out) {
  const size_t kh = p->kh, kw = p->kw, pw = p->pw;
  for (size_t oy = 0; oy < p->oh; oy++) {
    float* orow = out + oy * p->ow;
    for (size_t ox = 0; ox < p->ow; ox++) {
      float acc = bias;
      for (size_t ky = 0; ky < kh; ky++) {
        const float* row = pad + (oy * p->sh + ky) * pw + ox;
        for (size_t kx = 0; kx < kw; kx++)
          acc += w[ky * kw + kx] * (p->sw == 1 ? row[kx] : row[(kx & 1) * p->plane + (kx >> 1)]);
      }
      if (residual) acc += residual[oy * p->ow + ox];
      acc = acc < p->min ? p->min : acc;
      acc = acc > p->max ? p->max : acc;
      orow[ox] = acc;
    }
  }
  if (p->act_fn) p->act_fn(p->act, out, out, p->oh * p->ow); /* the whole output at once (see cnn_dwconv_params) */
}

int cnn_dwconv_c8_geometry(const cnn_conv2d_desc* d, size_t h, size_t w, size_t oh, size_t ow, cnn_dwconv_c8_params* p,
                           size_t* xfloats, size_t* yfloats) {
  if (d->dilation_h != 1 || d->dilation_w != 1 || d->kernel_h * d->kernel_w > 64) return 0;
  if (d->out_channels != d->in_channels || d->groups != d->in_channels) return 0;
  const size_t pwc = (ow - 1) * d->stride_w + d->kernel_w, ph = (oh - 1) * d->stride_h + d->kernel_h;
  if (pwc > ((size_t)1 << 20) || ph > ((size_t)1 << 20) || pwc * ph > ((size_t)1 << 20) || oh * ow > ((size_t)1 << 20))
    return 0;
  p->h = h;
  p->w = w;
  p->oh = oh;
  p->ow = ow;
  p->kh = d->kernel_h;
  p->kw = d->kernel_w;
  p->sh = d->stride_h;
  p->sw = d->stride_w;
  p->pt = d->pad_top;
  p->pl = d->pad_left;
  p->pwc = pwc;
  p->ph = ph;
  p->ostride = oh * ow;
  p->min = -1.0f / 0.0f;
  p->max = 1.0f / 0.0f;
  p->act_fn = NULL;
  p->act = NULL;
  if (xfloats) *xfloats = cnn_round_up(ph * pwc * 8, 16);
  if (yfloats) *yfloats = cnn_round_up(oh * ow * 8, 16);
  return 1;
}
