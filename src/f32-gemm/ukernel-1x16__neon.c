/* NEON (aarch64) 1x16 SGEMM micro-kernel (GEMV step, the NEON config's M == 1 kernel): a is kc contiguous floats,
 * b a kc x 16 packed panel (the 6x16 kernel's B layout). Two sets of 4 accumulators (even / odd k) keep two FMA
 * chains per column vector in flight. Contract: cnn_gemm_ukernel_fn with m == 1 (only row 0 of C is touched). */
#include <arm_neon.h>

#include "cnnrt/gemm.h"

/* epilogue and store of columns [off, off + n) (n <= 16) from their sums t[0, n) into c[0, n) */
static inline void finish16(const float* t, size_t n, float* c, int accumulate, const cnn_gemm_epilogue* epi,
                            size_t off) {
  if (n > 16) n = 16;
  for (size_t j = 0; j < n; j++) {
    float v = t[j];
    if (accumulate) v += c[j];
    if (epi) {
      if (epi->bias_row) v += epi->bias_row[0];
      if (epi->bias_col) v += epi->bias_col[off + j];
      if (epi->residual) v += epi->residual[off + j];
      v = v < epi->min ? epi->min : v;
      v = v > epi->max ? epi->max : v;
    }
    c[j] = v;
  }
}

void cnn_f32_gemm_ukernel_1x16__neon(size_t m, size_t n, size_t kc, const float* a, const float* b, float* c,
                                     size_t ldc, int accumulate, const cnn_gemm_epilogue* epi) {
  (void)ldc;
  if (m == 0) return;
  const float32x4_t z = vdupq_n_f32(0.0f);
  float32x4_t c0 = z, c1 = z, c2 = z, c3 = z, d0 = z, d1 = z, d2 = z, d3 = z;
  size_t k = 0;
  for (; k + 2 <= kc; k += 2, b += 32) {
    const float a0 = a[k], a1 = a[k + 1];
    c0 = vfmaq_n_f32(c0, vld1q_f32(b), a0);
    c1 = vfmaq_n_f32(c1, vld1q_f32(b + 4), a0);
    c2 = vfmaq_n_f32(c2, vld1q_f32(b + 8), a0);
    c3 = vfmaq_n_f32(c3, vld1q_f32(b + 12), a0);
    d0 = vfmaq_n_f32(d0, vld1q_f32(b + 16), a1);
    d1 = vfmaq_n_f32(d1, vld1q_f32(b + 20), a1);
    d2 = vfmaq_n_f32(d2, vld1q_f32(b + 24), a1);
    d3 = vfmaq_n_f32(d3, vld1q_f32(b + 28), a1);
  }
  if (k < kc) {
    const float a0 = a[k];
    c0 = vfmaq_n_f32(c0, vld1q_f32(b), a0);
    c1 = vfmaq_n_f32(c1, vld1q_f32(b + 4), a0);
    c2 = vfmaq_n_f32(c2, vld1q_f32(b + 8), a0);
    c3 = vfmaq_n_f32(c3, vld1q_f32(b + 12), a0);
  }
  float t[16];
  vst1q_f32(t, vaddq_f32(c0, d0));
  vst1q_f32(t + 4, vaddq_f32(c1, d1));
  vst1q_f32(t + 8, vaddq_f32(c2, d2));
  vst1q_f32(t + 12, vaddq_f32(c3, d3));
  finish16(t, n, c, accumulate, epi, 0);
}

/* Two consecutive panels (the second at b + 16*kc, read only when n > 16; n <= 32), each column's sums formed as in
 * the 1x16 kernel (same bits): two weight streams in flight for a batch-1 fully connected layer (see the AVX2
 * cnn_f32_gemm_ukernel_1x32__avx2). 32 accumulator registers' worth: 16 here. Not timed (no ARM64 machine). */
