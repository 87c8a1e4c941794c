/* Helpers shared by the C benches (bench_conv.c, bench_winograd.c, bench_expand_dw.c): a monotonic clock and
 * deterministic pseudo-random buffers (values in [-0.5, 0.5), the same sequence in every bench). */
#ifndef CNNRT_TESTS_BENCH_UTIL_H
#define CNNRT_TESTS_BENCH_UTIL_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "cnnrt/common.h"

static inline double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* n floats (at least one), CNN_ALIGN-aligned (free with cnn_aligned_free); exits when out of memory */
static inline float* frand(size_t n) {
  float* p = (float*)cnn_aligned_alloc((n ? n : 1) * sizeof(float));
  if (!p) {
    fprintf(stderr, "out of memory\n");
    exit(2);
  }
  uint32_t s = 12345;
  for (size_t i = 0; i < n; i++) {
    s = s * 1664525u + 1013904223u;
    p[i] = (float)((double)(s >> 8) / 16777216.0 - 0.5);
  }
  return p;
}

#endif
