/* Private NEON helpers (vector exp, sigmoid, tanh, NaN-skipping max, tail load/store) shared by the *__neon.c
 * element-wise kernels. aarch64 only (Advanced SIMD is part of the base ISA: no extra compiler flags). */
#ifndef CNNRT_F32_ELTWISE_NEON_MATH_H
#define CNNRT_F32_ELTWISE_NEON_MATH_H

#include <arm_neon.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* exp(x): the same algorithm and constants as cnn_avx2_exp (avx2-math.h): a few ulp over the whole range, +inf
 * above ~88.72, gradual underflow to 0 below ~-103.9, exp(-inf) = 0, exp(+inf) = inf, NaN -> NaN (FMIN / FMAX
 * return NaN when an operand is NaN). x = n*ln2 + r (Cody-Waite, exact with FMA); exp(r) = 1 + r + r^2*q(r);
 * 2^n applied as 2^(n/2) * 2^(n - n/2) so that subnormal results round once. */
static inline float32x4_t cnn_neon_exp(float32x4_t x) {
  x = vminq_f32(vdupq_n_f32(89.0f), x);
  x = vmaxq_f32(vdupq_n_f32(-104.0f), x);
  const float32x4_t n = vrndnq_f32(vmulq_f32(x, vdupq_n_f32(1.44269502f)));
  float32x4_t r = vfmsq_f32(x, n, vdupq_n_f32(0.693147182f));
  r = vfmsq_f32(r, n, vdupq_n_f32(-1.90465421e-09f));
  float32x4_t q = vdupq_n_f32(1.3950479e-3f);
  q = vfmaq_f32(vdupq_n_f32(8.368882e-3f), q, r);
  q = vfmaq_f32(vdupq_n_f32(4.1666206e-2f), q, r);
  q = vfmaq_f32(vdupq_n_f32(1.666652e-1f), q, r);
  q = vfmaq_f32(vdupq_n_f32(0.5f), q, r);
  const float32x4_t r2 = vmulq_f32(r, r);
  const float32x4_t p = vaddq_f32(vfmaq_f32(r, q, r2), vdupq_n_f32(1.0f));
  const int32x4_t ni = vcvtq_s32_f32(n); /* in [-150, 129]; 0 for NaN lanes, which stay NaN through p */
  const int32x4_t n1 = vshrq_n_s32(ni, 1);
  const int32x4_t n2 = vsubq_s32(ni, n1);
  const int32x4_t bias = vdupq_n_s32(127);
  const float32x4_t s1 = vreinterpretq_f32_s32(vshlq_n_s32(vaddq_s32(n1, bias), 23));
  const float32x4_t s2 = vreinterpretq_f32_s32(vshlq_n_s32(vaddq_s32(n2, bias), 23));
  return vmulq_f32(vmulq_f32(p, s1), s2);
}

/* sigmoid(x) = 1/(1+e) for x >= 0, e/(1+e) for x < 0, e = exp(-|x|). */
static inline float32x4_t cnn_neon_sigmoid(float32x4_t x) {
  const float32x4_t e = cnn_neon_exp(vnegq_f32(vabsq_f32(x)));
  const float32x4_t one = vdupq_n_f32(1.0f);
  const float32x4_t d = vaddq_f32(one, e);
  const uint32x4_t neg = vcltq_f32(x, vdupq_n_f32(0.0f));
  return vdivq_f32(vbslq_f32(neg, e, one), d);
}

/* Fast sigmoid (silu = 0) / silu (silu = 1) for lanes with |x| <= 87, as cnn_avx2_sig8_fast (avx2-math.h: same
 * steps and coefficients): t = -x*log2(e) + 1.5*2^23 holds n = round(-x*log2(e)) in its low mantissa bits;
 * s = x + n*ln2 (two FMAs); p = exp(-s) (degree 6 on -s, p(0) = 1); e = exp(-x) = p*2^n by adding n<<23 to p's bits;
 * result (silu ? x : 1)/(1+e). Lanes with |x| > 87 or NaN (cnn_neon_sigmoid_slow_lanes) must take
 * cnn_neon_sigmoid. */
