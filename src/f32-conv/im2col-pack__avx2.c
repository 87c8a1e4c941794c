/* Implicit-GEMM packing of B straight from the NCHW input, AVX2 (see cnn_conv_pack_b_fn in include/cnnrt/conv.h).
 *
 * Each 16-float row of a panel is assembled in two YMM registers: every segment of the panel (a run of pixels on
 * one output row) contributes a masked load whose mask keeps exactly the lanes that read inside the input plane,
 * so padding, clipping and the zero tail past n all come for free (masked-off lanes load 0 and are never
 * accessed). Stride 1 loads contiguous runs; stride 2 de-interleaves two vectors (interior) or gathers (edges);
 * larger strides gather. Panels other than 16 wide go to the scalar kernel. */
#include <immintrin.h>
#include <stdint.h>

#include "cnnrt/conv.h"
#include "im2col.h"

/* lanes l < b of loadu(g_lt + 16 - b + l0): all-ones; lanes l >= a of loadu(g_ge + 16 - a + l0): all-ones */
static const int32_t g_lt[32] = {-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
                                 0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0};
static const int32_t g_ge[32] = {0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,
                                 -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1};

/* 32-lane versions for the raw (interleaved) elements of the stride-2 loads: lanes r < b of
 * loadu(g_lt32 + 32 - b + r0) and lanes r >= a of loadu(g_ge32 + 32 - a + r0) are all-ones */
static const int32_t g_lt32[64] = {-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
                                   -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
                                   0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,
                                   0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0};
static const int32_t g_ge32[64] = {0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,
                                   0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,
                                   -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
                                   -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1};

/* Stride 2: panel lanes [a, b) (0 <= a <= b <= 16) read the even raw elements 2a .. 2b-2 of p[0..31]; masks of
 * raw lanes [2a, 2b-1) for the four 8-float vectors of p (all zero when a == b). */
static inline void raw_masks_s2(size_t a, size_t b, __m256i m[4]) {
  const size_t ra = 2 * a, rb = b > a ? 2 * b - 1 : ra;
  for (size_t i = 0; i < 4; i++) {
    const __m256i lt = _mm256_loadu_si256((const __m256i*)(g_lt32 + 32 - rb + 8 * i));
    const __m256i ge = _mm256_loadu_si256((const __m256i*)(g_ge32 + 32 - ra + 8 * i));
    m[i] = _mm256_and_si256(lt, ge);
  }
}

/* even elements of p[0..31] under the raw masks (masked-off lanes are not accessed and give 0) */
static inline void maskload_even16(const float* p, const __m256i m[4], __m256* v0, __m256* v1) {
  const __m256 a = _mm256_maskload_ps(p, m[0]), b = _mm256_maskload_ps(p + 8, m[1]);
  const __m256 c = _mm256_maskload_ps(p + 16, m[2]), d = _mm256_maskload_ps(p + 24, m[3]);
  *v0 = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(a, b, 0x88)), 0xD8));
  *v1 = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(c, d, 0x88)), 0xD8));
}

/* masks of lanes [a, b) (0 <= a <= b <= 16) for the low (lanes 0-7) and high (8-15) vectors */
static inline void lane_masks(size_t a, size_t b, __m256i* lo, __m256i* hi) {
  const __m256i lt0 = _mm256_loadu_si256((const __m256i*)(g_lt + 16 - b));
  const __m256i lt1 = _mm256_loadu_si256((const __m256i*)(g_lt + 16 - b + 8));
  const __m256i ge0 = _mm256_loadu_si256((const __m256i*)(g_ge + 16 - a));
  const __m256i ge1 = _mm256_loadu_si256((const __m256i*)(g_ge + 16 - a + 8));
  *lo = _mm256_and_si256(lt0, ge0);
  *hi = _mm256_and_si256(lt1, ge1);
}

/* p + off floats, computed on integers: the result may lie outside the object (only masked-on lanes are read). */
static inline const float* offset_ptr(const float* p, ptrdiff_t off) {
  return (const float*)((uintptr_t)p + (uintptr_t)(off * (ptrdiff_t)sizeof(float)));
}

