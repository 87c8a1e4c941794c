/* 2-D max / average pooling and global pooling, NCHW, AVX2.
 * pool2d: 8 adjacent outputs of a row at a time for stride 1 and 2 where the window lies horizontally inside the
 * input (stride 2: two loads + an even/odd shuffle per tap, the lane order fixed once at the end; a row's last
 * block overlaps the previous one rather than leaving a remainder); the border columns, other strides and rows
 * with no valid tap go through the scalar per-output code. Taps are visited in the
 * scalar kernel's order (ky, then kx ascending) and averages divide by the same float, so results are bit-identical
 * to cnn_f32_pool2d__scalar. */
#include <immintrin.h>
#include <math.h>
#include <string.h>

#include "cnnrt/eltwise.h"
#include "pool-common.h"

/* acc = max(v, acc) with the scalar "v > m ? v : m" semantics, or acc + v. */
static inline __m256 acc_op(int is_max, __m256 v, __m256 acc) {
  return is_max ? _mm256_max_ps(v, acc) : _mm256_add_ps(acc, v);
}

/* 8 outputs whose windows start at r0[0..8) (stride 1) or r0[0, 2, .., 14] (stride 2), over nrows input rows
 * row_step apart. The caller guarantees every load is in bounds. */
static inline __m256 pool8(int is_max, int stride2, const float* r0, size_t nrows, size_t row_step, size_t kw,
                           size_t dw) {
  __m256 acc = is_max ? _mm256_set1_ps(-INFINITY) : _mm256_setzero_ps();
  for (size_t ky = 0; ky < nrows; ky++) {
    const float* r = r0 + ky * row_step;
    if (!stride2) {
      for (size_t kx = 0; kx < kw; kx++) acc = acc_op(is_max, _mm256_loadu_ps(r + kx * dw), acc);
    } else if (dw == 1) {
      /* one pair of loads serves taps kx (even positions) and kx + 1 (odd positions) */
      size_t kx = 0;
      for (; kx + 2 <= kw; kx += 2) {
        const __m256 lo = _mm256_loadu_ps(r + kx), hi = _mm256_loadu_ps(r + kx + 8);
        acc = acc_op(is_max, _mm256_shuffle_ps(lo, hi, 0x88), acc);
        acc = acc_op(is_max, _mm256_shuffle_ps(lo, hi, 0xDD), acc);
      }
      if (kx < kw) {
        const __m256 lo = _mm256_loadu_ps(r + kx), hi = _mm256_loadu_ps(r + kx + 8);
        acc = acc_op(is_max, _mm256_shuffle_ps(lo, hi, 0x88), acc);
      }
    } else {
      for (size_t kx = 0; kx < kw; kx++) {
        const __m256 lo = _mm256_loadu_ps(r + kx * dw), hi = _mm256_loadu_ps(r + kx * dw + 8);
        acc = acc_op(is_max, _mm256_shuffle_ps(lo, hi, 0x88), acc);
      }
    }
  }
  if (stride2) /* lanes hold columns 0,2,8,10 | 4,6,12,14 (x2): restore 0,2,4,..,14 */
    acc = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(acc), 0xD8));
  return acc;
}

static void pool2d_impl(int is_max, int stride2, const cnn_pool2d_desc* d, size_t nc, size_t h, size_t w, size_t oh,
                        size_t ow, const float* x, float* y) {
  const size_t kh = d->kernel_h, kw = d->kernel_w, dh = d->dilation_h, dw = d->dilation_w;
  const size_t sw = d->stride_w, pl = d->pad_left;
  /* Columns [ox_first, vec_end) can be done 8 at a time: the window (plus one extra column read by the stride-2
   * second load) is inside [0, w). */
  const size_t ext = (kw - 1) * dw + (stride2 ? 1 : 0);
  const size_t ox_first = cnn_div_up(pl, sw);
  size_t vec_end = 0;
  if (w + pl >= ext + 1) vec_end = cnn_min_sz(ow, (w - 1 + pl - ext) / sw + 1);
  for (size_t p = 0; p < nc; p++) {
    const float* xp = x + p * h * w;
    float* yp = y + p * oh * ow;
    for (size_t oy = 0; oy < oh; oy++) {
      size_t ky0, ky1, kyp;
      window_1d(oy, d->stride_h, d->pad_top, d->pad_bottom, dh, kh, h, &ky0, &ky1, &kyp);
      const ptrdiff_t iy0 = (ptrdiff_t)(oy * d->stride_h) - (ptrdiff_t)d->pad_top;
      float* yr = yp + oy * ow;
      size_t ox = 0;
      if (ky1 > ky0) {
        for (; ox < ox_first && ox < ow; ox++) yr[ox] = pool_one(d, xp, w, iy0, ky0, ky1, kyp, ox);
        const float* r0 = xp + (size_t)(iy0 + (ptrdiff_t)(ky0 * dh)) * w;
        const size_t nrows = ky1 - ky0;
        const __m256 vdiv = _mm256_set1_ps((float)((d->count_include_pad ? kyp : nrows) * kw));
        if (vec_end >= ox + 8) {
          for (;; ox += 8) {
            /* the last block is moved back to end at vec_end: it recomputes a few outputs (same bits) instead of
             * leaving them to the scalar path */
            if (ox + 8 > vec_end) ox = vec_end - 8;
            __m256 v = pool8(is_max, stride2, r0 + (ox * sw - pl), nrows, dh * w, kw, dw);
            if (!is_max) v = _mm256_div_ps(v, vdiv);
            _mm256_storeu_ps(yr + ox, v);
            if (ox + 8 == vec_end) break;
          }
          ox = vec_end;
        }
      }
      for (; ox < ow; ox++) yr[ox] = pool_one(d, xp, w, iy0, ky0, ky1, kyp, ox);
    }
  }
}

