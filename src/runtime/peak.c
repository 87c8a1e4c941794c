/* Peak FMA throughput of one core, measured (see peak__avx2.c). */
#include <time.h>

#include "cnnrt/hardware.h"

#if defined(__x86_64__) && !defined(CNNRT_NO_AVX2)
double cnn_fma_loop__avx2(size_t iters);
#endif

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Returns the best of a few short runs, in GFLOP/s for one thread; 0 if no SIMD FMA path is built. */
double cnn_hw_measure_fma_peak(double seconds) {
#if defined(__x86_64__) && !defined(CNNRT_NO_AVX2)
  if (!cnn_hw_isa_supported(CNN_ISA_AVX2)) return 0.0;
  const size_t iters = 2000000; /* 2e6 * 12 FMAs * 8 lanes * 2 flops = 384 MFLOP per call */
  double best = 0.0, start = now_s(), sink = 0.0;
  do {
    double t0 = now_s();
    sink += cnn_fma_loop__avx2(iters);
    double dt = now_s() - t0;
    double gf = (double)iters * 12.0 * 8.0 * 2.0 / dt * 1e-9;
    if (gf > best) best = gf;
  } while (now_s() - start < seconds);
  return sink == -1.0 ? 0.0 : best;
#else
  (void)seconds;
  return 0.0;
#endif
}