/* even elements of p[0..31] (p[31] is not read) */
static inline void load_even16(const float* p, __m256* v0, __m256* v1) {
  static const int32_t m7[8] = {-1, -1, -1, -1, -1, -1, -1, 0};
  const __m256 a = _mm256_loadu_ps(p), b = _mm256_loadu_ps(p + 8), c = _mm256_loadu_ps(p + 16);
  const __m256 d = _mm256_maskload_ps(p + 24, _mm256_loadu_si256((const __m256i*)m7));
  /* shuffle gives [a0 a2 b0 b2 | a4 a6 b4 b6]; the 64-bit permute restores the order */
  *v0 = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(a, b, 0x88)), 0xD8));
  *v1 = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(c, d, 0x88)), 0xD8));
}

/* Lanes [a, b) of a panel row that pixels u in [0, len) of a segment starting at lane j fill when tap column x
 * of pixel u is ix + u*sw and must satisfy 0 <= x < W. */
static inline void valid_lanes(ptrdiff_t ix, ptrdiff_t sw, ptrdiff_t W, size_t j, size_t len, size_t* a, size_t* b) {
  ptrdiff_t ulo, uhi;
  if (sw == 1) {
    ulo = ix < 0 ? -ix : 0;
    uhi = W - ix;
  } else {
    ulo = ix < 0 ? (-ix + sw - 1) / sw : 0;
    uhi = ix < W ? (W - 1 - ix) / sw + 1 : 0;
  }
  if (uhi > (ptrdiff_t)len) uhi = (ptrdiff_t)len;
  if (ulo >= uhi) ulo = uhi = 0;
  *a = j + (size_t)ulo;
  *b = j + (size_t)uhi;
}

/* Filters up to this size get their per-panel masks precomputed (every (segment, kx) pair and (segment, ky) row
 * flag); larger ones compute them per row of B. */
#define MAX_TAB 16

