/* 2-D max / average pooling and global pooling, NCHW, NEON (aarch64).
 * pool2d: 4 adjacent outputs of a row at a time for stride 1 and 2 where the window lies horizontally inside the
 * input (stride 2: vld2q de-interleaves even / odd columns; with dilation 1 one vld2q serves two taps); a row's last
 * block overlaps the previous one rather than leaving a remainder; the border columns, other strides and rows with
 * no valid tap go through the scalar per-output code. Taps are visited in the scalar kernel's order (ky, then kx
 * ascending), max keeps m unless v > m, and averages divide by the same float, so results are bit-identical to
 * cnn_f32_pool2d__scalar. */
#include <arm_neon.h>
#include <math.h>
#include <string.h>

#include "cnnrt/eltwise.h"
#include "pool-common.h"

/* acc = (v > acc ? v : acc), or acc + v */
static inline float32x4_t acc_op(int is_max, float32x4_t v, float32x4_t acc) {
  return is_max ? vbslq_f32(vcgtq_f32(v, acc), v, acc) : vaddq_f32(acc, v);
}

/* 4 outputs whose windows start at r0[0..4) (stride 1) or r0[0, 2, 4, 6] (stride 2), over nrows input rows
 * row_step apart. The caller guarantees every load is in bounds (stride 2 reads one column past the last tap). */
static inline float32x4_t pool4(int is_max, int stride2, const float* r0, size_t nrows, size_t row_step, size_t kw,
                                size_t dw) {
  float32x4_t acc = vdupq_n_f32(is_max ? -INFINITY : 0.0f);
  for (size_t ky = 0; ky < nrows; ky++) {
    const float* r = r0 + ky * row_step;
    if (!stride2) {
      for (size_t kx = 0; kx < kw; kx++) acc = acc_op(is_max, vld1q_f32(r + kx * dw), acc);
    } else if (dw == 1) {
      size_t kx = 0;
      for (; kx + 2 <= kw; kx += 2) { /* even lanes: tap kx, odd lanes: tap kx + 1 */
        const float32x4x2_t v = vld2q_f32(r + kx);
        acc = acc_op(is_max, v.val[0], acc);
        acc = acc_op(is_max, v.val[1], acc);
      }
      if (kx < kw) acc = acc_op(is_max, vld2q_f32(r + kx).val[0], acc);
    } else {
      for (size_t kx = 0; kx < kw; kx++) acc = acc_op(is_max, vld2q_f32(r + kx * dw).val[0], acc);
    }
  }
  return acc;
}

static void pool2d_impl(int is_max, int stride2, const cnn_pool2d_desc* d, size_t nc, size_t h, size_t w, size_t oh,
                        size_t ow, const float* x, float* y) {
  const size_t kh = d->kernel_h, kw = d->kernel_w, dh = d->dilation_h, dw = d->dilation_w;
  const size_t sw = d->stride_w, pl = d->pad_left;
  /* Columns [ox_first, vec_end) can be done 4 at a time: the window (plus the extra column read by vld2q) is
   * inside [0, w). */
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
        const float32x4_t vdiv = vdupq_n_f32((float)((d->count_include_pad ? kyp : nrows) * kw));
        if (vec_end >= ox + 4) {
          for (;; ox += 4) {
            if (ox + 4 > vec_end) ox = vec_end - 4; /* last block moved back: recomputes a few outputs (same bits) */
            float32x4_t v = pool4(is_max, stride2, r0 + (ox * sw - pl), nrows, dh * w, kw, dw);
            if (!is_max) v = vdivq_f32(v, vdiv);
            vst1q_f32(yr + ox, v);
            if (ox + 4 == vec_end) break;
          }
          ox = vec_end;
        }
      }
      for (; ox < ow; ox++) yr[ox] = pool_one(d, xp, w, iy0, ky0, ky1, kyp, ox);
    }
  }
}

/* 3x3 stride-2 max pooling, dilation 1, any padding and ceil mode: the NEON twin of the AVX2 path (see
 * pool2d__avx2.c): each input row's 3-tap maxima at the stride-2 output columns (its row value) are computed once;
 * an output row's window holds the previous output row's last input row, kept in a carry buffer, and two new rows,
 * combined in registers (the last one stored as the next carry). The output is the maximum of its (up to 3) rows'
 * values, which is the scalar kernel's first-in-(ky, kx)-order maximum, ties of +0 / -0 and NaN included. Border
 * columns and rows whose window holds no input row are computed one at a time. */
