/* Depthwise convolution on a zero-padded copy of the input plane, NEON (aarch64) (see cnn_dwconv_padded_fn in
 * include/cnnrt/conv.h; same structure as dwconv-padded__avx2.c). Every tap is a plain unaligned load (stride 2
 * reads the even/odd column planes the packer de-interleaved): no edge code. 8 output columns (two vectors) per
 * step — the padded plane is readable up to round_up(ow, 8) — two output rows per iteration, 3x3 and 5x5
 * specialized (weights broadcast once per plane); the last columns of a row are stored lane by lane. */
#include <arm_neon.h>
#include <stdint.h>
#include <string.h>

#include "cnnrt/conv.h"

/* residual, clamp (FMAX / FMIN propagate NaN), store lanes < r (r in 1..4) */
static inline void finish(float32x4_t acc, const float* rrow, float* orow, float32x4_t lo, float32x4_t hi, size_t r) {
  if (r >= 4) {
    if (rrow) acc = vaddq_f32(acc, vld1q_f32(rrow));
    vst1q_f32(orow, vminq_f32(hi, vmaxq_f32(lo, acc)));
    return;
  }
  float t[4] = {0.0f, 0.0f, 0.0f, 0.0f};
  if (rrow) {
    memcpy(t, rrow, r * sizeof(float));
    acc = vaddq_f32(acc, vld1q_f32(t));
  }
  vst1q_f32(t, vminq_f32(hi, vmaxq_f32(lo, acc)));
  memcpy(orow, t, r * sizeof(float));
}

/* 8 columns [ox, ox+8) of one or two rows; lanes past ow are computed (in-bounds reads) but not stored */
static inline void store8(float32x4_t v0, float32x4_t v1, const float* q, float* o, size_t ox, size_t ow,
                          float32x4_t lo, float32x4_t hi) {
  finish(v0, q ? q + ox : NULL, o + ox, lo, hi, ow - ox);
  if (ox + 4 < ow) finish(v1, q ? q + ox + 4 : NULL, o + ox + 4, lo, hi, ow - ox - 4);
}

