/* Direct convolution for few input channels, AVX2 + FMA (see cnn_directconv_params in include/cnnrt/conv.h).
 * Register tile: CNN_DIRECT_CB (4) output channels x V vectors of 8 output columns of one output row (V = 3: 12
 * accumulators). Per tap (ci, ky, kx): V unaligned loads from the padded copy (stride 2: from the de-interleaved
 * phase plane, so a plain load), CB weight broadcasts, V*CB FMAs. Taps are walked through a table of offsets, so any
 * kernel size and channel count take the same code. Output rows are written straight into the NCHW planes (bias,
 * residual and clamp in registers, the last vector of a row masked). Loop order: channel block, then output row (the
 * caller's band of padded rows is sized for L1): 4 sequential output streams at a time. Row-outer order (64 output
 * planes written a row at a time) measured up to 2x slower on ConvNet's 1->64 layer, no faster on the stems.
 * The clamp is specialized (none / lower bound only, as ReLU / both): the same values, fewer instructions.
 * Fused 2x2 max-pool (p->pool): the tile is 6 channels x 16 columns (V = 2, 12 accumulators; the channels of two
 * packed blocks, one weight pointer per channel) of two output rows, one after the other; row 0's clamped outputs are
 * reduced to their column-pair maxima (6 registers) while row 1 is accumulated, then row 1's pairs join them and 8
 * pooled values per channel are stored: no full-resolution output is written. Channels past the last pair of
 * 6-groups (64 = 5 x 12 + 4) take the 4-channel tile (4 x 16, 8 accumulators). The 6-channel tile measured 0.86-0.92x
 * the time of the 4-channel one on ConvNet's 1->64 layer, 0.81-0.97x on 3->64 (kernel alone, alternated per block). */
#include <immintrin.h>
#include <math.h>
#include <stdint.h>

#include "cnnrt/conv.h"
#include "direct-common.h"

static const int32_t g_mask[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};

enum { CB = CNN_DIRECT_CB, MAXT = CNN_DIRECT_MAX_CIN * 64 };

/* cm: 0 no clamp (lo = -inf, hi = +inf), 1 lower bound only (hi = +inf), 2 both. min(+inf, x) and max(-inf, x) are
 * x for every x (NaN included: MAXPS/MINPS return their second operand then), so skipping them changes nothing. */
static inline __attribute__((always_inline)) __m256 clampv(__m256 a, __m256 lo, __m256 hi, const int cm) {
  if (cm >= 1) a = _mm256_max_ps(lo, a);
  if (cm == 2) a = _mm256_min_ps(hi, a);
  return a;
}

/* acc[c][v] = bias + sum over the taps of w * in, for the CB channels and V vectors at x */
static inline __attribute__((always_inline)) void accumulate(__m256 acc[CB][3], const float* x, const ptrdiff_t* toff,
                                                             size_t nt, const float* w, const __m256* vb,
                                                             const size_t V) {
#pragma GCC unroll 4
  for (size_t c = 0; c < CB; c++)
#pragma GCC unroll 3
    for (size_t v = 0; v < V; v++) acc[c][v] = vb[c];
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
}

/* columns [ox, ox + 8V) of output row (base: padded row oy*sh of channel 0) for the CB channels of one block */
static inline __attribute__((always_inline)) void tile(const float* base, const ptrdiff_t* toff, size_t nt,
                                                       const float* w, const __m256* vb, size_t nc, size_t ox,
                                                       size_t ow, const float* const* rrow, float* const* orow,
                                                       __m256 lo, __m256 hi, const size_t V, const int cm) {
  __m256 acc[CB][3];
  accumulate(acc, base + ox, toff, nt, w, vb, V);
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
        _mm256_storeu_ps(orow[c] + col, clampv(a, lo, hi, cm));
      } else {
        const __m256i m = _mm256_loadu_si256((const __m256i*)(g_mask + 8 - (ow - col)));
        if (rrow[c]) a = _mm256_add_ps(a, _mm256_maskload_ps(rrow[c] + col, m));
        _mm256_maskstore_ps(orow[c] + col, m, clampv(a, lo, hi, cm));
      }
    }
  }
}

