/* Direct convolution for few input channels, portable C: the reference of the SIMD variants (same padded-copy
 * layout and packed weights, see cnn_directconv_params in include/cnnrt/conv.h). */
#include <math.h>

#include "cnnrt/conv.h"

/* output (co, oy, ox) after bias, residual and clamp */
static float out_at(const cnn_directconv_params* p, const float* pad, const float* wc, const float* bias,
                    const float* rrow, size_t co, size_t oy, size_t ox) {
  const size_t CB = CNN_DIRECT_CB;
  float acc = bias ? bias[co] : 0.0f;
  size_t t = 0;
  for (size_t ci = 0; ci < p->cin; ci++)
    for (size_t ky = 0; ky < p->kh; ky++) {
      const float* row = pad + ci * p->cstride + (oy * p->sh + ky) * p->pw + ox;
      for (size_t kx = 0; kx < p->kw; kx++, t++)
        acc += wc[t * CB] * (p->sw == 1 ? row[kx] : row[(kx & 1) * p->plane + (kx >> 1)]);
    }
  if (rrow) acc += rrow[ox];
  acc = acc < p->min ? p->min : acc;
  acc = acc > p->max ? p->max : acc;
  return acc;
}

void cnn_f32_directconv__scalar(const cnn_directconv_params* p, const float* pad, const float* wpk, const float* bias,
                                const float* residual, float* out) {
  const size_t CB = CNN_DIRECT_CB, K = p->cin * p->kh * p->kw;
  if (p->pool) { /* the pooling kernels' order and NaN rule: m = v > m ? v : m from -inf */
    const size_t pw = p->ow / 2;
    for (size_t i = 0; i < p->oh / 2; i++)
      for (size_t co = 0; co < p->cout; co++) {
        const float* wc = wpk + (co / CB) * K * CB + co % CB;
        float* orow = out + co * p->ostride + i * pw;
        for (size_t j = 0; j < pw; j++) {
          float m = -INFINITY;
          for (size_t dy = 0; dy < 2; dy++)
            for (size_t dx = 0; dx < 2; dx++) {
              const float v = out_at(p, pad, wc, bias, NULL, co, 2 * i + dy, 2 * j + dx);
              m = v > m ? v : m;
            }
          orow[j] = m;
        }
      }
    return;
  }
  for (size_t oy = 0; oy < p->oh; oy++)
    for (size_t co = 0; co < p->cout; co++) {
      const float* wc = wpk + (co / CB) * K * CB + co % CB;
      float* orow = out + co * p->ostride + oy * p->ow;
      const float* rrow = residual ? residual + co * p->ostride + oy * p->ow : NULL;
      for (size_t ox = 0; ox < p->ow; ox++) orow[ox] = out_at(p, pad, wc, bias, rrow, co, oy, ox);
    }
  /* a non-clamp activation on each channel's rows at once, not per row (see cnn_dwconv_params) */
  if (p->act_fn)
    for (size_t co = 0; co < p->cout; co++) {
      float* o = out + co * p->ostride;
      p->act_fn(p->act, o, o, p->oh * p->ow);
    }
}
