/* AVX2 + FMA 6x16 SGEMM micro-kernel: 12 YMM accumulators (6 rows x 2 vectors of 8 columns), per k one broadcast of
 * each of the 6 A values and two loads of B, k loop unrolled by 4. Partial tiles are computed in full in registers
 * (the packed panels are zero-padded; a tile of <= 8 columns computes only the low 8, one of <= 4 columns takes the
 * rows-in-lanes kernel below) and stored with masked stores (columns) and aliased row pointers (rows).
 * The epilogue (bias per row / column, residual, clamp) is applied in registers before the store.
 * Contract: see cnn_gemm_ukernel_fn in include/cnnrt/gemm.h; the _ldb variant reads B unpacked (1x1 convolutions),
 * see cnn_gemm_ukernel_ldb_fn. */
#include <immintrin.h>

#include "cnnrt/gemm.h"
#include "tile-store.h"

/* lanes [0, r) of loadu(&g_mask[8 - r]) are all-ones, the others zero (r in 0..8) */
static const int32_t g_mask[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};

#define STEP(off)                                                  \
  do {                                                             \
    const __m256 b0 = _mm256_loadu_ps(b + (off) * ldb);            \
    const __m256 b1 = _mm256_loadu_ps(b + (off) * ldb + 8);        \
    STEP_AB(b0, b1);                                               \
  } while (0)

/* row i of a k step: broadcast A value a[off], times B row (b0, b1), into accumulators (c0, c1) */
#define FMA_ROW(off, b0, b1, c0, c1)                               \
  do {                                                             \
    const __m256 av_ = _mm256_broadcast_ss(a + (off));             \
    c0 = _mm256_fmadd_ps(av_, b0, c0);                             \
    c1 = _mm256_fmadd_ps(av_, b1, c1);                             \
  } while (0)

/* the 12 FMAs of one k: broadcast a[0..5] (at `a`), times B row (b0, b1) */
#define STEP_AB(b0, b1)                                            \
  do {                                                             \
    FMA_ROW(0, b0, b1, c00, c01);                                  \
    FMA_ROW(1, b0, b1, c10, c11);                                  \
    FMA_ROW(2, b0, b1, c20, c21);                                  \
    FMA_ROW(3, b0, b1, c30, c31);                                  \
    FMA_ROW(4, b0, b1, c40, c41);                                  \
    FMA_ROW(5, b0, b1, c50, c51);                                  \
  } while (0)

/* Apply `op(row_ptr, v0, v1)` to rows 5..0 (the reverse order matters for aliased rows, see below). */
#define FOR_ROWS(OP) \
  OP(5, c5, c50, c51); OP(4, c4, c40, c41); OP(3, c3, c30, c31); OP(2, c2, c20, c21); OP(1, c1, c10, c11); OP(0, c0, c00, c01)

/* Narrow tiles (n <= 4 columns, e.g. the last panel of a 7x7 output: 49 = 3*16 + 1) turn the roles around: the A
 * panel's 6 values of one k are one vector (rows in lanes 0-5) and each column's B value is broadcast, so a k costs
 * 1 + n loads and n FMAs instead of the 7 loads and 6 FMAs of the 8-column path (measured in L1, kc = 256: 1.5, 2.8,
 * 3.1, 3.2 cycles per k for n = 1..4 against 4.5). 8 / 4 / 2 independent accumulators per
 * column (k unrolled) hide the FMA latency; they are summed at the end, then the epilogue runs per element.
 * Lanes 6 and 7 of a k's A vector are the next k's rows 0 and 1 (multiplied, never stored); the last k loads
 * masked, so nothing past the panel is read. (5..8 columns this way would be as load-bound as the 8-column path.) */
static const int32_t g_mask6[8] = {-1, -1, -1, -1, -1, -1, 0, 0};

#define NA(k) _mm256_loadu_ps(a + (k) * 6)
#define NB(k, j) _mm256_broadcast_ss(b + (k) * 16 + (j))