/* pooled columns [ox/2, ox/2 + 4V) (those < pw) of the pooled row whose output rows start at padded rows base and
 * base + rstep, for the CB channels of one block; V = 2 (16 output columns) or 1 (8) */
static inline __attribute__((always_inline)) void tile_pool(const float* base, size_t rstep, const ptrdiff_t* toff,
                                                            size_t nt, const float* w, const __m256* vb, size_t nc,
                                                            size_t ox, size_t pw, float* const* orow, __m256 lo,
                                                            __m256 hi, const size_t V, const int cm) {
  const __m256 ninf = _mm256_set1_ps(-INFINITY);
  __m256 m[CB];
  __m256 acc[CB][3];
  accumulate(acc, base + ox, toff, nt, w, vb, V);
#pragma GCC unroll 4
  for (size_t c = 0; c < CB; c++) { /* row 0: even columns, then odd ones (max(v, m): v > m ? v : m) */
    const __m256 a = clampv(acc[c][0], lo, hi, cm), b = V == 2 ? clampv(acc[c][1], lo, hi, cm) : a;
    m[c] = _mm256_max_ps(_mm256_shuffle_ps(a, b, 0x88), ninf);
    m[c] = _mm256_max_ps(_mm256_shuffle_ps(a, b, 0xDD), m[c]);
  }
  accumulate(acc, base + rstep + ox, toff, nt, w, vb, V);
  const size_t q = ox / 2, n = cnn_min_sz(4 * V, pw - q);
#pragma GCC unroll 4
  for (size_t c = 0; c < CB; c++) {
    if (c >= nc) break;
    const __m256 a = clampv(acc[c][0], lo, hi, cm), b = V == 2 ? clampv(acc[c][1], lo, hi, cm) : a;
    __m256 r = _mm256_max_ps(_mm256_shuffle_ps(a, b, 0x88), m[c]);
    r = _mm256_max_ps(_mm256_shuffle_ps(a, b, 0xDD), r);
    /* lanes hold columns pairs (0,1 2,3 8,9 10,11 | 4,5 6,7 12,13 14,15): 64-bit chunks 0, 2, 1, 3 */
    r = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(r), 0xD8));
    if (n == 8)
      _mm256_storeu_ps(orow[c] + q, r);
    else if (n == 4)
      _mm_storeu_ps(orow[c] + q, _mm256_castps256_ps128(r));
    else
      _mm256_maskstore_ps(orow[c] + q, _mm256_loadu_si256((const __m256i*)(g_mask + 8 - n)), r);
  }
}

/* The fused pool with 6 output channels x 16 columns (12 accumulators): channels c0 .. c0+5 (c0 + 6 <= cout) of
 * two packed blocks; channel c's weight of tap t at wc[c][t * CB]. V = 2 (16 columns) or 1 (8). */
