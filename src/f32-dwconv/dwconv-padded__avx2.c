/* Depthwise convolution on a zero-padded copy of the input plane, AVX2 + FMA (see cnn_dwconv_padded_fn in
 * include/cnnrt/conv.h). Every tap is a plain unaligned load (stride 2 reads the even/odd column planes the packer
 * de-interleaved), so there is no edge code at all: 8 output columns per vector, four output rows per iteration at
 * stride 1 (each input row loaded once for the output rows that use it; 3x3 at 56x56 10-11% and 5x5 13% faster than
 * two rows, the plane kernel alone on Zen 4), otherwise two (independent FMA chains), 3x3 and 5x5 specialized
 * (weights broadcast once per plane), the last vector of a row stored with a mask. */
#include <immintrin.h>
#include <stdint.h>

#include "cnnrt/conv.h"
#include "dw-common__avx2.h"

static const int32_t g_mask[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};

/* Tap (ky, kx) of output (oy, ox) reads row oy*sh + ky at column ox + kx (S == 1) or, in phase plane kx & 1, at
 * column ox + (kx >> 1) (S == 2). KH, KW, S are compile-time constants in the specialized instances, so the taps
 * of one filter row are loads at constant offsets from one row pointer. */
#define LD(q, kx) _mm256_loadu_ps((S) == 1 ? (q) + (kx) : (q) + ((kx) & 1) * plane + ((kx) >> 1))
static inline __attribute__((always_inline)) void dw_impl(const cnn_dwconv_padded_params* p, const float* pad,
                                                          const float* w, float bias, const float* residual,
                                                          float* out, const size_t KH, const size_t KW,
                                                          const size_t S) {
  enum { MAXT = 64 };
  const size_t pw = p->pw, sh = p->sh, oh = p->oh, ow = p->ow, plane = p->plane;
  __m256 wv[MAXT];
  for (size_t t = 0; t < KH * KW; t++) wv[t] = _mm256_broadcast_ss(w + t);
  const __m256 lo = _mm256_set1_ps(p->min), hi = _mm256_set1_ps(p->max), vb = _mm256_set1_ps(bias);
  const size_t rem = ow % 8, full_end = ow - rem;
  const __m256i mrem = _mm256_loadu_si256((const __m256i*)(g_mask + 8 - rem));
  const __m256i mfull = _mm256_set1_epi32(-1);
  size_t oy = 0;
  if (S == 1 && sh == 1 && KH <= 5)
    /* stride 1: four output rows per step read KH + 3 input rows, each row's taps loaded once for every output row
     * that uses it ((KH + 3) * KW loads for 4 * KH * KW FMAs; two rows per step: (KH + 1) * KW for 2 * KH * KW) */
    for (; oy + 4 <= oh; oy += 4) {
      const float* r0 = pad + oy * pw;
      float* o0 = out + oy * ow;
      const float* q0 = residual ? residual + oy * ow : NULL;
      for (size_t ox = 0; ox < ow; ox += 8) {
        __m256 a[4] = {vb, vb, vb, vb};
#pragma GCC unroll 16
        for (size_t iy = 0; iy < KH + 3; iy++) {
          const float* x0 = r0 + iy * pw + ox;
#pragma GCC unroll 16
          for (size_t kx = 0; kx < KW; kx++) {
            const __m256 v = _mm256_loadu_ps(x0 + kx);
#pragma GCC unroll 4
            for (size_t r = 0; r < 4; r++)
              if (iy >= r && iy - r < KH) a[r] = _mm256_fmadd_ps(wv[(iy - r) * KW + kx], v, a[r]);
          }
        }
        const int full = ox < full_end;
        const __m256i m = full ? mfull : mrem;
#pragma GCC unroll 4
        for (size_t r = 0; r < 4; r++)
          cnn_dw_finish8(a[r], q0 ? q0 + r * ow + ox : NULL, o0 + r * ow + ox, lo, hi, m, full);
      }
    }
  for (; oy + 2 <= oh; oy += 2) {
    const float* r0 = pad + oy * sh * pw;
    const float* r1 = r0 + sh * pw;
    float* o0 = out + oy * ow;
    float* o1 = o0 + ow;
    const float* q0 = residual ? residual + oy * ow : NULL;
    const float* q1 = residual ? q0 + ow : NULL;
    for (size_t ox = 0; ox < ow; ox += 8) {
      __m256 a0 = vb, a1 = vb, b0 = _mm256_setzero_ps(), b1 = _mm256_setzero_ps();
#pragma GCC unroll 16
      for (size_t ky = 0; ky < KH; ky++) {
        const float* x0 = r0 + ky * pw + ox;
        const float* x1 = r1 + ky * pw + ox;
        const __m256* wr = wv + ky * KW;
        if (ky & 1) {
#pragma GCC unroll 16
          for (size_t kx = 0; kx < KW; kx++) {
            b0 = _mm256_fmadd_ps(wr[kx], LD(x0, kx), b0);
            b1 = _mm256_fmadd_ps(wr[kx], LD(x1, kx), b1);
          }
        } else {
#pragma GCC unroll 16
          for (size_t kx = 0; kx < KW; kx++) {
            a0 = _mm256_fmadd_ps(wr[kx], LD(x0, kx), a0);
            a1 = _mm256_fmadd_ps(wr[kx], LD(x1, kx), a1);
          }
        }
      }
      const int full = ox < full_end;
      const __m256i m = full ? mfull : mrem;
      cnn_dw_finish8(_mm256_add_ps(a0, b0), q0 ? q0 + ox : NULL, o0 + ox, lo, hi, m, full);
      cnn_dw_finish8(_mm256_add_ps(a1, b1), q1 ? q1 + ox : NULL, o1 + ox, lo, hi, m, full);
    }
  }
  for (; oy < oh; oy++) {
    const float* r0 = pad + oy * sh * pw;
    float* o0 = out + oy * ow;
    const float* q0 = residual ? residual + oy * ow : NULL;
    for (size_t ox = 0; ox < ow; ox += 8) {
      __m256 a0 = vb, b0 = _mm256_setzero_ps();
#pragma GCC unroll 16
      for (size_t ky = 0; ky < KH; ky++) {
        const float* x0 = r0 + ky * pw + ox;
        const __m256* wr = wv + ky * KW;
#pragma GCC unroll 16
        for (size_t kx = 0; kx < KW; kx++) {
          if (ky & 1)
            b0 = _mm256_fmadd_ps(wr[kx], LD(x0, kx), b0);
          else
            a0 = _mm256_fmadd_ps(wr[kx], LD(x0, kx), a0);
        }
      }
      const int full = ox < full_end;
      cnn_dw_finish8(_mm256_add_ps(a0, b0), q0 ? q0 + ox : NULL, o0 + ox, lo, hi, full ? mfull : mrem, full);
    }
  }
}
#undef LD

