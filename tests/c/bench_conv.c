/* GFLOP/s of the SGEMM micro-kernel, cnn_sgemm and the convolution algorithms on typical shapes (ResNet-50, VGG16,
 * MobileNet depthwise), with 1 and 2 threads. Not a test: `make -C tests/c bench`.
 *   bench_conv [seconds-per-case [max-threads [name-filter]]]     (defaults: 0.3, 2, all cases)
 * Each case runs for at least that long after a warm-up; the best of 5 such rounds' mean time is reported (the
 * machine is shared, so the best round is the least disturbed one). Peak for the percentages: 100 GFLOP/s per core
 * (2 FMA ports x 8 lanes x 2 flops x ~3 GHz, AVX2). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cnnrt/conv.h"
#include "cnnrt/gemm.h"
#include "cnnrt/hardware.h"
#include "cnnrt/threadpool.h"

#include "bench_util.h"

#define PEAK_PER_CORE 100.0

static double g_seconds = 0.3;
static size_t g_max_threads = 2;
static const char* g_filter = NULL;

static int selected(const char* name) { return !g_filter || strstr(name, g_filter) != NULL; }

typedef void (*bench_fn)(void* ctx);

/* seconds per call: best over 5 rounds of the mean over >= g_seconds/5 */
static double time_it(bench_fn fn, void* ctx) {
  fn(ctx);
  fn(ctx);
  double best = INFINITY;
  for (int r = 0; r < 5; r++) {
    size_t iters = 0;
    const double t0 = now_s();
    double t;
    do {
      fn(ctx);
      iters++;
      t = now_s() - t0;
    } while (t < g_seconds / 5);
    if (t / (double)iters < best) best = t / (double)iters;
  }
  return best;
}

static void report(const char* name, size_t nthreads, double flops, double sec) {
  const double gf = flops / sec * 1e-9;
  printf("%-44s %zu thr  %9.3f ms  %7.1f GFLOP/s  %5.1f%% of peak\n", name, nthreads, sec * 1e3, gf,
         100.0 * gf / (PEAK_PER_CORE * (double)nthreads));
}

/* ---- micro-kernel alone (L1-resident panels) ---- */
typedef struct {
  const cnn_gemm_config* cfg;
  size_t kc;
  float *a, *b, *c;
} uk_ctx;
static void uk_run(void* v) {
  uk_ctx* x = (uk_ctx*)v;
  for (int i = 0; i < 1000; i++) x->cfg->ukernel(6, 16, x->kc, x->a, x->b, x->c, 16, 1, NULL);
}

/* ---- sgemm ---- */
typedef struct {
  const cnn_gemm_config* cfg;
  size_t M, N, K;
  float *a, *b, *c;
  void* ws;
  cnn_threadpool* pool;
} sg_ctx;
static void sg_run(void* v) {
  sg_ctx* x = (sg_ctx*)v;
  cnn_sgemm(x->cfg, x->M, x->N, x->K, x->a, x->K, 1, x->b, x->N, 1, x->c, x->N, NULL, NULL, x->ws, x->pool);
}

/* ---- conv ---- */
typedef struct {
  cnn_conv2d_plan plan;
  float *in, *out;
  void* ws;
  cnn_threadpool* pool;
} cv_ctx;
static void cv_run(void* v) {
  cv_ctx* x = (cv_ctx*)v;
  cnn_conv2d_run(&x->plan, x->in, x->out, NULL, x->ws, x->pool);
}