static inline __attribute__((always_inline)) void tile_pool6(const float* base, size_t rstep, const ptrdiff_t* toff,
                                                             size_t nt, const float* const* wc, const float* b6,
                                                             size_t ox, size_t pw, float* const* orow, __m256 lo,
                                                             __m256 hi, const size_t V, const int cm) {
  const __m256 ninf = _mm256_set1_ps(-INFINITY);
  __m256 m[6];
  __m256 acc[6][2];
#pragma GCC unroll 2
  for (size_t r = 0; r < 2; r++) {
#pragma GCC unroll 6
    for (size_t c = 0; c < 6; c++)
#pragma GCC unroll 2
      for (size_t v = 0; v < V; v++) acc[c][v] = _mm256_broadcast_ss(b6 + c);
    const float* x = base + r * rstep + ox;
    for (size_t t = 0; t < nt; t++) {
      const float* s = x + toff[t];
      __m256 in[2];
#pragma GCC unroll 2
      for (size_t v = 0; v < V; v++) in[v] = _mm256_loadu_ps(s + 8 * v);
#pragma GCC unroll 6
      for (size_t c = 0; c < 6; c++) {
        const __m256 wb = _mm256_broadcast_ss(wc[c] + t * CB);
#pragma GCC unroll 2
        for (size_t v = 0; v < V; v++) acc[c][v] = _mm256_fmadd_ps(wb, in[v], acc[c][v]);
      }
    }
#pragma GCC unroll 6
    for (size_t c = 0; c < 6; c++) {
      const __m256 a = clampv(acc[c][0], lo, hi, cm), b = V == 2 ? clampv(acc[c][1], lo, hi, cm) : a;
      m[c] = _mm256_max_ps(_mm256_shuffle_ps(a, b, 0x88), r == 0 ? ninf : m[c]);
      m[c] = _mm256_max_ps(_mm256_shuffle_ps(a, b, 0xDD), m[c]);
    }
  }
  const size_t q = ox / 2, n = cnn_min_sz(4 * V, pw - q);
#pragma GCC unroll 6
  for (size_t c = 0; c < 6; c++) {
    const __m256 r = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(m[c]), 0xD8));
    if (n == 8)
      _mm256_storeu_ps(orow[c] + q, r);
    else if (n == 4)
      _mm_storeu_ps(orow[c] + q, _mm256_castps256_ps128(r));
    else
      _mm256_maskstore_ps(orow[c] + q, _mm256_loadu_si256((const __m256i*)(g_mask + 8 - n)), r);
  }
}

static inline __attribute__((always_inline)) void run_plain(const cnn_directconv_params* p, const float* pad,
                                                            const float* wpk, const float* bias,
                                                            const float* residual, float* out, const int cm) {
  const size_t pw = p->pw, ow = p->ow, cout = p->cout, owv = cnn_round_up(ow, 8);
  ptrdiff_t toff[MAXT];
  const size_t nt = cnn_direct_tap_offsets(p, toff);
  const __m256 lo = _mm256_set1_ps(p->min), hi = _mm256_set1_ps(p->max);
  for (size_t c0 = 0; c0 < cout; c0 += CB) {
    const size_t nc = cnn_min_sz(CB, cout - c0);
    const float* w = wpk + c0 * nt;
    __m256 vb[CB];
    for (size_t c = 0; c < CB; c++) vb[c] = _mm256_set1_ps(bias && c < nc ? bias[c0 + c] : 0.0f);
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
      for (; ox + 24 <= owv; ox += 24) tile(base, toff, nt, w, vb, nc, ox, ow, rrow, orow, lo, hi, 3, cm);
      if (ox + 16 <= owv)
        tile(base, toff, nt, w, vb, nc, ox, ow, rrow, orow, lo, hi, 2, cm);
      else if (ox < owv)
        tile(base, toff, nt, w, vb, nc, ox, ow, rrow, orow, lo, hi, 1, cm);
    }
  }
}