void cnn_f32_dwconv_padded__avx2(const cnn_dwconv_padded_params* p, const float* pad, const float* w, float bias,
                                 const float* residual, float* out) {
  const size_t kh = p->kh, kw = p->kw;
  if (p->sw == 1) {
    if (kh == 3 && kw == 3)
      dw_impl(p, pad, w, bias, residual, out, 3, 3, 1);
    else if (kh == 5 && kw == 5)
      dw_impl(p, pad, w, bias, residual, out, 5, 5, 1);
    else
      dw_impl(p, pad, w, bias, residual, out, kh, kw, 1);
  } else {
    if (kh == 3 && kw == 3)
      dw_impl(p, pad, w, bias, residual, out, 3, 3, 2);
    else if (kh == 5 && kw == 5)
      dw_impl(p, pad, w, bias, residual, out, 5, 5, 2);
    else
      dw_impl(p, pad, w, bias, residual, out, kh, kw, 2);
  }
  if (p->act_fn) p->act_fn(p->act, out, out, p->oh * p->ow); /* the whole output at once (see cnn_dwconv_params) */
}

/* Same result as cnn_dwconv_pad_plane (bit-exact copy); may also write zeros up to 8 floats past a row's end (into
 * the next row, rewritten afterwards, or the slack after each plane). */
