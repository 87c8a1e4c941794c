/* Effective GFLOP/s (direct-convolution FLOPs 2*Cout*Cin*9*OH*OW*N / time) of the implicit-GEMM conv vs Winograd
 * F(2,3), F(4,3), F(6,3) on 3x3 stride-1 pad-1 layers: the shipped ConvNet (batch 1 and 32), VGG16 at 224 and
 * ResNet-18 (batch 1), with 1 and 2 threads. Not a test: `make -C tests/c bench-winograd [BENCH_ARGS="sec filter"]`.
 * Each case: 2 warm-up runs, then the best of 5 rounds of the mean over >= seconds/5 (the machine is shared: the
 * best round is the least disturbed one; compare columns of the same row, measured back to back).
 *
 * Measured 2026-11-28 on the 2-core AVX2 (Zen 3) machine, shared with other jobs (load average 3-5: absolute
 * numbers vary by up to 2x between runs, 2-thread ones most; ratios within a row are the meaningful part). ReLU
 * fused, bias, pad 1. "AUTO picks" is what cnn_conv2d_weights_create(AUTO) + cnn_conv2d_plan_init choose, with its
 * speedup over GEMM in that row:
 *   layer                  batch thr     GEMM   F(2,3)   F(4,3)   F(6,3)  best/GEMM AUTO picks
 *   convnet1 1-64@64           1   1     33.6      3.6      7.1      6.4  0.21x     GEMM
 *   convnet1 1-64@64           1   2     12.7      3.0     12.7     10.5  1.01x     GEMM
 *   convnet2 64-64@32          1   1     58.3     73.6    118.3     82.2  2.03x     F(4,3) 2.03x
 *   convnet2 64-64@32          1   2    113.4    130.8    242.2    117.2  2.14x     F(4,3) 2.14x
 *   convnet3 64-128@16         1   1     51.0    106.4    179.1     83.3  3.51x     F(4,3) 3.51x
 *   convnet3 64-128@16         1   2     41.3     56.6    156.0     32.9  3.78x     F(4,3) 3.78x
 *   convnet4 128-128@8         1   1     52.0     82.3     35.9     19.2  1.58x     GEMM
 *   convnet4 128-128@8         1   2     25.6     33.7     18.8      9.9  1.32x     GEMM
 *   convnet1 1-64@64          32   1     10.8      2.5      4.8      4.5  0.45x     GEMM
 *   convnet1 1-64@64          32   2      9.1      3.0      4.9      4.7  0.53x     GEMM
 *   convnet2 64-64@32         32   1     38.8     47.4     67.9     97.8  2.52x     F(4,3) 1.75x
 *   convnet2 64-64@32         32   2     45.0     70.0     79.9     55.3  1.78x     F(4,3) 1.78x
 *   convnet3 64-128@16        32   1     36.0     44.2     69.1     77.8  2.16x     F(4,3) 1.92x
 *   convnet3 64-128@16        32   2     37.8     48.2     81.9     66.2  2.17x     F(4,3) 2.17x
 *   convnet4 128-128@8        32   1     39.7     58.7     81.8     40.5  2.06x     F(4,3) 2.06x
 *   convnet4 128-128@8        32   2     32.2     52.4     76.6     40.9  2.38x     F(4,3) 2.38x
 *   vgg 3-64@224               1   1     16.2      6.5     11.8     11.4  0.73x     GEMM
 *   vgg 3-64@224               1   2     17.4      5.8     11.7     10.9  0.67x     GEMM
 *   vgg 64-64@224              1   1     37.4     41.2     67.5     75.9  2.03x     F(4,3) 1.80x
 *   vgg 64-64@224              1   2     38.4     43.3     66.3     74.1  1.93x     F(4,3) 1.72x
 *   vgg 64-128@112             1   1     42.7     55.9     86.9     97.8  2.29x     F(4,3) 2.03x
 *   vgg 64-128@112             1   2     39.7     46.2     76.9    100.7  2.53x     F(4,3) 1.94x
 *   vgg 128-128@112            1   1     66.4    111.6    181.1    112.9  2.73x     F(4,3) 2.73x
 *   vgg 128-128@112            1   2     40.6     43.0     70.6     61.8  1.74x     F(4,3) 1.74x
 *   vgg 128-256@56             1   1     36.1     51.6     72.0     89.2  2.47x     F(4,3) 2.00x
 *   vgg 128-256@56             1   2     46.6     77.3    100.3     87.8  2.15x     F(4,3) 2.15x
 *   vgg 256-256@56             1   1     42.9     64.8     80.0     81.1  1.89x     F(4,3) 1.86x
 *   vgg 256-256@56             1   2     39.5     57.8     75.7     87.8  2.22x     F(4,3) 1.92x
 *   vgg 256-512@28             1   1     55.0    126.4    148.2    125.5  2.69x     F(4,3) 2.69x
 *   vgg 256-512@28             1   2     45.1     61.5     96.0     84.2  2.13x     F(4,3) 2.13x
 *   vgg 512-512@28             1   1     88.2     83.2    148.1    161.6  1.83x     F(4,3) 1.68x
 *   vgg 512-512@28             1   2     49.8     62.8     87.0     95.7  1.92x     F(4,3) 1.75x
 *   vgg 512-512@14             1   1     41.4     47.2     71.0     44.1  1.71x     F(4,3) 1.71x
 *   vgg 512-512@14             1   2     33.6     45.7     57.4     28.7  1.71x     F(4,3) 1.71x
 *   resnet18 64-64@56          1   1     41.7     35.7     60.1     66.5  1.59x     F(4,3) 1.44x
 *   resnet18 64-64@56          1   2     33.2     37.6     65.3     69.6  2.10x     F(4,3) 1.97x
 *   resnet18 128-128@28        1   1     43.6     60.8     84.5     68.6  1.94x     F(4,3) 1.94x
 *   resnet18 128-128@28        1   2     36.9     53.6     73.6     50.2  1.99x     F(4,3) 1.99x
 *   resnet18 256-256@14        1   1     33.7     57.9     81.7     38.7  2.43x     F(4,3) 2.43x
 *   resnet18 256-256@14        1   2     36.7     65.0     75.5     36.2  2.06x     F(4,3) 2.06x
 *   resnet18 512-512@7         1   1     32.0     66.5     35.9     20.7  2.08x     GEMM
 *   resnet18 512-512@7         1   2     44.5     58.2     33.8     12.7  1.31x     GEMM
 *   small 16-16@16             1   1     48.5     22.9     47.8     14.2  0.99x     F(4,3) 0.99x
 *   small 16-16@16             1   2      5.0      4.9     54.9     20.0  10.99x    F(4,3) 10.99x
 *   small 32-32@8              1   1     27.9     45.5     22.9     11.9  1.63x     GEMM
 *   small 32-32@8              1   2     17.2     21.8      4.3      3.2  1.27x     GEMM
 *   small 8-8@32               1   1     20.0     21.9     40.2     26.6  2.01x     GEMM
 *   small 8-8@32               1   2     10.3      4.9      4.2      6.2  0.60x     GEMM
 * Conclusions (rule in src/ops/winograd.c): F(4,3) 1.4-3.8x the implicit GEMM on every layer with >= 12 x 12 outputs
 * and >= 16 channels; F(6,3) within noise of F(4,3) (ahead on some large layers in one run, behind in another);
 * F(2,3) best only for 7x7 / 8x8 outputs at batch 1 (where the plan keeps GEMM); 1 or 3 input channels: GEMM. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cnnrt/conv.h"
#include "cnnrt/hardware.h"
#include "cnnrt/threadpool.h"
#include "cnnrt/winograd.h"

#include "bench_util.h"

static double g_seconds = 0.25;
static const char* g_filter = NULL;

typedef struct {
  int m; /* 0: GEMM */
  cnn_conv2d_plan plan;
  cnn_wino_weights* ww;
  size_t batch, H, W, oh, ow, nth;
  const float* x;
  float* y;
  void* ws;
  cnn_threadpool* pool;
} run_ctx;