static inline void dw_impl(const cnn_dwconv_padded_params* p, const float* pad, const float* w, float bias,
                           const float* residual, float* out, const size_t KH, const size_t KW) {
  enum { MAXT = 64 };
  const size_t nt = KH * KW, pw = p->pw, sh = p->sh, oh = p->oh, ow = p->ow;
  ptrdiff_t toff[MAXT];
  for (size_t ky = 0; ky < KH; ky++)
    for (size_t kx = 0; kx < KW; kx++)
      toff[ky * KW + kx] = (ptrdiff_t)(ky * pw) +
                           (p->sw == 1 ? (ptrdiff_t)kx : (ptrdiff_t)((kx & 1) * p->plane + (kx >> 1)));
  const float32x4_t lo = vdupq_n_f32(p->min), hi = vdupq_n_f32(p->max), vb = vdupq_n_f32(bias);
  const float32x4_t z = vdupq_n_f32(0.0f);
  size_t oy = 0;
  for (; oy + 2 <= oh; oy += 2) {
    const float* r0 = pad + oy * sh * pw;
    const float* r1 = r0 + sh * pw;
    float* o0 = out + oy * ow;
    float* o1 = o0 + ow;
    const float* q0 = residual ? residual + oy * ow : NULL;
    const float* q1 = residual ? q0 + ow : NULL;
    for (size_t ox = 0; ox < ow; ox += 8) {
      float32x4_t a00 = vb, a01 = vb, a10 = vb, a11 = vb, b00 = z, b01 = z, b10 = z, b11 = z;
      size_t t = 0;
      for (; t + 2 <= nt; t += 2) {
        const float w0 = w[t], w1 = w[t + 1];
        const float* s0 = r0 + ox + toff[t];
        const float* s1 = r1 + ox + toff[t];
        a00 = vfmaq_n_f32(a00, vld1q_f32(s0), w0);
        a01 = vfmaq_n_f32(a01, vld1q_f32(s0 + 4), w0);
        a10 = vfmaq_n_f32(a10, vld1q_f32(s1), w0);
        a11 = vfmaq_n_f32(a11, vld1q_f32(s1 + 4), w0);
        const float* u0 = r0 + ox + toff[t + 1];
        const float* u1 = r1 + ox + toff[t + 1];
        b00 = vfmaq_n_f32(b00, vld1q_f32(u0), w1);
        b01 = vfmaq_n_f32(b01, vld1q_f32(u0 + 4), w1);
        b10 = vfmaq_n_f32(b10, vld1q_f32(u1), w1);
        b11 = vfmaq_n_f32(b11, vld1q_f32(u1 + 4), w1);
      }
      if (t < nt) {
        const float w0 = w[t];
        const float* s0 = r0 + ox + toff[t];
        const float* s1 = r1 + ox + toff[t];
        a00 = vfmaq_n_f32(a00, vld1q_f32(s0), w0);
        a01 = vfmaq_n_f32(a01, vld1q_f32(s0 + 4), w0);
        a10 = vfmaq_n_f32(a10, vld1q_f32(s1), w0);
        a11 = vfmaq_n_f32(a11, vld1q_f32(s1 + 4), w0);
      }
      store8(vaddq_f32(a00, b00), vaddq_f32(a01, b01), q0, o0, ox, ow, lo, hi);
      store8(vaddq_f32(a10, b10), vaddq_f32(a11, b11), q1, o1, ox, ow, lo, hi);
    }
  }
  for (; oy < oh; oy++) {
    const float* r0 = pad + oy * sh * pw;
    float* o0 = out + oy * ow;
    const float* q0 = residual ? residual + oy * ow : NULL;
    for (size_t ox = 0; ox < ow; ox += 8) {
      float32x4_t a00 = vb, a01 = vb, b00 = z, b01 = z;
      size_t t = 0;
      for (; t + 2 <= nt; t += 2) {
        const float* s0 = r0 + ox + toff[t];
        const float* u0 = r0 + ox + toff[t + 1];
        a00 = vfmaq_n_f32(a00, vld1q_f32(s0), w[t]);
        a01 = vfmaq_n_f32(a01, vld1q_f32(s0 + 4), w[t]);
        b00 = vfmaq_n_f32(b00, vld1q_f32(u0), w[t + 1]);
        b01 = vfmaq_n_f32(b01, vld1q_f32(u0 + 4), w[t + 1]);
      }
      if (t < nt) {
        const float* s0 = r0 + ox + toff[t];
        a00 = vfmaq_n_f32(a00, vld1q_f32(s0), w[t]);
        a01 = vfmaq_n_f32(a01, vld1q_f32(s0 + 4), w[t]);
      }
      store8(vaddq_f32(a00, b00), vaddq_f32(a01, b01), q0, o0, ox, ow, lo, hi);
    }
  }
}

static void dw_generic(const cnn_dwconv_padded_params* p, const float* pad, const float* w, float bias,
                       const float* residual, float* out) {
  dw_impl(p, pad, w, bias, residual, out, p->kh, p->kw);
}

void cnn_f32_dwconv_padded__neon(const cnn_dwconv_padded_params* p, const float* pad, const float* w, float bias,
                                 const float* residual, float* out) {
  if (p->kh == 3 && p->kw == 3)
    dw_impl(p, pad, w, bias, residual, out, 3, 3);
  else if (p->kh == 5 && p->kw == 5)
    dw_impl(p, pad, w, bias, residual, out, 5, 5);
  else
    dw_generic(p, pad, w, bias, residual, out);
  if (p->act_fn) p->act_fn(p->act, out, out, p->oh * p->ow); /* the whole output at once (see cnn_dwconv_params) */
}
