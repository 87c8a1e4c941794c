/* Unary activations for the avx512 ISA: sigmoid and silu on 16-lane vectors; every other activation is the AVX2
 * kernel's.
 * The fast path (|x| <= 87) is its own formula, not the AVX2 kernel's (avx2-math.h): 2^(n/16) from a 16-entry table
 * (one vpermps on 16 lanes; on 8 lanes a 16-entry table costs two permutes and a blend, which made that form 7%
 * slower than the AVX2 kernel's degree-6 polynomial: 0.296 against 0.277 ns per element). So the two ISAs' sigmoid
 * bits differ (by <= ~3 ulp, like their GEMM summation orders); within the avx512 ISA every sigmoid / silu goes
 * through this kernel (the 8-channel depthwise kernel fuses its AVX2 SiLU only when the activation function is the
 * AVX2 one), and each output depends on its own input only.
 *   t = -x*16*log2(e) + 1.5*2^23 rounds -16x*log2(e) to the nearest integer n, which lands in t's low mantissa
 *   bits (n in [-2008, 2008]); s = x + n*ln2/16 (Cody-Waite, two FMAs: exact first step), so -x = n*ln2/16 - s with
 *   |s| <= ln2/32. Then e = exp(-x) = 2^floor(n/16) * T[n mod 16] * exp(-s), T[j] = 2^(j/16) rounded to float,
 *   exp(-s) = 1 + q, q = -s + s^2/2 - s^3/6 (Taylor: truncation below s^4/24 <= 9.2e-9, 0.08 ulp), and T*(1+q) =
 *   T + T*q in one FMA (1 + q is never rounded). n mod 16 is t's low 4 bits (vpermps uses just those); 2^floor(n/16)
 *   is added to the exponent field as (t >> 4) << 23 (1.5*2^23 is a multiple of 16, and its own bits fall out of
 *   the shift): e <= exp(87) * (1 + 2^-22) < FLT_MAX. At floor(n/16) = -126 (x near 87) e may decode as a
 *   subnormal, far below 1's rounding: 1 + e = 1 either way. q(0) = 0 and T[0] = 1, so sigmoid(0) = 0.5.
 *   Accuracy (every 97th float in [-87, 87] against the double formula): sigmoid 2.84 ulp, silu 2.85 ulp (the AVX2
 *   kernel: 2.30 / 2.24); test_eltwise's dense sweep bounds it by 3 ulp of the exact value.
 *   Throughput (4096 floats, L1-resident, best of 40, Zen 4): 0.217 -> 0.184 ns per element against the AVX2
 *   kernel's operations on 16 lanes (this kernel until then), sigmoid and silu alike. Why 16 lanes at all on a core
 *   that splits 512-bit operations in two (Zen 4): the exp is a long dependency chain per vector, and 16 lanes per
 *   instruction keep twice the elements in flight in the same scheduler space. An 8-entry table with a degree-4
 *   polynomial: 0.202 ns, 2.67 / 2.88 ulp; rcp14 + one Newton step instead of the division: slower (0.238-0.249). */
#include <immintrin.h>

#include "avx2-math.h"
#include "cnnrt/eltwise.h"

/* 2^(j/16), j = 0..15, rounded to float */
static const float g_exp2_16[16] __attribute__((aligned(64))) = {
    1.0f,        1.04427373f, 1.09050775f, 1.13878858f, 1.18920708f, 1.24185777f, 1.29683959f, 1.35425556f,
    1.41421354f, 1.47682619f, 1.54221082f, 1.61049032f, 1.68179286f, 1.75625217f, 1.8340081f,  1.91520655f};

