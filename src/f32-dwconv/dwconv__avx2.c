/* Depthwise convolution, one channel plane at a time, AVX2 + FMA (see cnn_dwconv_fn in include/cnnrt/conv.h).
 * Vectorized along the output width, 8 output columns per vector: in the interior columns [ox_lo, ox_hi) (no
 * horizontal padding) with plain loads (stride 1), two de-interleaved loads (stride 2) or gathers; the vectors at
 * the left and right edges mask each tap's lanes that fall into the padding (masked loads or masked gathers). 3x3 stride 1 (the common
 * MobileNet/EfficientNet case) keeps the 9 weights in registers and computes 16 columns per iteration. */
#include <immintrin.h>
#include <math.h>
#include <stdint.h>

#include "cnnrt/conv.h"
#include "dw-common__avx2.h"

static const int32_t g_mask[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};

/* p + off floats on integers (masked lanes may point outside the object; they are not read) */
static inline const float* offset_ptr(const float* p, ptrdiff_t off) {
  return (const float*)((uintptr_t)p + (uintptr_t)(off * (ptrdiff_t)sizeof(float)));
}

/* 8 output columns [ox, ox+8) (lanes >= r unused) near the left/right edge: every tap gets the mask of the
 * lanes whose input column lies inside the row, so padding reads as 0 without any scalar code. */
static inline __m256 edge_vec(const cnn_dwconv_params* p, const float* in, const float* w, __m256 acc, ptrdiff_t iy0,
                              size_t ky_lo, size_t ky_hi, size_t ox, __m256i valid, const __m256i* tab) {
  const ptrdiff_t W = (ptrdiff_t)p->w, pl = (ptrdiff_t)p->pl;
  const size_t kw = p->kw, sw = p->sw, dw = p->dw;
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  const __m256i ix = _mm256_sub_epi32(
      _mm256_mullo_epi32(_mm256_add_epi32(_mm256_set1_epi32((int)ox), lane), _mm256_set1_epi32((int)sw)),
      _mm256_set1_epi32((int)pl));
  const __m256i vw = _mm256_set1_epi32((int)W), neg1 = _mm256_set1_epi32(-1);
  for (size_t ky = ky_lo; ky < ky_hi; ky++) {
    const float* row = in + (iy0 + (ptrdiff_t)(ky * p->dh)) * W;
    const float* wr = w + ky * kw;
    __m256 racc = _mm256_setzero_ps(); /* one chain per filter row: rows overlap instead of one long FMA chain */
    for (size_t kx = 0; kx < kw; kx++) {
      const __m256i x = _mm256_add_epi32(ix, _mm256_set1_epi32((int)(kx * dw)));
      const __m256i m = tab ? tab[kx]
                            : _mm256_and_si256(valid, _mm256_and_si256(_mm256_cmpgt_epi32(x, neg1), _mm256_cmpgt_epi32(vw, x)));
      __m256 v;
      if (sw == 1) /* lane l reads row[ox - pl + kx*dw + l] */
        v = _mm256_maskload_ps(offset_ptr(row, (ptrdiff_t)(ox + kx * dw) - pl), m);
      else
        v = _mm256_mask_i32gather_ps(_mm256_setzero_ps(), row, x, _mm256_castsi256_ps(m), 4);
      racc = _mm256_fmadd_ps(_mm256_broadcast_ss(wr + kx), v, racc);
    }
    acc = _mm256_add_ps(acc, racc);
  }
  return acc;
}