void cnn_conv_pack_b_im2col__avx2(const cnn_conv_im2col* g, const float* in, size_t k0, size_t kc, size_t n0,
                                  size_t n, size_t nr, float* packed, ptrdiff_t* ktab) {
  if (nr != 16) {
    cnn_conv_pack_b_im2col__scalar(g, in, k0, kc, n0, n, nr, packed, ktab);
    return;
  }
  const ptrdiff_t H = (ptrdiff_t)g->h, W = (ptrdiff_t)g->w, sw = (ptrdiff_t)g->sw;
  const ptrdiff_t dh = (ptrdiff_t)g->dh, dw = (ptrdiff_t)g->dw;
  const size_t kh = g->kh, kw = g->kw;
  const ptrdiff_t* koff = ktab;
  const ptrdiff_t* kyi = ktab + kc;
  const ptrdiff_t* kxi = ktab + 2 * kc;
  k_table(g, k0, kc, ktab);
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  const __m256i vsw = _mm256_set1_epi32((int)sw), vsw8 = _mm256_set1_epi32((int)(8 * sw));
  const int tabulate = kh <= MAX_TAB && kw <= MAX_TAB;
  seg_t s[16];
  ptrdiff_t sbase[16];       /* input offset of the segment's pixel 0, tap (0, 0) */
  __m256i gi0[16], gi1[16];  /* gather indices of the lanes, (l - j)*sw */
  __m256i m0[16][MAX_TAB], m1[16][MAX_TAB]; /* lanes valid for tap column kx */
  unsigned char rv[16][MAX_TAB];            /* row ky inside the plane */
  __m256i rm[16][MAX_TAB][4];               /* stride 2: raw masks of maskload_even16 for tap column kx */
  const int s2 = sw == 2 && tabulate;
  for (size_t p0 = 0; p0 < n; p0 += 16) {
    const size_t nv = cnn_min_sz(16, n - p0);
    const size_t ns = segments(g, n0 + p0, nv, s);
    float* dst = packed + p0 * kc;
    if (ns == 1 && s[0].interior && nv == 16 && sw <= 2) {
      /* the hot case: one run of 16 pixels with every tap inside the input */
      const float* src = in + s[0].iy * W + s[0].ix;
      /* The rows of B come from up to kc different input lines, too many streams for the hardware prefetcher:
       * prefetch the line the next panel will need beyond this one's (prefetches never fault). */
      if (sw == 1) {
        for (size_t t = 0; t < kc; t++) {
          const float* p = src + koff[t];
          _mm_prefetch((const char*)offset_ptr(p, 31), _MM_HINT_T0);
          _mm256_store_ps(dst + t * 16, _mm256_loadu_ps(p));
          _mm256_store_ps(dst + t * 16 + 8, _mm256_loadu_ps(p + 8));
        }
      } else {
        for (size_t t = 0; t < kc; t++) {
          __m256 v0, v1;
          _mm_prefetch((const char*)offset_ptr(src + koff[t], 47), _MM_HINT_T0);
          _mm_prefetch((const char*)offset_ptr(src + koff[t], 63), _MM_HINT_T0);
          load_even16(src + koff[t], &v0, &v1);
          _mm256_store_ps(dst + t * 16, v0);
          _mm256_store_ps(dst + t * 16 + 8, v1);
        }
      }
      continue;
    }
    for (size_t q = 0; q < ns; q++) {
      sbase[q] = s[q].iy * W + s[q].ix;
      if (sw != 1) {
        gi0[q] = _mm256_mullo_epi32(_mm256_sub_epi32(lane, _mm256_set1_epi32((int)s[q].j)), vsw);
        gi1[q] = _mm256_add_epi32(gi0[q], vsw8);
      }
      if (tabulate) {
        for (size_t kx = 0; kx < kw; kx++) {
          size_t a, b;
          valid_lanes(s[q].ix + (ptrdiff_t)kx * dw, sw, W, s[q].j, s[q].len, &a, &b);
          if (s2)
            raw_masks_s2(a, b, rm[q][kx]);
          else
            lane_masks(a, b, &m0[q][kx], &m1[q][kx]);
        }
        for (size_t ky = 0; ky < kh; ky++) {
          const ptrdiff_t iy = s[q].iy + (ptrdiff_t)ky * dh;
          rv[q][ky] = iy >= 0 && iy < H;
        }
      }
    }
    for (size_t t = 0; t < kc; t++) {
      __m256 v0 = _mm256_setzero_ps(), v1 = _mm256_setzero_ps();
      const size_t ky = (size_t)kyi[t], kx = (size_t)kxi[t];
      for (size_t q = 0; q < ns; q++) {
        __m256i k0m, k1m;
        if (s2) {
          /* lane l reads in[sbase + koff + 2*(l - j)]: raw element 2l of p */
          if (!rv[q][ky]) continue;
          __m256 e0, e1;
          maskload_even16(offset_ptr(in, sbase[q] + koff[t] - 2 * (ptrdiff_t)s[q].j), rm[q][kx], &e0, &e1);
          v0 = _mm256_or_ps(v0, e0);
          v1 = _mm256_or_ps(v1, e1);
          continue;
        }
        if (tabulate) {
          if (!rv[q][ky]) continue;
          k0m = m0[q][kx];
          k1m = m1[q][kx];
        } else {
          const ptrdiff_t iy = s[q].iy + (ptrdiff_t)ky * dh;
          if (iy < 0 || iy >= H) continue;
          size_t a, b;
          valid_lanes(s[q].ix + (ptrdiff_t)kx * dw, sw, W, s[q].j, s[q].len, &a, &b);
          lane_masks(a, b, &k0m, &k1m);
        }
        /* lane l reads in[sbase + koff + (l - j)*sw]; masked-off lanes are not accessed */
        const float* base = offset_ptr(in, sbase[q] + koff[t]);
        if (sw == 1) {
          const float* b = offset_ptr(base, -(ptrdiff_t)s[q].j);
          _mm_prefetch((const char*)offset_ptr(b, 31), _MM_HINT_T0);
          v0 = _mm256_or_ps(v0, _mm256_maskload_ps(b, k0m));
          v1 = _mm256_or_ps(v1, _mm256_maskload_ps(offset_ptr(b, 8), k1m));
        } else {
          v0 = _mm256_or_ps(v0, _mm256_mask_i32gather_ps(_mm256_setzero_ps(), base, gi0[q], _mm256_castsi256_ps(k0m), 4));
          v1 = _mm256_or_ps(v1, _mm256_mask_i32gather_ps(_mm256_setzero_ps(), base, gi1[q], _mm256_castsi256_ps(k1m), 4));
        }
      }
      _mm256_store_ps(dst + t * 16, v0);
      _mm256_store_ps(dst + t * 16 + 8, v1);
    }
  }
}
