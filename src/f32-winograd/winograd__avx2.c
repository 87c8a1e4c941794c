/* AVX2+FMA Winograd transforms: the scalar kernels with one tile per lane of a YMM register (8 tiles at once). */
#if defined(__x86_64__) && !defined(CNNRT_NO_AVX2)
#include <immintrin.h>
#include <math.h>
#include <stdint.h>

#include "cnnrt/winograd.h"

#include "../simd/transpose__avx2.h"

#define L CNN_WINO_LANES

/* B^T and A^T of F(2,3), F(4,3), F(6,3) as float constants (the same values as the double tables in
 * winograd__scalar.c, all dyadic: exact). The kernels below are instantiated per tile size with these tables and
 * fully unrolled, so the zero entries fold away and the non-zero ones become immediate broadcasts. */
static const float BT2[16] = {1, 0, -1, 0, 0, 1, 1, 0, 0, -1, 1, 0, 0, 1, 0, -1};
static const float AT2[8] = {1, 1, 1, 0, 0, 1, -1, -1};
static const float BT4[36] = {4, 0, -5, 0, 1, 0, 0, -4, -4, 1, 1, 0, 0, 4, -4, -1, 1, 0,
                              0, -2, -1, 2, 1, 0, 0, 2, -1, -2, 1, 0, 0, 4, 0, -5, 0, 1};
static const float AT4[24] = {1, 1, 1, 1, 1, 0, 0, 1, -1, 2, -2, 0, 0, 1, 1, 4, 4, 0, 0, 1, -1, 8, -8, 1};
static const float BT6[64] = {1, 0,     -5.25f, 0,      5.25f,  0,      -1, 0, 0, 1,     1,     -4.25f, -4.25f,
                              1, 1,     0,      0,      -1,     1,      4.25f, -4.25f, -1, 1, 0, 0,     0.5f,
                              0.25f, -2.5f, -1.25f, 2, 1, 0, 0, -0.5f, 0.25f, 2.5f, -1.25f, -2, 1, 0, 0, 2, 4,
                              -2.5f, -5, 0.5f, 1, 0, 0, -2, 4, 2.5f, -5, -0.5f, 1, 0, 0, -1, 0, 5.25f, 0, -5.25f, 0,
                              1};
static const float AT6[48] = {1, 1, 1,  1,  1,   1,        1,         0, 0, 1, -1, 2,  -2,  0.5f,     -0.5f,     0,
                              0, 1, 1,  4,  4,   0.25f,    0.25f,     0, 0, 1, -1, 8,  -8,  0.125f,   -0.125f,   0,
                              0, 1, 1,  16, 16,  0.0625f,  0.0625f,   0, 0, 1, -1, 32, -32, 0.03125f, -0.03125f, 1};

#define AI static inline __attribute__((always_inline))

AI void input_t(const float* const* rows, float* v, size_t pstride, const int T, const float* bt) {
  __m256 d[CNN_WINO_TMAX * CNN_WINO_TMAX], w[CNN_WINO_TMAX * CNN_WINO_TMAX];
#pragma GCC unroll 8
  for (int r = 0; r < T; r++) {
    __m256 a[8];
#pragma GCC unroll 8
    for (int l = 0; l < 8; l++) a[l] = _mm256_loadu_ps(rows[r * L + l]);
    cnn_avx2_transpose8x8(a); /* a[s]: column s of row r, one lane per tile */
#pragma GCC unroll 8
    for (int s = 0; s < T; s++) d[r * T + s] = a[s];
  }
#pragma GCC unroll 8
  for (int p = 0; p < T; p++)
#pragma GCC unroll 8
    for (int s = 0; s < T; s++) {
      __m256 acc = _mm256_setzero_ps();
#pragma GCC unroll 8
      for (int r = 0; r < T; r++)
        if (bt[p * T + r] != 0.0f) acc = _mm256_fmadd_ps(_mm256_set1_ps(bt[p * T + r]), d[r * T + s], acc);
      w[p * T + s] = acc;
    }
#pragma GCC unroll 8
  for (int p = 0; p < T; p++)
#pragma GCC unroll 8
    for (int q = 0; q < T; q++) {
      __m256 acc = _mm256_setzero_ps();
#pragma GCC unroll 8
      for (int s = 0; s < T; s++)
        if (bt[q * T + s] != 0.0f) acc = _mm256_fmadd_ps(_mm256_set1_ps(bt[q * T + s]), w[p * T + s], acc);
      _mm256_storeu_ps(v + (size_t)(p * T + q) * pstride, acc);
    }
}

void cnn_wino_input__avx2(const cnn_wino_tx* tx, const float* const* rows, float* v, size_t pstride) {
  switch (tx->m) {
    case 2: input_t(rows, v, pstride, 4, BT2); break;
    case 4: input_t(rows, v, pstride, 6, BT4); break;
    default: input_t(rows, v, pstride, 8, BT6); break;
  }
}

