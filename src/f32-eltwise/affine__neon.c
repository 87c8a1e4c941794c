/* Per-channel affine (stand-alone BatchNormalization) + activation, NEON (aarch64). The affine part gives the scalar
 * kernel's bits (multiply then add, no FMA); the activation is cnn_f32_act__neon on L1-resident blocks. */
#include <arm_neon.h>

#include "cnnrt/eltwise.h"

#define AFFINE_BLOCK 512

void cnn_f32_channel_affine__neon(size_t n, size_t c, size_t hw, const float* scale, const float* shift,
                                  const cnn_act* act, const float* x, float* y) {
  const int has_act = act && act->type != CNN_ACT_NONE;
  for (size_t p = 0; p < n * c; p++) {
    const float sf = scale[p % c], tf = shift[p % c];
    const float32x4_t s = vdupq_n_f32(sf), t = vdupq_n_f32(tf);
    const float* xp = x + p * hw;
    float* yp = y + p * hw;
    for (size_t i0 = 0; i0 < hw; i0 += AFFINE_BLOCK) {
      const size_t end = i0 + cnn_min_sz(AFFINE_BLOCK, hw - i0);
      size_t i = i0;
      for (; i + 8 <= end; i += 8) {
        const float32x4_t v0 = vaddq_f32(vmulq_f32(vld1q_f32(xp + i), s), t);
        const float32x4_t v1 = vaddq_f32(vmulq_f32(vld1q_f32(xp + i + 4), s), t);
        vst1q_f32(yp + i, v0);
        vst1q_f32(yp + i + 4, v1);
      }
      for (; i + 4 <= end; i += 4) vst1q_f32(yp + i, vaddq_f32(vmulq_f32(vld1q_f32(xp + i), s), t));
      for (; i < end; i++) {
        const float v = xp[i] * sf;
        yp[i] = v + tf;
      }
      if (has_act) cnn_f32_act__neon(act, yp + i0, yp + i0, end - i0);
    }
  }
}
