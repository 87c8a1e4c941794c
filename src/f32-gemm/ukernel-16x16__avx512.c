/* AVX-512F 16x16 SGEMM micro-kernel: 16 ZMM accumulators (16 rows x one vector of 16 columns); per k one load of the
 * B row and 16 FMAs whose A operand is an embedded broadcast from the packed panel (vfmadd231ps zmm, zmm, m32{1to16}),
 * so a k costs 17 loads and 16 FMAs and the tile has 2.7x the 6x16 AVX2 tile's work per k (the fixed cost per call:
 * accumulator setup, epilogue, stores, the FMA chains' drain, is spread over 256 outputs instead of 96).
 * On a core that runs 512-bit FMAs as two 256-bit halves (AMD Zen 4) the FMA peak is the AVX2 one; what the wider
 * tile buys is fewer loads and less fixed cost per FMA (K = 16..32 1x1 convolutions, 7x7 / 14x14 outputs).
 *
 * NR stays 16 (one vector), so every packer and the Winograd B panels (16 columns) are shared with AVX2; MR = 16 suits
 * CNN channel counts (multiples of 8 or 16); a last row panel of <= 8 or <= 4 rows computes only those rows.
 * Tiles of <= 8 columns (the last panel of a 7x7 or 14x14 output: 49 = 3*16 + 1, 196 = 12*16 + 4) turn the roles
 * around: the panel's 16 A values of one k are one vector (rows in lanes) and each column's B value is broadcast, so
 * a k costs n FMAs instead of 16. Partial columns use mask registers (no read or write past column n).
 * The k loop prefetches the A panel 16 steps ahead into L1 (weights come from L2 / L3, and the hardware prefetcher
 * alone left the 7x7 / 14x14 1x1 layers, whose A panels serve only 4 / 13 B panels, 4-8% slower: MobileNetV2 per
 * node, one process, with and without alternating).
 * Contract: see cnn_gemm_ukernel_fn / cnn_gemm_ukernel_ldb_fn in include/cnnrt/gemm.h. */
#include <immintrin.h>
#include <math.h>

#include "cnnrt/gemm.h"
#include "tile-store.h"

#define MR 16

/* rows-in-lanes tile, n <= 8 columns of a packed (16-wide) or unpacked (row stride ldb) B */
static void narrow_tile(size_t m, size_t n, size_t kc, const float* a, const float* b, size_t ldb, float* c,
                        size_t ldc, int accumulate, const cnn_gemm_epilogue* epi) {
  __m512 r[8];
  for (int j = 0; j < 8; j++) r[j] = _mm512_setzero_ps();
  size_t k = 0;
#define NA(kk) _mm512_loadu_ps(a + (kk) * MR)
#define NB(kk, j) _mm512_set1_ps(b[(kk) * ldb + (j)])
  if (n == 1) {
    __m512 s0 = _mm512_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    for (; k + 4 <= kc; k += 4) {
      s0 = _mm512_fmadd_ps(NA(k + 0), NB(k + 0, 0), s0);
      s1 = _mm512_fmadd_ps(NA(k + 1), NB(k + 1, 0), s1);
      s2 = _mm512_fmadd_ps(NA(k + 2), NB(k + 2, 0), s2);
      s3 = _mm512_fmadd_ps(NA(k + 3), NB(k + 3, 0), s3);
    }
    for (; k < kc; k++) s0 = _mm512_fmadd_ps(NA(k), NB(k, 0), s0);
    r[0] = _mm512_add_ps(_mm512_add_ps(s0, s1), _mm512_add_ps(s2, s3));
  } else if (n == 2) {
    __m512 s0 = _mm512_setzero_ps(), s1 = s0, t0 = s0, t1 = s0;
    for (; k + 2 <= kc; k += 2) {
      const __m512 a0 = NA(k), a1 = NA(k + 1);
      s0 = _mm512_fmadd_ps(a0, NB(k, 0), s0);
      t0 = _mm512_fmadd_ps(a0, NB(k, 1), t0);
      s1 = _mm512_fmadd_ps(a1, NB(k + 1, 0), s1);
      t1 = _mm512_fmadd_ps(a1, NB(k + 1, 1), t1);
    }
    for (; k < kc; k++) {
      const __m512 a0 = NA(k);
      s0 = _mm512_fmadd_ps(a0, NB(k, 0), s0);
      t0 = _mm512_fmadd_ps(a0, NB(k, 1), t0);
    }
    r[0] = _mm512_add_ps(s0, s1);
    r[1] = _mm512_add_ps(t0, t1);
  } else if (n <= 4) {
    /* 3 or 4 columns: 4 computed (a packed panel's columns past n are zero; an unpacked B has >= 16 readable) */
    for (; k < kc; k++) {
      const __m512 a0 = NA(k);
      r[0] = _mm512_fmadd_ps(a0, NB(k, 0), r[0]);
      r[1] = _mm512_fmadd_ps(a0, NB(k, 1), r[1]);
      r[2] = _mm512_fmadd_ps(a0, NB(k, 2), r[2]);
      r[3] = _mm512_fmadd_ps(a0, NB(k, 3), r[3]);
    }
  } else {
    for (; k < kc; k++) {
      const __m512 a0 = NA(k);
#pragma GCC unroll 8
      for (int j = 0; j < 8; j++) r[j] = _mm512_fmadd_ps(a0, NB(k, j), r[j]);
    }
  }
#undef NA
#undef NB
  float t[8][MR];
  for (int j = 0; j < 8; j++) _mm512_storeu_ps(t[j], r[j]);
  cnn_gemm_store_lanes(&t[0][0], MR, m, 0, n, c, ldc, accumulate, epi);
}

