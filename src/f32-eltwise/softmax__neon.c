/* Softmax / log-softmax over the middle axis of [outer, axis, inner], NEON (aarch64). Same algorithm as the scalar
 * kernel (max, exp(x - m) summed in double, then scale or subtract log(sum)); the exp is the vector one of
 * neon-math.h. inner == 1: vectors along the axis; inner > 1: vectors across up to 64 inner positions. */
#include <arm_neon.h>
#include <math.h>

#include "cnnrt/eltwise.h"
#include "neon-math.h"

static inline float64x2_t sum_lo(float64x2_t acc, float32x4_t e) { return vaddq_f64(acc, vcvt_f64_f32(vget_low_f32(e))); }
static inline float64x2_t sum_hi(float64x2_t acc, float32x4_t e) { return vaddq_f64(acc, vcvt_high_f64_f32(e)); }

static void softmax_row(int log, size_t n, const float* x, float* y) {
  size_t i = 0;
  const float32x4_t ninf = vdupq_n_f32(-INFINITY);
  float32x4_t m0 = ninf, m1 = ninf;
  for (; i + 8 <= n; i += 8) {
    m0 = cnn_neon_max_gt(vld1q_f32(x + i), m0);
    m1 = cnn_neon_max_gt(vld1q_f32(x + i + 4), m1);
  }
  for (; i + 4 <= n; i += 4) m0 = cnn_neon_max_gt(vld1q_f32(x + i), m0);
  float m = cnn_neon_hmax_gt(cnn_neon_max_gt(m1, m0), -INFINITY);
  for (; i < n; i++) m = x[i] > m ? x[i] : m;

  const float32x4_t vm = vdupq_n_f32(m);
  float64x2_t s0 = vdupq_n_f64(0.0), s1 = s0, s2 = s0, s3 = s0;
  for (i = 0; i + 8 <= n; i += 8) {
    const float32x4_t e0 = cnn_neon_exp(vsubq_f32(vld1q_f32(x + i), vm));
    const float32x4_t e1 = cnn_neon_exp(vsubq_f32(vld1q_f32(x + i + 4), vm));
    s0 = sum_lo(s0, e0);
    s1 = sum_hi(s1, e0);
    s2 = sum_lo(s2, e1);
    s3 = sum_hi(s3, e1);
    if (!log) {
      vst1q_f32(y + i, e0);
      vst1q_f32(y + i + 4, e1);
    }
  }
  for (; i < n; i += 4) {
    const size_t r = cnn_min_sz(4, n - i);
    /* lanes past n: exp(-inf - m) = 0 adds nothing */
    const float32x4_t e = cnn_neon_exp(vsubq_f32(r == 4 ? vld1q_f32(x + i) : cnn_neon_load_tail(x + i, r, -INFINITY), vm));
    s0 = sum_lo(s0, e);
    s1 = sum_hi(s1, e);
    if (!log) cnn_neon_store_tail(y + i, r, e);
  }
  const double s = vaddvq_f64(vaddq_f64(vaddq_f64(s0, s1), vaddq_f64(s2, s3)));

  if (log) {
    const float lsf = logf((float)s);
    const float32x4_t ls = vdupq_n_f32(lsf);
    for (i = 0; i + 4 <= n; i += 4) vst1q_f32(y + i, vsubq_f32(vsubq_f32(vld1q_f32(x + i), vm), ls));
    for (; i < n; i++) y[i] = (x[i] - m) - lsf;
  } else {
    const float invf = (float)(1.0 / s);
    const float32x4_t inv = vdupq_n_f32(invf);
    for (i = 0; i + 4 <= n; i += 4) vst1q_f32(y + i, vmulq_f32(vld1q_f32(y + i), inv));
    for (; i < n; i++) y[i] = y[i] * invf;
  }
}

#define SOFTMAX_VECS 16 /* inner positions handled together: 16 vectors = 64 columns (256 contiguous bytes per row) */

static inline float32x4_t ld_cols(const float* p, size_t v, size_t nfull, size_t tail) {
  return v < nfull ? vld1q_f32(p + 4 * v) : cnn_neon_load_tail(p + 4 * v, tail, 0.0f);
}
static inline void st_cols(float* p, size_t v, size_t nfull, size_t tail, float32x4_t x) {
  if (v < nfull)
    vst1q_f32(p + 4 * v, x);
  else
    cnn_neon_store_tail(p + 4 * v, tail, x);
}

/* Columns [0, nc) (nc <= 64) of one outer slice; element (a, r) at x[a*inner + r]. Lanes past nc are neither read
 * nor written (their values are unused). */
static void softmax_cols(int log, size_t axis, size_t inner, size_t nc, const float* x, float* y) {
  const size_t nfull = nc / 4, nv = cnn_div_up(nc, 4), tail = nc % 4;
  float32x4_t m[SOFTMAX_VECS];
  float64x2_t s[2 * SOFTMAX_VECS];
  for (size_t v = 0; v < nv; v++) {
    m[v] = vdupq_n_f32(-INFINITY);
    s[2 * v] = s[2 * v + 1] = vdupq_n_f64(0.0);
  }
  for (size_t a = 0; a < axis; a++)
    for (size_t v = 0; v < nv; v++) m[v] = cnn_neon_max_gt(ld_cols(x + a * inner, v, nfull, tail), m[v]);
  for (size_t a = 0; a < axis; a++)
    for (size_t v = 0; v < nv; v++) {
      const float32x4_t e = cnn_neon_exp(vsubq_f32(ld_cols(x + a * inner, v, nfull, tail), m[v]));
      s[2 * v] = sum_lo(s[2 * v], e);
      s[2 * v + 1] = sum_hi(s[2 * v + 1], e);
      if (!log) st_cols(y + a * inner, v, nfull, tail, e);
    }
  float32x4_t f[SOFTMAX_VECS]; /* log: log(float(sum)) as the scalar kernel; softmax: float(1/sum) */
  for (size_t v = 0; v < nv; v++) {
    if (log) {
      float sf[4];
      vst1q_f32(sf, vcombine_f32(vcvt_f32_f64(s[2 * v]), vcvt_f32_f64(s[2 * v + 1])));
      for (int k = 0; k < 4; k++) sf[k] = logf(sf[k]); /* lanes past nc: log of an unused sum */
      f[v] = vld1q_f32(sf);
    } else {
      const float64x2_t one = vdupq_n_f64(1.0);
      f[v] = vcombine_f32(vcvt_f32_f64(vdivq_f64(one, s[2 * v])), vcvt_f32_f64(vdivq_f64(one, s[2 * v + 1])));
    }
  }
  for (size_t a = 0; a < axis; a++)
    for (size_t v = 0; v < nv; v++) {
      const float32x4_t r = log ? vsubq_f32(vsubq_f32(ld_cols(x + a * inner, v, nfull, tail), m[v]), f[v])
                                : vmulq_f32(ld_cols(y + a * inner, v, nfull, tail), f[v]);
      st_cols(y + a * inner, v, nfull, tail, r);
    }
}

void cnn_f32_softmax__neon(int log, size_t outer, size_t axis, size_t inner, const float* x, float* y) {
  if (axis == 0 || inner == 0) return;
  for (size_t o = 0; o < outer; o++) {
    const float* xo = x + o * axis * inner;
    float* yo = y + o * axis * inner;
    if (inner == 1) {
      softmax_row(log, axis, xo, yo);
      continue;
    }
    for (size_t r = 0; r < inner; r += 4 * SOFTMAX_VECS)
      softmax_cols(log, axis, inner, cnn_min_sz(4 * SOFTMAX_VECS, inner - r), xo + r, yo + r);
  }
}
