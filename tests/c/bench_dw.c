/* Depthwise layers of MobileNetV2 and EfficientNet-B0 (batch 1): time of cnn_conv2d_run per layer, 1 or 2 threads,
 * and (1 thread, padded-plane path) the split between the packer and the kernel. Not a test:
 *   make -C tests/c build/x86_64/bench_dw && tests/c/build/x86_64/bench_dw [rounds [threads [name-filter]]]
 * Times: the median over `rounds` (default 15) blocks of the per-block mean of >= 5 ms of back-to-back runs, in thread
 * CPU time at 1 thread (time the OS gives to other processes does not count) and wall time at 2 threads. For A/B,
 * build an old tree's copy too and run the two binaries alternately, comparing medians. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cnnrt/conv.h"
#include "cnnrt/hardware.h"
#include "cnnrt/threadpool.h"

static int g_rounds = 15;
static size_t g_threads = 1;
static const char* g_filter = NULL;

static double now_s(void) {
  struct timespec ts;
  clock_gettime(g_threads == 1 ? CLOCK_THREAD_CPUTIME_ID : CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static float* frand(size_t n) {
  float* p = (float*)cnn_aligned_alloc(n * sizeof(float) + 64);
  if (!p) exit(2);
  uint32_t s = 12345;
  for (size_t i = 0; i < n; i++) {
    s = s * 1664525u + 1013904223u;
    p[i] = (float)((double)(s >> 8) / 16777216.0 - 0.5) * 4.0f;
  }
  return p;
}

static int cmp_d(const void* a, const void* b) {
  const double x = *(const double*)a, y = *(const double*)b;
  return x < y ? -1 : x > y;
}

typedef void (*bench_fn)(void* ctx);
static double time_it(bench_fn fn, void* ctx) {
  double v[64];
  fn(ctx);
  fn(ctx);
  for (int r = 0; r < g_rounds; r++) {
    size_t it = 0;
    const double t0 = now_s();
    double t;
    do {
      fn(ctx);
      it++;
      t = now_s() - t0;
    } while (t < 0.005);
    v[r] = t / (double)it;
  }
  qsort(v, (size_t)g_rounds, sizeof(double), cmp_d);
  return v[g_rounds / 2];
}

typedef struct {
  cnn_conv2d_plan plan;
  const float* in;
  float* out;
  void* ws;
  cnn_threadpool* pool;
  /* breakdown */
  cnn_dwconv_padded_params pp;
  const cnn_conv2d_desc* d;
  size_t C, H, W;
  float* pad;
  const float* w;
} ctx_t;

static void run_full(void* v) {
  ctx_t* x = (ctx_t*)v;
  cnn_conv2d_run(&x->plan, x->in, x->out, NULL, x->ws, x->pool);
}
static void run_pack(void* v) {
  ctx_t* x = (ctx_t*)v;
  for (size_t c = 0; c < x->C; c++) cnn_dwconv_pad_plane__avx2(&x->pp, x->in + c * x->H * x->W, x->H, x->W, x->pad);
}
static void run_kernel(void* v) {
  ctx_t* x = (ctx_t*)v;
  const size_t ohw = x->pp.oh * x->pp.ow, khw = x->d->kernel_h * x->d->kernel_w;
  for (size_t c = 0; c < x->C; c++) cnn_f32_dwconv_padded__avx2(&x->pp, x->pad, x->w + c * khw, 0.1f, NULL, x->out + c * ohw);
}