/* NAME: ROWS rows (4, 8 or 16) of a 9..16-column tile, and with TX > 0 (16 rows, packed B only) a wide tile: the
 * first TX columns of the next packed panel too (b + 16*kc, the last panel of the block, holding n - 16 <= TX columns,
 * zero past them), computed rows-in-lanes in the same k loop on the A vector it loads once: a k costs 16 + TX FMAs,
 * and the A panel is read once for both (as a separate narrow tile it was streamed from L2 a second time: 4-6% of a
 * 7x7 layer's samples). pf / pfl: the caller's prefetch range, one line per k (pfl <= kc). */
#define DEFINE_TILE(NAME, ROWS, TX)                                                                                \
  static inline __attribute__((always_inline)) void NAME(size_t m, size_t n, size_t kc, const float* a,            \
                                                         const float* b, size_t ldb, float* c, size_t ldc,          \
                                                         int accumulate, const cnn_gemm_epilogue* epi,              \
                                                         const char* pf, size_t pfl) {                              \
    const float* bt = b + 16 * kc;                                                                                 \
    __m512 acc[ROWS], r[TX > 0 ? TX : 1];                                                                          \
    _Pragma("GCC unroll 16") for (int i = 0; i < ROWS; i++) acc[i] = _mm512_setzero_ps();                         \
    _Pragma("GCC unroll 8") for (int j = 0; j < TX; j++) r[j] = _mm512_setzero_ps();                              \
    _Pragma("GCC unroll 2") for (size_t k = kc; k != 0; k--) {                                                     \
      if (pfl) { /* one line of the caller's prefetch range per k (see cnn_gemm_ukernel_pf_fn) */                   \
        _mm_prefetch(pf, _MM_HINT_T1);                                                                             \
        pf += 64;                                                                                                  \
        pfl--;                                                                                                     \
      }                                                                                                            \
      /* the A panel 16 k steps (1 KiB) ahead: one line per k; the panels are contiguous, so past the end of this     \
       * panel it is the next tile's */                                                                            \
      _mm_prefetch((const char*)(a + 16 * MR), _MM_HINT_T0);                                                       \
      const __m512 bv = _mm512_loadu_ps(b);                                                                        \
      _Pragma("GCC unroll 16") for (int i = 0; i < ROWS; i++) acc[i] =                                             \
          _mm512_fmadd_ps(_mm512_set1_ps(a[i]), bv, acc[i]);                                                       \
      if (TX > 0) {                                                                                                \
        const __m512 av = _mm512_loadu_ps(a);                                                                      \
        _Pragma("GCC unroll 8") for (int j = 0; j < TX; j++) r[j] =                                                \
            _mm512_fmadd_ps(av, _mm512_set1_ps(bt[j]), r[j]);                                                      \
        bt += 16;                                                                                                  \
      }                                                                                                            \
      a += MR;                                                                                                     \
      b += ldb;                                                                                                    \
    }                                                                                                              \
    const __mmask16 mk = (__mmask16)(n >= 16 ? 0xFFFFu : ((1u << n) - 1u));                                        \
    __m512 bc = _mm512_setzero_ps(), lo = _mm512_set1_ps(-INFINITY), hi = _mm512_set1_ps(INFINITY);                \
    if (epi) {                                                                                                     \
      if (epi->bias_col) bc = _mm512_maskz_loadu_ps(mk, epi->bias_col);                                            \
      lo = _mm512_set1_ps(epi->min);                                                                               \
      hi = _mm512_set1_ps(epi->max);                                                                               \
    }                                                                                                              \
    _Pragma("GCC unroll 16") for (int i = 0; i < ROWS; i++) {                                                      \
      if ((size_t)i < m) {                                                                                         \
        float* cp = c + (size_t)i * ldc;                                                                           \
        __m512 v = acc[i];                                                                                         \
        if (accumulate) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(mk, cp));                                       \
        if (epi) {                                                                                                 \
          if (epi->bias_row) v = _mm512_add_ps(v, _mm512_set1_ps(epi->bias_row[i]));                               \
          v = _mm512_add_ps(v, bc);                                                                                \
          if (epi->residual) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(mk, epi->residual + (size_t)i * epi->res_ld)); \
          v = _mm512_min_ps(hi, _mm512_max_ps(lo, v));                                                             \
        }                                                                                                          \
        _mm512_mask_storeu_ps(cp, mk, v);                                                                          \
      }                                                                                                            \
    }                                                                                                              \
    if (TX > 0) {                                                                                                  \
      float t[TX > 0 ? TX : 1][MR];                                                                                \
      _Pragma("GCC unroll 8") for (int j = 0; j < TX; j++) _mm512_storeu_ps(t[j], r[j]);                           \
      cnn_gemm_store_lanes(&t[0][0], MR, m, 16, n, c, ldc, accumulate, epi);                                       \
    }                                                                                                              \
  }

