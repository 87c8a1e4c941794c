/* AVX2+FMA Winograd transforms: the scalar kernels with one tile per lane of a YMM register (8 tiles at once). */
#if defined(__x86_64__) && !defined(CNNRT_NO_AVX2)
#include <immintrin.h>

#include "cnnrt/winograd.h"

#define L CNN_WINO_LANES

void cnn_wino_input__avx2(const cnn_wino_tx* tx, const float* d, float* v, size_t pstride) {
  const int T = tx->T;
  __m256 w[CNN_WINO_TMAX * CNN_WINO_TMAX];
  for (int p = 0; p < T; p++) {
    const cnn_wino_row* row = &tx->btr[p];
    for (int s = 0; s < T; s++) {
      __m256 acc = _mm256_setzero_ps();
      for (int k = 0; k < row->nnz; k++)
        acc = _mm256_fmadd_ps(_mm256_set1_ps(row->coef[k]), _mm256_loadu_ps(d + (row->idx[k] * T + s) * L), acc);
      w[p * T + s] = acc;
    }
  }
  for (int p = 0; p < T; p++)
    for (int q = 0; q < T; q++) {
      const cnn_wino_row* row = &tx->btr[q];
      __m256 acc = _mm256_setzero_ps();
      for (int k = 0; k < row->nnz; k++)
        acc = _mm256_fmadd_ps(_mm256_set1_ps(row->coef[k]), w[p * T + row->idx[k]], acc);
      _mm256_storeu_ps(v + (size_t)(p * T + q) * pstride, acc);
    }
}

void cnn_wino_output__avx2(const cnn_wino_tx* tx, const float* mp, size_t pstride, float bias, float lo, float hi,
                           float* y) {
  const int T = tx->T, m = tx->m;
  __m256 z[CNN_WINO_TMAX * CNN_WINO_TMAX];
  for (int i = 0; i < m; i++) {
    const cnn_wino_row* row = &tx->atr[i];
    for (int q = 0; q < T; q++) {
      __m256 acc = _mm256_setzero_ps();
      for (int k = 0; k < row->nnz; k++)
        acc = _mm256_fmadd_ps(_mm256_set1_ps(row->coef[k]),
                              _mm256_loadu_ps(mp + (size_t)(row->idx[k] * T + q) * pstride), acc);
      z[i * T + q] = acc;
    }
  }
  const __m256 vb = _mm256_set1_ps(bias), vlo = _mm256_set1_ps(lo), vhi = _mm256_set1_ps(hi);
  for (int i = 0; i < m; i++)
    for (int j = 0; j < m; j++) {
      const cnn_wino_row* row = &tx->atr[j];
      __m256 acc = vb;
      for (int k = 0; k < row->nnz; k++)
        acc = _mm256_fmadd_ps(_mm256_set1_ps(row->coef[k]), z[i * T + row->idx[k]], acc);
      acc = _mm256_min_ps(vhi, _mm256_max_ps(vlo, acc)); /* NaN propagates */
      _mm256_storeu_ps(y + (i * m + j) * L, acc);
    }
}
#else
typedef int cnn_wino_avx2_unused;
#endif
