/* NEON (aarch64) Winograd transforms: the scalar kernels with one tile per lane of a Q register, the twin of
 * winograd__avx2.c. The 8 tiles (lanes) of a call are processed as two halves of 4 (tiles 0-3, then 4-7), each with
 * the AVX2 kernel's structure on 4-lane vectors: 4x4 transposes between rows and lanes (two per 8-float row),
 * the fully unrolled sparse B^T / A^T products as FMA chains in the same order, and the same residual / clamp
 * epilogue (the clamp as compare + select: the scalar kernel's semantics, NaN and signed zeros included). */
#if defined(__aarch64__)
#include <arm_neon.h>
#include <stdint.h>

#include "cnnrt/winograd.h"

#define L CNN_WINO_LANES
#define H 4 /* lanes per vector (tiles per half) */

/* in place 4x4 transpose: r[i] lane j <-> r[j] lane i */
static inline void tr4(float32x4_t* r) {
  const float32x4_t t0 = vtrn1q_f32(r[0], r[1]), t1 = vtrn2q_f32(r[0], r[1]);
  const float32x4_t t2 = vtrn1q_f32(r[2], r[3]), t3 = vtrn2q_f32(r[2], r[3]);
  r[0] = vreinterpretq_f32_f64(vtrn1q_f64(vreinterpretq_f64_f32(t0), vreinterpretq_f64_f32(t2)));
  r[1] = vreinterpretq_f32_f64(vtrn1q_f64(vreinterpretq_f64_f32(t1), vreinterpretq_f64_f32(t3)));
  r[2] = vreinterpretq_f32_f64(vtrn2q_f64(vreinterpretq_f64_f32(t0), vreinterpretq_f64_f32(t2)));
  r[3] = vreinterpretq_f32_f64(vtrn2q_f64(vreinterpretq_f64_f32(t1), vreinterpretq_f64_f32(t3)));
}

/* B^T and A^T of F(2,3), F(4,3), F(6,3) as float constants (the same values as the double tables in
 * winograd__scalar.c, all dyadic: exact). The kernels below are instantiated per tile size with these tables and
 * fully unrolled, so the zero entries fold away and the non-zero ones become constant broadcasts. */
static const float BT2[16] = {1, 0, -1, 0, 0, 1, 1, 0, 0, -1, 1, 0, 0, 1, 0, -1};
static const float AT2[8] = {1, 1, 1, 0, 0, 1, -1, -1};
static const float BT4[36] = {4, 0, -5, 0, 1, 0, 0, -4, -4, 1, 1, 0, 0, 4, -4, -1, 1, 0,
                              0, -2, -1, 2, 1, 0, 0, 2, -1, -2, 1, 0, 0, 4, 0, -5, 0, 1};
static const float AT4[24] = {1, 1, 1, 1, 1, 0, 0, 1, -1, 2, -2, 0, 0, 1, 1, 4, 4, 0, 0, 1, -1, 8, -8, 1};
static const float BT6[64] = {1, 0,     -5.25f, 0,      5.25f,  0,      -1, 0, 0, 1,     1,     -4.25f, -4.25f,
                              1, 1,     0,      0,      -1,     1,      4.25f, -4.25f, -1, 1, 0, 0,     0.5f,
                              0.25f, -2.5f, -1.25f, 2, 1, 0, 0, -0.5f, 0.25f, 2.5f, -1.25f, -2, 1, 0, 0, 2, 4,
                              -2.5f, -5, 0.5f, 1, 0, 0, -2, 4, 2.5f, -5, -0.5f, 1, 0, 0, -1, 0, 5.25f, 0, -5.25f, 0,
                              1};
static const float AT6[48] = {1, 1, 1,  1,  1,   1,        1,         0, 0, 1, -1, 2,  -2,  0.5f,     -0.5f,     0,
                              0, 1, 1,  4,  4,   0.25f,    0.25f,     0, 0, 1, -1, 8,  -8,  0.125f,   -0.125f,   0,
                              0, 1, 1,  16, 16,  0.0625f,  0.0625f,   0, 0, 1, -1, 32, -32, 0.03125f, -0.03125f, 1};

