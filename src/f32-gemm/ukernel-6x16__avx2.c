/* AVX2 + FMA 6x16 SGEMM micro-kernel: 12 YMM accumulators (6 rows x 2 vectors of 8 columns), per k one broadcast of
 * each of the 6 A values and two loads of B, k loop unrolled by 4. Partial tiles are computed in full in registers
 * (the packed panels are zero-padded; a tile of <= 8 columns computes only the low 8) and stored with masked stores
 * (columns) and aliased row pointers (rows).
 * The epilogue (bias per row / column, residual, clamp) is applied in registers before the store.
 * Contract: see cnn_gemm_ukernel_fn in include/cnnrt/gemm.h. */
#include <immintrin.h>

#include "cnnrt/gemm.h"

/* lanes [0, r) of loadu(&g_mask[8 - r]) are all-ones, the others zero (r in 0..8) */
static const int32_t g_mask[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};

#define STEP(off)                                                  \
  do {                                                             \
    const __m256 b0 = _mm256_load_ps(b + (off) * 16);              \
    const __m256 b1 = _mm256_load_ps(b + (off) * 16 + 8);          \
    STEP_AB(b0, b1);                                               \
  } while (0)

/* the 12 FMAs of one k: broadcast a[0..5] (at `a`), times B row (b0, b1) */
#define STEP_AB(b0, b1)                                            \
  do {                                                             \
    __m256 av = _mm256_broadcast_ss(a + 0);                        \
    c00 = _mm256_fmadd_ps(av, b0, c00);                            \
    c01 = _mm256_fmadd_ps(av, b1, c01);                            \
    av = _mm256_broadcast_ss(a + 1);                               \
    c10 = _mm256_fmadd_ps(av, b0, c10);                            \
    c11 = _mm256_fmadd_ps(av, b1, c11);                            \
    av = _mm256_broadcast_ss(a + 2);                               \
    c20 = _mm256_fmadd_ps(av, b0, c20);                            \
    c21 = _mm256_fmadd_ps(av, b1, c21);                            \
    av = _mm256_broadcast_ss(a + 3);                               \
    c30 = _mm256_fmadd_ps(av, b0, c30);                            \
    c31 = _mm256_fmadd_ps(av, b1, c31);                            \
    av = _mm256_broadcast_ss(a + 4);                               \
    c40 = _mm256_fmadd_ps(av, b0, c40);                            \
    c41 = _mm256_fmadd_ps(av, b1, c41);                            \
    av = _mm256_broadcast_ss(a + 5);                               \
    c50 = _mm256_fmadd_ps(av, b0, c50);                            \
    c51 = _mm256_fmadd_ps(av, b1, c51);                            \
  } while (0)

/* Apply `op(row_ptr, v0, v1)` to rows 5..0 (the reverse order matters for aliased rows, see below). */
#define FOR_ROWS(OP) \
  OP(5, c5, c50, c51); OP(4, c4, c40, c41); OP(3, c3, c30, c31); OP(2, c2, c20, c21); OP(1, c1, c10, c11); OP(0, c0, c00, c01)

