/* Per-channel affine (stand-alone BatchNormalization) + activation, portable reference. */
#include "cnnrt/eltwise.h"

#define AFFINE_BLOCK 512 /* the activation runs on each block while it is in L1 */

/* y = x*scale[c] + shift[c] (a multiply then an add, no FMA, as every variant does), then act. x == y allowed. */
void cnn_f32_channel_affine__scalar(size_t n, size_t c, size_t hw, const float* scale, const float* shift,
                                    const cnn_act* act, const float* x, float* y) {
  const int has_act = act && act->type != CNN_ACT_NONE;
  for (size_t p = 0; p < n * c; p++) {
    const float s = scale[p % c], t = shift[p % c];
    const float* xp = x + p * hw;
    float* yp = y + p * hw;
    for (size_t i0 = 0; i0 < hw; i0 += AFFINE_BLOCK) {
      const size_t len = cnn_min_sz(AFFINE_BLOCK, hw - i0);
      for (size_t i = i0; i < i0 + len; i++) {
        const float v = xp[i] * s;
        yp[i] = v + t;
      }
      if (has_act) cnn_f32_act__scalar(act, yp + i0, yp + i0, len);
    }
  }
}
