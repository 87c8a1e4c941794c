/* SiLU of 8 lanes for the AVX2 depthwise kernels, applied while the outputs are in registers. Bit-identical to
 * cnn_f32_act__avx2 with CNN_ACT_SILU (the same steps as sig8(1, v) in src/f32-eltwise/act__avx2.c: the fast
 * sigmoid of avx2-math.h, the rare lanes with |x| > 87 or NaN recomputed with the general sigmoid), so a kernel may
 * use it in place of the act_fn pass over a finished row whenever that act_fn is cnn_f32_act__avx2 (the C tests check
 * the two bit for bit). Each lane depends on its own input only. Include only from files built with -mavx2 -mfma. */
#ifndef CNNRT_F32_DWCONV_SILU_AVX2_H
#define CNNRT_F32_DWCONV_SILU_AVX2_H

#include <immintrin.h>

#include "cnnrt/eltwise.h"

#include "../f32-eltwise/avx2-math.h"

static __attribute__((noinline)) __m256 cnn_dw_silu8_patch(__m256 v, __m256 f) {
  const __m256 s = cnn_avx2_sigmoid(v);
  const __m256 g = _mm256_and_ps(_mm256_mul_ps(v, s), _mm256_cmp_ps(s, _mm256_setzero_ps(), _CMP_NEQ_UQ));
  return _mm256_blendv_ps(f, g, cnn_avx2_sigmoid_slow_lanes(v));
}

static inline __attribute__((always_inline)) __m256 cnn_dw_silu8(__m256 v) {
  const __m256 f = _mm256_mul_ps(v, cnn_avx2_sigmoid_fast(v)); /* |v| <= 87: sigmoid > 0, no -inf * 0 */
  return _mm256_movemask_ps(cnn_avx2_sigmoid_slow_lanes(v)) ? cnn_dw_silu8_patch(v, f) : f;
}

/* 1 when the activation pass act_fn(act, ...) may be replaced by cnn_dw_silu8 on the clamped outputs */
static inline int cnn_dw_fuse_silu(void (*act_fn)(const cnn_act*, const float*, float*, size_t), const cnn_act* act) {
  return act_fn == cnn_f32_act__avx2 && act && act->type == CNN_ACT_SILU;
}

#endif