static inline __attribute__((always_inline)) float32x4_t cnn_neon_sig4_fast(int silu, float32x4_t x) {
  const float32x4_t one = vdupq_n_f32(1.0f), shift = vdupq_n_f32(12582912.0f); /* 1.5 * 2^23 */
  const float32x4_t t = vfmsq_f32(shift, x, vdupq_n_f32(1.44269502f));
  const float32x4_t n = vsubq_f32(t, shift);
  float32x4_t s = vfmaq_f32(x, n, vdupq_n_f32(0.693147182f));
  s = vfmaq_f32(s, n, vdupq_n_f32(-1.90465421e-09f));
  float32x4_t p = vdupq_n_f32(1.38089445e-3f);
  p = vfmsq_f32(vdupq_n_f32(8.37172568e-3f), p, s);
  p = vfmsq_f32(vdupq_n_f32(4.16684076e-2f), p, s);
  p = vfmsq_f32(vdupq_n_f32(1.66664898e-1f), p, s);
  p = vfmsq_f32(vdupq_n_f32(0.49999994f), p, s);
  p = vfmsq_f32(one, p, s);
  p = vfmsq_f32(one, p, s);
  const int32x4_t sc = vshlq_n_s32(vreinterpretq_s32_f32(t), 23);
  const float32x4_t e = vreinterpretq_f32_s32(vaddq_s32(vreinterpretq_s32_f32(p), sc));
  return vdivq_f32(silu ? x : one, vaddq_f32(e, one));
}

/* Lanes where cnn_neon_sig4_fast does not apply: |x| > 87 or NaN (all ones). */
static inline uint32x4_t cnn_neon_sigmoid_slow_lanes(float32x4_t x) {
  return vmvnq_u32(vcleq_f32(vabsq_f32(x), vdupq_n_f32(87.0f)));
}

/* tanh(x): as cnn_avx2_tanh: |x| < 0.625: x + x^3*q(x^2); otherwise sign(x) * (1-e)/(1+e), e = exp(-2|x|). */
static inline float32x4_t cnn_neon_tanh(float32x4_t x) {
  const float32x4_t ax = vabsq_f32(x);
  const float32x4_t e = cnn_neon_exp(vmulq_f32(ax, vdupq_n_f32(-2.0f)));
  const float32x4_t one = vdupq_n_f32(1.0f);
  const float32x4_t big = vdivq_f32(vsubq_f32(one, e), vaddq_f32(one, e));
  const float32x4_t x2 = vmulq_f32(ax, ax);
  float32x4_t q = vdupq_n_f32(-5.704985e-3f);
  q = vfmaq_f32(vdupq_n_f32(2.0639086e-2f), q, x2);
  q = vfmaq_f32(vdupq_n_f32(-5.3739715e-2f), q, x2);
  q = vfmaq_f32(vdupq_n_f32(1.3331442e-1f), q, x2);
  q = vfmaq_f32(vdupq_n_f32(-3.333328e-1f), q, x2);
  const float32x4_t small = vfmaq_f32(ax, vmulq_f32(ax, x2), q);
  const uint32x4_t use_small = vcltq_f32(ax, vdupq_n_f32(0.625f));
  const uint32x4_t t = vreinterpretq_u32_f32(vbslq_f32(use_small, small, big));
  const uint32x4_t sign = vandq_u32(vreinterpretq_u32_f32(x), vdupq_n_u32(0x80000000u));
  return vreinterpretq_f32_u32(vorrq_u32(t, sign));
}

/* v > m ? v : m per lane (the scalar kernels' max: NaN in v is skipped, ties keep m). */
static inline float32x4_t cnn_neon_max_gt(float32x4_t v, float32x4_t m) { return vbslq_f32(vcgtq_f32(v, m), v, m); }

/* horizontal max with the same semantics, lanes in order */
static inline float cnn_neon_hmax_gt(float32x4_t v, float m) {
  float t[4];
  vst1q_f32(t, v);
  for (int i = 0; i < 4; i++) m = t[i] > m ? t[i] : m;
  return m;
}

/* Lanes [0, n) from p (n <= 4), the other lanes `fill`; and the matching partial store. */
static inline float32x4_t cnn_neon_load_tail(const float* p, size_t n, float fill) {
  float t[4] = {fill, fill, fill, fill};
  memcpy(t, p, n * sizeof(float));
  return vld1q_f32(t);
}
static inline void cnn_neon_store_tail(float* p, size_t n, float32x4_t v) {
  float t[4];
  vst1q_f32(t, v);
  memcpy(p, t, n * sizeof(float));
}

#endif
