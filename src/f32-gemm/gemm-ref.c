/* Naive reference GEMM (the oracle for tests): C = A*B, then the epilogue over the whole matrix. */
#include "cnnrt/gemm.h"

/* Sums in double so that the reference is closer to the exact result than any float kernel under test. */
void cnn_gemm_ref(size_t M, size_t N, size_t K, const float* a, size_t a_rs, size_t a_cs, const float* b,
                  size_t b_rs, size_t b_cs, float* c, size_t ldc, const cnn_gemm_epilogue* epi) {
  for (size_t i = 0; i < M; i++) {
    for (size_t j = 0; j < N; j++) {
      double s = 0.0;
      for (size_t k = 0; k < K; k++) s += (double)a[i * a_rs + k * a_cs] * (double)b[k * b_rs + j * b_cs];
      float v = (float)s;
      if (epi) {
        if (epi->bias_row) v += epi->bias_row[i];
        if (epi->bias_col) v += epi->bias_col[j];
        if (epi->residual) v += epi->residual[i * epi->res_ld + j];
        v = v < epi->min ? epi->min : v;
        v = v > epi->max ? epi->max : v;
      }
      c[i * ldc + j] = v;
    }
  }
}
