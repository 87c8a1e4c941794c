/* Direct convolution for few input channels, avx512 ISA (see cnn_directconv_params in include/cnnrt/conv.h): the
 * AVX2 kernel's plain path on 16-lane vectors. Register tile: CNN_DIRECT_CB (4) output channels x V <= 3 vectors of
 * 16 output columns of one output row (12 ZMM accumulators); per tap V loads, CB broadcasts, V*CB FMAs: half the
 * instructions per FMA of the AVX2 tile. A row's last partial vector loads and stores under a mask (no column past
 * the row's end is read beyond what the AVX2 kernel reads). The fused 2x2 max-pool path is the AVX2 kernel's. */
#include <immintrin.h>
#include <math.h>
#include <stdint.h>

#include "cnnrt/conv.h"
#include "direct-common.h"

enum { CB = CNN_DIRECT_CB, MAXT = CNN_DIRECT_MAX_CIN * 64 };

/* cm: 0 no clamp, 1 lower bound only, 2 both (as in the AVX2 kernel: skipping an infinite bound changes nothing) */
static inline __attribute__((always_inline)) __m512 clampv(__m512 a, __m512 lo, __m512 hi, const int cm) {
  if (cm >= 1) a = _mm512_max_ps(lo, a);
  if (cm == 2) a = _mm512_min_ps(hi, a);
  return a;
}

static inline __mmask16 lanes(size_t n) { return n >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << n) - 1u); }

/* columns [ox, ox + 16V) of output row (base: padded row oy*sh of channel 0) for the CB channels of one block;
 * only columns < ow are read (beyond the taps' offsets) and written */
static inline __attribute__((always_inline)) void tile(const float* base, const ptrdiff_t* toff, size_t nt,
                                                       const float* w, const __m512* vb, size_t nc, size_t ox,
                                                       size_t ow, const float* const* rrow, float* const* orow,
                                                       __m512 lo, __m512 hi, const size_t V, const int cm) {
  __mmask16 mk[3];
#pragma GCC unroll 3
  for (size_t v = 0; v < V; v++) mk[v] = ox + 16 * v < ow ? lanes(ow - ox - 16 * v) : 0;
  __m512 acc[CB][3];
#pragma GCC unroll 4
  for (size_t c = 0; c < CB; c++)
#pragma GCC unroll 3
    for (size_t v = 0; v < V; v++) acc[c][v] = vb[c];
  const float* x = base + ox;
  for (size_t t = 0; t < nt; t++) {
    const float* s = x + toff[t];
    __m512 in[3];
#pragma GCC unroll 3
    for (size_t v = 0; v < V; v++) in[v] = _mm512_maskz_loadu_ps(mk[v], s + 16 * v);
#pragma GCC unroll 4
    for (size_t c = 0; c < CB; c++) {
      const __m512 wb = _mm512_set1_ps(w[t * CB + c]);
#pragma GCC unroll 3
      for (size_t v = 0; v < V; v++) acc[c][v] = _mm512_fmadd_ps(wb, in[v], acc[c][v]);
    }
  }
#pragma GCC unroll 4
  for (size_t c = 0; c < CB; c++) {
    if (c >= nc) break;
#pragma GCC unroll 3
    for (size_t v = 0; v < V; v++) {
      if (!mk[v]) break;
      const size_t col = ox + 16 * v;
      __m512 a = acc[c][v];
      if (rrow[c]) a = _mm512_add_ps(a, _mm512_maskz_loadu_ps(mk[v], rrow[c] + col));
      _mm512_mask_storeu_ps(orow[c] + col, mk[v], clampv(a, lo, hi, cm));
    }
  }
}


static inline __attribute__((always_inline)) void run_plain(const cnn_directconv_params* p, const float* pad,
                                                            const float* wpk, const float* bias,
                                                            const float* residual, float* out, const int cm) {
  const size_t pw = p->pw, ow = p->ow, cout = p->cout;
  ptrdiff_t toff[MAXT];
  const size_t nt = cnn_direct_tap_offsets(p, toff);
  const __m512 lo = _mm512_set1_ps(p->min), hi = _mm512_set1_ps(p->max);
  for (size_t c0 = 0; c0 < cout; c0 += CB) {
    const size_t nc = cout - c0 < CB ? cout - c0 : CB;
    const float* w = wpk + c0 * nt;
    __m512 vb[CB];
    for (size_t c = 0; c < CB; c++) vb[c] = _mm512_set1_ps(bias && c < nc ? bias[c0 + c] : 0.0f);
    for (size_t oy = 0; oy < p->oh; oy++) {
      const float* base = pad + oy * p->sh * pw;
      const float* rrow[CB];
      float* orow[CB];
      for (size_t c = 0; c < CB; c++) {
        const size_t o = (c0 + (c < nc ? c : 0)) * p->ostride + oy * ow;
        rrow[c] = residual ? residual + o : NULL;
        orow[c] = out + o;
      }
      size_t ox = 0;
      for (; ox + 48 <= ow; ox += 48) tile(base, toff, nt, w, vb, nc, ox, ow, rrow, orow, lo, hi, 3, cm);
      if (ox + 32 < ow)
        tile(base, toff, nt, w, vb, nc, ox, ow, rrow, orow, lo, hi, 3, cm);
      else if (ox + 16 < ow)
        tile(base, toff, nt, w, vb, nc, ox, ow, rrow, orow, lo, hi, 2, cm);
      else if (ox < ow)
        tile(base, toff, nt, w, vb, nc, ox, ow, rrow, orow, lo, hi, 1, cm);
    }
  }
}

#define VARIANT(cm)                                                                                                 \
  static __attribute__((noinline)) void plain_cm##cm(const cnn_directconv_params* p, const float* pad,             \
                                                     const float* wpk, const float* bias, const float* residual,  \
                                                     float* out) {                                                \
    run_plain(p, pad, wpk, bias, residual, out, cm);                                                               \
  }
VARIANT(0)
VARIANT(1)
VARIANT(2)

void cnn_f32_directconv__avx512(const cnn_directconv_params* p, const float* pad, const float* wpk, const float* bias,
                                const float* residual, float* out) {
  if (p->pool) { /* the 2x2-pooled tiles: the AVX2 kernel (it applies no act_fn: pool implies none) */
    cnn_f32_directconv__avx2(p, pad, wpk, bias, residual, out);
    return;
  }
  const int cm = p->max == INFINITY && p->min == -INFINITY ? 0 : p->max == INFINITY ? 1 : 2;
  if (cm == 0) plain_cm0(p, pad, wpk, bias, residual, out);
  else if (cm == 1) plain_cm1(p, pad, wpk, bias, residual, out);
  else plain_cm2(p, pad, wpk, bias, residual, out);
  /* a non-clamp activation on each channel's rows at once (as the AVX2 kernel) */
  if (p->act_fn)
    for (size_t co = 0; co < p->cout; co++) {
      float* o = out + co * p->ostride;
      p->act_fn(p->act, o, o, p->oh * p->ow);
    }
}