/* 2x2 stride-2 max pooling without padding (VGG, the ConvNets): 8 outputs from two 16-float loads per input row, 4
 * with SSE, the rest (and the ceil-mode windows that cross the input's edge) one at a time. The taps are combined in
 * the scalar order (row 0 even, row 0 odd, row 1 even, row 1 odd) with max(v, acc), which keeps acc unless v > acc:
 * the scalar kernel's bits. */
static void max2x2s2(const cnn_pool2d_desc* d, size_t nc, size_t h, size_t w, size_t oh, size_t ow, const float* x,
                     float* y) {
  const size_t foh = cnn_min_sz(oh, h / 2), fow = cnn_min_sz(ow, w / 2); /* windows inside the input */
  const __m256 ninf = _mm256_set1_ps(-INFINITY);
  const __m128 ninf4 = _mm_set1_ps(-INFINITY);
  for (size_t p = 0; p < nc; p++) {
    const float* xp = x + p * h * w;
    float* yp = y + p * oh * ow;
    for (size_t oy = 0; oy < oh; oy++) {
      float* yr = yp + oy * ow;
      size_t ox = 0;
      if (oy < foh) {
        const float* r0 = xp + 2 * oy * w;
        const float* r1 = r0 + w;
        for (; ox + 8 <= fow; ox += 8) {
          const __m256 a0 = _mm256_loadu_ps(r0 + 2 * ox), b0 = _mm256_loadu_ps(r0 + 2 * ox + 8);
          const __m256 a1 = _mm256_loadu_ps(r1 + 2 * ox), b1 = _mm256_loadu_ps(r1 + 2 * ox + 8);
          __m256 m = _mm256_max_ps(_mm256_shuffle_ps(a0, b0, 0x88), ninf);
          m = _mm256_max_ps(_mm256_shuffle_ps(a0, b0, 0xDD), m);
          m = _mm256_max_ps(_mm256_shuffle_ps(a1, b1, 0x88), m);
          m = _mm256_max_ps(_mm256_shuffle_ps(a1, b1, 0xDD), m);
          _mm256_storeu_ps(yr + ox, _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(m), 0xD8)));
        }
        for (; ox + 4 <= fow; ox += 4) {
          const __m128 a0 = _mm_loadu_ps(r0 + 2 * ox), b0 = _mm_loadu_ps(r0 + 2 * ox + 4);
          const __m128 a1 = _mm_loadu_ps(r1 + 2 * ox), b1 = _mm_loadu_ps(r1 + 2 * ox + 4);
          __m128 m = _mm_max_ps(_mm_shuffle_ps(a0, b0, 0x88), ninf4);
          m = _mm_max_ps(_mm_shuffle_ps(a0, b0, 0xDD), m);
          m = _mm_max_ps(_mm_shuffle_ps(a1, b1, 0x88), m);
          m = _mm_max_ps(_mm_shuffle_ps(a1, b1, 0xDD), m);
          _mm_storeu_ps(yr + ox, m);
        }
        for (; ox < fow; ox++) {
          float m = -INFINITY;
          const float v[4] = {r0[2 * ox], r0[2 * ox + 1], r1[2 * ox], r1[2 * ox + 1]};
          for (int t = 0; t < 4; t++) m = v[t] > m ? v[t] : m;
          yr[ox] = m;
        }
      }
      if (ox < ow) {
        size_t ky0, ky1, kyp;
        window_1d(oy, 2, 0, d->pad_bottom, 1, 2, h, &ky0, &ky1, &kyp);
        const ptrdiff_t iy0 = (ptrdiff_t)(oy * 2);
        for (; ox < ow; ox++) yr[ox] = pool_one(d, xp, w, iy0, ky0, ky1, kyp, ox);
      }
    }
  }
}