static void run_once(run_ctx* c) {
  if (c->m == 0)
    cnn_conv2d_run(&c->plan, c->x, c->y, NULL, c->ws, c->pool);
  else
    cnn_wino_run(c->ww, c->batch, c->H, c->W, c->oh, c->ow, c->x, c->y, NULL, c->ws, c->pool, c->nth);
}

static double time_it(run_ctx* c) {
  run_once(c);
  run_once(c);
  double best = INFINITY;
  for (int r = 0; r < 5; r++) {
    size_t it = 0;
    const double t0 = now_s();
    double t;
    do {
      run_once(c);
      it++;
      t = now_s() - t0;
    } while (t < g_seconds / 5);
    if (t / it < best) best = t / it;
  }
  return best;
}

typedef struct {
  const char* name;
  size_t cin, cout, hw, batch;
} layer;

int main(int argc, char** argv) {
  if (argc > 1) g_seconds = atof(argv[1]);
  if (argc > 2) g_filter = argv[2];
  const layer layers[] = {
      {"convnet1 1-64@64", 1, 64, 64, 1},      {"convnet2 64-64@32", 64, 64, 32, 1},
      {"convnet3 64-128@16", 64, 128, 16, 1},  {"convnet4 128-128@8", 128, 128, 8, 1},
      {"convnet1 1-64@64", 1, 64, 64, 32},     {"convnet2 64-64@32", 64, 64, 32, 32},
      {"convnet3 64-128@16", 64, 128, 16, 32}, {"convnet4 128-128@8", 128, 128, 8, 32},
      {"vgg 3-64@224", 3, 64, 224, 1},         {"vgg 64-64@224", 64, 64, 224, 1},
      {"vgg 64-128@112", 64, 128, 112, 1},     {"vgg 128-128@112", 128, 128, 112, 1},
      {"vgg 128-256@56", 128, 256, 56, 1},     {"vgg 256-256@56", 256, 256, 56, 1},
      {"vgg 256-512@28", 256, 512, 28, 1},     {"vgg 512-512@28", 512, 512, 28, 1},
      {"vgg 512-512@14", 512, 512, 14, 1},     {"resnet18 64-64@56", 64, 64, 56, 1},
      {"resnet18 128-128@28", 128, 128, 28, 1}, {"resnet18 256-256@14", 256, 256, 14, 1},
      {"resnet18 512-512@7", 512, 512, 7, 1},  {"small 16-16@16", 16, 16, 16, 1},
      {"small 32-32@8", 32, 32, 8, 1},         {"small 8-8@32", 8, 8, 32, 1},
      {"squeezenet 16-64@55", 16, 64, 55, 1},  {"squeezenet 32-128@27", 32, 128, 27, 1},
      {"squeezenet 48-192@13", 48, 192, 13, 1}, {"squeezenet 64-256@13", 64, 256, 13, 1},
  };
  cnn_threadpool* pool2 = cnn_threadpool_create(2);
  printf("isa %s; effective GFLOP/s = direct FLOPs / time (best of 5 rounds)\n", cnn_isa_name(cnn_hw_active_isa()));
  printf("%-22s %5s %3s %8s %8s %8s %8s  %-9s %s\n", "layer", "batch", "thr", "GEMM", "F(2,3)", "F(4,3)", "F(6,3)",
         "best/GEMM", "AUTO picks");
  for (size_t li = 0; li < sizeof(layers) / sizeof(layers[0]); li++) {
    const layer* L = &layers[li];
    if (g_filter && !strstr(L->name, g_filter)) continue;
    cnn_conv2d_desc d;
    memset(&d, 0, sizeof(d));
    d.in_channels = L->cin;
    d.out_channels = L->cout;
    d.groups = 1;
    d.kernel_h = d.kernel_w = 3;
    d.stride_h = d.stride_w = 1;
    d.dilation_h = d.dilation_w = 1;
    d.pad_top = d.pad_left = d.pad_bottom = d.pad_right = 1;
    d.act.type = CNN_ACT_RELU;
    float* w = frand(L->cout * L->cin * 9);
    float* b = frand(L->cout);
    float* x = frand(L->batch * L->cin * L->hw * L->hw);
    float* y = frand(L->batch * L->cout * L->hw * L->hw);
    const double flops = 2.0 * L->cout * L->cin * 9 * L->hw * L->hw * L->batch;
    int st;
    cnn_conv2d_weights* gw = cnn_conv2d_weights_create(&d, w, b, -1, CNN_CONV_ALGO_GEMM, &st);
    cnn_wino_weights* ww[7] = {0};
    for (int m = 2; m <= 6; m += 2) ww[m] = cnn_wino_weights_create(&d, w, b, -1, m);
    for (size_t nth = 1; nth <= 2; nth++) {
      double gf[7] = {0};
      for (int m = 0; m <= 6; m += 2) {
        if (m == 0 ? !gw : !ww[m]) continue;
        run_ctx c;
        memset(&c, 0, sizeof(c));
        c.m = m;
        c.batch = L->batch;
        c.H = c.W = c.oh = c.ow = L->hw;
        c.nth = nth;
        c.x = x;
        c.y = y;
        c.pool = nth > 1 ? pool2 : NULL;
        size_t wsb;
        if (m == 0) {
          cnn_conv2d_plan_init(&c.plan, gw, L->batch, L->hw, L->hw, nth);
          wsb = c.plan.workspace_bytes;
        } else {
          c.ww = ww[m];
          wsb = cnn_wino_workspace_size(ww[m], L->batch, L->hw, L->hw, L->hw, L->hw, nth);
        }
        c.ws = cnn_aligned_alloc(wsb ? wsb : 64);
        gf[m] = flops / time_it(&c) * 1e-9;
        cnn_aligned_free(c.ws);
      }
      const double best = fmax(gf[2], fmax(gf[4], gf[6]));
      char pick[32] = "GEMM";
      cnn_conv2d_weights* aw = cnn_conv2d_weights_create(&d, w, b, -1, CNN_CONV_ALGO_AUTO, &st);
      cnn_conv2d_plan ap;
      if (aw && cnn_conv2d_plan_init(&ap, aw, L->batch, L->hw, L->hw, nth) == CNN_OK &&
          ap.algo == CNN_CONV_ALGO_WINOGRAD)
        snprintf(pick, sizeof(pick), "F(%d,3) %.2fx", cnn_conv2d_weights_tile(aw),
                 gf[cnn_conv2d_weights_tile(aw)] / gf[0]);
      cnn_conv2d_weights_destroy(aw);
      char ratio[16];
      snprintf(ratio, sizeof(ratio), "%.2fx", best / gf[0]);
      printf("%-22s %5zu %3zu %8.1f %8.1f %8.1f %8.1f  %-9s %s\n", L->name, L->batch, nth, gf[0], gf[2], gf[4], gf[6],
             ratio, pick);
      fflush(stdout);
    }
    cnn_conv2d_weights_destroy(gw);
    for (int m = 2; m <= 6; m += 2) cnn_wino_weights_destroy(ww[m]);
    cnn_aligned_free(w);
    cnn_aligned_free(b);
    cnn_aligned_free(x);
    cnn_aligned_free(y);
  }
  cnn_threadpool_destroy(pool2);
  return 0;
}
