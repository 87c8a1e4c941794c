/* Reference 6x16 SGEMM micro-kernel in plain C (the oracle for the SIMD kernels, and the SCALAR ISA's kernel).
 * Contract: see cnn_gemm_ukernel_fn in include/cnnrt/gemm.h. */
#include "cnnrt/gemm.h"

#define MR 6
#define NR 16

/* C[m x n] (row stride ldc) = (accumulate ? C : 0) + A*B, then the epilogue (bias row, bias col, residual, clamp).
 * a: kc x 6 packed panel, b: kc x 16 packed panel (zero-padded past m / n). Only rows < m and columns < n of C are
 * read or written. */
void cnn_f32_gemm_ukernel_6x16__scalar(size_t m, size_t n, size_t kc, const float* a, const float* b, float* c,
                                       size_t ldc, int accumulate, const cnn_gemm_epilogue* epi) {
  cnn_f32_gemm_ukernel_6x16_ldb__scalar(m, n, kc, a, b, NR, c, ldc, accumulate, epi);
}

/* B unpacked: row k at b + k*ldb; only columns < n are read. */
void cnn_f32_gemm_ukernel_6x16_ldb__scalar(size_t m, size_t n, size_t kc, const float* a, const float* b, size_t ldb,
                                           float* c, size_t ldc, int accumulate, const cnn_gemm_epilogue* epi) {
  float acc[MR][NR];
  for (size_t i = 0; i < MR; i++)
    for (size_t j = 0; j < NR; j++) acc[i][j] = 0.0f;
  for (size_t k = 0; k < kc; k++) {
    const float* ak = a + k * MR;
    const float* bk = b + k * ldb;
    const size_t nv = n < NR ? n : NR;
    for (size_t i = 0; i < MR; i++) {
      const float ai = ak[i];
      for (size_t j = 0; j < nv; j++) acc[i][j] += ai * bk[j];
    }
  }
  if (m > MR) m = MR;
  if (n > NR) n = NR;
  for (size_t i = 0; i < m; i++) {
    float* ci = c + i * ldc;
    for (size_t j = 0; j < n; j++) {
      float v = acc[i][j];
      if (accumulate) v += ci[j];
      if (epi) {
        if (epi->bias_row) v += epi->bias_row[i];
        if (epi->bias_col) v += epi->bias_col[j];
        if (epi->residual) v += epi->residual[i * epi->res_ld + j];
        /* NaN stays NaN: both comparisons are false */
        v = v < epi->min ? epi->min : v;
        v = v > epi->max ? epi->max : v;
      }
      ci[j] = v;
    }
  }
}