/* lanes -> rows without a full 8x8 transpose (only m of the 8 columns exist):
 * cols4: a[0..3] (one column of the 8 tiles each) -> q[l] = columns 0-3 of lane l's row (q[l] and q[l+4] are the
 *        low and high halves of one YMM: 8 shuffles for 8 lanes);
 * cols2: a[0..1] -> the two columns of lane l in the low 64 bits of d[l]. */
AI void cols4(const __m256* a, __m128* q) {
  const __m256 t0 = _mm256_unpacklo_ps(a[0], a[1]), t1 = _mm256_unpackhi_ps(a[0], a[1]);
  const __m256 t2 = _mm256_unpacklo_ps(a[2], a[3]), t3 = _mm256_unpackhi_ps(a[2], a[3]);
  const __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
  const __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
  q[0] = _mm256_castps256_ps128(u0);
  q[1] = _mm256_castps256_ps128(u1);
  q[2] = _mm256_castps256_ps128(u2);
  q[3] = _mm256_castps256_ps128(u3);
  q[4] = _mm256_extractf128_ps(u0, 1);
  q[5] = _mm256_extractf128_ps(u1, 1);
  q[6] = _mm256_extractf128_ps(u2, 1);
  q[7] = _mm256_extractf128_ps(u3, 1);
}
AI void cols2(const __m256* a, __m128* d) {
  const __m256 t0 = _mm256_unpacklo_ps(a[0], a[1]), t1 = _mm256_unpackhi_ps(a[0], a[1]);
  const __m128 l0 = _mm256_castps256_ps128(t0), l1 = _mm256_castps256_ps128(t1);
  const __m128 h0 = _mm256_extractf128_ps(t0, 1), h1 = _mm256_extractf128_ps(t1, 1);
  d[0] = l0;
  d[1] = _mm_movehl_ps(l0, l0);
  d[2] = l1;
  d[3] = _mm_movehl_ps(l1, l1);
  d[4] = h0;
  d[5] = _mm_movehl_ps(h0, h0);
  d[6] = h1;
  d[7] = _mm_movehl_ps(h1, h1);
}
AI __m128 load2(const float* p) { return _mm_castsi128_ps(_mm_loadl_epi64((const __m128i*)p)); }
AI void store2(float* p, __m128 v) { _mm_storel_epi64((__m128i*)p, _mm_castps_si128(v)); }

/* first pass of the output transform: z[i][q] = sum_p A^T[i][p] M[p][q] (8 tiles in the lanes) */
AI void output_z(const float* mp, size_t pstride, __m256* z, const int m, const float* at) {
  const int T = m + 2;
#pragma GCC unroll 8
  for (int i = 0; i < m; i++)
#pragma GCC unroll 8
    for (int q = 0; q < T; q++) {
      __m256 acc = _mm256_setzero_ps();
#pragma GCC unroll 8
      for (int p = 0; p < T; p++)
        if (at[i * T + p] != 0.0f)
          acc = _mm256_fmadd_ps(_mm256_set1_ps(at[i * T + p]), _mm256_loadu_ps(mp + (size_t)(p * T + q) * pstride),
                                acc);
      z[i * T + q] = acc;
    }
}

AI void output_t(const float* mp, size_t pstride, float bias, float lo, float hi, float* out, const float* res,
                 const ptrdiff_t* offs, const int* ncols, const int m, const float* at) {
  const int T = m + 2;
  __m256 z[CNN_WINO_TMAX * CNN_WINO_TMAX];
  output_z(mp, pstride, z, m, at);
  const __m256 vb = _mm256_set1_ps(bias), vlo = _mm256_set1_ps(lo), vhi = _mm256_set1_ps(hi);
  const __m128 vlo4 = _mm_set1_ps(lo), vhi4 = _mm_set1_ps(hi);
#pragma GCC unroll 8
  for (int i = 0; i < m; i++) {
    __m256 a[6];
#pragma GCC unroll 8
    for (int j = 0; j < m; j++) {
      __m256 acc = vb;
#pragma GCC unroll 8
      for (int q = 0; q < T; q++)
        if (at[j * T + q] != 0.0f) acc = _mm256_fmadd_ps(_mm256_set1_ps(at[j * T + q]), z[i * T + q], acc);
      /* without a residual the clamp goes here, on 8 tiles at once (NaN propagates: min/max return the 2nd
       * operand when one is NaN) */
      a[j] = res ? acc : _mm256_min_ps(vhi, _mm256_max_ps(vlo, acc));
    }
    __m128 c4[8], c2[8];
    if (m == 2) cols2(a, c4);
    if (m >= 4) cols4(a, c4);
    if (m == 6) cols2(a + 4, c2);
    /* full rows: 128/64-bit loads and stores (masked stores are slow on AMD); partial rows: scalar */
    for (int l = 0; l < 8; l++) {
      const ptrdiff_t of = offs[i * L + l];
      if (of < 0) continue;
      float* o = out + of;
      __m128 v0 = c4[l], v1 = m == 6 ? c2[l] : _mm_setzero_ps();
      if (res) {
        const float* r = res + of;
        if (ncols[l] == m) {
          v0 = _mm_add_ps(v0, m == 2 ? load2(r) : _mm_loadu_ps(r));
          if (m == 6) v1 = _mm_add_ps(v1, load2(r + 4));
        } else {
          float t[8], u[8];
          _mm_storeu_ps(t, v0);
          _mm_storeu_ps(t + 4, v1);
          for (int j = 0; j < ncols[l]; j++) u[j] = t[j] + r[j];
          for (int j = ncols[l]; j < 8; j++) u[j] = 0.0f;
          v0 = _mm_loadu_ps(u);
          v1 = _mm_loadu_ps(u + 4);
        }
        v0 = _mm_min_ps(vhi4, _mm_max_ps(vlo4, v0));
        v1 = _mm_min_ps(vhi4, _mm_max_ps(vlo4, v1));
      }
      if (ncols[l] == m) {
        if (m == 2) {
          store2(o, v0);
        } else {
          _mm_storeu_ps(o, v0);
          if (m == 6) store2(o + 4, v1);
        }
      } else {
        float t[8];
        _mm_storeu_ps(t, v0);
        _mm_storeu_ps(t + 4, v1);
        for (int j = 0; j < ncols[l]; j++) o[j] = t[j];
      }
    }
  }
}

