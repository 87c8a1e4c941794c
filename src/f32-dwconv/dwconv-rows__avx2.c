/* Depthwise convolution straight from the input plane, no padded copy, AVX2 + FMA (see cnn_f32_dwconv_rows__avx2
 * in include/cnnrt/conv.h). 8 output columns per vector, two output rows per iteration that share the input rows
 * they both read (4 rows for 3x3 stride 1, 5 for 3x3 stride 2), 3x3 and 5x5 specialized (weights broadcast once per
 * plane). Rows above/below the input read a zeroed scratch row. Vectors whose loads stay inside the row use plain
 * loads; the others (the first and last vectors of a row) use masked loads whose lanes outside [0, w) read 0: the
 * masks depend on the vector's columns only and are computed once per vector for all its rows.
 *   stride 1: tap kx of outputs ox..ox+7 is the load at column ox - pl + kx.
 *   stride 2: the loads A = columns [c, c+8) and B = [c+8, c+16), c = 2*ox - pl + 2m, give with one in-lane shuffle
 *   each the taps kx = 2m (shuffle 0x88) and kx = 2m + 1 (0xDD) for the outputs in the lane order [0 1 4 5 | 2 3 6 7];
 *   every tap of the vector uses that order, and one 64-bit permute restores it before the residual and the store. */
#include <immintrin.h>
#include <stdint.h>

#include "cnnrt/conv.h"
#include "dw-common__avx2.h"

static const int32_t g_mask[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};

enum { MAXT = 64, MAXL = 8 }; /* taps; loads per row and vector (kw <= 8) */

/* row + off floats on integers (masked lanes may lie outside the row's object; they are not read) */
static inline const float* at(const float* row, ptrdiff_t off) {
  return (const float*)((uintptr_t)row + (uintptr_t)(off * (ptrdiff_t)sizeof(float)));
}

/* acc + the taps of filter row wr on input row x (pointing at column ox*S - pl). EDGE: masked loads (masks per
 * load index). Stride 2: the taps in the lane order [0 1 4 5 | 2 3 6 7]. */
#define LOADS(KW, S) ((S) == 1 ? (KW) : 2 * (((KW) + 1) / 2))
#define LD(i, off) (EDGE ? _mm256_maskload_ps(at(x, (ptrdiff_t)(off)), mk[i]) : _mm256_loadu_ps(x + (off)))
static inline __attribute__((always_inline)) __m256 row_taps(const float* x, const __m256* wr, const __m256i* mk,
                                                             const size_t KW, const size_t S, const int EDGE,
                                                             __m256 acc) {
  if (S == 1) {
#pragma GCC unroll 8
    for (size_t kx = 0; kx < KW; kx++) acc = _mm256_fmadd_ps(wr[kx], LD(kx, kx), acc);
  } else {
#pragma GCC unroll 8
    for (size_t m = 0; 2 * m < KW; m++) {
      const __m256 A = LD(2 * m, 2 * m), B = LD(2 * m + 1, 2 * m + 8);
      acc = _mm256_fmadd_ps(wr[2 * m], _mm256_shuffle_ps(A, B, 0x88), acc);
      if (2 * m + 1 < KW) acc = _mm256_fmadd_ps(wr[2 * m + 1], _mm256_shuffle_ps(A, B, 0xDD), acc);
    }
  }
  return acc;
}

/* Output vector(s) at column ox of output row oy (and oy + 1 when TWO): rows[j] is input row oy*SH - pt + j (or the
 * zero row), j < KH + SH*TWO; row j serves output oy as ky = j (j < KH) and output oy + 1 as ky = j - SH. Two
 * accumulators per output (by the parity of ky: independent FMA chains). */
static inline __attribute__((always_inline)) void block(const float* const* rows, ptrdiff_t col, const __m256* wv,
                                                        const __m256i* mk, __m256 vb, const size_t KH,
                                                        const size_t KW, const size_t S, const size_t SH,
                                                        const int TWO, const int EDGE, __m256* v0, __m256* v1) {
  __m256 a0 = vb, a1 = vb, b0 = _mm256_setzero_ps(), b1 = _mm256_setzero_ps();
  const size_t nrows = TWO ? KH + SH : KH;
#pragma GCC unroll 16
  for (size_t j = 0; j < nrows; j++) {
    const int use0 = j < KH, use1 = TWO && j >= SH && j < SH + KH;
    const float* x = at(rows[j], col);
    if (S == 2 && use0 && use1) {
      /* stride 2, a row shared by both outputs: de-interleave once */
      const __m256* w0 = wv + j * KW;
      const __m256* w1 = wv + (j - SH) * KW;
      const int p0 = j & 1, p1 = (j - SH) & 1;
#pragma GCC unroll 8
      for (size_t m = 0; 2 * m < KW; m++) {
        const __m256 A = LD(2 * m, 2 * m), B = LD(2 * m + 1, 2 * m + 8);
#pragma GCC unroll 2
        for (size_t h = 0; h < 2; h++) {
          if (2 * m + h >= KW) break;
          const __m256 t = h ? _mm256_shuffle_ps(A, B, 0xDD) : _mm256_shuffle_ps(A, B, 0x88);
          if (p0)
            b0 = _mm256_fmadd_ps(w0[2 * m + h], t, b0);
          else
            a0 = _mm256_fmadd_ps(w0[2 * m + h], t, a0);
          if (p1)
            b1 = _mm256_fmadd_ps(w1[2 * m + h], t, b1);
          else
            a1 = _mm256_fmadd_ps(w1[2 * m + h], t, a1);
        }
      }
      continue;
    }
    if (use0) {
      if (j & 1)
        b0 = row_taps(x, wv + j * KW, mk, KW, S, EDGE, b0);
      else
        a0 = row_taps(x, wv + j * KW, mk, KW, S, EDGE, a0);
    }
    if (use1) {
      if ((j - SH) & 1)
        b1 = row_taps(x, wv + (j - SH) * KW, mk, KW, S, EDGE, b1);
      else
        a1 = row_taps(x, wv + (j - SH) * KW, mk, KW, S, EDGE, a1);
    }
  }
  *v0 = _mm256_add_ps(a0, b0);
  if (TWO) *v1 = _mm256_add_ps(a1, b1);
}
#undef LD

