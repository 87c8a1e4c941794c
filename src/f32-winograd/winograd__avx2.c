/* AVX2+FMA Winograd transforms: the scalar kernels with one tile per lane of a YMM register (8 tiles at once). */
#if defined(__x86_64__) && !defined(CNNRT_NO_AVX2)
#include <immintrin.h>
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

/* the first m (2, 4 or 6) floats of p (no access past them; 64-bit halves through the unaligned-safe intrinsics) */
AI __m256 load_m(const float* p, const int m) {
  if (m == 2) return _mm256_castps128_ps256(_mm_castsi128_ps(_mm_loadl_epi64((const __m128i*)p)));
  const __m128 lo = _mm_loadu_ps(p);
  if (m == 4) return _mm256_castps128_ps256(lo);
  const __m128 hi = _mm_castsi128_ps(_mm_loadl_epi64((const __m128i*)(p + 4)));
  return _mm256_insertf128_ps(_mm256_castps128_ps256(lo), hi, 1);
}
AI void store_m(float* p, __m256 v, const int m) {
  const __m128 lo = _mm256_castps256_ps128(v);
  if (m == 2) {
    _mm_storel_epi64((__m128i*)p, _mm_castps_si128(lo));
    return;
  }
  _mm_storeu_ps(p, lo);
  if (m == 6) _mm_storel_epi64((__m128i*)(p + 4), _mm_castps_si128(_mm256_extractf128_ps(v, 1)));
}

AI void output_t(const float* mp, size_t pstride, float bias, float lo, float hi, float* const* orows,
                 const float* const* rrows, const int* ncols, const int m, const float* at) {
  const int T = m + 2;
  __m256 z[CNN_WINO_TMAX * CNN_WINO_TMAX];
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
  const __m256 vb = _mm256_set1_ps(bias), vlo = _mm256_set1_ps(lo), vhi = _mm256_set1_ps(hi);
#pragma GCC unroll 8
  for (int i = 0; i < m; i++) {
    __m256 a[8];
#pragma GCC unroll 8
    for (int j = 0; j < m; j++) {
      __m256 acc = vb;
#pragma GCC unroll 8
      for (int q = 0; q < T; q++)
        if (at[j * T + q] != 0.0f) acc = _mm256_fmadd_ps(_mm256_set1_ps(at[j * T + q]), z[i * T + q], acc);
      a[j] = acc;
    }
#pragma GCC unroll 8
    for (int j = m; j < 8; j++) a[j] = _mm256_setzero_ps();
    cnn_avx2_transpose8x8(a); /* a[l]: row i of lane l's tile */
    /* full rows: plain 128/64-bit loads and stores (masked stores are slow on AMD); partial rows: scalar */
    for (int l = 0; l < 8; l++) {
      float* o = orows[i * L + l];
      if (!o) continue;
      const float* r = rrows ? rrows[i * L + l] : NULL;
      __m256 t = a[l];
      if (ncols[l] == m) {
        if (r) t = _mm256_add_ps(t, load_m(r, m));
        t = _mm256_min_ps(vhi, _mm256_max_ps(vlo, t)); /* NaN propagates */
        store_m(o, t, m);
      } else {
        float tmp[8];
        _mm256_storeu_ps(tmp, t);
        for (int j = 0; j < ncols[l]; j++) {
          float u = tmp[j];
          if (r) u += r[j];
          u = u < lo ? lo : u;
          o[j] = u > hi ? hi : u;
        }
      }
    }
  }
}

void cnn_wino_output__avx2(const cnn_wino_tx* tx, const float* mp, size_t pstride, float bias, float lo, float hi,
                           float* const* orows, const float* const* rrows, const int* ncols) {
  switch (tx->m) {
    case 2: output_t(mp, pstride, bias, lo, hi, orows, rrows, ncols, 2, AT2); break;
    case 4: output_t(mp, pstride, bias, lo, hi, orows, rrows, ncols, 4, AT4); break;
    default: output_t(mp, pstride, bias, lo, hi, orows, rrows, ncols, 6, AT6); break;
  }
}
#else
typedef int cnn_wino_avx2_unused;
#endif