static void narrow_tile(size_t m, size_t n, size_t kc, const float* a, const float* b, float* c, size_t ldc,
                        int accumulate, const cnn_gemm_epilogue* epi) {
  const size_t kl = kc ? kc - 1 : 0; /* k < kl: plain loads */
  __m256 r0, r1 = _mm256_setzero_ps(), r2 = r1, r3 = r1;
  size_t k = 0;
  if (n == 1) {
    __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0, s4 = s0, s5 = s0, s6 = s0, s7 = s0;
    for (; k + 8 <= kl; k += 8) {
      s0 = _mm256_fmadd_ps(NA(k + 0), NB(k + 0, 0), s0);
      s1 = _mm256_fmadd_ps(NA(k + 1), NB(k + 1, 0), s1);
      s2 = _mm256_fmadd_ps(NA(k + 2), NB(k + 2, 0), s2);
      s3 = _mm256_fmadd_ps(NA(k + 3), NB(k + 3, 0), s3);
      s4 = _mm256_fmadd_ps(NA(k + 4), NB(k + 4, 0), s4);
      s5 = _mm256_fmadd_ps(NA(k + 5), NB(k + 5, 0), s5);
      s6 = _mm256_fmadd_ps(NA(k + 6), NB(k + 6, 0), s6);
      s7 = _mm256_fmadd_ps(NA(k + 7), NB(k + 7, 0), s7);
    }
    for (; k < kl; k++) s0 = _mm256_fmadd_ps(NA(k), NB(k, 0), s0);
    r0 = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)),
                       _mm256_add_ps(_mm256_add_ps(s4, s5), _mm256_add_ps(s6, s7)));
  } else if (n > 2) {
    /* 3 or 4 columns: 4 computed (a panel's columns past n are zero), k unrolled by 2 */
    __m256 s0 = _mm256_setzero_ps(), s1 = s0, t0 = s0, t1 = s0, u0 = s0, u1 = s0, v0 = s0, v1 = s0;
    for (; k + 2 <= kl; k += 2) {
      const __m256 a0 = NA(k + 0), a1 = NA(k + 1);
      s0 = _mm256_fmadd_ps(a0, NB(k + 0, 0), s0);
      t0 = _mm256_fmadd_ps(a0, NB(k + 0, 1), t0);
      u0 = _mm256_fmadd_ps(a0, NB(k + 0, 2), u0);
      v0 = _mm256_fmadd_ps(a0, NB(k + 0, 3), v0);
      s1 = _mm256_fmadd_ps(a1, NB(k + 1, 0), s1);
      t1 = _mm256_fmadd_ps(a1, NB(k + 1, 1), t1);
      u1 = _mm256_fmadd_ps(a1, NB(k + 1, 2), u1);
      v1 = _mm256_fmadd_ps(a1, NB(k + 1, 3), v1);
    }
    for (; k < kl; k++) {
      const __m256 a0 = NA(k);
      s0 = _mm256_fmadd_ps(a0, NB(k, 0), s0);
      t0 = _mm256_fmadd_ps(a0, NB(k, 1), t0);
      u0 = _mm256_fmadd_ps(a0, NB(k, 2), u0);
      v0 = _mm256_fmadd_ps(a0, NB(k, 3), v0);
    }
    r0 = _mm256_add_ps(s0, s1);
    r1 = _mm256_add_ps(t0, t1);
    r2 = _mm256_add_ps(u0, u1);
    r3 = _mm256_add_ps(v0, v1);
  } else {
    __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0, t0 = s0, t1 = s0, t2 = s0, t3 = s0;
    for (; k + 4 <= kl; k += 4) {
      const __m256 a0 = NA(k + 0), a1 = NA(k + 1), a2 = NA(k + 2), a3 = NA(k + 3);
      s0 = _mm256_fmadd_ps(a0, NB(k + 0, 0), s0);
      t0 = _mm256_fmadd_ps(a0, NB(k + 0, 1), t0);
      s1 = _mm256_fmadd_ps(a1, NB(k + 1, 0), s1);
      t1 = _mm256_fmadd_ps(a1, NB(k + 1, 1), t1);
      s2 = _mm256_fmadd_ps(a2, NB(k + 2, 0), s2);
      t2 = _mm256_fmadd_ps(a2, NB(k + 2, 1), t2);
      s3 = _mm256_fmadd_ps(a3, NB(k + 3, 0), s3);
      t3 = _mm256_fmadd_ps(a3, NB(k + 3, 1), t3);
    }
    for (; k < kl; k++) {
      const __m256 a0 = NA(k);
      s0 = _mm256_fmadd_ps(a0, NB(k, 0), s0);
      t0 = _mm256_fmadd_ps(a0, NB(k, 1), t0);
    }
    r0 = _mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3));
    r1 = _mm256_add_ps(_mm256_add_ps(t0, t1), _mm256_add_ps(t2, t3));
  }
  if (kc) { /* the last k */
    const __m256 a0 = _mm256_maskload_ps(a + kl * 6, _mm256_loadu_si256((const __m256i*)g_mask6));
    r0 = _mm256_fmadd_ps(a0, NB(kl, 0), r0);
    if (n > 1) r1 = _mm256_fmadd_ps(a0, NB(kl, 1), r1);
    if (n > 2) {
      r2 = _mm256_fmadd_ps(a0, NB(kl, 2), r2);
      r3 = _mm256_fmadd_ps(a0, NB(kl, 3), r3);
    }
  }
  float t[4][8];
  _mm256_storeu_ps(t[0], r0);
  _mm256_storeu_ps(t[1], r1);
  _mm256_storeu_ps(t[2], r2);
  _mm256_storeu_ps(t[3], r3);
  cnn_gemm_store_lanes(&t[0][0], 8, m, 0, n, c, ldc, accumulate, epi);
}
#undef NA
#undef NB

