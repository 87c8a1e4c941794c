/* Depthwise kernels one by one (the operator-level depthwise cases are in test_gemm_conv.c):
 *  1. cnn_f32_dwconv_rows__avx2 (no padded copy) against its scalar oracle cnn_f32_dwconv__scalar on randomized
 *     planes: odd and tiny sizes, rows narrower than one vector, kernels 1x1..8x8 (3x3 / 5x5 mostly), stride 1/2
 *     in each direction, padding 0..k+1 on each side (rows and columns of pure padding), residual (also in place),
 *     clamps, SiLU / tanh / none as act_fn. The input plane, output, residual and zero row are allocated to their
 *     exact sizes (plus guards after the output and zero row): every output must be written, nothing past them;
 *     under SANITIZE=1 the plain vector loads are checked against the plane's bounds.
 *     Tolerance: both sum the same kh*kw + 2 terms in float in different orders (FMA chains split by filter-row
 *     parity vs one sequential sum), each within gamma_{kh*kw+2} * S of the exact value (S = |bias| + sum |w x| +
 *     |residual|), so |avx2 - scalar| <= 2 gamma_{kh*kw+2} S; the act_fn (the same function on both sides) adds
 *     its Lipschitz constant and 16 u (1 + |want|) (worst_gamma_ratio).
 *  2. cnn_f32_dwconv_c8__avx2 with a SiLU act_fn (applied in registers, dw-common__avx2.h) against the same kernel
 *     without act_fn followed by cnn_f32_act__avx2 on each plane: bit-identical (tolerance 0: the same float
 *     operations on the same values), including lanes with |x| > 87 (the general-sigmoid patch), NaN inputs, planes
 *     under 8 pixels and the overlapping last transpose block with an in-place residual. */
#include <string.h>

#include "cnnrt/conv.h"
#include "cnnrt/eltwise.h"
#include "test_util.h"

static float* falloc(size_t n) {
  float* p = (float*)malloc((n ? n : 1) * sizeof(float));
  if (!p) exit(2);
  return p;
}

#if defined(__x86_64__) && !defined(CNNRT_NO_AVX2)
/* one randomized plane through the no-copy kernel and the scalar oracle */
static void rows_case(size_t h, size_t w, size_t kh, size_t kw, size_t sh, size_t sw, size_t pt, size_t pl, size_t pb,
                      size_t pr, int res_mode, int act_type, int clamp) {
  cnn_conv2d_desc d;
  memset(&d, 0, sizeof(d));
  d.in_channels = d.out_channels = d.groups = 1;
  d.kernel_h = kh;
  d.kernel_w = kw;
  d.stride_h = sh;
  d.stride_w = sw;
  d.dilation_h = d.dilation_w = 1;
  d.pad_top = pt;
  d.pad_left = pl;
  d.pad_bottom = pb;
  d.pad_right = pr;
  size_t oh, ow;
  if (!cnn_conv2d_out_size(&d, h, w, &oh, &ow)) return;
  CHECK(cnn_dwconv_rows_ok(&d, h, w), "rows kernel takes kw <= 8, kh*kw <= 64, strides <= 2");
  const size_t on = oh * ow, G = 16;
  float* in = falloc(h * w);
  float* wt = falloc(kh * kw);
  float* res = falloc(on);
  float* want = falloc(on);
  float* got = falloc(on + G);
  const size_t zn = cnn_round_up(w, 8);
  float* zrow = falloc(zn + G);
  rng_fill(in, h * w);
  rng_fill(wt, kh * kw);
  rng_fill(res, on);
  const float bias = rng_f();
  cnn_act act = {act_type, 0, 0};
  cnn_dwconv_params p;
  cnn_dwconv_params_init(&p, &d, h, w, oh, ow);
  if (clamp) {
    p.min = -0.4f;
    p.max = 0.6f;
  }
  p.act_fn = act_type == CNN_ACT_NONE ? NULL : cnn_f32_act__avx2;
  p.act = &act;
  /* S: bias + sum |w x| + |residual| in double (the error scale) */
  float* S = falloc(on);
  for (size_t oy = 0; oy < oh; oy++)
    for (size_t ox = 0; ox < ow; ox++) {
      double s = fabs(bias) + (res_mode ? fabs(res[oy * ow + ox]) : 0.0);
      for (size_t ky = 0; ky < kh; ky++)
        for (size_t kx = 0; kx < kw; kx++) {
          const ptrdiff_t iy = (ptrdiff_t)(oy * sh + ky) - (ptrdiff_t)pt, ix = (ptrdiff_t)(ox * sw + kx) - (ptrdiff_t)pl;
          if (iy >= 0 && iy < (ptrdiff_t)h && ix >= 0 && ix < (ptrdiff_t)w)
            s += fabs((double)wt[ky * kw + kx] * in[iy * (ptrdiff_t)w + ix]);
        }
      S[oy * ow + ox] = (float)s;
    }
  /* oracle */
  memcpy(want, res, on * sizeof(float));
  cnn_f32_dwconv__scalar(&p, in, wt, bias, res_mode ? (res_mode == 2 ? want : res) : NULL, want);
  /* kernel: every output overwritten (NaN before unless in place), guards untouched */
  for (size_t i = 0; i < on + G; i++) got[i] = i < on && res_mode == 2 ? res[i] : (i < on ? NAN : 1234.5f);
  for (size_t i = 0; i < zn + G; i++) zrow[i] = i < zn ? NAN : 1234.5f;
  cnn_f32_dwconv_rows__avx2(&p, in, wt, bias, res_mode ? (res_mode == 2 ? got : res) : NULL, got, zrow);
  size_t where;
  const double r = worst_gamma_ratio(got, want, S, on, 2 * gamma_n(kh * kw + 2), &act, &where);
  int guards = 1;
  for (size_t i = 0; i < G; i++) guards &= got[on + i] == 1234.5f && zrow[zn + i] == 1234.5f;
  CHECK(r <= 1 && guards,
        "dwconv rows avx2 vs scalar h=%zu w=%zu k=%zux%zu s=%zux%zu pad=%zu,%zu,%zu,%zu res=%d act=%d clamp=%d: ratio %g "
        "at %zu (got %g want %g)%s",
        h, w, kh, kw, sh, sw, pt, pl, pb, pr, res_mode, act_type, clamp, r, where, got[where], want[where],
        guards ? "" : " (wrote past the output or the zero row)");
  free(in);
  free(wt);
  free(res);
  free(want);
  free(got);
  free(zrow);
  free(S);
}

