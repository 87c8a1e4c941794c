/* Per-channel affine (stand-alone BatchNormalization) + activation, AVX2. The affine part gives the scalar
 * kernel's bits (multiply then add, no FMA); the activation is cnn_f32_act__avx2 on L1-resident blocks. */
#include <immintrin.h>

#include "avx2-math.h"
#include "cnnrt/eltwise.h"

#define AFFINE_BLOCK 512

void cnn_f32_channel_affine__avx2(size_t n, size_t c, size_t hw, const float* scale, const float* shift,
                                  const cnn_act* act, const float* x, float* y) {
  const int has_act = act && act->type != CNN_ACT_NONE;
  for (size_t p = 0; p < n * c; p++) {
    const __m256 s = _mm256_set1_ps(scale[p % c]), t = _mm256_set1_ps(shift[p % c]);
    const float* xp = x + p * hw;
    float* yp = y + p * hw;
    for (size_t i0 = 0; i0 < hw; i0 += AFFINE_BLOCK) {
      const size_t end = i0 + cnn_min_sz(AFFINE_BLOCK, hw - i0);
      size_t i = i0;
      for (; i + 16 <= end; i += 16) {
        const __m256 v0 = _mm256_add_ps(_mm256_mul_ps(_mm256_loadu_ps(xp + i), s), t);
        const __m256 v1 = _mm256_add_ps(_mm256_mul_ps(_mm256_loadu_ps(xp + i + 8), s), t);
        _mm256_storeu_ps(yp + i, v0);
        _mm256_storeu_ps(yp + i + 8, v1);
      }
      for (; i + 8 <= end; i += 8)
        _mm256_storeu_ps(yp + i, _mm256_add_ps(_mm256_mul_ps(_mm256_loadu_ps(xp + i), s), t));
      if (i < end) {
        const __m256i m = cnn_avx2_tail_mask(end - i);
        _mm256_maskstore_ps(yp + i, m, _mm256_add_ps(_mm256_mul_ps(_mm256_maskload_ps(xp + i, m), s), t));
      }
      if (has_act) cnn_f32_act__avx2(act, yp + i0, yp + i0, end - i0);
    }
  }
}
