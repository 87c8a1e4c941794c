/* Depthwise convolution, one channel plane at a time, NEON (aarch64) (see cnn_dwconv_fn in include/cnnrt/conv.h;
 * same interface and accumulation order as dwconv__avx2.c: bias, then one FMA chain per filter row added to it).
 * Vectorized along the output width, 4 output columns per vector, over the interior columns [ox_lo, ox_hi) (no
 * horizontal padding): plain loads (stride 1), vld2q de-interleaving (stride 2) or lane-by-lane loads (other
 * strides). 3x3 stride 1 keeps the 9 weights in registers and computes 8 columns per iteration. The few edge
 * columns (and the < 4 interior columns left over) are computed one by one with per-tap bounds checks. */
#include <arm_neon.h>
#include <math.h>
#include <stdint.h>

#include "cnnrt/conv.h"

/* One output column (any position): taps outside the row read as 0. */
static inline float dw_one(const cnn_dwconv_params* p, const float* in, const float* w, float bias, ptrdiff_t iy0,
                           size_t ky_lo, size_t ky_hi, size_t ox) {
  const ptrdiff_t W = (ptrdiff_t)p->w;
  const ptrdiff_t ix0 = (ptrdiff_t)(ox * p->sw) - (ptrdiff_t)p->pl;
  float acc = bias;
  for (size_t ky = ky_lo; ky < ky_hi; ky++) {
    const float* row = in + (iy0 + (ptrdiff_t)(ky * p->dh)) * W;
    const float* wr = w + ky * p->kw;
    float racc = 0.0f;
    for (size_t kx = 0; kx < p->kw; kx++) {
      const ptrdiff_t ix = ix0 + (ptrdiff_t)(kx * p->dw);
      if (ix >= 0 && ix < W) racc = fmaf(wr[kx], row[ix], racc);
    }
    acc += racc;
  }
  return acc;
}

static inline float finish1(float acc, const float* rrow, size_t ox, float lo, float hi) {
  if (rrow) acc += rrow[ox];
  acc = acc < lo ? lo : acc;
  return acc > hi ? hi : acc;
}

/* residual, clamp (FMAX / FMIN propagate NaN), store 4 */
static inline void finish4(float32x4_t acc, const float* rrow, float* orow, float32x4_t lo, float32x4_t hi) {
  if (rrow) acc = vaddq_f32(acc, vld1q_f32(rrow));
  vst1q_f32(orow, vminq_f32(hi, vmaxq_f32(lo, acc)));
}