#define AI static inline __attribute__((always_inline))

/* one half (tiles h*4 .. h*4+3) */
AI void input_h(const float* const* rows, float* v, size_t pstride, const int T, const float* bt, const int h) {
  float32x4_t d[CNN_WINO_TMAX * CNN_WINO_TMAX], w[CNN_WINO_TMAX * CNN_WINO_TMAX];
#pragma GCC unroll 8
  for (int r = 0; r < T; r++) {
    float32x4_t a[8];
#pragma GCC unroll 4
    for (int l = 0; l < H; l++) {
      const float* src = rows[r * L + h * H + l];
      a[l] = vld1q_f32(src);
      if (T > 4) a[H + l] = vld1q_f32(src + 4);
    }
    tr4(a); /* a[s]: column s of row r, one lane per tile */
    if (T > 4) tr4(a + H);
#pragma GCC unroll 8
    for (int s = 0; s < T; s++) d[r * T + s] = a[s];
  }
#pragma GCC unroll 8
  for (int p = 0; p < T; p++)
#pragma GCC unroll 8
    for (int s = 0; s < T; s++) {
      float32x4_t acc = vdupq_n_f32(0.0f);
#pragma GCC unroll 8
      for (int r = 0; r < T; r++)
        if (bt[p * T + r] != 0.0f) acc = vfmaq_f32(acc, vdupq_n_f32(bt[p * T + r]), d[r * T + s]);
      w[p * T + s] = acc;
    }
#pragma GCC unroll 8
  for (int p = 0; p < T; p++)
#pragma GCC unroll 8
    for (int q = 0; q < T; q++) {
      float32x4_t acc = vdupq_n_f32(0.0f);
#pragma GCC unroll 8
      for (int s = 0; s < T; s++)
        if (bt[q * T + s] != 0.0f) acc = vfmaq_f32(acc, vdupq_n_f32(bt[q * T + s]), w[p * T + s]);
      vst1q_f32(v + (size_t)(p * T + q) * pstride + h * H, acc);
    }
}

AI void input_t(const float* const* rows, float* v, size_t pstride, const int T, const float* bt) {
  input_h(rows, v, pstride, T, bt, 0);
  input_h(rows, v, pstride, T, bt, 1);
}

void cnn_wino_input__neon(const cnn_wino_tx* tx, const float* const* rows, float* v, size_t pstride) {
  switch (tx->m) {
    case 2: input_t(rows, v, pstride, 4, BT2); break;
    case 4: input_t(rows, v, pstride, 6, BT4); break;
    default: input_t(rows, v, pstride, 8, BT6); break;
  }
}

/* the first m (2, 4 or 6) floats of p (no access past them) as lo (columns 0-3) and hi (columns 4-5) */
AI void load_m(const float* p, const int m, float32x4_t* lo, float32x4_t* hi) {
  if (m == 2) {
    *lo = vcombine_f32(vld1_f32(p), vdup_n_f32(0.0f));
    return;
  }
  *lo = vld1q_f32(p);
  if (m == 6) *hi = vcombine_f32(vld1_f32(p + 4), vdup_n_f32(0.0f));
}
AI void store_m(float* p, float32x4_t lo, float32x4_t hi, const int m) {
  if (m == 2) {
    vst1_f32(p, vget_low_f32(lo));
    return;
  }
  vst1q_f32(p, lo);
  if (m == 6) vst1_f32(p + 4, vget_low_f32(hi));
}
/* the scalar kernel's clamp: t < lo ? lo : t, then t > hi ? hi : t (NaN propagates) */
AI float32x4_t clamp(float32x4_t t, float32x4_t vlo, float32x4_t vhi) {
  t = vbslq_f32(vcltq_f32(t, vlo), vlo, t);
  return vbslq_f32(vcgtq_f32(t, vhi), vhi, t);
}