/* 3x3 stride-2 max pooling, dilation 1, any padding and ceil mode (ResNet, SqueezeNet, GoogLeNet). Each input row's
 * 3-tap maximum at the stride-2 output columns (its "row value") is computed once: an output row's window holds the
 * previous output row's last input row, kept in a carry buffer on the stack, and two new rows, whose values are
 * computed in registers, combined, and the last one stored as the next carry. Row values stay in the shuffled lane
 * order of hmax3s2_raw (outputs 0,1,4,5 | 2,3,6,7; the maxima are lane-wise) and each output vector is put in order
 * once, before its store. The common case (a full window, the carried row, every load in bounds) is one loop of 2
 * row values, 1 carry load and store and 1 output store per 8 outputs, and the border pass is skipped when there is
 * no border. The previous version kept a ring of 3 rows indexed modulo 3, ran 3 loops per output row and walked the
 * border loop on every row: 287 instructions per output row at 27 -> 13 against 115 now, 277 at 55 -> 27 against 160
 * (callgrind). Kernel alone, old and new in one binary (best of 20, 15 rounds, twice): SqueezeNet's 64x111->55
 * 0.73 / 0.73, 128x55->27 0.71 / 0.62, 256x27->13 0.51 / 0.50 of the old time; ResNet's 64x112->56 (pad 1: a border
 * column on every row) 1.02 / 0.96. SqueezeNet 1.1, one process, old and new alternating (30 rounds): 1.024x (1
 * thread) and 1.022x (2 threads) the time with the old kernel. Bits: max(v, acc) keeps acc unless v > acc, so a row's
 * value is the first of its taps holding the row's maximum (never NaN), and the output the first such row's value:
 * the first tap in the scalar kernel's (ky, kx) order that holds the window's maximum, i.e. its result, ties of +0
 * and -0 and NaN (never taken) included. Columns outside [ox_first, vec_end) and rows whose window holds no input row
 * go through max_window. */
#define CNN_MAXPOOL_CHUNK 256 /* outputs per column chunk (a multiple of 8): the carry row is 1 KiB */
/* row value of 8 consecutive outputs whose windows start at r[0], r[2], .., r[14]: lanes in the order 0,1,4,5 |
 * 2,3,6,7. Reads r[0..17] (r[17] is not used). */
static inline __m256 hmax3s2_raw(const float* r, __m256 ninf) {
  const __m256 lo = _mm256_loadu_ps(r), hi = _mm256_loadu_ps(r + 8);
  const __m256 lo2 = _mm256_loadu_ps(r + 2), hi2 = _mm256_loadu_ps(r + 10);
  __m256 m = _mm256_max_ps(_mm256_shuffle_ps(lo, hi, 0x88), ninf);   /* taps 0: columns 0,2,8,10 | 4,6,12,14 */
  m = _mm256_max_ps(_mm256_shuffle_ps(lo, hi, 0xDD), m);             /* taps 1 */
  return _mm256_max_ps(_mm256_shuffle_ps(lo2, hi2, 0x88), m);        /* taps 2 */
}

/* hmax3s2_raw on a block that may end at the input buffer's end (avail: floats from r to the buffer's end): the unused
 * r[17] is the next row's first float except on the buffer's last row, where the 17 used floats are copied first */
static inline __m256 hmax3s2_in(const float* r, size_t avail, __m256 ninf) {
  if (avail >= 18) return hmax3s2_raw(r, ninf);
  float t[18];
  memcpy(t, r, 17 * sizeof(float));
  t[17] = 0.0f;
  return hmax3s2_raw(t, ninf);
}

static inline __m256 in_order(__m256 m) { return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(m), 0xD8)); }

