/* AVX2 + FMA 1x16 SGEMM micro-kernel (a GEMV step): one row of C, 16 columns, for M == 1 (fully connected at batch
 * 1), where the 6x16 kernel would waste 5/6 of its FMAs. a: kc contiguous floats (a one-row packed panel is the row
 * itself); b: the usual kc x 16 packed panel. Four accumulators (two k phases x two column halves). Same contract
 * as cnn_gemm_ukernel_fn with m == 1. The 1x32 kernel (below) runs two consecutive panels at once. */
#include <immintrin.h>

#include "cnnrt/gemm.h"

static const int32_t g_mask[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};

/* Epilogue and store of 16 columns (two vectors): c[0, n) (n <= 16) += accumulate ? c : 0, + bias_row, bias_col[j],
 * residual[j], then the clamp. epi's column pointers are for these 16 columns. */
static inline __attribute__((always_inline)) void finish16(__m256 c0, __m256 c1, size_t n, float* c, int accumulate,
                                                           const cnn_gemm_epilogue* epi, size_t off) {
  if (n > 16) n = 16;
  const __m256i m0 = _mm256_loadu_si256((const __m256i*)(g_mask + 8 - (n < 8 ? n : 8)));
  const __m256i m1 = _mm256_loadu_si256((const __m256i*)(g_mask + 8 - (n > 8 ? n - 8 : 0)));
  const int full = n == 16;
#define LD(p, mk) (full ? _mm256_loadu_ps(p) : _mm256_maskload_ps((p), (mk)))
  if (accumulate) {
    c0 = _mm256_add_ps(c0, LD(c, m0));
    c1 = _mm256_add_ps(c1, LD(c + 8, m1));
  }
  if (epi) {
    if (epi->bias_row) {
      const __m256 br = _mm256_broadcast_ss(epi->bias_row);
      c0 = _mm256_add_ps(c0, br);
      c1 = _mm256_add_ps(c1, br);
    }
    if (epi->bias_col) {
      c0 = _mm256_add_ps(c0, LD(epi->bias_col + off, m0));
      c1 = _mm256_add_ps(c1, LD(epi->bias_col + off + 8, m1));
    }
    if (epi->residual) {
      c0 = _mm256_add_ps(c0, LD(epi->residual + off, m0));
      c1 = _mm256_add_ps(c1, LD(epi->residual + off + 8, m1));
    }
    const __m256 lo = _mm256_set1_ps(epi->min), hi = _mm256_set1_ps(epi->max);
    /* v < min ? min : v, then v > max ? max : v (NaN passes through, like the scalar kernel) */
    c0 = _mm256_blendv_ps(c0, lo, _mm256_cmp_ps(c0, lo, _CMP_LT_OQ));
    c0 = _mm256_blendv_ps(c0, hi, _mm256_cmp_ps(c0, hi, _CMP_GT_OQ));
    c1 = _mm256_blendv_ps(c1, lo, _mm256_cmp_ps(c1, lo, _CMP_LT_OQ));
    c1 = _mm256_blendv_ps(c1, hi, _mm256_cmp_ps(c1, hi, _CMP_GT_OQ));
  }
#undef LD
  if (full) {
    _mm256_storeu_ps(c, c0);
    _mm256_storeu_ps(c + 8, c1);
  } else {
    _mm256_maskstore_ps(c, m0, c0);
    _mm256_maskstore_ps(c + 8, m1, c1);
  }
}

void cnn_f32_gemm_ukernel_1x16__avx2(size_t m, size_t n, size_t kc, const float* a, const float* b, float* c,
                                     size_t ldc, int accumulate, const cnn_gemm_epilogue* epi) {
  (void)ldc;
  if (m == 0) return;
  __m256 c0 = _mm256_setzero_ps(), c1 = _mm256_setzero_ps(), d0 = _mm256_setzero_ps(), d1 = _mm256_setzero_ps();
  size_t k = 0;
  for (; k + 2 <= kc; k += 2) {
    const __m256 a0 = _mm256_broadcast_ss(a + k), a1 = _mm256_broadcast_ss(a + k + 1);
    c0 = _mm256_fmadd_ps(a0, _mm256_load_ps(b + k * 16), c0);
    c1 = _mm256_fmadd_ps(a0, _mm256_load_ps(b + k * 16 + 8), c1);
    d0 = _mm256_fmadd_ps(a1, _mm256_load_ps(b + k * 16 + 16), d0);
    d1 = _mm256_fmadd_ps(a1, _mm256_load_ps(b + k * 16 + 24), d1);
  }
  if (k < kc) {
    const __m256 a0 = _mm256_broadcast_ss(a + k);
    c0 = _mm256_fmadd_ps(a0, _mm256_load_ps(b + k * 16), c0);
    c1 = _mm256_fmadd_ps(a0, _mm256_load_ps(b + k * 16 + 8), c1);
  }
  finish16(_mm256_add_ps(c0, d0), _mm256_add_ps(c1, d1), n, c, accumulate, epi, 0);
}