static void bench_conv(const char* name, size_t cin, size_t cout, size_t groups, size_t hw, size_t k, size_t s,
                       int algo, cnn_threadpool** pools) {
  if (!selected(name)) return;
  cnn_conv2d_desc d;
  memset(&d, 0, sizeof(d));
  d.in_channels = cin;
  d.out_channels = cout;
  d.groups = groups;
  d.kernel_h = d.kernel_w = k;
  d.stride_h = d.stride_w = s;
  d.dilation_h = d.dilation_w = 1;
  d.pad_top = d.pad_left = d.pad_bottom = d.pad_right = k / 2;
  d.act.type = CNN_ACT_RELU;
  float* w = frand(cout * (cin / groups) * k * k);
  float* bias = frand(cout);
  int st;
  cnn_conv2d_weights* cw = cnn_conv2d_weights_create(&d, w, bias, -1, algo, &st);
  if (!cw) {
    printf("%s: create failed (%d)\n", name, st);
    return;
  }
  size_t oh, ow;
  cnn_conv2d_out_size(&d, hw, hw, &oh, &ow);
  const double flops = 2.0 * (double)cout * (double)(cin / groups) * (double)(k * k) * (double)(oh * ow);
  for (size_t t = 1; t <= g_max_threads; t++) {
    cv_ctx x;
    cnn_conv2d_plan_init(&x.plan, cw, 1, hw, hw, t);
    x.in = frand(cin * hw * hw);
    x.out = frand(cout * oh * ow);
    x.ws = x.plan.workspace_bytes ? cnn_aligned_alloc(x.plan.workspace_bytes) : NULL;
    x.pool = pools[t - 1];
    report(name, t, flops, time_it(cv_run, &x));
    cnn_aligned_free(x.in);
    cnn_aligned_free(x.out);
    cnn_aligned_free(x.ws);
  }
  cnn_conv2d_weights_destroy(cw);
  cnn_aligned_free(w);
  cnn_aligned_free(bias);
}