/* (stride 2: lane order back to 0..7), residual, clamp, store (lanes < ow - ox) */
static inline __attribute__((always_inline)) void finish(__m256 acc, const float* rrow, float* orow, __m256 lo,
                                                         __m256 hi, __m256i m, int full, const size_t S) {
  if (S == 2) acc = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(acc), 0xD8));
  cnn_dw_finish8(acc, rrow, orow, lo, hi, m, full);
}

/* masks of the loads of the vector at column col (= ox*S - pl): lane l of load i reads column col + off_i + l */
static inline void edge_masks(ptrdiff_t col, ptrdiff_t W, size_t KW, size_t S, __m256i* mk) {
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), vw = _mm256_set1_epi32((int)W);
  const __m256i neg1 = _mm256_set1_epi32(-1);
  const size_t nl = LOADS(KW, S);
  for (size_t i = 0; i < nl; i++) {
    const ptrdiff_t off = S == 1 ? (ptrdiff_t)i : (ptrdiff_t)((i / 2) * 2 + (i & 1) * 8);
    const __m256i c = _mm256_add_epi32(lane, _mm256_set1_epi32((int)(col + off)));
    mk[i] = _mm256_and_si256(_mm256_cmpgt_epi32(c, neg1), _mm256_cmpgt_epi32(vw, c));
  }
}

/* One output row (TWO = 0) or two (TWO = 1) at oy: vectors [0, L) and [R, ow) with masked loads (edges), [L, R)
 * with plain loads and full stores. */
static inline __attribute__((always_inline)) void rows_pass(const cnn_dwconv_params* p, const float* const* rows,
                                                            const __m256* wv, __m256 vb, __m256 lo, __m256 hi,
                                                            size_t L, size_t R, const float* q0, float* o0,
                                                            const size_t KH, const size_t KW, const size_t S,
                                                            const size_t SH, const int TWO) {
  const size_t ow = p->ow;
  const ptrdiff_t W = (ptrdiff_t)p->w, pl = (ptrdiff_t)p->pl;
  const size_t rem = ow % 8, full_end = ow - rem;
  const __m256i mfull = _mm256_set1_epi32(-1);
  float* o1 = o0 + ow;
  const float* q1 = q0 ? q0 + ow : NULL;
  __m256 v0, v1 = vb;
  size_t ox = 0;
  for (; ox < L; ox += 8) {
    __m256i mk[MAXL];
    const ptrdiff_t col = (ptrdiff_t)(ox * S) - pl;
    edge_masks(col, W, KW, S, mk);
    block(rows, col, wv, mk, vb, KH, KW, S, SH, TWO, 1, &v0, &v1);
    const int full = ox < full_end;
    const __m256i m = full ? mfull : _mm256_loadu_si256((const __m256i*)(g_mask + 8 - rem));
    finish(v0, q0 ? q0 + ox : NULL, o0 + ox, lo, hi, m, full, S);
    if (TWO) finish(v1, q1 ? q1 + ox : NULL, o1 + ox, lo, hi, m, full, S);
  }
  for (; ox < R; ox += 8) {
    const ptrdiff_t col = (ptrdiff_t)(ox * S) - pl;
    block(rows, col, wv, NULL, vb, KH, KW, S, SH, TWO, 0, &v0, &v1);
    finish(v0, q0 ? q0 + ox : NULL, o0 + ox, lo, hi, mfull, 1, S);
    if (TWO) finish(v1, q1 ? q1 + ox : NULL, o1 + ox, lo, hi, mfull, 1, S);
  }
  for (; ox < ow; ox += 8) {
    __m256i mk[MAXL];
    const ptrdiff_t col = (ptrdiff_t)(ox * S) - pl;
    edge_masks(col, W, KW, S, mk);
    block(rows, col, wv, mk, vb, KH, KW, S, SH, TWO, 1, &v0, &v1);
    const int full = ox < full_end;
    const __m256i m = full ? mfull : _mm256_loadu_si256((const __m256i*)(g_mask + 8 - rem));
    finish(v0, q0 ? q0 + ox : NULL, o0 + ox, lo, hi, m, full, S);
    if (TWO) finish(v1, q1 ? q1 + ox : NULL, o1 + ox, lo, hi, m, full, S);
  }
}