#define CNN_MAXPOOL_CHUNK 256 /* outputs per column chunk (a multiple of 4) */

static inline float32x4_t vmax_keep(float32x4_t v, float32x4_t acc) { return vbslq_f32(vcgtq_f32(v, acc), v, acc); }

/* the row value of 4 outputs whose windows start at r[0, 2, 4, 6] (reads r[0..9]; r[9] is not used) */
static inline float32x4_t hmax3s2(const float* r, float32x4_t ninf) {
  const float32x4x2_t a = vld2q_f32(r);     /* columns 0,2,4,6 | 1,3,5,7 */
  const float32x4x2_t b = vld2q_f32(r + 2); /* columns 2,4,6,8 | ... */
  return vmax_keep(b.val[0], vmax_keep(a.val[1], vmax_keep(a.val[0], ninf)));
}

/* hmax3s2 on a block that may end at the input buffer's end (avail: floats from r to the buffer's end): the unused
 * r[9] is the next row's first float, except on the buffer's last row (9 floats copied) */
static inline float32x4_t hmax3s2_in(const float* r, size_t avail, float32x4_t ninf) {
  if (avail >= 10) return hmax3s2(r, ninf);
  float t[10];
  memcpy(t, r, 9 * sizeof(float));
  t[9] = 0.0f;
  return hmax3s2(t, ninf);
}

static void max3x3s2(const cnn_pool2d_desc* d, size_t nc, size_t h, size_t w, size_t oh, size_t ow, const float* x,
                     float* y) {
  const size_t pl = d->pad_left, pt = d->pad_top;
  /* outputs [ox_first, vec_end): window columns 2*ox - pl + {0, 1, 2} lie in [0, w). The loads of a block also read
   * the (unused) column after its last window: the next row's first float, or past the buffer's end on its last row
   * (hmax3s2_in); see the AVX2 kernel. */
  const size_t ox_first = (pl + 1) / 2;
  size_t vec_end = 0;
  if (w + pl >= 3) vec_end = cnn_min_sz(ow, (w + pl - 3) / 2 + 1);
  if (vec_end < ox_first + 4) vec_end = ox_first; /* too narrow for 4 outputs: all one at a time */
  const size_t total = nc * h * w, left_end = cnn_min_sz(ox_first, ow);
  const float32x4_t ninf = vdupq_n_f32(-INFINITY);
  float carry[CNN_MAXPOOL_CHUNK + 4] __attribute__((aligned(16))); /* + a partial last block's 4 */
  max3x3s2_border(d, nc, h, w, oh, ow, left_end, vec_end, x, y);
  if (vec_end == ox_first) return; /* no vector columns */
  for (size_t p = 0; p < nc; p++) {
    const float* xp = x + p * h * w;
    float* yp = y + p * oh * ow;
    size_t c0 = ox_first;
    do {
      size_t cn = vec_end - c0; /* chunks of at most CHUNK outputs, none under 4 */
      if (cn > CNN_MAXPOOL_CHUNK) cn = cn - CNN_MAXPOOL_CHUNK < 4 ? cn - 4 : CNN_MAXPOOL_CHUNK;
      const size_t jl = cn - 4, cbase = 2 * c0 - pl;
      ptrdiff_t have = -1; /* the input row whose values are in carry */
      for (size_t oy = 0; oy < oh; oy++) {
        const ptrdiff_t iy0 = (ptrdiff_t)(oy * 2) - (ptrdiff_t)pt;
        const ptrdiff_t r0 = iy0 > 0 ? iy0 : 0, r1 = iy0 + 3 < (ptrdiff_t)h ? iy0 + 3 : (ptrdiff_t)h;
        if (r1 <= r0) continue;
        float* yr = yp + oy * ow + c0;
        const int use_c = r0 == have;
        const ptrdiff_t ra = use_c ? r0 + 1 : r0;
        const size_t last_off = (size_t)(xp - x) + (size_t)(r1 - 1) * w + cbase + 2 * jl;
        if (use_c && r1 - r0 == 3 && last_off + 10 <= total) {
          const float* b1 = xp + (size_t)ra * w + cbase;
          const float* b2 = b1 + w;
          for (size_t j = 0; j < cn; j += 4) {
            /* a partial last block covers the last 4 outputs; its carry goes to the slot's tail */
            const size_t jj = j + 4 <= cn ? j : jl, at = j + 4 <= cn ? j : CNN_MAXPOOL_CHUNK;
            const float32x4_t v1 = hmax3s2(b1 + 2 * jj, ninf), v2 = hmax3s2(b2 + 2 * jj, ninf);
            const float32x4_t m = vmax_keep(v2, vmax_keep(v1, vld1q_f32(carry + at)));
            vst1q_f32(carry + at, v2);
            vst1q_f32(yr + jj, m);
          }
        } else {
          for (size_t j = 0; j < cn; j += 4) {
            const size_t jj = j + 4 <= cn ? j : jl, at = j + 4 <= cn ? j : CNN_MAXPOOL_CHUNK;
            float32x4_t m = ninf, v = ninf;
            int first = 1;
            if (use_c) { /* a row value: never NaN, so vmax_keep(., -inf) would not change it */
              m = vld1q_f32(carry + at);
              first = 0;
            }
            for (ptrdiff_t r = ra; r < r1; r++) {
              const size_t off = (size_t)(xp - x) + (size_t)r * w + cbase + 2 * jj;
              v = hmax3s2_in(x + off, total - off, ninf);
              m = first ? v : vmax_keep(v, m);
              first = 0;
            }
            if (r1 > ra) vst1q_f32(carry + at, v);
            vst1q_f32(yr + jj, m);
          }
        }
        have = r1 - 1;
      }
      c0 += cn;
    } while (c0 < vec_end);
  }
}