static void max3x3s2(const cnn_pool2d_desc* d, size_t nc, size_t h, size_t w, size_t oh, size_t ow, const float* x,
                     float* y) {
  const size_t pl = d->pad_left, pt = d->pad_top;
  /* outputs [ox_first, vec_end): window columns 2*ox - pl + {0, 1, 2} lie inside [0, w). A block's loads also read
   * the column after its last window (unused): inside the buffer (the next row's first) except on the buffer's last
   * row (hmax3s2_in). */
  const size_t ox_first = cnn_div_up(pl, 2);
  size_t vec_end = 0;
  if (w + pl >= 3) vec_end = cnn_min_sz(ow, (w + pl - 3) / 2 + 1);
  if (vec_end < ox_first + 8) vec_end = ox_first; /* too narrow for 8 outputs: all one at a time */
  const size_t total = nc * h * w, left_end = cnn_min_sz(ox_first, ow);
  const __m256 ninf = _mm256_set1_ps(-INFINITY);
  float carry[CNN_MAXPOOL_CHUNK + 8] __attribute__((aligned(32))); /* + a partial last block's 8 */
  max3x3s2_border(d, nc, h, w, oh, ow, left_end, vec_end, x, y);
  if (vec_end == ox_first) return; /* no vector columns */
  for (size_t p = 0; p < nc; p++) {
    const float* xp = x + p * h * w;
    float* yp = y + p * oh * ow;
    size_t c0 = ox_first;
    do {
      /* chunks of at most CHUNK outputs, none under 8 */
      size_t cn = vec_end - c0;
      if (cn > CNN_MAXPOOL_CHUNK) cn = cn - CNN_MAXPOOL_CHUNK < 8 ? cn - 8 : CNN_MAXPOOL_CHUNK;
      const size_t jl = cn - 8;                 /* the last block's first output (a partial one overlaps) */
      const size_t cbase = 2 * c0 - pl;         /* input column of the chunk's first window */
      ptrdiff_t have = -1;                      /* the input row whose values are in carry */
      for (size_t oy = 0; oy < oh; oy++) {
        const ptrdiff_t iy0 = (ptrdiff_t)(oy * 2) - (ptrdiff_t)pt;
        const ptrdiff_t r0 = iy0 > 0 ? iy0 : 0, r1 = iy0 + 3 < (ptrdiff_t)h ? iy0 + 3 : (ptrdiff_t)h;
        if (r1 <= r0) continue;
        float* yr = yp + oy * ow + c0;
        const int use_c = r0 == have;
        const ptrdiff_t ra = use_c ? r0 + 1 : r0; /* rows whose values are computed: [ra, r1) */
        /* every block of rows [ra, r1) reads 18 floats in bounds when the last row's last block does */
        const size_t last_off = (size_t)(xp - x) + (size_t)(r1 - 1) * w + cbase + 2 * jl;
        const int safe = last_off + 18 <= total;
        if (use_c && r1 - r0 == 3 && safe) {
          const float* b1 = xp + (size_t)ra * w + cbase;
          const float* b2 = b1 + w;
          for (size_t j = 0; j < cn; j += 8) {
            /* a partial last block covers the last 8 outputs; its carry goes to the slot's tail */
            const size_t jj = j + 8 <= cn ? j : jl, at = j + 8 <= cn ? j : CNN_MAXPOOL_CHUNK;
            const __m256 v1 = hmax3s2_raw(b1 + 2 * jj, ninf), v2 = hmax3s2_raw(b2 + 2 * jj, ninf);
            __m256 m = _mm256_max_ps(v1, _mm256_load_ps(carry + at));
            m = _mm256_max_ps(v2, m);
            _mm256_store_ps(carry + at, v2);
            _mm256_storeu_ps(yr + jj, in_order(m));
          }
        } else {
          for (size_t j = 0; j < cn; j += 8) {
            const size_t jj = j + 8 <= cn ? j : jl, at = j + 8 <= cn ? j : CNN_MAXPOOL_CHUNK;
            __m256 m = ninf, v = ninf;
            int first = 1;
            if (use_c) {
              m = _mm256_load_ps(carry + at); /* a row value: never NaN, so max(., -inf) would not change it */
              first = 0;
            }
            for (ptrdiff_t r = ra; r < r1; r++) {
              const size_t off = (size_t)(xp - x) + (size_t)r * w + cbase + 2 * jj;
              v = hmax3s2_in(x + off, total - off, ninf);
              m = first ? v : _mm256_max_ps(v, m);
              first = 0;
            }
            if (r1 > ra) _mm256_store_ps(carry + at, v);
            _mm256_storeu_ps(yr + jj, in_order(m));
          }
        }
        have = r1 - 1;
      }
      c0 += cn;
    } while (c0 < vec_end);
  }
}