DEFINE_TILE(tile_4, 4, 0)
DEFINE_TILE(tile_8, 8, 0)
DEFINE_TILE(tile_16, 16, 0)
DEFINE_TILE(wide_1, 16, 1)
DEFINE_TILE(wide_4, 16, 4)
DEFINE_TILE(wide_8, 16, 8)

/* the prefetch lines past the first `steps` (the k loop's one per k): issued up front; returns the lines left */
static inline size_t pf_up_front(const char* pf, size_t pfl, size_t steps) {
  for (size_t l = steps; l < pfl; l++) _mm_prefetch(pf + 64 * l, _MM_HINT_T1);
  return pfl < steps ? pfl : steps;
}

static inline __attribute__((always_inline)) void tile(size_t m, size_t n, size_t kc, const float* a, const float* b,
                                                       size_t ldb, float* c, size_t ldc, int accumulate,
                                                       const cnn_gemm_epilogue* epi, const char* pf, size_t pfl) {
  if (n <= 8) { /* the narrow tile has no per-k prefetch */
    pf_up_front(pf, pfl, 0);
    narrow_tile(m, n, kc, a, b, ldb, c, ldc, accumulate, epi);
    return;
  }
  pfl = pf_up_front(pf, pfl, kc);
  if (m <= 4)
    tile_4(m, n, kc, a, b, ldb, c, ldc, accumulate, epi, pf, pfl);
  else if (m <= 8)
    tile_8(m, n, kc, a, b, ldb, c, ldc, accumulate, epi, pf, pfl);
  else
    tile_16(m, n, kc, a, b, ldb, c, ldc, accumulate, epi, pf, pfl);
}

void cnn_f32_gemm_ukernel_16x16__avx512(size_t m, size_t n, size_t kc, const float* a, const float* b, float* c,
                                        size_t ldc, int accumulate, const cnn_gemm_epilogue* epi) {
  tile(m, n, kc, a, b, 16, c, ldc, accumulate, epi, NULL, 0);
}

void cnn_f32_gemm_ukernel_16x16_ldb__avx512(size_t m, size_t n, size_t kc, const float* a, const float* b,
                                            size_t ldb, float* c, size_t ldc, int accumulate,
                                            const cnn_gemm_epilogue* epi) {
  tile(m, n, kc, a, b, ldb, c, ldc, accumulate, epi, NULL, 0);
}

void cnn_f32_gemm_ukernel_16x16_pf__avx512(size_t m, size_t n, size_t kc, const float* a, const float* b,
                                           size_t ldb, float* c, size_t ldc, int accumulate,
                                           const cnn_gemm_epilogue* epi, const void* pf, size_t pf_lines) {
  tile(m, n, kc, a, b, ldb ? ldb : 16, c, ldc, accumulate, epi, (const char*)pf, pf_lines);
}

void cnn_f32_gemm_ukernel_16x16_wide__avx512(size_t m, size_t n, size_t kc, const float* a, const float* b, float* c,
                                             size_t ldc, int accumulate, const cnn_gemm_epilogue* epi, const void* pf,
                                             size_t pf_lines) {
  const char* q = (const char*)pf;
  if (n <= 16) {
    tile(m, n, kc, a, b, 16, c, ldc, accumulate, epi, q, pf_lines);
    return;
  }
  pf_lines = pf_up_front(q, pf_lines, kc);
  if (n == 17)
    wide_1(m, n, kc, a, b, 16, c, ldc, accumulate, epi, q, pf_lines);
  else if (n <= 20)
    wide_4(m, n, kc, a, b, 16, c, ldc, accumulate, epi, q, pf_lines);
  else
    wide_8(m, n, kc, a, b, 16, c, ldc, accumulate, epi, q, pf_lines);
}
