/* Private helpers of the AVX2 depthwise kernels. Include only from files built with -mavx2 -mfma.
 *  - cnn_dw_finish8: residual, clamp (NaN-propagating operand order), store of one output vector (lanes under m
 *    when not full); every depthwise kernel ends an output vector this way.
 *  - cnn_dw_silu8 / cnn_dw_fuse_silu: SiLU of 8 lanes while the outputs are in registers, bit-identical to the
 *    cnn_f32_act__avx2 pass (it is the same cnn_avx2_sig8 of avx2-math.h; the C tests check the two bit for bit), so
 *    a kernel may use it in place of the act_fn pass over a finished row whenever that act_fn is
 *    cnn_f32_act__avx2. */
#ifndef CNNRT_F32_DWCONV_COMMON_AVX2_H
#define CNNRT_F32_DWCONV_COMMON_AVX2_H

#include <immintrin.h>

#include "cnnrt/eltwise.h"

#include "../f32-eltwise/avx2-math.h"

static inline void cnn_dw_finish8(__m256 acc, const float* rrow, float* orow, __m256 lo, __m256 hi, __m256i m,
                                  int full) {
  if (rrow) acc = _mm256_add_ps(acc, full ? _mm256_loadu_ps(rrow) : _mm256_maskload_ps(rrow, m));
  acc = _mm256_min_ps(hi, _mm256_max_ps(lo, acc));
  if (full)
    _mm256_storeu_ps(orow, acc);
  else
    _mm256_maskstore_ps(orow, m, acc);
}

static inline __attribute__((always_inline)) __m256 cnn_dw_silu8(__m256 v) { return cnn_avx2_sig8(1, v); }

/* 1 when the activation pass act_fn(act, ...) may be replaced by cnn_dw_silu8 on the clamped outputs */
static inline int cnn_dw_fuse_silu(void (*act_fn)(const cnn_act*, const float*, float*, size_t), const cnn_act* act) {
  return act_fn == cnn_f32_act__avx2 && act && act->type == CNN_ACT_SILU;
}

#endif