void cnn_f32_pool2d__avx2(const cnn_pool2d_desc* d, size_t nc, size_t h, size_t w, size_t oh, size_t ow,
                          const float* x, float* y) {
  const int is_max = d->type == 0;
  if (is_max && d->kernel_h == 2 && d->kernel_w == 2 && d->stride_h == 2 && d->stride_w == 2 && d->dilation_h == 1 &&
      d->dilation_w == 1 && d->pad_top == 0 && d->pad_left == 0) {
    max2x2s2(d, nc, h, w, oh, ow, x, y);
    return;
  }
  if (is_max && d->kernel_h == 3 && d->kernel_w == 3 && d->stride_h == 2 && d->stride_w == 2 && d->dilation_h == 1 &&
      d->dilation_w == 1) {
    max3x3s2(d, nc, h, w, oh, ow, x, y);
    return;
  }
  if (d->stride_w == 1) {
    if (is_max) pool2d_impl(1, 0, d, nc, h, w, oh, ow, x, y);
    else pool2d_impl(0, 0, d, nc, h, w, oh, ow, x, y);
  } else if (d->stride_w == 2) {
    if (is_max) pool2d_impl(1, 1, d, nc, h, w, oh, ow, x, y);
    else pool2d_impl(0, 1, d, nc, h, w, oh, ow, x, y);
  } else {
    cnn_f32_pool2d__scalar(d, nc, h, w, oh, ow, x, y);
  }
}

/* Max: 4 x 8 lanes, v > m semantics (equal to the scalar result up to the sign of zero when +0 and -0 tie).
 * Mean: accumulated in double like the scalar kernel (differs from it only by double-precision summation order). */
void cnn_f32_global_pool__avx2(int type, size_t nc, size_t hw, const float* x, float* y) {
  for (size_t p = 0; p < nc; p++) {
    const float* xp = x + p * hw;
    size_t i = 0;
    if (type == 0) {
      const __m256 ninf = _mm256_set1_ps(-INFINITY);
      __m256 m0 = ninf, m1 = ninf, m2 = ninf, m3 = ninf;
      for (; i + 32 <= hw; i += 32) {
        m0 = _mm256_max_ps(_mm256_loadu_ps(xp + i), m0);
        m1 = _mm256_max_ps(_mm256_loadu_ps(xp + i + 8), m1);
        m2 = _mm256_max_ps(_mm256_loadu_ps(xp + i + 16), m2);
        m3 = _mm256_max_ps(_mm256_loadu_ps(xp + i + 24), m3);
      }
      for (; i + 8 <= hw; i += 8) m0 = _mm256_max_ps(_mm256_loadu_ps(xp + i), m0);
      m0 = _mm256_max_ps(_mm256_max_ps(m0, m1), _mm256_max_ps(m2, m3));
      __m128 s = _mm_max_ps(_mm256_castps256_ps128(m0), _mm256_extractf128_ps(m0, 1));
      s = _mm_max_ps(s, _mm_movehl_ps(s, s));
      s = _mm_max_ss(s, _mm_movehdup_ps(s));
      float m = _mm_cvtss_f32(s);
      for (; i < hw; i++) m = xp[i] > m ? xp[i] : m;
      y[p] = m;
    } else {
      __m256d s0 = _mm256_setzero_pd(), s1 = s0, s2 = s0, s3 = s0;
      for (; i + 16 <= hw; i += 16) {
        const __m256 v0 = _mm256_loadu_ps(xp + i), v1 = _mm256_loadu_ps(xp + i + 8);
        s0 = _mm256_add_pd(s0, _mm256_cvtps_pd(_mm256_castps256_ps128(v0)));
        s1 = _mm256_add_pd(s1, _mm256_cvtps_pd(_mm256_extractf128_ps(v0, 1)));
        s2 = _mm256_add_pd(s2, _mm256_cvtps_pd(_mm256_castps256_ps128(v1)));
        s3 = _mm256_add_pd(s3, _mm256_cvtps_pd(_mm256_extractf128_ps(v1, 1)));
      }
      for (; i + 4 <= hw; i += 4) s0 = _mm256_add_pd(s0, _mm256_cvtps_pd(_mm_loadu_ps(xp + i)));
      s0 = _mm256_add_pd(_mm256_add_pd(s0, s1), _mm256_add_pd(s2, s3));
      __m128d t = _mm_add_pd(_mm256_castpd256_pd128(s0), _mm256_extractf128_pd(s0, 1));
      double s = _mm_cvtsd_f64(_mm_add_sd(t, _mm_unpackhi_pd(t, t)));
      for (; i < hw; i++) s += xp[i];
      y[p] = hw ? (float)(s / (double)hw) : 0.0f;
    }
  }
}
