/* NEON (aarch64) 6x16 SGEMM micro-kernel: 24 accumulators (6 rows x 4 vectors of 4 columns), per k one 4-float and
 * one 2-float load of A, four loads of B and 24 FMAs by lane (vfmaq_laneq_f32 / vfmaq_lane_f32): 30 of the 32 vector
 * registers. The 6x16 tile is the AVX2 one, so the packed layouts (and every 16-column fast path of the packers and
 * the Winograd transforms) are shared. Full tiles (m == 6, n == 16) apply the epilogue (bias per row / column,
 * residual, clamp) in registers; partial tiles go through a stack tile and a scalar epilogue that touches only
 * rows < m and columns < n. Contract: see cnn_gemm_ukernel_fn in include/cnnrt/gemm.h. */
#include <arm_neon.h>

#include "cnnrt/gemm.h"

#define MR 6
#define NR 16

#define ROW_FMA_Q(i, lane)                                          \
  c##i##0 = vfmaq_laneq_f32(c##i##0, b0, a0, lane);                 \
  c##i##1 = vfmaq_laneq_f32(c##i##1, b1, a0, lane);                 \
  c##i##2 = vfmaq_laneq_f32(c##i##2, b2, a0, lane);                 \
  c##i##3 = vfmaq_laneq_f32(c##i##3, b3, a0, lane)
#define ROW_FMA_D(i, lane)                                          \
  c##i##0 = vfmaq_lane_f32(c##i##0, b0, a1, lane);                  \
  c##i##1 = vfmaq_lane_f32(c##i##1, b1, a1, lane);                  \
  c##i##2 = vfmaq_lane_f32(c##i##2, b2, a1, lane);                  \
  c##i##3 = vfmaq_lane_f32(c##i##3, b3, a1, lane)

#define FOR_ROWS(OP) OP(0); OP(1); OP(2); OP(3); OP(4); OP(5)

