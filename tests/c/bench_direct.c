/* Time of the direct convolution (few input channels) on the layers that use it: ConvNet's conv1 (1->64 and 3->64,
 * 3x3 pad 1, ReLU, fused 2x2 max-pool) and the stems of MobileNetV2 / EfficientNet-B0 / ResNet / SqueezeNet.
 * Not a test: `make -C tests/c bench_direct` builds build/<arch>/bench_direct.
 *   bench_direct [blocks [threads [name-filter]]]      (defaults: 15 blocks, 1 thread, all cases)
 * Each case runs `blocks` blocks of ~5 ms of calls (at least one call); per-call time of a block is its CPU time (1 thread: the
 * calling thread's CLOCK_THREAD_CPUTIME_ID, robust to a shared machine; more threads: wall clock) over its calls.
 * Prints the median and the minimum over the blocks, and GFLOP/s (2 flops per MAC, without padding zeros). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cnnrt/conv.h"
#include "cnnrt/threadpool.h"

static double now_s(clockid_t id) {
  struct timespec ts;
  clock_gettime(id, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static float* frand(size_t n, uint32_t s) {
  float* p = (float*)cnn_aligned_alloc(n * sizeof(float));
  if (!p) exit(2);
  for (size_t i = 0; i < n; i++) {
    s = s * 1664525u + 1013904223u;
    p[i] = (float)((double)(s >> 8) / 16777216.0 - 0.5);
  }
  return p;
}

static int cmpd(const void* a, const void* b) {
  const double x = *(const double*)a, y = *(const double*)b;
  return x < y ? -1 : x > y;
}

static void bench(const char* name, size_t cin, size_t cout, size_t hw, size_t k, size_t s, size_t pad, int act,
                  int pool2, size_t batch, int blocks, size_t nthreads, cnn_threadpool* tp, const char* filter) {
  if (filter && !strstr(name, filter)) return;
  cnn_conv2d_desc d;
  memset(&d, 0, sizeof(d));
  d.in_channels = cin;
  d.out_channels = cout;
  d.groups = 1;
  d.kernel_h = d.kernel_w = k;
  d.stride_h = d.stride_w = s;
  d.dilation_h = d.dilation_w = 1;
  d.pad_top = d.pad_left = d.pad_bottom = d.pad_right = pad;
  d.act.type = act;
  if (act == CNN_ACT_CLIP) d.act.b = 6;
  float* wt = frand(cout * cin * k * k, 7);
  float* bias = frand(cout, 9);
  int st;
  cnn_conv2d_weights* cw = cnn_conv2d_weights_create(&d, wt, bias, -1, CNN_CONV_ALGO_DIRECT, &st);
  cnn_conv2d_plan p;
  if (!cw || cnn_conv2d_plan_init(&p, cw, batch, hw, hw, nthreads) != CNN_OK ||
      (pool2 && cnn_conv2d_plan_fuse_maxpool2(&p) != CNN_OK)) {
    printf("%-40s setup failed\n", name);
    exit(1);
  }
  float* in = frand(batch * cin * hw * hw, 11);
  float* out = frand(batch * cout * p.out_h * p.out_w, 13);
  void* ws = p.workspace_bytes ? cnn_aligned_alloc(p.workspace_bytes) : NULL;
  cnn_threadpool* pool = nthreads > 1 ? tp : NULL;
  const clockid_t clk = nthreads > 1 ? CLOCK_MONOTONIC : CLOCK_THREAD_CPUTIME_ID;
  for (int i = 0; i < 3; i++) cnn_conv2d_run(&p, in, out, NULL, ws, pool);
  double t[64];
  if (blocks > 64) blocks = 64;
  for (int b = 0; b < blocks; b++) {
    size_t it = 0;
    const double t0 = now_s(clk);
    double e;
    do {
      cnn_conv2d_run(&p, in, out, NULL, ws, pool);
      it++;
      e = now_s(clk) - t0;
    } while (e < 0.005);
    t[b] = e / (double)it;
  }
  qsort(t, (size_t)blocks, sizeof(double), cmpd);
  const double flops = 2.0 * batch * cout * p.out_h * p.out_w * cin * k * k;
  printf("%-40s %zu thr  median %9.4f ms  min %9.4f ms  %6.1f GFLOP/s (median)\n", name, nthreads,
         t[blocks / 2] * 1e3, t[0] * 1e3, flops / t[blocks / 2] * 1e-9);
  cnn_aligned_free(ws);
  cnn_aligned_free(in);
  cnn_aligned_free(out);
  cnn_aligned_free(wt);
  cnn_aligned_free(bias);
  cnn_conv2d_weights_destroy(cw);
}

int main(int argc, char** argv) {
  const int blocks = argc > 1 ? atoi(argv[1]) : 15;
  const size_t nthreads = argc > 2 ? (size_t)atoi(argv[2]) : 1;
  const char* filter = argc > 3 ? argv[3] : NULL;
  cnn_threadpool* tp = nthreads > 1 ? cnn_threadpool_create(nthreads) : NULL;
  const int R = CNN_ACT_RELU;
  bench("convnet 1->64 64x64 relu+pool b1", 1, 64, 64, 3, 1, 1, R, 1, 1, blocks, nthreads, tp, filter);
  bench("convnet 1->64 64x64 relu+pool b32", 1, 64, 64, 3, 1, 1, R, 1, 32, blocks, nthreads, tp, filter);
  bench("convnet3 3->64 64x64 relu+pool b1", 3, 64, 64, 3, 1, 1, R, 1, 1, blocks, nthreads, tp, filter);
  bench("convnet3 3->64 64x64 relu+pool b32", 3, 64, 64, 3, 1, 1, R, 1, 32, blocks, nthreads, tp, filter);
  bench("convnet 1->64 64x64 relu (no pool) b1", 1, 64, 64, 3, 1, 1, R, 0, 1, blocks, nthreads, tp, filter);
  bench("mobilenetv2 3->32 224 s2 clip6", 3, 32, 224, 3, 2, 1, CNN_ACT_CLIP, 0, 1, blocks, nthreads, tp, filter);
  bench("efficientnet 3->32 224 s2 silu", 3, 32, 224, 3, 2, 1, CNN_ACT_SILU, 0, 1, blocks, nthreads, tp, filter);
  bench("resnet 3->64 7x7 224 s2 relu", 3, 64, 224, 7, 2, 3, R, 0, 1, blocks, nthreads, tp, filter);
  bench("squeezenet 3->64 224 s2 relu", 3, 64, 224, 3, 2, 0, R, 0, 1, blocks, nthreads, tp, filter);
  if (tp) cnn_threadpool_destroy(tp);
  return 0;
}