static void test_rows_kernel(int ncases) {
  static const size_t ks[][2] = {{3, 3}, {3, 3}, {3, 3}, {5, 5}, {5, 5}, {1, 1}, {3, 1}, {1, 3}, {7, 7}, {2, 2},
                                 {1, 8}, {8, 8}, {4, 5}};
  static const int acts[] = {CNN_ACT_NONE, CNN_ACT_NONE, CNN_ACT_SILU, CNN_ACT_TANH};
  /* the models' shapes: full rows of vectors, the edges, 2-row passes and the odd last row */
  rows_case(112, 112, 3, 3, 2, 2, 1, 1, 1, 1, 0, CNN_ACT_NONE, 1);
  rows_case(56, 56, 3, 3, 1, 1, 1, 1, 1, 1, 1, CNN_ACT_NONE, 1);
  rows_case(57, 57, 5, 5, 2, 2, 2, 2, 2, 2, 2, CNN_ACT_SILU, 0);
  rows_case(35, 41, 5, 5, 1, 1, 2, 2, 2, 2, 0, CNN_ACT_SILU, 0);
  for (int i = 0; i < ncases; i++) {
    const size_t kk = rng_range(0, sizeof(ks) / sizeof(ks[0]) - 1);
    const size_t kh = ks[kk][0], kw = ks[kk][1];
    const size_t sh = rng_range(1, 2), sw = rng_range(0, 3) ? sh : 3 - sh;
    size_t h = rng_range(1, 40), w = rng_range(1, 70);
    if (rng_range(0, 1)) { /* mostly odd */
      h |= 1;
      w |= 1;
    }
    const size_t pt = rng_range(0, kh + 1), pl = rng_range(0, kw + 1), pb = rng_range(0, kh + 1),
                 pr = rng_range(0, kw + 1);
    rows_case(h, w, kh, kw, sh, sw, pt, pl, pb, pr, (int)rng_range(0, 2), acts[rng_range(0, 3)],
              (int)rng_range(0, 1));
  }
}