void cnn_f32_gemm_ukernel_1x32__neon(size_t m, size_t n, size_t kc, const float* a, const float* b, float* c,
                                     size_t ldc, int accumulate, const cnn_gemm_epilogue* epi) {
  if (m == 0) return;
  if (n <= 16) {
    cnn_f32_gemm_ukernel_1x16__neon(m, n, kc, a, b, c, ldc, accumulate, epi);
    return;
  }
  const float* b2 = b + 16 * kc;
  const float32x4_t z = vdupq_n_f32(0.0f);
  float32x4_t c0 = z, c1 = z, c2 = z, c3 = z, d0 = z, d1 = z, d2 = z, d3 = z;
  float32x4_t e0 = z, e1 = z, e2 = z, e3 = z, f0 = z, f1 = z, f2 = z, f3 = z;
  size_t k = 0;
  for (; k + 2 <= kc; k += 2, b += 32, b2 += 32) {
    const float a0 = a[k], a1 = a[k + 1];
    c0 = vfmaq_n_f32(c0, vld1q_f32(b), a0);
    c1 = vfmaq_n_f32(c1, vld1q_f32(b + 4), a0);
    c2 = vfmaq_n_f32(c2, vld1q_f32(b + 8), a0);
    c3 = vfmaq_n_f32(c3, vld1q_f32(b + 12), a0);
    e0 = vfmaq_n_f32(e0, vld1q_f32(b2), a0);
    e1 = vfmaq_n_f32(e1, vld1q_f32(b2 + 4), a0);
    e2 = vfmaq_n_f32(e2, vld1q_f32(b2 + 8), a0);
    e3 = vfmaq_n_f32(e3, vld1q_f32(b2 + 12), a0);
    d0 = vfmaq_n_f32(d0, vld1q_f32(b + 16), a1);
    d1 = vfmaq_n_f32(d1, vld1q_f32(b + 20), a1);
    d2 = vfmaq_n_f32(d2, vld1q_f32(b + 24), a1);
    d3 = vfmaq_n_f32(d3, vld1q_f32(b + 28), a1);
    f0 = vfmaq_n_f32(f0, vld1q_f32(b2 + 16), a1);
    f1 = vfmaq_n_f32(f1, vld1q_f32(b2 + 20), a1);
    f2 = vfmaq_n_f32(f2, vld1q_f32(b2 + 24), a1);
    f3 = vfmaq_n_f32(f3, vld1q_f32(b2 + 28), a1);
  }
  if (k < kc) {
    const float a0 = a[k];
    c0 = vfmaq_n_f32(c0, vld1q_f32(b), a0);
    c1 = vfmaq_n_f32(c1, vld1q_f32(b + 4), a0);
    c2 = vfmaq_n_f32(c2, vld1q_f32(b + 8), a0);
    c3 = vfmaq_n_f32(c3, vld1q_f32(b + 12), a0);
    e0 = vfmaq_n_f32(e0, vld1q_f32(b2), a0);
    e1 = vfmaq_n_f32(e1, vld1q_f32(b2 + 4), a0);
    e2 = vfmaq_n_f32(e2, vld1q_f32(b2 + 8), a0);
    e3 = vfmaq_n_f32(e3, vld1q_f32(b2 + 12), a0);
  }
  float t[32];
  vst1q_f32(t, vaddq_f32(c0, d0));
  vst1q_f32(t + 4, vaddq_f32(c1, d1));
  vst1q_f32(t + 8, vaddq_f32(c2, d2));
  vst1q_f32(t + 12, vaddq_f32(c3, d3));
  vst1q_f32(t + 16, vaddq_f32(e0, f0));
  vst1q_f32(t + 20, vaddq_f32(e1, f1));
  vst1q_f32(t + 24, vaddq_f32(e2, f2));
  vst1q_f32(t + 28, vaddq_f32(e3, f3));
  finish16(t, 16, c, accumulate, epi, 0);
  finish16(t + 16, n - 16, c + 16, accumulate, epi, 16);
}