static inline __attribute__((always_inline)) void rows_impl(const cnn_dwconv_params* p, const float* in,
                                                            const float* w, float bias, const float* residual,
                                                            float* out, const float* zrow, const size_t KH,
                                                            const size_t KW, const size_t S, const size_t SH) {
  const ptrdiff_t H = (ptrdiff_t)p->h, W = (ptrdiff_t)p->w, pt = (ptrdiff_t)p->pt, pl = (ptrdiff_t)p->pl;
  const size_t oh = p->oh, ow = p->ow;
  __m256 wv[MAXT];
  for (size_t t = 0; t < KH * KW; t++) wv[t] = _mm256_broadcast_ss(w + t);
  const __m256 lo = _mm256_set1_ps(p->min), hi = _mm256_set1_ps(p->max), vb = _mm256_set1_ps(bias);
  /* columns read by the vector at ox: [ox*S - pl, ox*S - pl + span); interior vectors (plain loads, full stores):
   * [L, R), every one of them with ox*S >= pl, ox*S - pl + span <= W and ox + 8 <= ow */
  const ptrdiff_t span = S == 1 ? (ptrdiff_t)KW + 7 : 2 * (ptrdiff_t)((KW - 1) / 2) + 16;
  size_t L = 0;
  while (L < ow && (ptrdiff_t)(L * S) < pl) L += 8;
  size_t R = L;
  while (R + 8 <= ow && (ptrdiff_t)(R * S) - pl + span <= W) R += 8;
  const float* rows[MAXT + 2];
  size_t oy = 0;
  for (; oy + 2 <= oh; oy += 2) {
    const ptrdiff_t iy0 = (ptrdiff_t)(oy * SH) - pt;
    for (size_t j = 0; j < KH + SH; j++) {
      const ptrdiff_t iy = iy0 + (ptrdiff_t)j;
      rows[j] = iy >= 0 && iy < H ? in + iy * W : zrow;
    }
    rows_pass(p, rows, wv, vb, lo, hi, L, R, residual ? residual + oy * ow : NULL, out + oy * ow, KH, KW, S, SH, 1);
  }
  if (oy < oh) {
    const ptrdiff_t iy0 = (ptrdiff_t)(oy * SH) - pt;
    for (size_t j = 0; j < KH; j++) {
      const ptrdiff_t iy = iy0 + (ptrdiff_t)j;
      rows[j] = iy >= 0 && iy < H ? in + iy * W : zrow;
    }
    rows_pass(p, rows, wv, vb, lo, hi, L, R, residual ? residual + oy * ow : NULL, out + oy * ow, KH, KW, S, SH, 0);
  }
}

static inline __attribute__((always_inline)) void rows_dispatch(const cnn_dwconv_params* p, const float* in,
                                                                const float* w, float bias, const float* residual,
                                                                float* out, const float* zrow) {
  const size_t kh = p->kh, kw = p->kw, sh = p->sh;
  if (p->sw == 1) {
    if (kh == 3 && kw == 3 && sh == 1)
      rows_impl(p, in, w, bias, residual, out, zrow, 3, 3, 1, 1);
    else if (kh == 5 && kw == 5 && sh == 1)
      rows_impl(p, in, w, bias, residual, out, zrow, 5, 5, 1, 1);
    else
      rows_impl(p, in, w, bias, residual, out, zrow, kh, kw, 1, sh);
  } else {
    if (kh == 3 && kw == 3 && sh == 2)
      rows_impl(p, in, w, bias, residual, out, zrow, 3, 3, 2, 2);
    else if (kh == 5 && kw == 5 && sh == 2)
      rows_impl(p, in, w, bias, residual, out, zrow, 5, 5, 2, 2);
    else
      rows_impl(p, in, w, bias, residual, out, zrow, kh, kw, 2, sh);
  }
}

void cnn_f32_dwconv_rows__avx2(const cnn_dwconv_params* p, const float* in, const float* w, float bias,
                               const float* residual, float* out, float* zrow) {
  const __m256 z = _mm256_setzero_ps();
  size_t i = 0;
  for (; i + 8 <= p->w; i += 8) _mm256_storeu_ps(zrow + i, z);
  for (; i < p->w; i++) zrow[i] = 0.0f;
  rows_dispatch(p, in, w, bias, residual, out, zrow);
  if (p->act_fn) p->act_fn(p->act, out, out, p->oh * p->ow); /* the whole output at once (see cnn_dwconv_params) */
}