int main(int argc, char** argv) {
  if (argc > 1) g_seconds = atof(argv[1]);
  if (argc > 2) g_max_threads = (size_t)atoi(argv[2]) > 1 ? 2 : 1;
  if (argc > 3) g_filter = argv[3];
  setvbuf(stdout, NULL, _IOLBF, 0);
  const cnn_gemm_config* cfg = cnn_gemm_config_get(-1);
  printf("isa %s: mr=%zu nr=%zu kc=%zu mc=%zu nc=%zu; peak assumed %.0f GFLOP/s per core\n", cnn_isa_name(cfg->isa),
         cfg->mr, cfg->nr, cfg->kc, cfg->mc, cfg->nc, PEAK_PER_CORE);
  cnn_threadpool* pools[2] = {cnn_threadpool_create(1), cnn_threadpool_create(2)};

  if (selected("ukernel")) {
    uk_ctx x = {cfg, cfg->kc, frand(cfg->kc * 6), frand(cfg->kc * 16), frand(6 * 16)};
    char name[64];
    snprintf(name, sizeof(name), "ukernel 6x16 kc=%zu (L1)", cfg->kc);
    report(name, 1, 1000.0 * 2 * 6 * 16 * (double)cfg->kc, time_it(uk_run, &x));
    cnn_aligned_free(x.a);
    cnn_aligned_free(x.b);
    cnn_aligned_free(x.c);
  }
  const size_t sizes[] = {512, 1024};
  for (size_t si = 0; si < 2; si++) {
    const size_t n = sizes[si];
    char sname[64];
    snprintf(sname, sizeof(sname), "sgemm M=N=K=%zu", n);
    if (!selected(sname)) continue;
    for (size_t t = 1; t <= g_max_threads; t++) {
      sg_ctx x = {cfg, n, n, n, frand(n * n), frand(n * n), frand(n * n), NULL, pools[t - 1]};
      x.ws = cnn_aligned_alloc(cnn_sgemm_workspace_size(cfg, n, n, n, t));
      report(sname, t, 2.0 * (double)n * (double)n * (double)n, time_it(sg_run, &x));
      cnn_aligned_free(x.a);
      cnn_aligned_free(x.b);
      cnn_aligned_free(x.c);
      cnn_aligned_free(x.ws);
    }
  }
  const int G = CNN_CONV_ALGO_GEMM;
  bench_conv("resnet50 1x1 256->64 56x56", 256, 64, 1, 56, 1, 1, G, pools);
  bench_conv("resnet50 3x3 64->64 56x56", 64, 64, 1, 56, 3, 1, G, pools);
  bench_conv("resnet50 1x1 64->256 56x56", 64, 256, 1, 56, 1, 1, G, pools);
  bench_conv("resnet50 3x3 128->128 28x28", 128, 128, 1, 28, 3, 1, G, pools);
  bench_conv("resnet50 3x3 128->128 56x56 s2", 128, 128, 1, 56, 3, 2, G, pools);
  bench_conv("resnet50 1x1 1024->256 14x14", 1024, 256, 1, 14, 1, 1, G, pools);
  bench_conv("resnet50 3x3 256->256 14x14", 256, 256, 1, 14, 3, 1, G, pools);
  bench_conv("resnet50 3x3 512->512 7x7", 512, 512, 1, 7, 3, 1, G, pools);
  bench_conv("resnet50 1x1 512->2048 7x7", 512, 2048, 1, 7, 1, 1, G, pools);
  bench_conv("resnet50 1x1 2048->512 7x7", 2048, 512, 1, 7, 1, 1, G, pools);
  bench_conv("resnet50 1x1 1024->2048 14x14 s2", 1024, 2048, 1, 14, 1, 2, G, pools);
  bench_conv("resnet50 1x1 256->512 56x56 s2", 256, 512, 1, 56, 1, 2, G, pools);
  bench_conv("resnet50 3x3 512->512 14x14 s2", 512, 512, 1, 14, 3, 2, G, pools);
  bench_conv("mobilenetv2 1x1 32->16 112x112", 32, 16, 1, 112, 1, 1, G, pools);
  bench_conv("mobilenetv2 1x1 16->96 112x112", 16, 96, 1, 112, 1, 1, G, pools);
  bench_conv("mobilenetv2 1x1 96->24 56x56", 96, 24, 1, 56, 1, 1, G, pools);
  bench_conv("mobilenetv2 1x1 24->144 56x56", 24, 144, 1, 56, 1, 1, G, pools);
  bench_conv("mobilenetv2 1x1 960->160 7x7", 960, 160, 1, 7, 1, 1, G, pools);
  bench_conv("squeezenet 1x1 512->1000 13x13", 512, 1000, 1, 13, 1, 1, G, pools);
  bench_conv("squeezenet 1x1 128->16 55x55", 128, 16, 1, 55, 1, 1, G, pools);
  bench_conv("squeezenet 1x1 256->32 27x27", 256, 32, 1, 27, 1, 1, G, pools);
  bench_conv("squeezenet 1x1 512->64 13x13", 512, 64, 1, 13, 1, 1, G, pools);
  bench_conv("mobilenetv2 1x1 384->64 14x14", 384, 64, 1, 14, 1, 1, G, pools);
  bench_conv("mobilenetv2 1x1 576->96 14x14", 576, 96, 1, 14, 1, 1, G, pools);
  bench_conv("efficientnet 1x1 480->80 14x14", 480, 80, 1, 14, 1, 1, G, pools);
  bench_conv("efficientnet 1x1 672->112 14x14", 672, 112, 1, 14, 1, 1, G, pools);
  bench_conv("efficientnet 1x1 1152->320 7x7", 1152, 320, 1, 7, 1, 1, G, pools);
  bench_conv("efficientnet 1x1 320->1280 7x7", 320, 1280, 1, 7, 1, 1, G, pools);
  bench_conv("resnet50 7x7 3->64 224x224 s2 (stem)", 3, 64, 1, 224, 7, 2, G, pools);
  bench_conv("vgg16 3x3 64->64 224x224", 64, 64, 1, 224, 3, 1, G, pools);
  bench_conv("vgg16 3x3 512->512 14x14", 512, 512, 1, 14, 3, 1, G, pools);
  bench_conv("mobilenet dw 3x3 32 112x112", 32, 32, 32, 112, 3, 1, CNN_CONV_ALGO_DEPTHWISE, pools);
  bench_conv("mobilenet dw 3x3 512 14x14", 512, 512, 512, 14, 3, 1, CNN_CONV_ALGO_DEPTHWISE, pools);
  bench_conv("mobilenet dw 3x3 s2 64 112x112", 64, 64, 64, 112, 3, 2, CNN_CONV_ALGO_DEPTHWISE, pools);
  bench_conv("efficientnet dw 5x5 240 28x28", 240, 240, 240, 28, 5, 1, CNN_CONV_ALGO_DEPTHWISE, pools);
  cnn_threadpool_destroy(pools[0]);
  cnn_threadpool_destroy(pools[1]);
  return 0;
}