/* one half (tiles h*4 .. h*4+3) */
AI void output_h(const float* mp, size_t pstride, float bias, float lo, float hi, float* out, const float* res,
                 const ptrdiff_t* offs, const int* ncols, const int m, const float* at, const int h) {
  const int T = m + 2;
  float32x4_t z[CNN_WINO_TMAX * CNN_WINO_TMAX];
#pragma GCC unroll 8
  for (int i = 0; i < m; i++)
#pragma GCC unroll 8
    for (int q = 0; q < T; q++) {
      float32x4_t acc = vdupq_n_f32(0.0f);
#pragma GCC unroll 8
      for (int p = 0; p < T; p++)
        if (at[i * T + p] != 0.0f)
          acc = vfmaq_f32(acc, vdupq_n_f32(at[i * T + p]), vld1q_f32(mp + (size_t)(p * T + q) * pstride + h * H));
      z[i * T + q] = acc;
    }
  const float32x4_t vb = vdupq_n_f32(bias), vlo = vdupq_n_f32(lo), vhi = vdupq_n_f32(hi);
#pragma GCC unroll 8
  for (int i = 0; i < m; i++) {
    float32x4_t a[8];
#pragma GCC unroll 8
    for (int j = 0; j < m; j++) {
      float32x4_t acc = vb;
#pragma GCC unroll 8
      for (int q = 0; q < T; q++)
        if (at[j * T + q] != 0.0f) acc = vfmaq_f32(acc, vdupq_n_f32(at[j * T + q]), z[i * T + q]);
      a[j] = acc;
    }
#pragma GCC unroll 8
    for (int j = m; j < 8; j++) a[j] = vdupq_n_f32(0.0f);
    tr4(a); /* a[l] (a[H + l]): columns 0-3 (4-7) of row i of lane h*4+l's tile */
    if (m > 4) tr4(a + H);
    /* full rows: plain 128/64-bit loads and stores; partial rows: scalar */
    for (int l = 0; l < H; l++) {
      const ptrdiff_t of = offs[i * L + h * H + l];
      if (of < 0) continue;
      float* o = out + of;
      const float* r = res ? res + of : NULL;
      float32x4_t t0 = a[l], t1 = a[H + l];
      if (ncols[h * H + l] == m) {
        if (r) {
          float32x4_t r0, r1 = vdupq_n_f32(0.0f);
          load_m(r, m, &r0, &r1);
          t0 = vaddq_f32(t0, r0);
          if (m > 4) t1 = vaddq_f32(t1, r1);
        }
        t0 = clamp(t0, vlo, vhi);
        if (m > 4) t1 = clamp(t1, vlo, vhi);
        store_m(o, t0, t1, m);
      } else {
        float tmp[8];
        vst1q_f32(tmp, t0);
        vst1q_f32(tmp + 4, t1);
        for (int j = 0; j < ncols[h * H + l]; j++) {
          float u = tmp[j];
          if (r) u += r[j];
          u = u < lo ? lo : u;
          o[j] = u > hi ? hi : u;
        }
      }
    }
  }
}

AI void output_t(const float* mp, size_t pstride, float bias, float lo, float hi, float* out, const float* res,
                 const ptrdiff_t* offs, const int* ncols, const int m, const float* at) {
  output_h(mp, pstride, bias, lo, hi, out, res, offs, ncols, m, at, 0);
  output_h(mp, pstride, bias, lo, hi, out, res, offs, ncols, m, at, 1);
}

void cnn_wino_output__neon(const cnn_wino_tx* tx, const float* mp, size_t pstride, float bias, float lo, float hi,
                           float* out, const float* res, const ptrdiff_t* offs, const int* ncols) {
  switch (tx->m) {
    case 2: output_t(mp, pstride, bias, lo, hi, out, res, offs, ncols, 2, AT2); break;
    case 4: output_t(mp, pstride, bias, lo, hi, out, res, offs, ncols, 4, AT4); break;
    default: output_t(mp, pstride, bias, lo, hi, out, res, offs, ncols, 6, AT6); break;
  }
}
#else
typedef int cnn_wino_neon_unused;
#endif
