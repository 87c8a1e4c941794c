/* Depthwise convolution, one channel plane at a time, AVX2 + FMA (see cnn_dwconv_fn in include/cnnrt/conv.h).
 * Vectorized along the output width: 8 output columns per vector in the interior columns [ox_lo, ox_hi) (no
 * horizontal padding there), a masked vector for the interior remainder, scalar code for the few edge columns.
 * Stride 1 uses unaligned loads, stride 2 de-interleaves two loads, other strides gather. 3x3 stride 1 (the common
 * MobileNet/EfficientNet case) keeps the 9 weights in registers and computes 16 columns per iteration. */
#include <immintrin.h>
#include <math.h>
#include <stdint.h>

#include "cnnrt/conv.h"

static const int32_t g_mask[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};

/* p + off floats on integers (masked lanes may point outside the object; they are not read) */
static inline const float* offset_ptr(const float* p, ptrdiff_t off) {
  return (const float*)((uintptr_t)p + (uintptr_t)(off * (ptrdiff_t)sizeof(float)));
}

/* lanes l < r of a vector starting at p (stride s); the others are 0 and not read. r in 1..8 */
static inline __m256 load_strided(const float* p, size_t s, __m256i m, __m256i idx) {
  if (s == 1) return _mm256_maskload_ps(p, m);
  if (s == 2) {
    /* even elements of p[0..15]: lanes 2l for l < r need p[0 .. 2r-2] */
    const __m256i m0 = _mm256_permutevar8x32_epi32(m, _mm256_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3));
    const __m256i m1 = _mm256_permutevar8x32_epi32(m, _mm256_setr_epi32(4, 4, 5, 5, 6, 6, 7, 7));
    /* element 2l+1 is never needed: clear the odd lanes of the masks */
    const __m256i even = _mm256_setr_epi32(-1, 0, -1, 0, -1, 0, -1, 0);
    const __m256 a = _mm256_maskload_ps(p, _mm256_and_si256(m0, even));
    const __m256 b = _mm256_maskload_ps(p + 8, _mm256_and_si256(m1, even));
    return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(a, b, 0x88)), 0xD8));
  }
  return _mm256_mask_i32gather_ps(_mm256_setzero_ps(), p, idx, _mm256_castsi256_ps(m), 4);
}

/* one output column with every tap checked (edges) */
static inline float column_checked(const cnn_dwconv_params* p, const float* in, const float* w, float bias,
                                   ptrdiff_t iy0, size_t ky_lo, size_t ky_hi, size_t ox) {
  const ptrdiff_t W = (ptrdiff_t)p->w;
  const ptrdiff_t ix0 = (ptrdiff_t)(ox * p->sw) - (ptrdiff_t)p->pl;
  float acc = bias;
  for (size_t ky = ky_lo; ky < ky_hi; ky++) {
    const float* row = in + (iy0 + (ptrdiff_t)(ky * p->dh)) * W;
    const float* wr = w + ky * p->kw;
    for (size_t kx = 0; kx < p->kw; kx++) {
      const ptrdiff_t ix = ix0 + (ptrdiff_t)(kx * p->dw);
      if (ix >= 0 && ix < W) acc = fmaf(wr[kx], row[ix], acc);
    }
  }
  return acc;
}

static inline float finish1(const cnn_dwconv_params* p, float acc, const float* rrow, size_t ox) {
  if (rrow) acc += rrow[ox];
  acc = acc < p->min ? p->min : acc;
  return acc > p->max ? p->max : acc;
}