/* (the zero stores stay inline: no memset call per row) */
__attribute__((optimize("no-tree-loop-distribute-patterns")))
void cnn_dwconv_pad_plane__avx2(const cnn_dwconv_padded_params* p, const float* in, size_t h, size_t w, float* pad) {
  const size_t pw = p->pw, sw = p->sw, pl = p->pl;
  const size_t cols = pw * sw;
  const size_t n = pl < cols ? cnn_min_sz(w, cols - pl) : 0; /* input columns copied */
  const __m256 z = _mm256_setzero_ps();
  /* stride 2: the even source columns fill [s0, s0 + n0) of plane (pl & 1), the odd ones [s1, s1 + n1) of the other
   * plane; only the columns around them are zeroed (before the data: a zero store may overlap a data vector) */
  const size_t s0 = pl >> 1, n0 = (n + 1) / 2, s1 = (pl + 1) >> 1, n1 = n / 2;
  for (size_t r = 0; r < p->ph; r++) {
    const ptrdiff_t iy = (ptrdiff_t)r - (ptrdiff_t)p->pt;
    const int inside = iy >= 0 && iy < (ptrdiff_t)h && n != 0;
    if (!inside) {
      for (size_t ph = 0; ph < sw; ph++) {
        float* dst = pad + ph * p->plane + r * pw;
        for (size_t c = 0; c < pw; c += 8) _mm256_storeu_ps(dst + c, z);
      }
      continue;
    }
    if (sw != 1) {
      float* e = pad + (pl & 1) * p->plane + r * pw;
      float* o = pad + (1 - (pl & 1)) * p->plane + r * pw;
      for (size_t c = 0; c < s0; c += 8) _mm256_storeu_ps(e + c, z);
      for (size_t c = s0 + n0; c < pw; c += 8) _mm256_storeu_ps(e + c, z);
      for (size_t c = 0; c < s1; c += 8) _mm256_storeu_ps(o + c, z);
      for (size_t c = s1 + n1; c < pw; c += 8) _mm256_storeu_ps(o + c, z);
    }
    const float* src = in + (size_t)iy * w;
    if (sw == 1) {
      /* zeros left of pl, the n input columns, zeros from pl + n to the row's end (each store at most 8 floats past
       * what it must cover: into the next row, written later, or the plane's slack) */
      float* row = pad + r * pw;
      for (size_t c = 0; c < pl; c += 8) _mm256_storeu_ps(row + c, z);
      float* dst = row + pl;
      size_t k = 0;
      for (; k + 8 <= n; k += 8) _mm256_storeu_ps(dst + k, _mm256_loadu_ps(src + k));
      if (k < n) {
        if (n >= 8) /* one more vector ending at n (overlaps the previous one with the same values) */
          _mm256_storeu_ps(dst + n - 8, _mm256_loadu_ps(src + n - 8));
        else
          for (; k < n; k++) dst[k] = src[k];
      }
      for (size_t c = pl + n; c < pw; c += 8) _mm256_storeu_ps(row + c, z);
    } else {
      /* even source columns go to plane (pl & 1) from (pl >> 1), odd ones to the other plane from (pl + 1) >> 1 */
      float* d0 = pad + (pl & 1) * p->plane + r * pw + (pl >> 1);
      float* d1 = pad + (1 - (pl & 1)) * p->plane + r * pw + ((pl + 1) >> 1);
      size_t k = 0;
      for (; k + 16 <= n; k += 16) {
        /* a = [src 0..3 | src 8..11], b = [src 4..7 | src 12..15]: the in-lane shuffles then give the even and odd
         * columns in order (no cross-lane permute) */
        const __m256 a = _mm256_insertf128_ps(_mm256_castps128_ps256(_mm_loadu_ps(src + k)), _mm_loadu_ps(src + k + 8), 1);
        const __m256 b =
            _mm256_insertf128_ps(_mm256_castps128_ps256(_mm_loadu_ps(src + k + 4)), _mm_loadu_ps(src + k + 12), 1);
        _mm256_storeu_ps(d0 + k / 2, _mm256_shuffle_ps(a, b, 0x88));
        _mm256_storeu_ps(d1 + k / 2, _mm256_shuffle_ps(a, b, 0xDD));
      }
      if (k + 8 <= n) { /* 8 columns: 4 to each plane (the upper 4 lanes store zeros, which belong there) */
        const __m128 lo = _mm_loadu_ps(src + k), hi = _mm_loadu_ps(src + k + 4);
        _mm_storeu_ps(d0 + k / 2, _mm_shuffle_ps(lo, hi, 0x88));
        _mm_storeu_ps(d1 + k / 2, _mm_shuffle_ps(lo, hi, 0xDD));
        k += 8;
      }
      for (; k < n; k++) {
        if (k & 1)
          d1[k >> 1] = src[k];
        else
          d0[k >> 1] = src[k];
      }
    }
  }
}