/* c8 kernel with SiLU in registers == c8 kernel, then the SiLU pass, bit for bit */
static void c8_silu_case(size_t h, size_t w, size_t k, size_t s, size_t pad, int res_mode, int big) {
  cnn_conv2d_desc d;
  memset(&d, 0, sizeof(d));
  d.in_channels = d.out_channels = d.groups = 8;
  d.kernel_h = d.kernel_w = k;
  d.stride_h = d.stride_w = s;
  d.dilation_h = d.dilation_w = 1;
  d.pad_top = d.pad_left = d.pad_bottom = d.pad_right = pad;
  size_t oh, ow;
  if (!cnn_conv2d_out_size(&d, h, w, &oh, &ow)) return;
  cnn_dwconv_c8_params p;
  size_t xf, yf;
  if (!cnn_dwconv_c8_geometry(&d, h, w, oh, ow, &p, &xf, &yf)) return;
  const size_t in_n = 8 * h * w, on = 8 * oh * ow, khw = k * k;
  float* in = falloc(in_n);
  float* w8 = (float*)cnn_aligned_alloc(khw * 8 * sizeof(float));
  float* bias = falloc(8);
  float* res = falloc(on);
  float* a = falloc(on);
  float* b = falloc(on);
  float* xbuf = (float*)cnn_aligned_alloc(xf * sizeof(float));
  float* ybuf = (float*)cnn_aligned_alloc(yf * sizeof(float));
  rng_fill(in, in_n);
  rng_fill(w8, khw * 8);
  rng_fill(bias, 8);
  rng_fill(res, on);
  if (big) /* pre-activations beyond +-87 (the general sigmoid's lanes) and a few NaN */
    for (size_t i = 0; i < in_n; i++) {
      in[i] *= 60.0f;
      if (rng_range(0, 200) == 0) in[i] = NAN;
    }
  cnn_act act = {CNN_ACT_SILU, 0, 0};
  /* a: fused; b: no act_fn, then the SiLU pass */
  if (res_mode == 2) {
    memcpy(a, res, on * sizeof(float));
    memcpy(b, res, on * sizeof(float));
  }
  p.act_fn = cnn_f32_act__avx2;
  p.act = &act;
  cnn_f32_dwconv_c8__avx2(&p, in, w8, bias, res_mode ? (res_mode == 2 ? a : res) : NULL, a, xbuf, ybuf);
  p.act_fn = NULL;
  cnn_f32_dwconv_c8__avx2(&p, in, w8, bias, res_mode ? (res_mode == 2 ? b : res) : NULL, b, xbuf, ybuf);
  cnn_f32_act__avx2(&act, b, b, on);
  size_t bad = 0;
  for (size_t i = 0; i < on; i++) bad += memcmp(&a[i], &b[i], sizeof(float)) != 0 && !(isnan(a[i]) && isnan(b[i]));
  CHECK(bad == 0, "c8 fused SiLU vs SiLU pass h=%zu w=%zu k=%zu s=%zu pad=%zu res=%d big=%d: %zu outputs differ", h, w,
        k, s, pad, res_mode, big, bad);
  free(in);
  cnn_aligned_free(w8);
  free(bias);
  free(res);
  free(a);
  free(b);
  cnn_aligned_free(xbuf);
  cnn_aligned_free(ybuf);
}

static void test_c8_silu(int ncases) {
  c8_silu_case(14, 14, 3, 1, 1, 0, 0);
  c8_silu_case(7, 7, 5, 1, 2, 2, 1);  /* 49 outputs: overlapping last block, in-place residual */
  c8_silu_case(2, 3, 3, 1, 1, 1, 0);  /* 6 outputs: the scalar path, then the SiLU pass */
  c8_silu_case(28, 28, 5, 2, 2, 0, 1);
  for (int i = 0; i < ncases; i++) {
    const size_t k = rng_range(0, 1) ? 3 : 5, s = rng_range(1, 2);
    c8_silu_case(rng_range(1, 30), rng_range(1, 30), k, s, rng_range(0, k / 2 + 1), (int)rng_range(0, 2),
                 (int)rng_range(0, 1));
  }
}
#endif

int main(void) {
  rng_seed(2027);
#if defined(__x86_64__) && !defined(CNNRT_NO_AVX2)
  if (cnn_hw_isa_supported(CNN_ISA_AVX2)) {
    test_rows_kernel(600);
    printf("dwconv rows kernel: 604 cases\n");
    test_c8_silu(150);
    printf("dwconv c8 fused SiLU: 154 cases\n");
  } else {
    printf("dwconv: no AVX2 on this CPU, the AVX2 kernels are not tested here\n");
  }
#else
  printf("dwconv: AVX2 kernels not built for this target\n");
#endif
  printf("test_dwconv: %d passed, %d failed\n", g_pass, g_fail);
  return g_fail ? 1 : 0;
}
