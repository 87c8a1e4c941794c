/* 2-D max / average pooling and global pooling, NCHW, portable reference. */
#include <math.h>

#include "cnnrt/eltwise.h"
#include "pool-common.h"

void cnn_f32_pool2d__scalar(const cnn_pool2d_desc* d, size_t nc, size_t h, size_t w, size_t oh, size_t ow,
                            const float* x, float* y) {
  for (size_t p = 0; p < nc; p++) {
    const float* xp = x + p * h * w;
    float* yp = y + p * oh * ow;
    for (size_t oy = 0; oy < oh; oy++) {
      size_t ky0, ky1, kyp;
      window_1d(oy, d->stride_h, d->pad_top, d->pad_bottom, d->dilation_h, d->kernel_h, h, &ky0, &ky1, &kyp);
      const ptrdiff_t iy0 = (ptrdiff_t)(oy * d->stride_h) - (ptrdiff_t)d->pad_top;
      for (size_t ox = 0; ox < ow; ox++) yp[oy * ow + ox] = pool_one(d, xp, w, iy0, ky0, ky1, kyp, ox);
    }
  }
}

/* Mean accumulates in double (then one rounding); max keeps m unless v > m (NaN skipped). hw == 0: 0 / -inf. */
void cnn_f32_global_pool__scalar(int type, size_t nc, size_t hw, const float* x, float* y) {
  for (size_t p = 0; p < nc; p++) {
    const float* xp = x + p * hw;
    if (type == 0) {
      float m = -INFINITY;
      for (size_t i = 0; i < hw; i++) m = xp[i] > m ? xp[i] : m;
      y[p] = m;
    } else {
      double s = 0.0;
      for (size_t i = 0; i < hw; i++) s += xp[i];
      y[p] = hw ? (float)(s / (double)hw) : 0.0f;
    }
  }
}