/* output_t's rows (bias, clamp: bit for bit the same arithmetic), pooled 2x2 in registers, then lanes to rows */
AI void output_pool_t(const float* mp, size_t pstride, float bias, float lo, float hi, float* out,
                      const ptrdiff_t* offs, const int* pcols, const int m, const float* at) {
  const int T = m + 2, P = m / 2;
  __m256 z[CNN_WINO_TMAX * CNN_WINO_TMAX];
  output_z(mp, pstride, z, m, at);
  const __m256 vb = _mm256_set1_ps(bias), vlo = _mm256_set1_ps(lo), vhi = _mm256_set1_ps(hi);
  const __m256 ninf = _mm256_set1_ps(-INFINITY);
#pragma GCC unroll 4
  for (int r = 0; r < P; r++) {
    __m256 a[2][6];
#pragma GCC unroll 2
    for (int h = 0; h < 2; h++)
#pragma GCC unroll 8
      for (int j = 0; j < m; j++) {
        const int i = 2 * r + h;
        __m256 acc = vb;
#pragma GCC unroll 8
        for (int q = 0; q < T; q++)
          if (at[j * T + q] != 0.0f) acc = _mm256_fmadd_ps(_mm256_set1_ps(at[j * T + q]), z[i * T + q], acc);
        a[h][j] = _mm256_min_ps(vhi, _mm256_max_ps(vlo, acc));
      }
    /* max(v, m) returns m when v is NaN: the pooling kernels' order and NaN rule */
    __m256 pm[4];
#pragma GCC unroll 4
    for (int q = 0; q < P; q++) {
      __m256 v = _mm256_max_ps(a[0][2 * q], ninf);
      v = _mm256_max_ps(a[0][2 * q + 1], v);
      v = _mm256_max_ps(a[1][2 * q], v);
      pm[q] = _mm256_max_ps(a[1][2 * q + 1], v);
    }
    __m128 c[8];
    float one[8];
    if (P == 1) _mm256_storeu_ps(one, pm[0]);
    if (P == 2) cols2(pm, c);
    if (P == 3) {
      pm[3] = _mm256_setzero_ps();
      cols4(pm, c);
    }
    for (int l = 0; l < 8; l++) {
      const ptrdiff_t of = offs[r * L + l];
      if (of < 0) continue;
      float* o = out + of;
      if (P == 1) {
        if (pcols[l] > 0) o[0] = one[l];
      } else if (pcols[l] == P) {
        store2(o, c[l]);
        if (P == 3) _mm_store_ss(o + 2, _mm_movehl_ps(c[l], c[l]));
      } else {
        float t[4];
        _mm_storeu_ps(t, c[l]);
        for (int q = 0; q < pcols[l]; q++) o[q] = t[q];
      }
    }
  }
}

void cnn_wino_output_pool__avx2(const cnn_wino_tx* tx, const float* mp, size_t pstride, float bias, float lo, float hi,
                                float* out, const ptrdiff_t* offs, const int* pcols) {
  switch (tx->m) {
    case 2: output_pool_t(mp, pstride, bias, lo, hi, out, offs, pcols, 2, AT2); break;
    case 4: output_pool_t(mp, pstride, bias, lo, hi, out, offs, pcols, 4, AT4); break;
    default: output_pool_t(mp, pstride, bias, lo, hi, out, offs, pcols, 6, AT6); break;
  }
}

void cnn_wino_output__avx2(const cnn_wino_tx* tx, const float* mp, size_t pstride, float bias, float lo, float hi,
                           float* out, const float* res, const ptrdiff_t* offs, const int* ncols) {
  switch (tx->m) {
    case 2: output_t(mp, pstride, bias, lo, hi, out, res, offs, ncols, 2, AT2); break;
    case 4: output_t(mp, pstride, bias, lo, hi, out, res, offs, ncols, 4, AT4); break;
    default: output_t(mp, pstride, bias, lo, hi, out, res, offs, ncols, 6, AT6); break;
  }
}
#else
typedef int cnn_wino_avx2_unused;
#endif
