/* Reference 1x16 SGEMM micro-kernel (GEMV step) in plain C: the oracle for cnn_f32_gemm_ukernel_1x16__avx2 and the
 * scalar ISA's M == 1 kernel. a: kc contiguous floats; b: kc x 16 packed panel. Contract: cnn_gemm_ukernel_fn with
 * m == 1 (only row 0 of C is touched). */
#include "cnnrt/gemm.h"

void cnn_f32_gemm_ukernel_1x16__scalar(size_t m, size_t n, size_t kc, const float* a, const float* b, float* c,
                                       size_t ldc, int accumulate, const cnn_gemm_epilogue* epi) {
  (void)ldc;
  if (m == 0) return;
  float acc[16];
  for (size_t j = 0; j < 16; j++) acc[j] = 0.0f;
  for (size_t k = 0; k < kc; k++)
    for (size_t j = 0; j < 16; j++) acc[j] += a[k] * b[k * 16 + j];
  if (n > 16) n = 16;
  for (size_t j = 0; j < n; j++) {
    float v = acc[j];
    if (accumulate) v += c[j];
    if (epi) {
      if (epi->bias_row) v += epi->bias_row[0];
      if (epi->bias_col) v += epi->bias_col[j];
      if (epi->residual) v += epi->residual[j];
      v = v < epi->min ? epi->min : v;
      v = v > epi->max ? epi->max : v;
    }
    c[j] = v;
  }
}

/* Reference for the 1x32 GEMV kernels (cnn_gemm_config.gemv2): two consecutive kc x 16 panels (the second at
 * b + 16*kc, read only when n > 16), columns [0, n), n <= 32: the 1x16 reference on each panel. */
void cnn_f32_gemm_ukernel_1x32__scalar(size_t m, size_t n, size_t kc, const float* a, const float* b, float* c,
                                       size_t ldc, int accumulate, const cnn_gemm_epilogue* epi) {
  if (m == 0) return;
  if (n > 32) n = 32;
  cnn_f32_gemm_ukernel_1x16__scalar(m, n < 16 ? n : 16, kc, a, b, c, ldc, accumulate, epi);
  if (n <= 16) return;
  cnn_gemm_epilogue e;
  if (epi) {
    e = *epi;
    if (e.bias_col) e.bias_col += 16;
    if (e.residual) e.residual += 16;
  }
  cnn_f32_gemm_ukernel_1x16__scalar(m, n - 16, kc, a, b + 16 * kc, c + 16, ldc, accumulate, epi ? &e : NULL);
}
