/* Private AVX2 helpers (vector exp, sigmoid, tanh, tail masks) shared by the *__avx2.c element-wise kernels.
 * Include only from files compiled with -mavx2 -mfma. */
#ifndef CNNRT_F32_ELTWISE_AVX2_MATH_H
#define CNNRT_F32_ELTWISE_AVX2_MATH_H

#include <immintrin.h>
#include <stdint.h>

/* Lanes [0, rem) on for rem in 0..8: load 8 ints starting at cnn_avx2_mask_table + 8 - rem. */
static const int32_t cnn_avx2_mask_table[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};
static inline __m256i cnn_avx2_tail_mask(size_t rem) {
  return _mm256_loadu_si256((const __m256i*)(cnn_avx2_mask_table + 8 - rem));
}

/* exp(x) for every float x: a few ulp over the whole range, +inf above ~88.72, gradual underflow down to 0 below
 * ~-103.9, exp(-inf) = 0, exp(+inf) = inf, NaN -> NaN.
 * x = n*ln2 + r, |r| <= ln2/2 (Cody-Waite: ln2_hi is the float nearest ln2, so with FMA n*ln2_hi is subtracted
 * exactly); exp(r) = 1 + r + r^2*q(r), q of degree 4 fitted (weighted least squares, near-minimax) to |err| < 4e-9;
 * 2^n is applied as two factors 2^(n/2) * 2^(n - n/2) so that results in the subnormal range round once. */
static inline __m256 cnn_avx2_exp(__m256 x) {
  /* constant first: min/max return the second operand when either is NaN, so NaN passes through */
  x = _mm256_min_ps(_mm256_set1_ps(89.0f), x);
  x = _mm256_max_ps(_mm256_set1_ps(-104.0f), x);
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269502f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693147182f), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-1.90465421e-09f), r);
  __m256 q = _mm256_set1_ps(1.3950479e-3f);
  q = _mm256_fmadd_ps(q, r, _mm256_set1_ps(8.368882e-3f));
  q = _mm256_fmadd_ps(q, r, _mm256_set1_ps(4.1666206e-2f));
  q = _mm256_fmadd_ps(q, r, _mm256_set1_ps(1.666652e-1f));
  q = _mm256_fmadd_ps(q, r, _mm256_set1_ps(0.5f));
  const __m256 r2 = _mm256_mul_ps(r, r);
  const __m256 p = _mm256_add_ps(_mm256_fmadd_ps(q, r2, r), _mm256_set1_ps(1.0f));
  const __m256i ni = _mm256_cvtps_epi32(n); /* in [-150, 129]; garbage for NaN lanes, which stay NaN through p */
  const __m256i n1 = _mm256_srai_epi32(ni, 1);
  const __m256i n2 = _mm256_sub_epi32(ni, n1);
  const __m256i bias = _mm256_set1_epi32(127);
  const __m256 s1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n1, bias), 23));
  const __m256 s2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n2, bias), 23));
  return _mm256_mul_ps(_mm256_mul_ps(p, s1), s2);
}

/* sigmoid(x) = 1/(1+e) for x >= 0, e/(1+e) for x < 0, e = exp(-|x|) (no overflow; relative accuracy kept for
 * negative x). */
static inline __m256 cnn_avx2_sigmoid(__m256 x) {
  const __m256 sign = _mm256_set1_ps(-0.0f);
  const __m256 e = cnn_avx2_exp(_mm256_or_ps(x, sign)); /* exp(-|x|) */
  const __m256 d = _mm256_add_ps(_mm256_set1_ps(1.0f), e);
  const __m256 neg = _mm256_cmp_ps(x, _mm256_setzero_ps(), _CMP_LT_OQ);
  return _mm256_div_ps(_mm256_blendv_ps(_mm256_set1_ps(1.0f), e, neg), d);
}

