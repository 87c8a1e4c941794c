/* Direct convolution for few input channels, NEON (aarch64) (see cnn_directconv_params in include/cnnrt/conv.h;
 * same structure as directconv__avx2.c). Register tile: the 4 output channels of a block x V vectors of 4 output
 * columns (V = 4: 16 accumulators); the 4 weights of a tap are one vector load, applied by lane (FMLA by element).
 * Fused 2x2 max-pool (p->pool): the same tile over two output rows, one after the other; row 0's clamped outputs
 * become column-pair maxima (UZP1/UZP2 de-interleave even and odd columns) that row 1's pairs then join. */
#include <arm_neon.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "cnnrt/conv.h"

enum { CB = CNN_DIRECT_CB, MAXT = CNN_DIRECT_MAX_CIN * 64 };

/* acc[c][v] = bias + sum over the taps of w * in, for the CB channels and V vectors at x */
static inline __attribute__((always_inline)) void accumulate(float32x4_t acc[CB][4], const float* x,
                                                             const ptrdiff_t* toff, size_t nt, const float* w,
                                                             float32x4_t vb, const size_t V) {
#pragma GCC unroll 4
  for (size_t v = 0; v < V; v++) {
    acc[0][v] = vdupq_laneq_f32(vb, 0);
    acc[1][v] = vdupq_laneq_f32(vb, 1);
    acc[2][v] = vdupq_laneq_f32(vb, 2);
    acc[3][v] = vdupq_laneq_f32(vb, 3);
  }
  for (size_t t = 0; t < nt; t++) {
    const float* s = x + toff[t];
    const float32x4_t wv = vld1q_f32(w + t * CB);
#pragma GCC unroll 4
    for (size_t v = 0; v < V; v++) {
      const float32x4_t in = vld1q_f32(s + 4 * v);
      acc[0][v] = vfmaq_laneq_f32(acc[0][v], in, wv, 0);
      acc[1][v] = vfmaq_laneq_f32(acc[1][v], in, wv, 1);
      acc[2][v] = vfmaq_laneq_f32(acc[2][v], in, wv, 2);
      acc[3][v] = vfmaq_laneq_f32(acc[3][v], in, wv, 3);
    }
  }
}

static inline __attribute__((always_inline)) void tile(const float* base, const ptrdiff_t* toff, size_t nt,
                                                       const float* w, float32x4_t vb, size_t nc, size_t ox,
                                                       size_t ow, const float* const* rrow, float* const* orow,
                                                       float32x4_t lo, float32x4_t hi, const size_t V) {
  float32x4_t acc[CB][4];
  accumulate(acc, base + ox, toff, nt, w, vb, V);
#pragma GCC unroll 4
  for (size_t c = 0; c < CB; c++) {
    if (c >= nc) break;
#pragma GCC unroll 4
    for (size_t v = 0; v < V; v++) {
      const size_t col = ox + 4 * v;
      if (col >= ow) break;
      float32x4_t a = acc[c][v];
      if (col + 4 <= ow) {
        if (rrow[c]) a = vaddq_f32(a, vld1q_f32(rrow[c] + col));
        vst1q_f32(orow[c] + col, vminq_f32(hi, vmaxq_f32(lo, a)));
      } else {
        const size_t r = ow - col;
        float tmp[4] = {0, 0, 0, 0};
        if (rrow[c]) {
          memcpy(tmp, rrow[c] + col, r * sizeof(float));
          a = vaddq_f32(a, vld1q_f32(tmp));
        }
        vst1q_f32(tmp, vminq_f32(hi, vmaxq_f32(lo, a)));
        memcpy(orow[c] + col, tmp, r * sizeof(float));
      }
    }
  }
}

/* the pooling kernels' max: v > m ? v : m (a NaN v is skipped) */
static inline float32x4_t pmax(float32x4_t v, float32x4_t m) { return vbslq_f32(vcgtq_f32(v, m), v, m); }

/* pooled columns [ox/2, ox/2 + 2V) (those < pw) of the pooled row whose output rows start at padded rows base and
 * base + rstep, for the CB channels of one block; V = 4 (16 output columns) or 1 (4). Row 0's clamped outputs are
 * reduced to their column-pair maxima while row 1 is accumulated. */
