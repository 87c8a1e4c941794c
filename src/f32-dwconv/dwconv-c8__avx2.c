/* Depthwise convolution of 8 channels at once with the channels in the vector lanes, AVX2 + FMA (see
 * cnn_dwconv_c8_params in include/cnnrt/conv.h): for small planes (7x7, 14x14, 28x28) where one plane per call
 * leaves most of the lanes idle or spends its time on edges. The 8 input planes are transposed (8x8 blocks) into a
 * zero-bordered [ph][pwc][8] buffer, every tap is then one load and one FMA for 8 channels (4 output pixels per
 * iteration), and the [oh*ow][8] result is transposed back into the 8 contiguous output planes with bias, residual
 * and clamp (and a SiLU activation, dw-common__avx2.h) applied on the way. */
#include <immintrin.h>
#include <stdint.h>

#include "cnnrt/conv.h"

#include "../simd/transpose__avx2.h"
#include "dw-common__avx2.h"

static const int32_t g_mask[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};


/* Tap (ky, kx) of output (oy, ox) reads x[((oy*sh + ky)*pwc + ox*sw + kx)*8]. */
static inline __attribute__((always_inline)) void c8_compute(const cnn_dwconv_c8_params* p, const float* x,
                                                             const float* w8, __m256 vb, float* y, const size_t KH,
                                                             const size_t KW, const size_t S) {
  enum { MAXT = 64 };
  const size_t pwc = p->pwc, sh = p->sh, oh = p->oh, ow = p->ow;
  for (size_t oy = 0; oy < oh; oy++) {
    const float* xr = x + oy * sh * pwc * 8;
    float* yr = y + oy * ow * 8;
    size_t ox = 0;
    for (; ox + 4 <= ow; ox += 4) {
      __m256 a0 = vb, a1 = vb, a2 = vb, a3 = vb;
#pragma GCC unroll 16
      for (size_t ky = 0; ky < KH; ky++) {
        const float* q = xr + (ky * pwc + ox * S) * 8;
#pragma GCC unroll 16
        for (size_t kx = 0; kx < KW; kx++) {
          const __m256 wv = _mm256_load_ps(w8 + (ky * KW + kx) * 8);
          a0 = _mm256_fmadd_ps(wv, _mm256_load_ps(q + (kx + 0 * S) * 8), a0);
          a1 = _mm256_fmadd_ps(wv, _mm256_load_ps(q + (kx + 1 * S) * 8), a1);
          a2 = _mm256_fmadd_ps(wv, _mm256_load_ps(q + (kx + 2 * S) * 8), a2);
          a3 = _mm256_fmadd_ps(wv, _mm256_load_ps(q + (kx + 3 * S) * 8), a3);
        }
      }
      _mm256_store_ps(yr + (ox + 0) * 8, a0);
      _mm256_store_ps(yr + (ox + 1) * 8, a1);
      _mm256_store_ps(yr + (ox + 2) * 8, a2);
      _mm256_store_ps(yr + (ox + 3) * 8, a3);
    }
    for (; ox < ow; ox++) {
      __m256 a0 = vb, b0 = _mm256_setzero_ps();
#pragma GCC unroll 16
      for (size_t ky = 0; ky < KH; ky++) {
        const float* q = xr + (ky * pwc + ox * S) * 8;
#pragma GCC unroll 16
        for (size_t kx = 0; kx < KW; kx++) {
          const __m256 wv = _mm256_load_ps(w8 + (ky * KW + kx) * 8);
          if (kx & 1)
            b0 = _mm256_fmadd_ps(wv, _mm256_load_ps(q + kx * 8), b0);
          else
            a0 = _mm256_fmadd_ps(wv, _mm256_load_ps(q + kx * 8), a0);
        }
      }
      _mm256_store_ps(yr + ox * 8, _mm256_add_ps(a0, b0));
    }
  }
}