/* Fast sigmoid / silu for lanes with |x| <= 87 (the other lanes, NaN included, are flagged by
 * cnn_avx2_sigmoid_slow_lanes and must be replaced with cnn_avx2_sigmoid): no clamps, no float->int conversion, no
 * select, one division: sigmoid = 1 / (1 + e), silu = x / (1 + e), e = exp(-x).
 *   t = -x*log2(e) + 1.5*2^23 rounds -x*log2(e) to the nearest integer n, which lands in t's low mantissa bits
 *   (n in [-126, 126]); s = x + n*ln2 (Cody-Waite, two FMAs: exact first step), so -x = n*ln2 - s with
 *   |s| <= ln2/2; exp(-s) = 1 - s + ... + c6 s^6 (Horner on -s: the odd coefficients' signs folded into fnmadd),
 *   p(0) = 1 exactly so sigmoid(0) = 0.5; e = exp(-x) = p * 2^n by adding n<<23 (t's bits shifted left by 23: the
 *   bits above n's fall out) to p's exponent field: e <= exp(87) * (1 + 2^-22) < FLT_MAX. At n = -126 (x near 87) e
 *   may decode as a subnormal, far below 1's rounding: 1 + e = 1 either way.
 *   Accuracy (every 97th float in [-87, 87] against the double formula): sigmoid 2.34 ulp, silu 2.24 ulp (the
 *   former e/(1+e), 1/(1+e) by sign with exp(-|x|) and silu = x*sigmoid: 2.28 and 2.93 ulp).
 *   Coefficients: minimax relative error of exp on [-ln2/2, ln2/2] with c0 = c1 = 1 fixed, found by linear
 *   programming on a 6001-point grid, each coefficient rounded to float in turn and the higher ones refitted:
 *   |p(r)/exp(r) - 1| <= 0.044 * 2^-23 before rounding errors.
 * Throughput (4096 floats, L1-resident, old and new in one binary, best of 30, this 2-core Zen VM): silu 0.585-0.589
 * ns per element (0.613-0.625 with the select and the extra multiply), sigmoid 0.587-0.590 (0.594-0.595); rcp + one
 * Newton step instead of the division measured slower again (0.61). */
/* the fast path's constants (the avx512 ISA's 16-lane kernel, act__avx512.c, has its own formula: a 16-entry table
 * of 2^(j/16) in one vpermps, which on 8 lanes costs two permutes and a blend and measured 7% slower than this) */
#define CNN_SIG_SHIFT 12582912.0f /* 1.5 * 2^23 */
#define CNN_SIG_LOG2E 1.44269502f
#define CNN_SIG_LN2_HI 0.693147182f
#define CNN_SIG_LN2_LO -1.90465421e-09f
#define CNN_SIG_C6 1.38089445e-3f
#define CNN_SIG_C5 8.37172568e-3f
#define CNN_SIG_C4 4.16684076e-2f
#define CNN_SIG_C3 1.66664898e-1f
#define CNN_SIG_C2 0.49999994f
static inline __attribute__((always_inline)) __m256 cnn_avx2_sig8_fast(int silu, __m256 x) {
  const __m256 one = _mm256_set1_ps(1.0f), shift = _mm256_set1_ps(CNN_SIG_SHIFT);
  const __m256 t = _mm256_fnmadd_ps(x, _mm256_set1_ps(CNN_SIG_LOG2E), shift);
  const __m256 n = _mm256_sub_ps(t, shift);
  __m256 s = _mm256_fmadd_ps(n, _mm256_set1_ps(CNN_SIG_LN2_HI), x);
  s = _mm256_fmadd_ps(n, _mm256_set1_ps(CNN_SIG_LN2_LO), s);
  __m256 p = _mm256_set1_ps(CNN_SIG_C6);
  p = _mm256_fnmadd_ps(p, s, _mm256_set1_ps(CNN_SIG_C5));
  p = _mm256_fnmadd_ps(p, s, _mm256_set1_ps(CNN_SIG_C4));
  p = _mm256_fnmadd_ps(p, s, _mm256_set1_ps(CNN_SIG_C3));
  p = _mm256_fnmadd_ps(p, s, _mm256_set1_ps(CNN_SIG_C2));
  p = _mm256_fnmadd_ps(p, s, one);
  p = _mm256_fnmadd_ps(p, s, one);
  const __m256i sc = _mm256_slli_epi32(_mm256_castps_si256(t), 23);
  const __m256 e = _mm256_castsi256_ps(_mm256_add_epi32(_mm256_castps_si256(p), sc));
  return _mm256_div_ps(silu ? x : one, _mm256_add_ps(e, one));
}