/* Two consecutive panels (columns [0, 32), the second panel at b + 16*kc; n <= 16: the first only). Each panel's
 * sums are formed exactly as in the 1x16 kernel (even k into one accumulator, odd k into another, added at the end),
 * so every column has the 1x16 kernel's bits. Reading two panels at once keeps two sequential streams in flight: a
 * batch-1 fully connected layer streams its weights from L3 or memory once per run, and one stream is limited by
 * what one stream can have in flight. Measured (kernel loop over the packed weights, best of 300, this 2-core VM):
 * 2048x512 from L3 55-56 us vs 59-77 us with one panel at a time; 16384x1024 (64 MiB, memory) 3.5-3.8 ms vs
 * 4.3-4.8 ms. Four panels at once (8 streams' worth of loads per k) measured slower from L3 (67-73 us). */
void cnn_f32_gemm_ukernel_1x32__avx2(size_t m, size_t n, size_t kc, const float* a, const float* b, float* c,
                                     size_t ldc, int accumulate, const cnn_gemm_epilogue* epi) {
  if (m == 0) return;
  if (n <= 16) {
    cnn_f32_gemm_ukernel_1x16__avx2(m, n, kc, a, b, c, ldc, accumulate, epi);
    return;
  }
  const float* b2 = b + 16 * kc;
  __m256 c0 = _mm256_setzero_ps(), c1 = _mm256_setzero_ps(), d0 = _mm256_setzero_ps(), d1 = _mm256_setzero_ps();
  __m256 e0 = _mm256_setzero_ps(), e1 = _mm256_setzero_ps(), f0 = _mm256_setzero_ps(), f1 = _mm256_setzero_ps();
  size_t k = 0;
  for (; k + 2 <= kc; k += 2) {
    const __m256 a0 = _mm256_broadcast_ss(a + k), a1 = _mm256_broadcast_ss(a + k + 1);
    c0 = _mm256_fmadd_ps(a0, _mm256_load_ps(b + k * 16), c0);
    c1 = _mm256_fmadd_ps(a0, _mm256_load_ps(b + k * 16 + 8), c1);
    e0 = _mm256_fmadd_ps(a0, _mm256_load_ps(b2 + k * 16), e0);
    e1 = _mm256_fmadd_ps(a0, _mm256_load_ps(b2 + k * 16 + 8), e1);
    d0 = _mm256_fmadd_ps(a1, _mm256_load_ps(b + k * 16 + 16), d0);
    d1 = _mm256_fmadd_ps(a1, _mm256_load_ps(b + k * 16 + 24), d1);
    f0 = _mm256_fmadd_ps(a1, _mm256_load_ps(b2 + k * 16 + 16), f0);
    f1 = _mm256_fmadd_ps(a1, _mm256_load_ps(b2 + k * 16 + 24), f1);
  }
  if (k < kc) {
    const __m256 a0 = _mm256_broadcast_ss(a + k);
    c0 = _mm256_fmadd_ps(a0, _mm256_load_ps(b + k * 16), c0);
    c1 = _mm256_fmadd_ps(a0, _mm256_load_ps(b + k * 16 + 8), c1);
    e0 = _mm256_fmadd_ps(a0, _mm256_load_ps(b2 + k * 16), e0);
    e1 = _mm256_fmadd_ps(a0, _mm256_load_ps(b2 + k * 16 + 8), e1);
  }
  finish16(_mm256_add_ps(c0, d0), _mm256_add_ps(c1, d1), 16, c, accumulate, epi, 0);
  finish16(_mm256_add_ps(e0, f0), _mm256_add_ps(e1, f1), n - 16, c + 16, accumulate, epi, 16);
}