void cnn_f32_dwconv__neon(const cnn_dwconv_params* p, const float* in, const float* w, float bias,
                          const float* residual, float* out) {
  const ptrdiff_t H = (ptrdiff_t)p->h, W = (ptrdiff_t)p->w, pl = (ptrdiff_t)p->pl;
  const size_t kh = p->kh, kw = p->kw, dh = p->dh, dw = p->dw, sw = p->sw, ow = p->ow;
  const size_t ox_lo = p->ox_lo, ox_hi = p->ox_hi, ext_x = (kw - 1) * dw;
  const float32x4_t lo = vdupq_n_f32(p->min), hi = vdupq_n_f32(p->max), vb = vdupq_n_f32(bias);
  const int k3s1 = kh == 3 && kw == 3 && dh == 1 && dw == 1 && sw == 1;
  float32x4_t w9[9];
  if (k3s1)
    for (int i = 0; i < 9; i++) w9[i] = vdupq_n_f32(w[i]);

  for (size_t oy = 0; oy < p->oh; oy++) {
    const ptrdiff_t iy0 = (ptrdiff_t)(oy * p->sh) - (ptrdiff_t)p->pt;
    const size_t ky_lo = iy0 >= 0 ? 0 : cnn_div_up((size_t)(-iy0), dh);
    const size_t ky_hi = iy0 < H ? cnn_min_sz(kh, (size_t)(H - 1 - iy0) / dh + 1) : 0;
    float* orow = out + oy * ow;
    const float* rrow = residual ? residual + oy * ow : NULL;

    size_t ox = 0;
    for (; ox < ox_lo && ox < ow; ox++) /* left edge */
      orow[ox] = finish1(dw_one(p, in, w, bias, iy0, ky_lo, ky_hi, ox), rrow, ox, p->min, p->max);

    /* element offset of the input of column ox, filter row ky_lo, tap 0: boff + ox*sw (inside the plane for
     * interior columns) */
    const ptrdiff_t boff = (iy0 + (ptrdiff_t)(ky_lo * dh)) * W - pl;
    if (ky_hi > ky_lo) {
      if (k3s1 && ky_lo == 0 && ky_hi == 3) {
        for (; ox + 8 <= ox_hi; ox += 8) {
          const float* r0 = in + boff + (ptrdiff_t)ox;
          const float* r1 = r0 + W;
          const float* r2 = r1 + W;
          float32x4_t a0 = vb, a1 = vb, b0 = vdupq_n_f32(0.0f), b1 = b0;
#define TAP3(r, wi, acc0, acc1)                                  \
  acc0 = vfmaq_f32(acc0, w9[wi + 0], vld1q_f32(r + 0));          \
  acc1 = vfmaq_f32(acc1, w9[wi + 0], vld1q_f32(r + 4));          \
  acc0 = vfmaq_f32(acc0, w9[wi + 1], vld1q_f32(r + 1));          \
  acc1 = vfmaq_f32(acc1, w9[wi + 1], vld1q_f32(r + 5));          \
  acc0 = vfmaq_f32(acc0, w9[wi + 2], vld1q_f32(r + 2));          \
  acc1 = vfmaq_f32(acc1, w9[wi + 2], vld1q_f32(r + 6))
          TAP3(r0, 0, a0, a1);
          TAP3(r1, 3, b0, b1);
          TAP3(r2, 6, a0, a1);
#undef TAP3
          a0 = vaddq_f32(a0, b0);
          a1 = vaddq_f32(a1, b1);
          finish4(a0, rrow ? rrow + ox : NULL, orow + ox, lo, hi);
          finish4(a1, rrow ? rrow + ox + 4 : NULL, orow + ox + 4, lo, hi);
        }
      }
      for (; ox + 4 <= ox_hi; ox += 4) { /* interior: no tap reads padding horizontally */
        float32x4_t acc = vb;
        const float* rowp = in + boff + (ptrdiff_t)(ox * sw);
        /* stride 2: vld2q of 8 floats when the 8th (unused) one is still inside the row */
        const int s2_plain = sw == 2 && (ptrdiff_t)(ox * 2 + 7 + ext_x) < W + pl;
        for (size_t ky = ky_lo; ky < ky_hi; ky++, rowp += (ptrdiff_t)dh * W) {
          const float* wr = w + ky * kw;
          float32x4_t racc = vdupq_n_f32(0.0f); /* one chain per filter row */
          if (sw == 1) {
            for (size_t kx = 0; kx < kw; kx++) racc = vfmaq_n_f32(racc, vld1q_f32(rowp + kx * dw), wr[kx]);
          } else if (s2_plain) {
            for (size_t kx = 0; kx < kw; kx++) racc = vfmaq_n_f32(racc, vld2q_f32(rowp + kx * dw).val[0], wr[kx]);
          } else {
            for (size_t kx = 0; kx < kw; kx++) {
              const float* q = rowp + kx * dw;
              const float t[4] = {q[0], q[sw], q[2 * sw], q[3 * sw]};
              racc = vfmaq_n_f32(racc, vld1q_f32(t), wr[kx]);
            }
          }
          acc = vaddq_f32(acc, racc);
        }
        finish4(acc, rrow ? rrow + ox : NULL, orow + ox, lo, hi);
      }
    }
    for (; ox < ow; ox++) /* right edge, interior leftovers (and rows with no valid filter row) */
      orow[ox] = finish1(dw_one(p, in, w, bias, iy0, ky_lo, ky_hi, ox), rrow, ox, p->min, p->max);
  }
  if (p->act_fn) p->act_fn(p->act, out, out, p->oh * p->ow); /* the whole output at once (see cnn_dwconv_params) */
}
