/* Expand 1x1 + depthwise 3x3 (ReLU6 on both) as two plans vs the fused plan (cnn_conv2d_plan_fuse_dw), on
 * MobileNetV2's expansions. Not a test: `make -C tests/c bench-expand-dw [BENCH_ARGS="runs"]`.
 * Between runs a 32 MiB buffer is read, so every layer starts as it does inside a model (its input in L3 at best,
 * the weights and the expanded tensor of the previous run evicted); only the convolutions are timed; best of
 * `runs` (default 40) per variant, three repeats (the machine is shared: compare within a line).
 * Measured 2026-11-28 (2-core AVX2 VM, 1 thread), unfused -> fused:
 *   16->96 at 112x112 s2 (4.8 MB expanded): 1.45-1.55 -> 1.13-1.25 ms
 *   24->144 at 56x56 s1 (1.8 MB): 0.773-0.777 -> 0.733-0.744 ms;  s2: 0.663-0.672 -> 0.562-0.619 ms
 *   32->192 at 28x28 s1 (0.6 MB): 0.442-0.468 -> 0.450-0.481 ms
 * In the models (benchmarks/ab_env.py) only the first kind gains (see the planner's EXPAND_DW_MIN_BYTES). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cnnrt/common.h"
#include "cnnrt/conv.h"

#include "bench_util.h"

static volatile float g_sink;
static void flush(const float* buf, size_t n) {
  float s = 0;
  for (size_t i = 0; i < n; i += 16) s += buf[i];
  g_sink = s;
}

static void bench(size_t cin, size_t C, size_t H, size_t s, int runs, const float* fb, size_t fn) {
  cnn_conv2d_desc dp, dd;
  memset(&dp, 0, sizeof(dp));
  memset(&dd, 0, sizeof(dd));
  dp.in_channels = cin;
  dp.out_channels = C;
  dp.groups = 1;
  dp.kernel_h = dp.kernel_w = dp.stride_h = dp.stride_w = dp.dilation_h = dp.dilation_w = 1;
  dp.act = (cnn_act){CNN_ACT_CLIP, 0.0f, 6.0f};
  dd.in_channels = dd.out_channels = dd.groups = C;
  dd.kernel_h = dd.kernel_w = 3;
  dd.stride_h = dd.stride_w = s;
  dd.dilation_h = dd.dilation_w = 1;
  dd.pad_top = dd.pad_left = dd.pad_bottom = dd.pad_right = 1;
  dd.act = dp.act;
  float *wp = frand(C * cin), *wd = frand(C * 9), *b = frand(C);
  cnn_conv2d_weights* pw = cnn_conv2d_weights_create(&dp, wp, b, -1, CNN_CONV_ALGO_GEMM, NULL);
  cnn_conv2d_weights* dw = cnn_conv2d_weights_create(&dd, wd, b, -1, CNN_CONV_ALGO_DEPTHWISE, NULL);
  cnn_conv2d_plan p1, p2, pf;
  cnn_conv2d_plan_init(&p1, pw, 1, H, H, 1);
  cnn_conv2d_plan_init(&p2, dw, 1, H, H, 1);
  cnn_conv2d_plan_init(&pf, pw, 1, H, H, 1);
  if (cnn_conv2d_plan_fuse_dw(&pf, dw) != CNN_OK) {
    printf("%zu->%zu at %zux%zu s%zu: not fusable\n", cin, C, H, H, s);
    return;
  }
  float *x = frand(cin * H * H), *e = frand(C * H * H), *y = frand(C * H * H);
  void* w1 = cnn_aligned_alloc(p1.workspace_bytes + 64);
  void* w2 = cnn_aligned_alloc(p2.workspace_bytes + 64);
  void* wf = cnn_aligned_alloc(pf.workspace_bytes + 64);
  for (int r = 0; r < 3; r++) {
    double t1 = 1e9, t2 = 1e9, tf = 1e9;
    for (int it = 0; it < runs; it++) {
      flush(fb, fn);
      double a = now_s();
      cnn_conv2d_run(&p1, x, e, NULL, w1, NULL);
      double m = now_s();
      cnn_conv2d_run(&p2, e, y, NULL, w2, NULL);
      double c = now_s();
      if (m - a < t1) t1 = m - a;
      if (c - m < t2) t2 = c - m;
      flush(fb, fn);
      a = now_s();
      cnn_conv2d_run(&pf, x, y, NULL, wf, NULL);
      c = now_s();
      if (c - a < tf) tf = c - a;
    }
    printf("%3zu->%-3zu at %3zux%-3zu s%zu (%.1f MB expanded): 1x1 %.3f + depthwise %.3f = %.3f ms; fused %.3f ms "
           "(band of %zu rows, %zu channels)\n", cin, C, H, H, s, C * H * H * 4 / 1e6, t1 * 1e3, t2 * 1e3,
           (t1 + t2) * 1e3, tf * 1e3, pf.dw_rows, pf.dw_cg);
  }
  cnn_aligned_free(w1);
  cnn_aligned_free(w2);
  cnn_aligned_free(wf);
  cnn_aligned_free(x);
  cnn_aligned_free(e);
  cnn_aligned_free(y);
  cnn_aligned_free(wp);
  cnn_aligned_free(wd);
  cnn_aligned_free(b);
  cnn_conv2d_weights_destroy(pw);
  cnn_conv2d_weights_destroy(dw);
}

int main(int argc, char** argv) {
  const int runs = argc > 1 ? atoi(argv[1]) : 40;
  const size_t fn = (size_t)32 << 18; /* 32 MiB of floats */
  float* fb = frand(fn);
  bench(16, 96, 112, 2, runs, fb, fn);
  bench(24, 144, 56, 1, runs, fb, fn);
  bench(24, 144, 56, 2, runs, fb, fn);
  bench(32, 192, 28, 1, runs, fb, fn);
  cnn_aligned_free(fb);
  return 0;
}