/* residual, clamp (NaN-propagating operand order), store lanes < r */
static inline void finish8(__m256 acc, const float* rrow, float* orow, __m256 lo, __m256 hi, __m256i m, int full) {
  if (rrow) acc = _mm256_add_ps(acc, full ? _mm256_loadu_ps(rrow) : _mm256_maskload_ps(rrow, m));
  acc = _mm256_min_ps(hi, _mm256_max_ps(lo, acc));
  if (full)
    _mm256_storeu_ps(orow, acc);
  else
    _mm256_maskstore_ps(orow, m, acc);
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

  for (size_t oy = 0; oy < p->oh; oy++) {
    const ptrdiff_t iy0 = (ptrdiff_t)(oy * p->sh) - (ptrdiff_t)p->pt;
    const size_t ky_lo = iy0 >= 0 ? 0 : cnn_div_up((size_t)(-iy0), dh);
    const size_t ky_hi = iy0 < H ? cnn_min_sz(kh, (size_t)(H - 1 - iy0) / dh + 1) : 0;
    float* orow = out + oy * p->ow;
    const float* rrow = residual ? residual + oy * p->ow : NULL;

    size_t ox = 0;
    for (; ox < ox_lo; ox++)
      orow[ox] = finish1(p, column_checked(p, in, w, bias, iy0, ky_lo, ky_hi, ox), rrow, ox);

    /* input of column ox, filter row ky, tap 0: in + (iy0 + ky*dh)*W + ox*sw - pl (inside the plane for interior) */
    const float* base = offset_ptr(in, (iy0 + (ptrdiff_t)(ky_lo * dh)) * W - (ptrdiff_t)p->pl); /* row ky_lo */
    if (k3s1 && ky_lo == 0 && ky_hi == 3) {
      const float* r0 = base;
      const float* r1 = r0 + W;
      const float* r2 = r1 + W;
      for (; ox + 16 <= ox_hi; ox += 16) {
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
        finish8(_mm256_add_ps(a0, b0), rrow ? rrow + ox : NULL, orow + ox, lo, hi, full_mask, 1);
        finish8(_mm256_add_ps(a1, b1), rrow ? rrow + ox + 8 : NULL, orow + ox + 8, lo, hi, full_mask, 1);
      }
    }
    for (; ox < ox_hi; ox += 8) {
      const size_t r = cnn_min_sz(8, ox_hi - ox);
      const int full = r == 8;
      const __m256i m = full ? full_mask : _mm256_loadu_si256((const __m256i*)(g_mask + 8 - r));
      __m256 acc = vb;
      const float* rowp = offset_ptr(base, (ptrdiff_t)(ox * sw));
      /* stride 2, 8 columns: plain loads of 16 floats when the 16th (unused) one is still inside the row */
      const int s2_plain = full && sw == 2 && (ptrdiff_t)(ox * 2 + 15 + ext_x) < W + (ptrdiff_t)p->pl;
      for (size_t ky = ky_lo; ky < ky_hi; ky++, rowp = offset_ptr(rowp, (ptrdiff_t)dh * W)) {
        const float* wr = w + ky * kw;
        if (sw == 1 && full) {
          for (size_t kx = 0; kx < kw; kx++)
            acc = _mm256_fmadd_ps(_mm256_broadcast_ss(wr + kx), _mm256_loadu_ps(rowp + kx * dw), acc);
        } else if (s2_plain) {
          for (size_t kx = 0; kx < kw; kx++) {
            const float* q = rowp + kx * dw;
            const __m256 a = _mm256_loadu_ps(q), b = _mm256_loadu_ps(q + 8);
            const __m256 even =
                _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(a, b, 0x88)), 0xD8));
            acc = _mm256_fmadd_ps(_mm256_broadcast_ss(wr + kx), even, acc);
          }
        } else {
          for (size_t kx = 0; kx < kw; kx++)
            acc = _mm256_fmadd_ps(_mm256_broadcast_ss(wr + kx), load_strided(rowp + kx * dw, sw, m, idx), acc);
        }
      }
      finish8(acc, rrow ? rrow + ox : NULL, orow + ox, lo, hi, m, full);
    }
    for (ox = ox_hi; ox < p->ow; ox++)
      orow[ox] = finish1(p, column_checked(p, in, w, bias, iy0, ky_lo, ky_hi, ox), rrow, ox);
    if (p->act_fn) p->act_fn(p->act, orow, orow, p->ow);
  }
}