void cnn_f32_gemm_ukernel_6x16__avx2(size_t m, size_t n, size_t kc, const float* a, const float* b, float* c,
                                     size_t ldc, int accumulate, const cnn_gemm_epilogue* epi) {
  __m256 c00 = _mm256_setzero_ps(), c01 = _mm256_setzero_ps();
  __m256 c10 = _mm256_setzero_ps(), c11 = _mm256_setzero_ps();
  __m256 c20 = _mm256_setzero_ps(), c21 = _mm256_setzero_ps();
  __m256 c30 = _mm256_setzero_ps(), c31 = _mm256_setzero_ps();
  __m256 c40 = _mm256_setzero_ps(), c41 = _mm256_setzero_ps();
  __m256 c50 = _mm256_setzero_ps(), c51 = _mm256_setzero_ps();

  /* One k per iteration, unrolled by 4 by the compiler: unrolling by hand (4 STEPs per iteration) lets GCC hoist
   * loads across steps and spill accumulators; this form keeps all 12 accumulators in registers. */
  size_t k = kc;
  if (n <= 8) {
    /* a tail tile of at most 8 columns (e.g. the last panel of a 7x7 or 14x14 output): only the low 8 columns of
     * the panel are computed (half the FMAs); the high accumulators stay zero and are never stored (mask 0) */
#pragma GCC unroll 4
    for (; k != 0; k--) {
      const __m256 b0 = _mm256_load_ps(b);
      c00 = _mm256_fmadd_ps(_mm256_broadcast_ss(a + 0), b0, c00);
      c10 = _mm256_fmadd_ps(_mm256_broadcast_ss(a + 1), b0, c10);
      c20 = _mm256_fmadd_ps(_mm256_broadcast_ss(a + 2), b0, c20);
      c30 = _mm256_fmadd_ps(_mm256_broadcast_ss(a + 3), b0, c30);
      c40 = _mm256_fmadd_ps(_mm256_broadcast_ss(a + 4), b0, c40);
      c50 = _mm256_fmadd_ps(_mm256_broadcast_ss(a + 5), b0, c50);
      a += 6;
      b += 16;
    }
  } else {
#pragma GCC unroll 4
    for (; k != 0; k--) {
      STEP(0);
      a += 6;
      b += 16;
    }
  }

  /* Rows past m alias the previous valid row: they are computed (from zero A rows) and stored first, then
   * overwritten by the valid row's store, so only rows < m end up written, and only rows < m are read. */
  float* c0 = c;
  float* c1 = m > 1 ? c0 + ldc : c0;
  float* c2 = m > 2 ? c1 + ldc : c1;
  float* c3 = m > 3 ? c2 + ldc : c2;
  float* c4 = m > 4 ? c3 + ldc : c3;
  float* c5 = m > 5 ? c4 + ldc : c4;
  const size_t row_idx1 = m > 1 ? 1 : 0, row_idx2 = m > 2 ? 2 : row_idx1, row_idx3 = m > 3 ? 3 : row_idx2,
               row_idx4 = m > 4 ? 4 : row_idx3, row_idx5 = m > 5 ? 5 : row_idx4;

  if (n >= 16) {
    if (accumulate) {
#define ACC_FULL(i, p, v0, v1)                          \
  v0 = _mm256_add_ps(v0, _mm256_loadu_ps(p));           \
  v1 = _mm256_add_ps(v1, _mm256_loadu_ps(p + 8))
      FOR_ROWS(ACC_FULL);
#undef ACC_FULL
    }
    if (epi) {
      if (epi->bias_row) {
        const float* br = epi->bias_row;
#define BIAS_ROW(i, idx)                                 \
  do {                                                   \
    const __m256 bv = _mm256_broadcast_ss(br + (idx));   \
    c##i##0 = _mm256_add_ps(c##i##0, bv);                \
    c##i##1 = _mm256_add_ps(c##i##1, bv);                \
  } while (0)
        BIAS_ROW(0, 0); BIAS_ROW(1, row_idx1); BIAS_ROW(2, row_idx2); BIAS_ROW(3, row_idx3); BIAS_ROW(4, row_idx4);
        BIAS_ROW(5, row_idx5);
      }
      if (epi->bias_col) {
        const __m256 b0 = _mm256_loadu_ps(epi->bias_col), b1 = _mm256_loadu_ps(epi->bias_col + 8);
#define BIAS_COL(i, p, v0, v1) v0 = _mm256_add_ps(v0, b0); v1 = _mm256_add_ps(v1, b1)
        FOR_ROWS(BIAS_COL);
      }
      if (epi->residual) {
        const float* r0 = epi->residual;
        const size_t rl = epi->res_ld;
        const float* rp[6] = {r0, r0 + row_idx1 * rl, r0 + row_idx2 * rl, r0 + row_idx3 * rl, r0 + row_idx4 * rl,
                              r0 + row_idx5 * rl};
#define RES_FULL(i, p, v0, v1)                           \
  v0 = _mm256_add_ps(v0, _mm256_loadu_ps(rp[i]));        \
  v1 = _mm256_add_ps(v1, _mm256_loadu_ps(rp[i] + 8))
        FOR_ROWS(RES_FULL);
#undef RES_FULL
      }
      /* max(lo, v) / min(hi, v): the second operand is returned when either is NaN, so NaN propagates */
      const __m256 lo = _mm256_set1_ps(epi->min), hi = _mm256_set1_ps(epi->max);
#define CLAMP(i, p, v0, v1)                                  \
  v0 = _mm256_min_ps(hi, _mm256_max_ps(lo, v0));             \
  v1 = _mm256_min_ps(hi, _mm256_max_ps(lo, v1))
      FOR_ROWS(CLAMP);
    }
#define STORE_FULL(i, p, v0, v1) _mm256_storeu_ps(p, v0); _mm256_storeu_ps(p + 8, v1)
    FOR_ROWS(STORE_FULL);
#undef STORE_FULL
    return;
  }

  /* partial columns: lanes of the low vector valid for j < n, of the high vector for 8 <= j < n */
  const __m256i mlo = _mm256_loadu_si256((const __m256i*)(g_mask + 8 - (n < 8 ? n : 8)));
  const __m256i mhi = _mm256_loadu_si256((const __m256i*)(g_mask + 8 - (n > 8 ? n - 8 : 0)));
  if (accumulate) {
#define ACC_PART(i, p, v0, v1)                               \
  v0 = _mm256_add_ps(v0, _mm256_maskload_ps(p, mlo));        \
  v1 = _mm256_add_ps(v1, _mm256_maskload_ps(p + 8, mhi))
    FOR_ROWS(ACC_PART);
#undef ACC_PART
  }
  if (epi) {
    if (epi->bias_row) {
      const float* br = epi->bias_row;
      BIAS_ROW(0, 0); BIAS_ROW(1, row_idx1); BIAS_ROW(2, row_idx2); BIAS_ROW(3, row_idx3); BIAS_ROW(4, row_idx4);
      BIAS_ROW(5, row_idx5);
    }
    if (epi->bias_col) {
      const __m256 b0 = _mm256_maskload_ps(epi->bias_col, mlo), b1 = _mm256_maskload_ps(epi->bias_col + 8, mhi);
      FOR_ROWS(BIAS_COL);
    }
    if (epi->residual) {
      const float* r0 = epi->residual;
      const size_t rl = epi->res_ld;
      const float* rp[6] = {r0, r0 + row_idx1 * rl, r0 + row_idx2 * rl, r0 + row_idx3 * rl, r0 + row_idx4 * rl,
                            r0 + row_idx5 * rl};
#define RES_PART(i, p, v0, v1)                                 \
  v0 = _mm256_add_ps(v0, _mm256_maskload_ps(rp[i], mlo));      \
  v1 = _mm256_add_ps(v1, _mm256_maskload_ps(rp[i] + 8, mhi))
      FOR_ROWS(RES_PART);
#undef RES_PART
    }
    const __m256 lo = _mm256_set1_ps(epi->min), hi = _mm256_set1_ps(epi->max);
    FOR_ROWS(CLAMP);
  }
#define STORE_PART(i, p, v0, v1) _mm256_maskstore_ps(p, mlo, v0); _mm256_maskstore_ps(p + 8, mhi, v1)
  FOR_ROWS(STORE_PART);
#undef STORE_PART
}

