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
 *     under 8 pixels and the overlapping last transpose block with an in-place residual.
 *  3. Expand 1x1 + depthwise fused (cnn_conv2d_plan_fuse_dw), every ISA the CPU has, against the two convolutions
 *     run one after the other (the 1x1 plan, then the depthwise plan on its output): randomized batch, channels
 *     (not multiples of 6 or 8, one or several channel groups), odd sizes, kernels 3/5/7, stride 1/2, padding 0..
 *     (k-1)/2 per side, activations on both (clamps, SiLU, ...), 1 and 2 threads, band budgets from the default
 *     down to one output row per band (so bands meet everywhere). The fused run computes the expanded values with
 *     the same GEMM kernel, bias and activation as the 1x1 plan; its depthwise kernel may differ from the one the
 *     depthwise plan picks (rows / padded-plane / 8-channel / generic), so each output is within 2 gamma_{k*k+2} S
 *     of the sequential one (S = |bias| + sum |w e| over the taps, e the sequential expanded values), plus the
 *     activation's Lipschitz term (worst_gamma_ratio). The output is allocated to its exact size with a guard. */
#include <math.h>
#include <string.h>

#include "cnnrt/common.h"
#include "cnnrt/conv.h"
#include "cnnrt/eltwise.h"
#include "cnnrt/hardware.h"
#include "cnnrt/threadpool.h"
#include "test_util.h"