/* Lanes where cnn_avx2_sig8_fast does not apply: |x| > 87 or NaN. */
static inline __m256 cnn_avx2_sigmoid_slow_lanes(__m256 x) {
  return _mm256_cmp_ps(_mm256_andnot_ps(_mm256_set1_ps(-0.0f), x), _mm256_set1_ps(87.0f), _CMP_NLE_UQ);
}

/* Sigmoid (silu = 0) or silu (silu = 1) of one vector: cnn_avx2_sig8_fast, with the rare lanes it does not
 * cover (|x| > 87, NaN) recomputed out of line from the general (clamped, exact-underflow) sigmoid. Each lane
 * depends on its own input only. The activation kernel and the depthwise kernels' in-register SiLU share it, so a
 * fused activation has the bits of the separate pass. */
static inline __m256 cnn_avx2_sig8_general(int silu, __m256 v) {
  const __m256 s = cnn_avx2_sigmoid(v);
  if (!silu) return s;
  return _mm256_and_ps(_mm256_mul_ps(v, s), _mm256_cmp_ps(s, _mm256_setzero_ps(), _CMP_NEQ_UQ));
}

static __attribute__((noinline, unused)) __m256 cnn_avx2_sig8_patch(int silu, __m256 v, __m256 f) {
  return _mm256_blendv_ps(f, cnn_avx2_sig8_general(silu, v), cnn_avx2_sigmoid_slow_lanes(v));
}

static inline __attribute__((always_inline)) __m256 cnn_avx2_sig8(int silu, __m256 v) {
  const __m256 f = cnn_avx2_sig8_fast(silu, v);
  return _mm256_movemask_ps(cnn_avx2_sigmoid_slow_lanes(v)) ? cnn_avx2_sig8_patch(silu, v, f) : f;
}

/* tanh(x): |x| < 0.625: x + x^3*q(x^2), q of degree 4 fitted to a relative error < 5e-9; otherwise
 * sign(x) * (1-e)/(1+e), e = exp(-2|x|) (1-e >= 0.71 there: no cancellation). Saturates to +-1, NaN -> NaN. */
static inline __m256 cnn_avx2_tanh(__m256 x) {
  const __m256 sign = _mm256_set1_ps(-0.0f);
  const __m256 ax = _mm256_andnot_ps(sign, x);
  const __m256 e = cnn_avx2_exp(_mm256_mul_ps(ax, _mm256_set1_ps(-2.0f)));
  const __m256 one = _mm256_set1_ps(1.0f);
  const __m256 big = _mm256_div_ps(_mm256_sub_ps(one, e), _mm256_add_ps(one, e));
  const __m256 x2 = _mm256_mul_ps(ax, ax);
  __m256 q = _mm256_set1_ps(-5.704985e-3f);
  q = _mm256_fmadd_ps(q, x2, _mm256_set1_ps(2.0639086e-2f));
  q = _mm256_fmadd_ps(q, x2, _mm256_set1_ps(-5.3739715e-2f));
  q = _mm256_fmadd_ps(q, x2, _mm256_set1_ps(1.3331442e-1f));
  q = _mm256_fmadd_ps(q, x2, _mm256_set1_ps(-3.333328e-1f));
  const __m256 small = _mm256_fmadd_ps(_mm256_mul_ps(ax, x2), q, ax);
  const __m256 use_small = _mm256_cmp_ps(ax, _mm256_set1_ps(0.625f), _CMP_LT_OQ);
  const __m256 t = _mm256_blendv_ps(big, small, use_small);
  return _mm256_or_ps(t, _mm256_and_ps(x, sign));
}

static inline float cnn_avx2_hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

static inline float cnn_avx2_hmax(__m256 v) {
  __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_max_ps(s, _mm_movehl_ps(s, s));
  s = _mm_max_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

#endif