__attribute__((optimize("no-tree-loop-distribute-patterns")))
void cnn_f32_dwconv_c8__avx2(const cnn_dwconv_c8_params* p, const float* in, const float* w8, const float* bias,
                             const float* residual, float* out, float* xbuf, float* ybuf) {
  const size_t H = p->h, W = p->w, HW = H * W, OHW = p->oh * p->ow, pwc = p->pwc, ph = p->ph, pt = p->pt, pl = p->pl;
  const size_t OS = p->ostride; /* output plane stride */
  const __m256 z = _mm256_setzero_ps();
  /* 1. zero-bordered transposed input: rows [0, ph), columns [0, pwc), 8 channels per pixel */
  const size_t ncol = pl < pwc ? cnn_min_sz(W, pwc - pl) : 0; /* input columns that land in the buffer */
  for (size_t r = 0; r < ph; r++) {
    float* xr = xbuf + r * pwc * 8;
    const ptrdiff_t iy = (ptrdiff_t)r - (ptrdiff_t)pt;
    if (iy < 0 || iy >= (ptrdiff_t)H || ncol == 0) {
      for (size_t c = 0; c < pwc; c++) _mm256_store_ps(xr + c * 8, z);
      continue;
    }
    for (size_t c = 0; c < pl && c < pwc; c++) _mm256_store_ps(xr + c * 8, z);
    for (size_t c = pl + ncol; c < pwc; c++) _mm256_store_ps(xr + c * 8, z);
    const float* src = in + (size_t)iy * W;
    float* dst = xr + pl * 8;
    __m256 v[8];
    if (ncol >= 8) {
      for (size_t j = 0;; j += 8) {
        if (j + 8 > ncol) j = ncol - 8; /* last block overlaps the previous one (same values) */
        for (int c = 0; c < 8; c++) v[c] = _mm256_loadu_ps(src + c * HW + j);
        cnn_avx2_transpose8x8(v);
        for (int k = 0; k < 8; k++) _mm256_store_ps(dst + (j + k) * 8, v[k]);
        if (j + 8 == ncol) break;
      }
    } else {
      const __m256i m = _mm256_loadu_si256((const __m256i*)(g_mask + 8 - ncol));
      for (int c = 0; c < 8; c++) v[c] = _mm256_maskload_ps(src + c * HW, m);
      cnn_avx2_transpose8x8(v);
      for (size_t k = 0; k < ncol; k++) _mm256_store_ps(dst + k * 8, v[k]);
    }
  }
  /* 2. all taps, bias included */
  const __m256 vb = bias ? _mm256_loadu_ps(bias) : z;
  const size_t kh = p->kh, kw = p->kw;
  if (p->sw == 1) {
    if (kh == 3 && kw == 3)
      c8_compute(p, xbuf, w8, vb, ybuf, 3, 3, 1);
    else if (kh == 5 && kw == 5)
      c8_compute(p, xbuf, w8, vb, ybuf, 5, 5, 1);
    else
      c8_compute(p, xbuf, w8, vb, ybuf, kh, kw, 1);
  } else {
    if (kh == 3 && kw == 3)
      c8_compute(p, xbuf, w8, vb, ybuf, 3, 3, 2);
    else if (kh == 5 && kw == 5)
      c8_compute(p, xbuf, w8, vb, ybuf, 5, 5, 2);
    else
      c8_compute(p, xbuf, w8, vb, ybuf, kh, kw, p->sw);
  }
  /* 3. back to 8 planes: + residual, clamp, and SiLU in registers when that is the activation (the same bits as the
   * act_fn pass it replaces) */
  const __m256 lo = _mm256_set1_ps(p->min), hi = _mm256_set1_ps(p->max);
  const int silu = OHW >= 8 && cnn_dw_fuse_silu(p->act_fn, p->act);
  if (OHW >= 8) {
    size_t done = 0; /* outputs [0, done) of every plane are final */
    for (size_t i = 0;; i += 8) {
      if (i + 8 > OHW) i = OHW - 8;
      __m256 v[8];
      for (int k = 0; k < 8; k++) v[k] = _mm256_load_ps(ybuf + (i + k) * 8);
      cnn_avx2_transpose8x8(v);
      /* lanes below `done` were written by the previous block (possibly onto an in-place residual): keep them */
      const size_t keep = done - i; /* 0 except for an overlapping last block */
      const __m256 km = _mm256_castsi256_ps(_mm256_loadu_si256((const __m256i*)(g_mask + 8 - keep)));
      for (int c = 0; c < 8; c++) {
        float* o = out + c * OS + i;
        __m256 a = v[c];
        if (residual) a = _mm256_add_ps(a, _mm256_loadu_ps(residual + c * OS + i));
        a = _mm256_min_ps(hi, _mm256_max_ps(lo, a));
        if (silu) a = cnn_dw_silu8(a);
        if (keep) a = _mm256_blendv_ps(a, _mm256_loadu_ps(o), km);
        _mm256_storeu_ps(o, a);
      }
      done = i + 8;
      if (done == OHW) break;
    }
  } else {
    for (size_t i = 0; i < OHW; i++)
      for (size_t c = 0; c < 8; c++) {
        float a = ybuf[i * 8 + c];
        if (residual) a += residual[c * OS + i];
        a = a < p->min ? p->min : a;
        a = a > p->max ? p->max : a;
        out[c * OS + i] = a;
      }
  }
  if (p->act_fn && !silu) {
    /* contiguous planes: one call over all 8 (per 7x7 plane a call is 3 vectors and a masked tail, and the SiLU
     * pass took 2.4x as long: 1152 channels at 7x7 31.5 -> 13.3 us, 576 at 14x14 from 28x28 15.7 -> 6.5 us) */
    if (OS == OHW)
      p->act_fn(p->act, out, out, 8 * OHW);
    else
      for (size_t c = 0; c < 8; c++) p->act_fn(p->act, out + c * OS, out + c * OS, OHW);
  }
}
