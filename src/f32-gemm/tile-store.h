/* Private helper of the micro-kernels (include from src/f32-gemm only): the scalar store of a rows-in-lanes result.
 * t holds columns j0 .. j1-1 of a tile, column j's rows at t + (j - j0) * ldt (row i in lane i); rows [0, m) of
 * those columns are written to c (row stride ldc) with the micro-kernel epilogue: + C (accumulate), + bias_row[i],
 * + bias_col[j], + residual[i*res_ld + j], then the clamp in the SIMD kernels' operand order (NaN propagates).
 * The AVX2 narrow tile, the AVX-512 narrow tile and the AVX-512 wide tile's short panel share it. */
#ifndef CNNRT_F32_GEMM_TILE_STORE_H
#define CNNRT_F32_GEMM_TILE_STORE_H

#include "cnnrt/gemm.h"

static inline void cnn_gemm_store_lanes(const float* t, size_t ldt, size_t m, size_t j0, size_t j1, float* c,
                                        size_t ldc, int accumulate, const cnn_gemm_epilogue* epi) {
  for (size_t i = 0; i < m; i++)
    for (size_t j = j0; j < j1; j++) {
      float x = t[(j - j0) * ldt + i];
      if (accumulate) x += c[i * ldc + j];
      if (epi) {
        if (epi->bias_row) x += epi->bias_row[i];
        if (epi->bias_col) x += epi->bias_col[j];
        if (epi->residual) x += epi->residual[i * epi->res_ld + j];
        /* as max_ps(lo, x) then min_ps(hi, x): NaN propagates */
        x = epi->min > x ? epi->min : x;
        x = epi->max < x ? epi->max : x;
      }
      c[i * ldc + j] = x;
    }
}

#endif
