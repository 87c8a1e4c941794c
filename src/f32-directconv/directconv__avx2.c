/* Direct convolution for few input channels, AVX2 + FMA (see cnn_directconv_params in include/cnnrt/conv.h).
 * Register tile: CNN_DIRECT_CB (4) output channels x V vectors of 8 output columns of one output row (V = 3: 12
 * accumulators). Per tap (ci, ky, kx): V unaligned loads from the padded copy (stride 2: from the de-interleaved
 * phase plane, so a plain load), CB weight broadcasts, V*CB FMAs. Taps are walked through a table of offsets, so any
 * kernel size and channel count take the same code. Output rows are written straight into the NCHW planes (bias,
 * residual and clamp in registers, the last vector of a row masked). Loop order: channel block, then output row (the
 * caller's band of padded rows is sized for L1): 4 sequential output streams at a time. Row-outer order (64 output
 * planes written a row at a time) measured up to 2x slower on ConvNet's 1->64 layer, no faster on the stems. */
#include <immintrin.h>
#include <stdint.h>

#include "cnnrt/conv.h"

static const int32_t g_mask[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};

enum { CB = CNN_DIRECT_CB, MAXT = CNN_DIRECT_MAX_CIN * 64 };

/* columns [ox, ox + 8V) of output row (base: padded row oy*sh of channel 0) for the CB channels of one block */
static inline __attribute__((always_inline)) void tile(const float* base, const ptrdiff_t* toff, size_t nt,
                                                       const float* w, const __m256* vb, size_t nc, size_t ox,
                                                       size_t ow, const float* const* rrow, float* const* orow,
                                                       __m256 lo, __m256 hi, const size_t V) {
  __m256 acc[CB][3];
#pragma GCC unroll 4
  for (size_t c = 0; c < CB; c++)
#pragma GCC unroll 3
    for (size_t v = 0; v < V; v++) acc[c][v] = vb[c];
  const float* x = base + ox;
  for (size_t t = 0; t < nt; t++) {
    const float* s = x + toff[t];
    __m256 in[3];
#pragma GCC unroll 3
    for (size_t v = 0; v < V; v++) in[v] = _mm256_loadu_ps(s + 8 * v);
#pragma GCC unroll 4
    for (size_t c = 0; c < CB; c++) {
      const __m256 wb = _mm256_broadcast_ss(w + t * CB + c);
#pragma GCC unroll 3
      for (size_t v = 0; v < V; v++) acc[c][v] = _mm256_fmadd_ps(wb, in[v], acc[c][v]);
    }
  }
#pragma GCC unroll 4
  for (size_t c = 0; c < CB; c++) {
    if (c >= nc) break;
#pragma GCC unroll 3
    for (size_t v = 0; v < V; v++) {
      const size_t col = ox + 8 * v;
      if (col >= ow) break;
      __m256 a = acc[c][v];
      if (col + 8 <= ow) {
        if (rrow[c]) a = _mm256_add_ps(a, _mm256_loadu_ps(rrow[c] + col));
        _mm256_storeu_ps(orow[c] + col, _mm256_min_ps(hi, _mm256_max_ps(lo, a)));
      } else {
        const __m256i m = _mm256_loadu_si256((const __m256i*)(g_mask + 8 - (ow - col)));
        if (rrow[c]) a = _mm256_add_ps(a, _mm256_maskload_ps(rrow[c] + col, m));
        _mm256_maskstore_ps(orow[c] + col, m, _mm256_min_ps(hi, _mm256_max_ps(lo, a)));
      }
    }
  }
}

void cnn_f32_directconv__avx2(const cnn_directconv_params* p, const float* pad, const float* wpk, const float* bias,
                              const float* residual, float* out) {
  const size_t kh = p->kh, kw = p->kw, pw = p->pw, ow = p->ow, cout = p->cout;
  const size_t nt = p->cin * kh * kw, owv = cnn_round_up(ow, 8);
  ptrdiff_t toff[MAXT];
  for (size_t ci = 0, t = 0; ci < p->cin; ci++)
    for (size_t ky = 0; ky < kh; ky++)
      for (size_t kx = 0; kx < kw; kx++, t++)
        toff[t] = (ptrdiff_t)(ci * p->cstride + ky * pw) +
                  (p->sw == 1 ? (ptrdiff_t)kx : (ptrdiff_t)((kx & 1) * p->plane + (kx >> 1)));
  const __m256 lo = _mm256_set1_ps(p->min), hi = _mm256_set1_ps(p->max);
  for (size_t c0 = 0; c0 < cout; c0 += CB) {
    for (size_t oy = 0; oy < p->oh; oy++) {
      const float* base = pad + oy * p->sh * pw;
      const size_t nc = cnn_min_sz(CB, cout - c0);
      const float* w = wpk + c0 * nt;
      __m256 vb[CB];
      const float* rrow[CB];
      float* orow[CB];
      for (size_t c = 0; c < CB; c++) {
        vb[c] = _mm256_set1_ps(bias && c < nc ? bias[c0 + c] : 0.0f);
        const size_t o = (c0 + (c < nc ? c : 0)) * p->ostride + oy * ow;
        rrow[c] = residual ? residual + o : NULL;
        orow[c] = out + o;
      }
      size_t ox = 0;
      for (; ox + 24 <= owv; ox += 24) tile(base, toff, nt, w, vb, nc, ox, ow, rrow, orow, lo, hi, 3);
      if (ox + 16 <= owv)
        tile(base, toff, nt, w, vb, nc, ox, ow, rrow, orow, lo, hi, 2);
      else if (ox < owv)
        tile(base, toff, nt, w, vb, nc, ox, ow, rrow, orow, lo, hi, 1);
      if (p->act_fn)
        for (size_t c = 0; c < nc; c++) p->act_fn(p->act, orow[c], orow[c], ow);
    }
  }
}