static inline __attribute__((always_inline)) __m512 sig16_fast(int silu, __m512 x) {
  const __m512 one = _mm512_set1_ps(1.0f), shift = _mm512_set1_ps(12582912.0f); /* 1.5 * 2^23 */
  const __m512 t = _mm512_fnmadd_ps(x, _mm512_set1_ps(23.0831203f), shift);     /* 16 * 1.44269502f, exact */
  const __m512 n = _mm512_sub_ps(t, shift);
  __m512 s = _mm512_fmadd_ps(n, _mm512_set1_ps(0.0433216989f), x); /* 0.693147182f / 16, exact */
  s = _mm512_fmadd_ps(n, _mm512_set1_ps(-1.19040888e-10f), s);     /* -1.90465421e-09f / 16, exact */
  __m512 q = _mm512_fnmadd_ps(_mm512_set1_ps(0.166666672f), s, _mm512_set1_ps(0.5f)); /* 1/2 - s/6 */
  q = _mm512_fmsub_ps(q, s, one);                                                    /* -1 + s/2 - s^2/6 */
  q = _mm512_mul_ps(q, s);                                                           /* exp(-s) - 1 */
  const __m512i ti = _mm512_castps_si512(t);
  const __m512 tab = _mm512_permutexvar_ps(ti, _mm512_load_ps(g_exp2_16));
  const __m512 p = _mm512_fmadd_ps(tab, q, tab);
  const __m512i sc = _mm512_slli_epi32(_mm512_srai_epi32(ti, 4), 23);
  const __m512 e = _mm512_castsi512_ps(_mm512_add_epi32(_mm512_castps_si512(p), sc));
  return _mm512_div_ps(silu ? x : one, _mm512_add_ps(e, one));
}

/* lanes |x| > 87 or NaN (cnn_avx2_sigmoid_slow_lanes) */
static inline __mmask16 slow16(__m512 x) {
  return _mm512_cmp_ps_mask(_mm512_abs_ps(x), _mm512_set1_ps(87.0f), _CMP_NLE_UQ);
}

/* lanes |x| > 87 or NaN: the general (clamped, exact-underflow) AVX2 sigmoid on both halves, silu = x * sigmoid
 * with the general path's zero rule (cnn_avx2_sig8_general); the other lanes keep this kernel's fast value */
static __attribute__((noinline)) __m512 sig16_patch(int silu, __m512 v, __m512 f) {
  const __m256 lo = _mm256_castpd_ps(_mm512_castpd512_pd256(_mm512_castps_pd(v)));
  const __m256 hi = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1));
  const __m256 glo = cnn_avx2_sig8_general(silu, lo), ghi = cnn_avx2_sig8_general(silu, hi);
  const __m512 g = _mm512_castpd_ps(
      _mm512_insertf64x4(_mm512_castpd256_pd512(_mm256_castps_pd(glo)), _mm256_castps_pd(ghi), 1));
  return _mm512_mask_blend_ps(slow16(v), f, g);
}

static inline __attribute__((always_inline)) __m512 sig16(int silu, __m512 v) {
  const __m512 f = sig16_fast(silu, v);
  return slow16(v) ? sig16_patch(silu, v, f) : f;
}

/* 4 vectors per step (independent chains), one test for the rare slow lanes; the < 64 floats after the last full
 * step: full vectors, then one masked vector (masked loads read nothing past n). */
static inline __attribute__((always_inline)) void sig_loop(int silu, const float* x, float* y, size_t n) {
  size_t i = 0;
  for (; i + 64 <= n; i += 64) {
    const __m512 v0 = _mm512_loadu_ps(x + i), v1 = _mm512_loadu_ps(x + i + 16);
    const __m512 v2 = _mm512_loadu_ps(x + i + 32), v3 = _mm512_loadu_ps(x + i + 48);
    __m512 f0 = sig16_fast(silu, v0), f1 = sig16_fast(silu, v1), f2 = sig16_fast(silu, v2), f3 = sig16_fast(silu, v3);
    if (slow16(v0) | slow16(v1) | slow16(v2) | slow16(v3)) {
      f0 = sig16(silu, v0);
      f1 = sig16(silu, v1);
      f2 = sig16(silu, v2);
      f3 = sig16(silu, v3);
    }
    _mm512_storeu_ps(y + i, f0);
    _mm512_storeu_ps(y + i + 16, f1);
    _mm512_storeu_ps(y + i + 32, f2);
    _mm512_storeu_ps(y + i + 48, f3);
  }
  for (; i + 16 <= n; i += 16) _mm512_storeu_ps(y + i, sig16(silu, _mm512_loadu_ps(x + i)));
  if (i < n) {
    const __mmask16 m = (__mmask16)((1u << (n - i)) - 1u);
    /* masked-off lanes load 0 (a fast-path value); they are not stored */
    _mm512_mask_storeu_ps(y + i, m, sig16(silu, _mm512_maskz_loadu_ps(m, x + i)));
  }
}

void cnn_f32_act__avx512(const cnn_act* act, const float* x, float* y, size_t n) {
  switch (act->type) {
    case CNN_ACT_SIGMOID: sig_loop(0, x, y, n); break;
    case CNN_ACT_SILU: sig_loop(1, x, y, n); break;
    default: cnn_f32_act__avx2(act, x, y, n); break;
  }
}