static inline __attribute__((always_inline)) void run_pool(const cnn_directconv_params* p, const float* pad,
                                                           const float* wpk, const float* bias, float* out,
                                                           const int cm) {
  const size_t cout = p->cout, ppw = p->ow / 2, rstep = p->sh * p->pw;
  const size_t owp = cnn_round_up(2 * ppw, 8); /* <= round_up(ow, 8): the columns read stay in bounds */
  ptrdiff_t toff[MAXT];
  const size_t nt = cnn_direct_tap_offsets(p, toff);
  const __m256 lo = _mm256_set1_ps(p->min), hi = _mm256_set1_ps(p->max);
  size_t c0 = 0;
  /* channels in groups of 6, two at a time (c0 stays a multiple of CB for the 4-channel tile of the rest) */
  const float zero[6] = {0, 0, 0, 0, 0, 0};
  for (; c0 + 12 <= cout; c0 += 12)
    for (size_t g = c0; g < c0 + 12; g += 6) {
      const float* wc[6];
      for (size_t c = 0; c < 6; c++) wc[c] = wpk + (g + c) / CB * nt * CB + (g + c) % CB;
      const float* b6 = bias ? bias + g : zero;
      for (size_t i = 0; i < p->oh / 2; i++) {
        const float* base = pad + 2 * i * rstep;
        float* orow[6];
        for (size_t c = 0; c < 6; c++) orow[c] = out + (g + c) * p->ostride + i * ppw;
        size_t ox = 0;
        for (; ox + 16 <= owp; ox += 16) tile_pool6(base, rstep, toff, nt, wc, b6, ox, ppw, orow, lo, hi, 2, cm);
        if (ox < owp) tile_pool6(base, rstep, toff, nt, wc, b6, ox, ppw, orow, lo, hi, 1, cm);
      }
    }
  for (; c0 < cout; c0 += CB) {
    const size_t nc = cnn_min_sz(CB, cout - c0);
    const float* w = wpk + c0 * nt;
    __m256 vb[CB];
    for (size_t c = 0; c < CB; c++) vb[c] = _mm256_set1_ps(bias && c < nc ? bias[c0 + c] : 0.0f);
    for (size_t i = 0; i < p->oh / 2; i++) {
      const float* base = pad + 2 * i * rstep;
      float* orow[CB];
      for (size_t c = 0; c < CB; c++) orow[c] = out + (c0 + (c < nc ? c : 0)) * p->ostride + i * ppw;
      size_t ox = 0;
      for (; ox + 16 <= owp; ox += 16) tile_pool(base, rstep, toff, nt, w, vb, nc, ox, ppw, orow, lo, hi, 2, cm);
      if (ox < owp) tile_pool(base, rstep, toff, nt, w, vb, nc, ox, ppw, orow, lo, hi, 1, cm);
    }
  }
}

/* One function per path and clamp variant (cm: 0 none, 1 lower bound only, 2 both): kept apart, each gets its own
 * register allocation (all inlined into one, GCC reloaded values from the stack inside some tap loops). */
#define VARIANTS(cm)                                                                                                  \
  static __attribute__((noinline)) void plain_cm##cm(const cnn_directconv_params* p, const float* pad,               \
                                                     const float* wpk, const float* bias, const float* residual,    \
                                                     float* out) {                                                  \
    run_plain(p, pad, wpk, bias, residual, out, cm);                                                                 \
  }                                                                                                                  \
  static __attribute__((noinline)) void pool_cm##cm(const cnn_directconv_params* p, const float* pad,                \
                                                    const float* wpk, const float* bias, float* out) {              \
    run_pool(p, pad, wpk, bias, out, cm);                                                                            \
  }
VARIANTS(0)
VARIANTS(1)
VARIANTS(2)

void cnn_f32_directconv__avx2(const cnn_directconv_params* p, const float* pad, const float* wpk, const float* bias,
                              const float* residual, float* out) {
  const int cm = p->max == INFINITY && p->min == -INFINITY ? 0 : p->max == INFINITY ? 1 : 2;
  if (p->pool) {
    if (cm == 0) pool_cm0(p, pad, wpk, bias, out);
    else if (cm == 1) pool_cm1(p, pad, wpk, bias, out);
    else pool_cm2(p, pad, wpk, bias, out);
  } else {
    if (cm == 0) plain_cm0(p, pad, wpk, bias, residual, out);
    else if (cm == 1) plain_cm1(p, pad, wpk, bias, residual, out);
    else plain_cm2(p, pad, wpk, bias, residual, out);
  }
  /* a non-clamp activation on each channel's rows at once, not per row (see cnn_dwconv_params) */
  if (p->act_fn)
    for (size_t co = 0; co < p->cout; co++) {
      float* o = out + co * p->ostride;
      p->act_fn(p->act, o, o, p->oh * p->ow);
    }
}