static void layer(const char* name, size_t C, size_t H, size_t k, size_t s, int act, cnn_threadpool* pool) {
  if (g_filter && !strstr(name, g_filter)) return;
  cnn_conv2d_desc d;
  memset(&d, 0, sizeof(d));
  d.in_channels = d.out_channels = d.groups = C;
  d.kernel_h = d.kernel_w = k;
  d.stride_h = d.stride_w = s;
  d.dilation_h = d.dilation_w = 1;
  d.pad_top = d.pad_left = d.pad_bottom = d.pad_right = k / 2;
  d.act.type = act;
  if (act == CNN_ACT_CLIP) d.act.b = 6.0f;
  float* w = frand(C * k * k);
  float* b = frand(C);
  float* in = frand(C * H * H);
  cnn_conv2d_weights* cw = cnn_conv2d_weights_create(&d, w, b, -1, CNN_CONV_ALGO_DEPTHWISE, NULL);
  ctx_t x;
  memset(&x, 0, sizeof(x));
  if (cnn_conv2d_plan_init(&x.plan, cw, 1, H, H, g_threads) != CNN_OK) exit(3);
  x.in = in;
  x.out = frand(C * x.plan.out_h * x.plan.out_w);
  x.ws = x.plan.workspace_bytes ? cnn_aligned_alloc(x.plan.workspace_bytes) : NULL;
  x.pool = pool;
  const double full = time_it(run_full, &x);
  printf("%-34s %zu thr  %8.4f ms", name, g_threads, full * 1e3);
  size_t fl;
  if (g_threads == 1 && cnn_hw_active_isa() == CNN_ISA_AVX2 &&
      cnn_dwconv_padded_geometry(&d, H, H, x.plan.out_h, x.plan.out_w, &x.pp, &fl)) {
    x.d = &d;
    x.C = C;
    x.H = x.W = H;
    x.pad = frand(fl);
    x.w = w;
    const double pk = time_it(run_pack, &x), kn = time_it(run_kernel, &x);
    printf("   (padded path parts: pack %.4f + kernel %.4f ms, no act)", pk * 1e3, kn * 1e3);
    cnn_aligned_free(x.pad);
  }
  printf("\n");
  cnn_conv2d_weights_destroy(cw);
  cnn_aligned_free(w);
  cnn_aligned_free(b);
  cnn_aligned_free(in);
  cnn_aligned_free(x.out);
  cnn_aligned_free(x.ws);
}

int main(int argc, char** argv) {
  if (argc > 1) g_rounds = atoi(argv[1]);
  if (g_rounds < 1 || g_rounds > 64) g_rounds = 15;
  if (argc > 2) g_threads = (size_t)atoi(argv[2]);
  if (g_threads < 1) g_threads = 1;
  if (argc > 3) g_filter = argv[3];
  cnn_threadpool* pool = g_threads > 1 ? cnn_threadpool_create(g_threads) : NULL;
  const int R6 = CNN_ACT_CLIP, SI = CNN_ACT_SILU;
  layer("mnv2 32x112 3x3 s1 relu6", 32, 112, 3, 1, R6, pool);
  layer("mnv2 96x112 3x3 s2 relu6", 96, 112, 3, 2, R6, pool);
  layer("mnv2 144x56 3x3 s1 relu6", 144, 56, 3, 1, R6, pool);
  layer("mnv2 144x56 3x3 s2 relu6", 144, 56, 3, 2, R6, pool);
  layer("mnv2 192x28 3x3 s1 relu6", 192, 28, 3, 1, R6, pool);
  layer("mnv2 192x28 3x3 s2 relu6", 192, 28, 3, 2, R6, pool);
  layer("mnv2 576x14 3x3 s1 relu6", 576, 14, 3, 1, R6, pool);
  layer("mnv2 576x14 3x3 s2 relu6", 576, 14, 3, 2, R6, pool);
  layer("mnv2 960x7 3x3 s1 relu6", 960, 7, 3, 1, R6, pool);
  layer("effb0 32x112 3x3 s1 silu", 32, 112, 3, 1, SI, pool);
  layer("effb0 96x112 3x3 s2 silu", 96, 112, 3, 2, SI, pool);
  layer("effb0 144x56 3x3 s1 silu", 144, 56, 3, 1, SI, pool);
  layer("effb0 144x56 5x5 s2 silu", 144, 56, 5, 2, SI, pool);
  layer("effb0 240x28 5x5 s1 silu", 240, 28, 5, 1, SI, pool);
  layer("effb0 240x28 3x3 s2 silu", 240, 28, 3, 2, SI, pool);
  layer("effb0 480x14 3x3 s1 silu", 480, 14, 3, 1, SI, pool);
  layer("effb0 480x14 5x5 s1 silu", 480, 14, 5, 1, SI, pool);
  layer("effb0 672x14 5x5 s1 silu", 672, 14, 5, 1, SI, pool);
  layer("effb0 672x14 5x5 s2 silu", 672, 14, 5, 2, SI, pool);
  layer("effb0 1152x7 5x5 s1 silu", 1152, 7, 5, 1, SI, pool);
  layer("effb0 1152x7 3x3 s1 silu", 1152, 7, 3, 1, SI, pool);
  if (pool) cnn_threadpool_destroy(pool);
  return 0;
}
