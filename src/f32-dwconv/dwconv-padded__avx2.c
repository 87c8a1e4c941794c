/* Depthwise convolution on a zero-padded copy of the input plane, AVX2 + FMA (see cnn_dwconv_padded_fn in
 * include/cnnrt/conv.h). Every tap is a plain unaligned load (stride 2 reads the even/odd column planes the packer
 * de-interleaved), so there is no edge code at all: 8 output columns per vector, two output rows per iteration
 * (independent FMA chains), 3x3 and 5x5 specialized (weights broadcast once per plane), the last vector of a row
 * stored with a mask. */
#include <immintrin.h>
#include <stdint.h>

#include "cnnrt/conv.h"

static const int32_t g_mask[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};

static inline void finish(__m256 acc, const float* rrow, float* orow, __m256 lo, __m256 hi, __m256i m, int full) {
  if (rrow) acc = _mm256_add_ps(acc, full ? _mm256_loadu_ps(rrow) : _mm256_maskload_ps(rrow, m));
  acc = _mm256_min_ps(hi, _mm256_max_ps(lo, acc));
  if (full)
    _mm256_storeu_ps(orow, acc);
  else
    _mm256_maskstore_ps(orow, m, acc);
}

/* tap t = ky*kw + kx of output (oy, ox) reads pad[oy*sh*pw + ox + toff[t]] */
static inline void dw_impl(const cnn_dwconv_padded_params* p, const float* pad, const float* w, float bias,
                           const float* residual, float* out, const size_t KH, const size_t KW) {
  enum { MAXT = 64 };
  const size_t nt = KH * KW, pw = p->pw, sh = p->sh, oh = p->oh, ow = p->ow;
  ptrdiff_t toff[MAXT];
  __m256 wv[MAXT];
  for (size_t ky = 0; ky < KH; ky++)
    for (size_t kx = 0; kx < KW; kx++) {
      const size_t t = ky * KW + kx;
      toff[t] = (ptrdiff_t)(ky * pw) +
                (p->sw == 1 ? (ptrdiff_t)kx : (ptrdiff_t)((kx & 1) * p->plane + (kx >> 1)));
      wv[t] = _mm256_broadcast_ss(w + t);
    }
  const __m256 lo = _mm256_set1_ps(p->min), hi = _mm256_set1_ps(p->max), vb = _mm256_set1_ps(bias);
  const size_t rem = ow % 8, full_end = ow - rem;
  const __m256i mrem = _mm256_loadu_si256((const __m256i*)(g_mask + 8 - rem));
  const __m256i mfull = _mm256_set1_epi32(-1);
  size_t oy = 0;
  for (; oy + 2 <= oh; oy += 2) {
    const float* r0 = pad + oy * sh * pw;
    const float* r1 = r0 + sh * pw;
    float* o0 = out + oy * ow;
    float* o1 = o0 + ow;
    const float* q0 = residual ? residual + oy * ow : NULL;
    const float* q1 = residual ? q0 + ow : NULL;
    for (size_t ox = 0; ox < ow; ox += 8) {
      __m256 a0 = vb, a1 = vb, b0 = _mm256_setzero_ps(), b1 = _mm256_setzero_ps();
      size_t t = 0;
      for (; t + 2 <= nt; t += 2) {
        a0 = _mm256_fmadd_ps(wv[t], _mm256_loadu_ps(r0 + ox + toff[t]), a0);
        a1 = _mm256_fmadd_ps(wv[t], _mm256_loadu_ps(r1 + ox + toff[t]), a1);
        b0 = _mm256_fmadd_ps(wv[t + 1], _mm256_loadu_ps(r0 + ox + toff[t + 1]), b0);
        b1 = _mm256_fmadd_ps(wv[t + 1], _mm256_loadu_ps(r1 + ox + toff[t + 1]), b1);
      }
      if (t < nt) {
        a0 = _mm256_fmadd_ps(wv[t], _mm256_loadu_ps(r0 + ox + toff[t]), a0);
        a1 = _mm256_fmadd_ps(wv[t], _mm256_loadu_ps(r1 + ox + toff[t]), a1);
      }
      const int full = ox < full_end;
      const __m256i m = full ? mfull : mrem;
      finish(_mm256_add_ps(a0, b0), q0 ? q0 + ox : NULL, o0 + ox, lo, hi, m, full);
      finish(_mm256_add_ps(a1, b1), q1 ? q1 + ox : NULL, o1 + ox, lo, hi, m, full);
    }
    if (p->act_fn) {
      p->act_fn(p->act, o0, o0, ow);
      p->act_fn(p->act, o1, o1, ow);
    }
  }
  for (; oy < oh; oy++) {
    const float* r0 = pad + oy * sh * pw;
    float* o0 = out + oy * ow;
    const float* q0 = residual ? residual + oy * ow : NULL;
    for (size_t ox = 0; ox < ow; ox += 8) {
      __m256 a0 = vb, b0 = _mm256_setzero_ps();
      size_t t = 0;
      for (; t + 2 <= nt; t += 2) {
        a0 = _mm256_fmadd_ps(wv[t], _mm256_loadu_ps(r0 + ox + toff[t]), a0);
        b0 = _mm256_fmadd_ps(wv[t + 1], _mm256_loadu_ps(r0 + ox + toff[t + 1]), b0);
      }
      if (t < nt) a0 = _mm256_fmadd_ps(wv[t], _mm256_loadu_ps(r0 + ox + toff[t]), a0);
      const int full = ox < full_end;
      finish(_mm256_add_ps(a0, b0), q0 ? q0 + ox : NULL, o0 + ox, lo, hi, full ? mfull : mrem, full);
    }
    if (p->act_fn) p->act_fn(p->act, o0, o0, ow);
  }
}

static void dw_generic(const cnn_dwconv_padded_params* p, const float* pad, const float* w, float bias,
                       const float* residual, float* out) {
  dw_impl(p, pad, w, bias, residual, out, p->kh, p->kw);
}

void cnn_f32_dwconv_padded__avx2(const cnn_dwconv_padded_params* p, const float* pad, const float* w, float bias,
                                 const float* residual, float* out) {
  if (p->kh == 3 && p->kw == 3)
    dw_impl(p, pad, w, bias, residual, out, 3, 3);
  else if (p->kh == 5 && p->kw == 5)
    dw_impl(p, pad, w, bias, residual, out, 5, 5);
  else
    dw_generic(p, pad, w, bias, residual, out);
}