/* one line of the caller's prefetch range per loop iteration (see cnn_gemm_ukernel_pf_fn); pfl == 0: nothing */
#define PF_LINE()                          \
  do {                                     \
    if (pfl) {                             \
      _mm_prefetch(pf, _MM_HINT_T1);       \
      pf += 64;                            \
      pfl--;                               \
    }                                      \
  } while (0)

/* The 5..16-column tile; row k of B at b + k*ldb (16 for a packed panel). */
static inline __attribute__((always_inline)) void tile_6x16(size_t m, size_t n, size_t kc, const float* a,
                                                             const float* b, const size_t ldb, float* c, size_t ldc,
                                                             int accumulate, const cnn_gemm_epilogue* epi,
                                                             const char* pf, size_t pfl) {
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
      PF_LINE();
      const __m256 b0 = _mm256_loadu_ps(b);
      c00 = _mm256_fmadd_ps(_mm256_broadcast_ss(a + 0), b0, c00);
      c10 = _mm256_fmadd_ps(_mm256_broadcast_ss(a + 1), b0, c10);
      c20 = _mm256_fmadd_ps(_mm256_broadcast_ss(a + 2), b0, c20);
      c30 = _mm256_fmadd_ps(_mm256_broadcast_ss(a + 3), b0, c30);
      c40 = _mm256_fmadd_ps(_mm256_broadcast_ss(a + 4), b0, c40);
      c50 = _mm256_fmadd_ps(_mm256_broadcast_ss(a + 5), b0, c50);
      a += 6;
      b += ldb;
    }
  } else if (m <= 2) {
    /* the last row panel of M = 6q + 1 or 2 (e.g. 32, 80, 128, 320, 512 output channels): only rows 0-1 are
     * computed. Four FMAs per k would wait on the FMA latency with 4 chains, so even and odd k accumulate apart
     * (c2x / c3x hold the odd k) and are summed after the loop: 2 rows cost about a third of a full tile, not
     * all of it. Rows 2-5 are zero again before the (aliased) stores. */
    for (; k >= 2; k -= 2) {
      PF_LINE();
      const __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8);
      const __m256 e0 = _mm256_loadu_ps(b + ldb), e1 = _mm256_loadu_ps(b + ldb + 8);
      FMA_ROW(0, b0, b1, c00, c01);
      FMA_ROW(1, b0, b1, c10, c11);
      FMA_ROW(6, e0, e1, c20, c21);
      FMA_ROW(7, e0, e1, c30, c31);
      a += 12;
      b += 2 * ldb;
    }
    if (k) {
      const __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8);
      FMA_ROW(0, b0, b1, c00, c01);
      FMA_ROW(1, b0, b1, c10, c11);
    }
    c00 = _mm256_add_ps(c00, c20);
    c01 = _mm256_add_ps(c01, c21);
    c10 = _mm256_add_ps(c10, c30);
    c11 = _mm256_add_ps(c11, c31);
    c20 = c21 = c30 = c31 = _mm256_setzero_ps();
  } else if (m <= 4) {
    /* the last row panel of M = 6q + 3 or 4 (16, 40, 64, 112, 160, 256, 1000 rows): rows 0-3 only, 8 FMAs per k
     * (8 chains: enough to hide the FMA latency); rows 4-5 stay zero */
#pragma GCC unroll 4
    for (; k != 0; k--) {
      PF_LINE();
      const __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8);
      FMA_ROW(0, b0, b1, c00, c01);
      FMA_ROW(1, b0, b1, c10, c11);
      FMA_ROW(2, b0, b1, c20, c21);
      FMA_ROW(3, b0, b1, c30, c31);
      a += 6;
      b += ldb;
    }
  } else {
#pragma GCC unroll 4
    for (; k != 0; k--) {
      PF_LINE();
      STEP(0);
      a += 6;
      b += ldb;
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

void cnn_f32_gemm_ukernel_6x16__avx2(size_t m, size_t n, size_t kc, const float* a, const float* b, float* c,
                                     size_t ldc, int accumulate, const cnn_gemm_epilogue* epi) {
  if (n <= 4) {
    narrow_tile(m, n, kc, a, b, c, ldc, accumulate, epi);
    return;
  }
  tile_6x16(m, n, kc, a, b, 16, c, ldc, accumulate, epi, NULL, 0);
}

void cnn_f32_gemm_ukernel_6x16_ldb__avx2(size_t m, size_t n, size_t kc, const float* a, const float* b, size_t ldb,
                                         float* c, size_t ldc, int accumulate, const cnn_gemm_epilogue* epi) {
  tile_6x16(m, n, kc, a, b, ldb, c, ldc, accumulate, epi, NULL, 0);
}

void cnn_f32_gemm_ukernel_6x16_pf__avx2(size_t m, size_t n, size_t kc, const float* a, const float* b, size_t ldb,
                                        float* c, size_t ldc, int accumulate, const cnn_gemm_epilogue* epi,
                                        const void* pf, size_t pf_lines) {
  const char* q = (const char*)pf;
  /* lines the loop has no iteration for (the 2-row path takes 2 k per iteration) or the narrow path: up front */
  const size_t steps = m <= 2 && n > 8 ? kc / 2 : kc;
  const size_t l0 = n <= 4 && !ldb ? 0 : cnn_min_sz(pf_lines, steps);
  for (size_t l = l0; l < pf_lines; l++) _mm_prefetch(q + 64 * l, _MM_HINT_T1);
  if (n <= 4 && !ldb) {
    narrow_tile(m, n, kc, a, b, c, ldc, accumulate, epi);
    return;
  }
  tile_6x16(m, n, kc, a, b, ldb ? ldb : 16, c, ldc, accumulate, epi, q, l0);
}