static __attribute__((noinline)) float* falloc(size_t n) {
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

/* ---- expand 1x1 + depthwise, fused ---- */
static cnn_act small_act(void) {
  const int r = (int)rng_range(0, 4);
  if (r == 0) return (cnn_act){CNN_ACT_NONE, 0, 0};
  if (r == 1) return (cnn_act){CNN_ACT_CLIP, 0.0f, 6.0f};
  if (r == 2) return (cnn_act){CNN_ACT_SILU, 0, 0};
  return random_act();
}

static int expand_dw_case(int isa, cnn_threadpool* pool, size_t band_bytes) {
  const size_t batch = rng_range(1, 2), cin = rng_range(1, 3) == 1 ? rng_range(1, 200) : rng_range(1, 40);
  const size_t C = rng_range(1, 4) == 1 ? rng_range(40, 130) : rng_range(1, 50);
  const size_t k = rng_range(0, 5) == 0 ? (rng_range(0, 1) ? 7 : 5) : (rng_range(0, 2) ? 3 : 5);
  const size_t s = rng_range(1, 2), H = rng_range(1, 40), W = rng_range(1, 45);
  const size_t pmax = (k - 1) / 2;
  cnn_conv2d_desc dp = {0}, dd = {0};
  dp.in_channels = cin;
  dp.out_channels = C;
  dp.groups = 1;
  dp.kernel_h = dp.kernel_w = 1;
  dp.stride_h = dp.stride_w = 1;
  dp.dilation_h = dp.dilation_w = 1;
  dp.act = small_act();
  dd.in_channels = dd.out_channels = dd.groups = C;
  dd.kernel_h = dd.kernel_w = k;
  dd.stride_h = dd.stride_w = s;
  dd.dilation_h = dd.dilation_w = 1;
  dd.pad_top = rng_range(0, pmax);
  dd.pad_bottom = rng_range(0, pmax);
  dd.pad_left = rng_range(0, pmax);
  dd.pad_right = rng_range(0, pmax);
  dd.act = small_act();
  size_t oh, ow;
  if (!cnn_conv2d_out_size(&dd, H, W, &oh, &ow)) return 0; /* kernel larger than the padded input */
  const size_t nx = batch * cin * H * W, ne = batch * C * H * W, ny = batch * C * oh * ow;
  float *x = falloc(nx), *wp = falloc(C * cin), *bp = falloc(C), *wd = falloc(C * k * k), *bd = falloc(C);
  for (size_t i = 0; i < nx; i++) x[i] = rng_f() * 2.0f;
  for (size_t i = 0; i < C * cin; i++) wp[i] = rng_f() / sqrtf((float)cin);
  for (size_t i = 0; i < C; i++) bp[i] = rng_f() * 0.5f, bd[i] = rng_f() * 0.5f;
  for (size_t i = 0; i < C * k * k; i++) wd[i] = rng_f();
  int st;
  const float* bpu = rng_range(0, 3) ? bp : NULL;
  const float* bdu = rng_range(0, 3) ? bd : NULL;
  cnn_conv2d_weights* pw = cnn_conv2d_weights_create(&dp, wp, bpu, isa, CNN_CONV_ALGO_GEMM, &st);
  cnn_conv2d_weights* dwt = cnn_conv2d_weights_create(&dd, wd, bdu, isa, CNN_CONV_ALGO_DEPTHWISE, &st);
  CHECK(pw && dwt, "expand_dw: weights create failed");
  if (!pw || !dwt) exit(1);
  const size_t nth = cnn_threadpool_size(pool);
  CHECK(cnn_conv2d_expand_dw_ok(pw, dwt, H, W), "expand_dw: shape refused (cin %zu C %zu k %zu s %zu)", cin, C, k, s);
  cnn_conv2d_plan p1, p2, pf;
  cnn_conv2d_plan_init(&p1, pw, batch, H, W, nth);
  cnn_conv2d_plan_init(&p2, dwt, batch, H, W, nth);
  cnn_conv2d_plan_init(&pf, pw, batch, H, W, nth);
  cnn_conv2d_set_expand_dw_band_bytes(band_bytes);
  const int fst = cnn_conv2d_plan_fuse_dw(&pf, dwt);
  cnn_conv2d_set_expand_dw_band_bytes(0);
  CHECK(fst == CNN_OK && pf.dw == dwt, "expand_dw: fuse refused");
  void* w1 = cnn_aligned_alloc(p1.workspace_bytes + 64);
  void* w2 = cnn_aligned_alloc(p2.workspace_bytes + 64);
  void* wf = cnn_aligned_alloc(pf.workspace_bytes + 64);
  float *e = falloc(ne), *want = falloc(ny), *got = falloc(ny + 8), *S = falloc(ny);
  for (size_t i = 0; i < ny + 8; i++) got[i] = -7777.0f;
  cnn_conv2d_run(&p1, x, e, NULL, w1, pool);
  cnn_conv2d_run(&p2, e, want, NULL, w2, pool);
  cnn_conv2d_run(&pf, x, got, NULL, wf, pool);
  /* S: |bias| + sum over the taps of |w| (|e| + Se), Se = |bp| + sum over cin of |wp x|: the fused path computes the
   * expanded values e in other GEMM tiles than the unfused one (a column can fall in a narrow tile, whose k chains are
   * split, in one and in a full tile in the other), so e itself may differ by its own rounding, gamma_{cin+2} * Se;
   * the bound is that of the whole composite sum, gamma_{k*k + cin + 4} * S (each output is a sum of k*k*(cin+1)
   * products whose rounding chains are at most that long). */
  float* Se = falloc(ne);
  for (size_t n = 0; n < batch; n++)
    for (size_t c = 0; c < C; c++)
      for (size_t q = 0; q < H * W; q++) {
        double acc = bpu ? fabs((double)bpu[c]) : 0.0;
        for (size_t ci = 0; ci < cin; ci++)
          acc += fabs((double)wp[c * cin + ci]) * fabs((double)x[(n * cin + ci) * H * W + q]);
        Se[(n * C + c) * H * W + q] = (float)acc;
      }
  for (size_t n = 0; n < batch; n++)
    for (size_t c = 0; c < C; c++)
      for (size_t oy = 0; oy < oh; oy++)
        for (size_t ox = 0; ox < ow; ox++) {
          double acc = 0;
          for (size_t ky = 0; ky < k; ky++)
            for (size_t kx = 0; kx < k; kx++) {
              const ptrdiff_t iy = (ptrdiff_t)(oy * s + ky) - (ptrdiff_t)dd.pad_top;
              const ptrdiff_t ix = (ptrdiff_t)(ox * s + kx) - (ptrdiff_t)dd.pad_left;
              if (iy < 0 || ix < 0 || iy >= (ptrdiff_t)H || ix >= (ptrdiff_t)W) continue;
              const size_t ei = ((n * C + c) * H + iy) * W + ix;
              acc += fabs((double)wd[c * k * k + ky * k + kx]) * (fabs((double)e[ei]) + (double)Se[ei]);
            }
          S[((n * C + c) * oh + oy) * ow + ox] = (float)(acc + (bdu ? fabs((double)bdu[c]) : 0.0));
        }
  size_t wi = 0;
  const double r = worst_gamma_ratio(got, want, S, ny, 2 * gamma_n(k * k + cin + 4), &dd.act, &wi);
  CHECK(r <= 1, "expand_dw isa %d thr %zu band %zu: n%zu cin %zu C %zu %zux%zu k%zu s%zu pad %zu,%zu,%zu,%zu act %d/%d: "
        "ratio %g at %zu (got %g want %g)", isa, nth, band_bytes, batch, cin, C, H, W, k, s, (size_t)dd.pad_top,
        (size_t)dd.pad_left, (size_t)dd.pad_bottom, (size_t)dd.pad_right, (int)dp.act.type, (int)dd.act.type, r, wi,
        (double)got[wi], (double)want[wi]);
  int guard = 1;
  for (size_t i = ny; i < ny + 8; i++) guard &= got[i] == -7777.0f;
  CHECK(guard, "expand_dw: wrote past the output");
  cnn_aligned_free(w1);
  cnn_aligned_free(w2);
  cnn_aligned_free(wf);
  free(x); free(wp); free(bp); free(wd); free(bd); free(e); free(want); free(got); free(S); free(Se);
  cnn_conv2d_weights_destroy(pw);
  cnn_conv2d_weights_destroy(dwt);
  return 1;
}

static void test_expand_dw(int ncases) {
  cnn_threadpool* pool2 = cnn_threadpool_create(2);
  int done = 0;
  for (int isa = 0; isa < CNN_ISA_COUNT; isa++) {
    if (!cnn_hw_isa_supported(isa)) continue;
    for (int i = 0; i < ncases; i++) {
      const size_t budget = i % 3 == 0 ? 0 : (i % 3 == 1 ? 64 : (size_t)rng_range(1, 64) << 10);
      done += expand_dw_case(isa, i % 2 ? pool2 : NULL, budget);
    }
  }
  cnn_threadpool_destroy(pool2);
  printf("expand 1x1 + depthwise fused: %d cases\n", done);
}

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
  test_expand_dw(150);
  printf("test_dwconv: %d passed, %d failed\n", g_pass, g_fail);
  return g_fail ? 1 : 0;
}