static inline __attribute__((always_inline)) void tile_pool(const float* base, size_t rstep, const ptrdiff_t* toff,
                                                            size_t nt, const float* w, float32x4_t vb, size_t nc,
                                                            size_t ox, size_t pw, float* const* orow, float32x4_t lo,
                                                            float32x4_t hi, const size_t V) {
  const float32x4_t ninf = vdupq_n_f32(-INFINITY);
  float32x4_t m[CB][2];
  float32x4_t acc[CB][4];
  accumulate(acc, base + ox, toff, nt, w, vb, V);
#pragma GCC unroll 4
  for (size_t c = 0; c < CB; c++)
#pragma GCC unroll 2
    for (size_t h = 0; h < (V + 1) / 2; h++) { /* even columns, then odd ones */
      const float32x4_t a = vminq_f32(hi, vmaxq_f32(lo, acc[c][2 * h]));
      const float32x4_t b = V == 4 ? vminq_f32(hi, vmaxq_f32(lo, acc[c][2 * h + 1])) : a;
      m[c][h] = pmax(vuzp1q_f32(a, b), ninf);
      m[c][h] = pmax(vuzp2q_f32(a, b), m[c][h]);
    }
  accumulate(acc, base + rstep + ox, toff, nt, w, vb, V);
  const size_t q = ox / 2, n = cnn_min_sz(2 * V, pw - q);
#pragma GCC unroll 4
  for (size_t c = 0; c < CB; c++) {
    if (c >= nc) break;
    float32x4_t r[2];
#pragma GCC unroll 2
    for (size_t h = 0; h < (V + 1) / 2; h++) {
      const float32x4_t a = vminq_f32(hi, vmaxq_f32(lo, acc[c][2 * h]));
      const float32x4_t b = V == 4 ? vminq_f32(hi, vmaxq_f32(lo, acc[c][2 * h + 1])) : a;
      r[h] = pmax(vuzp1q_f32(a, b), m[c][h]);
      r[h] = pmax(vuzp2q_f32(a, b), r[h]);
    }
    if (n == 8) {
      vst1q_f32(orow[c] + q, r[0]);
      vst1q_f32(orow[c] + q + 4, r[1]);
    } else {
      float tmp[8];
      vst1q_f32(tmp, r[0]);
      if (V == 4) vst1q_f32(tmp + 4, r[1]);
      memcpy(orow[c] + q, tmp, n * sizeof(float));
    }
  }
}

void cnn_f32_directconv__neon(const cnn_directconv_params* p, const float* pad, const float* wpk, const float* bias,
                              const float* residual, float* out) {
  const size_t kh = p->kh, kw = p->kw, pw = p->pw, ow = p->ow, cout = p->cout;
  const size_t nt = p->cin * kh * kw, owv = cnn_round_up(ow, 8);
  ptrdiff_t toff[MAXT];
  for (size_t ci = 0, t = 0; ci < p->cin; ci++)
    for (size_t ky = 0; ky < kh; ky++)
      for (size_t kx = 0; kx < kw; kx++, t++)
        toff[t] = (ptrdiff_t)(ci * p->cstride + ky * pw) +
                  (p->sw == 1 ? (ptrdiff_t)kx : (ptrdiff_t)((kx & 1) * p->plane + (kx >> 1)));
  const float32x4_t lo = vdupq_n_f32(p->min), hi = vdupq_n_f32(p->max);
  for (size_t c0 = 0; c0 < cout; c0 += CB) {
    if (p->pool) {
      const size_t nc = cnn_min_sz(CB, cout - c0);
      const float* w = wpk + c0 * nt;
      float b[CB];
      for (size_t c = 0; c < CB; c++) b[c] = bias && c < nc ? bias[c0 + c] : 0.0f;
      const float32x4_t vb = vld1q_f32(b);
      const size_t ppw = ow / 2, owp = cnn_round_up(2 * ppw, 4); /* owp <= owv: columns read stay in bounds */
      for (size_t i = 0; i < p->oh / 2; i++) {
        const float* base = pad + 2 * i * p->sh * pw;
        float* orow[CB];
        for (size_t c = 0; c < CB; c++) orow[c] = out + (c0 + (c < nc ? c : 0)) * p->ostride + i * ppw;
        size_t ox = 0;
        for (; ox + 16 <= owp; ox += 16) tile_pool(base, p->sh * pw, toff, nt, w, vb, nc, ox, ppw, orow, lo, hi, 4);
        for (; ox < owp; ox += 4) tile_pool(base, p->sh * pw, toff, nt, w, vb, nc, ox, ppw, orow, lo, hi, 1);
      }
      continue;
    }
    for (size_t oy = 0; oy < p->oh; oy++) {
      const float* base = pad + oy * p->sh * pw;
      const size_t nc = cnn_min_sz(CB, cout - c0);
      const float* w = wpk + c0 * nt;
      float b[CB];
      const float* rrow[CB];
      float* orow[CB];
      for (size_t c = 0; c < CB; c++) {
        b[c] = bias && c < nc ? bias[c0 + c] : 0.0f;
        const size_t o = (c0 + (c < nc ? c : 0)) * p->ostride + oy * ow;
        rrow[c] = residual ? residual + o : NULL;
        orow[c] = out + o;
      }
      const float32x4_t vb = vld1q_f32(b);
      size_t ox = 0;
      for (; ox + 16 <= owv; ox += 16) tile(base, toff, nt, w, vb, nc, ox, ow, rrow, orow, lo, hi, 4);
      for (; ox < owv; ox += 4) tile(base, toff, nt, w, vb, nc, ox, ow, rrow, orow, lo, hi, 1);
    }
  }
  /* a non-clamp activation on each channel's rows at once, not per row (see cnn_dwconv_params) */
  if (p->act_fn)
    for (size_t co = 0; co < p->cout; co++) {
      float* o = out + co * p->ostride;
      p->act_fn(p->act, o, o, p->oh * p->ow);
    }
}