void cnn_f32_pool2d__neon(const cnn_pool2d_desc* d, size_t nc, size_t h, size_t w, size_t oh, size_t ow,
                          const float* x, float* y) {
  const int is_max = d->type == 0;
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

/* Max: 4 x 4 lanes, v > m semantics (equal to the scalar result up to the sign of zero when +0 and -0 tie).
 * Mean: accumulated in double like the scalar kernel (differs from it only by double-precision summation order). */
void cnn_f32_global_pool__neon(int type, size_t nc, size_t hw, const float* x, float* y) {
  for (size_t p = 0; p < nc; p++) {
    const float* xp = x + p * hw;
    size_t i = 0;
    if (type == 0) {
      const float32x4_t ninf = vdupq_n_f32(-INFINITY);
      float32x4_t m0 = ninf, m1 = ninf, m2 = ninf, m3 = ninf;
      for (; i + 16 <= hw; i += 16) {
        m0 = acc_op(1, vld1q_f32(xp + i), m0);
        m1 = acc_op(1, vld1q_f32(xp + i + 4), m1);
        m2 = acc_op(1, vld1q_f32(xp + i + 8), m2);
        m3 = acc_op(1, vld1q_f32(xp + i + 12), m3);
      }
      for (; i + 4 <= hw; i += 4) m0 = acc_op(1, vld1q_f32(xp + i), m0);
      m0 = acc_op(1, acc_op(1, m1, m0), acc_op(1, m3, m2));
      float t[4];
      vst1q_f32(t, m0);
      float m = -INFINITY;
      for (int k = 0; k < 4; k++) m = t[k] > m ? t[k] : m;
      for (; i < hw; i++) m = xp[i] > m ? xp[i] : m;
      y[p] = m;
    } else {
      float64x2_t s0 = vdupq_n_f64(0.0), s1 = s0, s2 = s0, s3 = s0;
      for (; i + 8 <= hw; i += 8) {
        const float32x4_t v0 = vld1q_f32(xp + i), v1 = vld1q_f32(xp + i + 4);
        s0 = vaddq_f64(s0, vcvt_f64_f32(vget_low_f32(v0)));
        s1 = vaddq_f64(s1, vcvt_high_f64_f32(v0));
        s2 = vaddq_f64(s2, vcvt_f64_f32(vget_low_f32(v1)));
        s3 = vaddq_f64(s3, vcvt_high_f64_f32(v1));
      }
      for (; i + 4 <= hw; i += 4) {
        const float32x4_t v = vld1q_f32(xp + i);
        s0 = vaddq_f64(s0, vcvt_f64_f32(vget_low_f32(v)));
        s1 = vaddq_f64(s1, vcvt_high_f64_f32(v));
      }
      double s = vaddvq_f64(vaddq_f64(vaddq_f64(s0, s1), vaddq_f64(s2, s3)));
      for (; i < hw; i++) s += xp[i];
      y[p] = hw ? (float)(s / (double)hw) : 0.0f;
    }
  }
}