void cnn_f32_dwconv__avx2(const cnn_dwconv_params* p, const float* in, const float* w, float bias,
                          const float* residual, float* out) {
  const ptrdiff_t H = (ptrdiff_t)p->h, W = (ptrdiff_t)p->w;
  const size_t kh = p->kh, kw = p->kw, dh = p->dh, dw = p->dw, sw = p->sw;
  const size_t ox_lo = p->ox_lo, ox_hi = p->ox_hi, ext_x = (kw - 1) * dw;
  const __m256 lo = _mm256_set1_ps(p->min), hi = _mm256_set1_ps(p->max), vb = _mm256_set1_ps(bias);
  const __m256i full_mask = _mm256_set1_epi32(-1);
  const __m256i idx = _mm256_mullo_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), _mm256_set1_epi32((int)sw));
  const int k3s1 = kh == 3 && kw == 3 && dh == 1 && dw == 1 && sw == 1;
  __m256 w9[9];
  if (k3s1)
    for (int i = 0; i < 9; i++) w9[i] = _mm256_broadcast_ss(w + i);

  /* Edge vectors sit at the same columns in every row: [0, L) and [R, ow), 8 apart, with the interior vectors in
   * [L, R). Their per-tap lane masks are computed once per plane (when there are few). */
  const size_t ow = p->ow;
  size_t L = 0;
  while (L < ox_lo && L < ow) L += 8;
  const size_t R = ox_hi > L ? L + (ox_hi - L) / 8 * 8 : L;
  const size_t n_edge = L / 8 + (R < ow ? cnn_div_up(ow - R, 8) : 0);
  enum { MAX_EDGE = 4, MAX_KW = 16 };
  const int tabulate = n_edge <= MAX_EDGE && kw <= MAX_KW;
  __m256i etab[MAX_EDGE][MAX_KW];
  if (tabulate) {
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), vw = _mm256_set1_epi32((int)W);
    const __m256i neg1 = _mm256_set1_epi32(-1);
    size_t e = 0;
    for (size_t ox = 0; ox < ow; ox += 8) {
      if (ox >= L && ox < R) continue;
      const __m256i valid = _mm256_loadu_si256((const __m256i*)(g_mask + 8 - cnn_min_sz(8, ow - ox)));
      const __m256i ix = _mm256_sub_epi32(
          _mm256_mullo_epi32(_mm256_add_epi32(_mm256_set1_epi32((int)ox), lane), _mm256_set1_epi32((int)sw)),
          _mm256_set1_epi32((int)p->pl));
      for (size_t kx = 0; kx < kw; kx++) {
        const __m256i x = _mm256_add_epi32(ix, _mm256_set1_epi32((int)(kx * dw)));
        etab[e][kx] =
            _mm256_and_si256(valid, _mm256_and_si256(_mm256_cmpgt_epi32(x, neg1), _mm256_cmpgt_epi32(vw, x)));
      }
      e++;
    }
  }

  for (size_t oy = 0; oy < p->oh; oy++) {
    const ptrdiff_t iy0 = (ptrdiff_t)(oy * p->sh) - (ptrdiff_t)p->pt;
    const size_t ky_lo = iy0 >= 0 ? 0 : cnn_div_up((size_t)(-iy0), dh);
    const size_t ky_hi = iy0 < H ? cnn_min_sz(kh, (size_t)(H - 1 - iy0) / dh + 1) : 0;
    float* orow = out + oy * p->ow;
    const float* rrow = residual ? residual + oy * p->ow : NULL;

    size_t ox = 0, e = 0;
    for (; ox < L; ox += 8, e++) { /* left edge */
      const size_t r = cnn_min_sz(8, ow - ox);
      const __m256i m = _mm256_loadu_si256((const __m256i*)(g_mask + 8 - r));
      cnn_dw_finish8(edge_vec(p, in, w, vb, iy0, ky_lo, ky_hi, ox, m, tabulate ? etab[e] : NULL), rrow ? rrow + ox : NULL,
              orow + ox, lo, hi, m, r == 8);
    }

    /* input of column ox, filter row ky, tap 0: in + (iy0 + ky*dh)*W + ox*sw - pl (inside the plane for interior) */
    const float* base = offset_ptr(in, (iy0 + (ptrdiff_t)(ky_lo * dh)) * W - (ptrdiff_t)p->pl); /* row ky_lo */
    if (k3s1 && ky_lo == 0 && ky_hi == 3) {
      const float* r0 = base;
      const float* r1 = r0 + W;
      const float* r2 = r1 + W;
      for (; ox + 16 <= R; ox += 16) {
        __m256 a0 = vb, a1 = vb, b0 = _mm256_setzero_ps(), b1 = _mm256_setzero_ps();
#define TAP3(r, wi, acc0, acc1)                                                      \
  acc0 = _mm256_fmadd_ps(w9[wi + 0], _mm256_loadu_ps(r + ox + 0), acc0);             \
  acc1 = _mm256_fmadd_ps(w9[wi + 0], _mm256_loadu_ps(r + ox + 8), acc1);             \
  acc0 = _mm256_fmadd_ps(w9[wi + 1], _mm256_loadu_ps(r + ox + 1), acc0);             \
  acc1 = _mm256_fmadd_ps(w9[wi + 1], _mm256_loadu_ps(r + ox + 9), acc1);             \
  acc0 = _mm256_fmadd_ps(w9[wi + 2], _mm256_loadu_ps(r + ox + 2), acc0);             \
  acc1 = _mm256_fmadd_ps(w9[wi + 2], _mm256_loadu_ps(r + ox + 10), acc1)
        TAP3(r0, 0, a0, a1);
        TAP3(r1, 3, b0, b1);
        TAP3(r2, 6, a0, a1);
#undef TAP3
        cnn_dw_finish8(_mm256_add_ps(a0, b0), rrow ? rrow + ox : NULL, orow + ox, lo, hi, full_mask, 1);
        cnn_dw_finish8(_mm256_add_ps(a1, b1), rrow ? rrow + ox + 8 : NULL, orow + ox + 8, lo, hi, full_mask, 1);
      }
    }
    for (; ox < R; ox += 8) { /* interior: no tap reads padding horizontally */
      __m256 acc = vb;
      const float* rowp = offset_ptr(base, (ptrdiff_t)(ox * sw));
      /* stride 2: plain loads of 16 floats when the 16th (unused) one is still inside the row */
      const int s2_plain = sw == 2 && (ptrdiff_t)(ox * 2 + 15 + ext_x) < W + (ptrdiff_t)p->pl;
      for (size_t ky = ky_lo; ky < ky_hi; ky++, rowp = offset_ptr(rowp, (ptrdiff_t)dh * W)) {
        const float* wr = w + ky * kw;
        __m256 racc = _mm256_setzero_ps(); /* one chain per filter row */
        if (sw == 1) {
          for (size_t kx = 0; kx < kw; kx++)
            racc = _mm256_fmadd_ps(_mm256_broadcast_ss(wr + kx), _mm256_loadu_ps(rowp + kx * dw), racc);
        } else if (s2_plain) {
          for (size_t kx = 0; kx < kw; kx++) {
            const float* q = rowp + kx * dw;
            const __m256 a = _mm256_loadu_ps(q), b = _mm256_loadu_ps(q + 8);
            const __m256 even =
                _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(a, b, 0x88)), 0xD8));
            racc = _mm256_fmadd_ps(_mm256_broadcast_ss(wr + kx), even, racc);
          }
        } else {
          for (size_t kx = 0; kx < kw; kx++)
            racc = _mm256_fmadd_ps(_mm256_broadcast_ss(wr + kx), _mm256_i32gather_ps(rowp + kx * dw, idx, 4), racc);
        }
        acc = _mm256_add_ps(acc, racc);
      }
      cnn_dw_finish8(acc, rrow ? rrow + ox : NULL, orow + ox, lo, hi, full_mask, 1);
    }
    for (; ox < ow; ox += 8, e++) { /* right edge (ox == R here) */
      const size_t r = cnn_min_sz(8, ow - ox);
      const __m256i m = _mm256_loadu_si256((const __m256i*)(g_mask + 8 - r));
      cnn_dw_finish8(edge_vec(p, in, w, vb, iy0, ky_lo, ky_hi, ox, m, tabulate ? etab[e] : NULL), rrow ? rrow + ox : NULL,
              orow + ox, lo, hi, m, r == 8);
    }
  }
  if (p->act_fn) p->act_fn(p->act, out, out, p->oh * p->ow); /* the whole output at once (see cnn_dwconv_params) */
}