void cnn_f32_gemm_ukernel_6x16__neon(size_t m, size_t n, size_t kc, const float* a, const float* b, float* c,
                                     size_t ldc, int accumulate, const cnn_gemm_epilogue* epi) {
  const float32x4_t z = vdupq_n_f32(0.0f);
  float32x4_t c00 = z, c01 = z, c02 = z, c03 = z, c10 = z, c11 = z, c12 = z, c13 = z, c20 = z, c21 = z, c22 = z,
              c23 = z, c30 = z, c31 = z, c32 = z, c33 = z, c40 = z, c41 = z, c42 = z, c43 = z, c50 = z, c51 = z,
              c52 = z, c53 = z;
#pragma GCC unroll 2
  for (size_t k = 0; k < kc; k++) {
    const float32x4_t a0 = vld1q_f32(a);
    const float32x2_t a1 = vld1_f32(a + 4);
    const float32x4_t b0 = vld1q_f32(b), b1 = vld1q_f32(b + 4), b2 = vld1q_f32(b + 8), b3 = vld1q_f32(b + 12);
    ROW_FMA_Q(0, 0);
    ROW_FMA_Q(1, 1);
    ROW_FMA_Q(2, 2);
    ROW_FMA_Q(3, 3);
    ROW_FMA_D(4, 0);
    ROW_FMA_D(5, 1);
    a += MR;
    b += NR;
  }

  if (m >= MR && n >= NR) {
    if (accumulate) {
#define ACC(i)                                                   \
  c##i##0 = vaddq_f32(c##i##0, vld1q_f32(c + (i) * ldc));        \
  c##i##1 = vaddq_f32(c##i##1, vld1q_f32(c + (i) * ldc + 4));    \
  c##i##2 = vaddq_f32(c##i##2, vld1q_f32(c + (i) * ldc + 8));    \
  c##i##3 = vaddq_f32(c##i##3, vld1q_f32(c + (i) * ldc + 12))
      FOR_ROWS(ACC);
#undef ACC
    }
    if (epi) {
      if (epi->bias_row) {
        const float* br = epi->bias_row;
#define BROW(i)                                                  \
  do {                                                           \
    const float32x4_t bv = vdupq_n_f32(br[i]);                   \
    c##i##0 = vaddq_f32(c##i##0, bv);                            \
    c##i##1 = vaddq_f32(c##i##1, bv);                            \
    c##i##2 = vaddq_f32(c##i##2, bv);                            \
    c##i##3 = vaddq_f32(c##i##3, bv);                            \
  } while (0)
        FOR_ROWS(BROW);
#undef BROW
      }
      if (epi->bias_col) {
        const float* bc = epi->bias_col;
        const float32x4_t q0 = vld1q_f32(bc), q1 = vld1q_f32(bc + 4), q2 = vld1q_f32(bc + 8), q3 = vld1q_f32(bc + 12);
#define BCOL(i)                                                  \
  c##i##0 = vaddq_f32(c##i##0, q0);                              \
  c##i##1 = vaddq_f32(c##i##1, q1);                              \
  c##i##2 = vaddq_f32(c##i##2, q2);                              \
  c##i##3 = vaddq_f32(c##i##3, q3)
        FOR_ROWS(BCOL);
#undef BCOL
      }
      if (epi->residual) {
        const float* r = epi->residual;
        const size_t rl = epi->res_ld;
#define RES(i)                                                   \
  c##i##0 = vaddq_f32(c##i##0, vld1q_f32(r + (i) * rl));         \
  c##i##1 = vaddq_f32(c##i##1, vld1q_f32(r + (i) * rl + 4));     \
  c##i##2 = vaddq_f32(c##i##2, vld1q_f32(r + (i) * rl + 8));     \
  c##i##3 = vaddq_f32(c##i##3, vld1q_f32(r + (i) * rl + 12))
        FOR_ROWS(RES);
#undef RES
      }
      /* FMAX / FMIN return NaN when either operand is NaN: NaN propagates as in the scalar kernel */
      const float32x4_t lo = vdupq_n_f32(epi->min), hi = vdupq_n_f32(epi->max);
#define CLAMP(i)                                                 \
  c##i##0 = vminq_f32(hi, vmaxq_f32(lo, c##i##0));               \
  c##i##1 = vminq_f32(hi, vmaxq_f32(lo, c##i##1));               \
  c##i##2 = vminq_f32(hi, vmaxq_f32(lo, c##i##2));               \
  c##i##3 = vminq_f32(hi, vmaxq_f32(lo, c##i##3))
      FOR_ROWS(CLAMP);
#undef CLAMP
    }
#define STORE(i)                                                 \
  vst1q_f32(c + (i) * ldc, c##i##0);                             \
  vst1q_f32(c + (i) * ldc + 4, c##i##1);                         \
  vst1q_f32(c + (i) * ldc + 8, c##i##2);                         \
  vst1q_f32(c + (i) * ldc + 12, c##i##3)
    FOR_ROWS(STORE);
#undef STORE
    return;
  }

  /* partial tile */
  float t[MR * NR];
#define SPILL(i)                                                 \
  vst1q_f32(t + (i) * NR, c##i##0);                              \
  vst1q_f32(t + (i) * NR + 4, c##i##1);                          \
  vst1q_f32(t + (i) * NR + 8, c##i##2);                          \
  vst1q_f32(t + (i) * NR + 12, c##i##3)
  FOR_ROWS(SPILL);
#undef SPILL
  if (m > MR) m = MR;
  if (n > NR) n = NR;
  for (size_t i = 0; i < m; i++) {
    float* ci = c + i * ldc;
    for (size_t j = 0; j < n; j++) {
      float v = t[i * NR + j];
      if (accumulate) v += ci[j];
      if (epi) {
        if (epi->bias_row) v += epi->bias_row[i];
        if (epi->bias_col) v += epi->bias_col[j];
        if (epi->residual) v += epi->residual[i * epi->res_ld + j];
        v = v < epi->min ? epi->min : v;
        v = v > epi->max ? epi->max : v;
      }
      ci[j] = v;
    }
  }
}
