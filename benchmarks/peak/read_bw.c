/* Read bandwidth of this machine with 1 and 2 threads: each thread sums (AVX) its own buffer of MB MiB, REPS times.
 *   gcc -O2 -mavx benchmarks/peak/read_bw.c -o /tmp/read_bw -pthread && /tmp/read_bw 64 10   (DRAM)
 *                                                                        /tmp/read_bw 2 300   (L2/L3-sized)
 * The adds form one dependent chain per thread (3-4 cycles per 32 bytes), which bounds the cache-sized case; the
 * 64 MiB case is bound by memory. Used for the "what the machine can stream" figures in benchmarks/RESULTS.md. */
#include <immintrin.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

typedef struct {
  const float* a;
  size_t n;
  int reps;
  float sum;
} arg;

static void* reader(void* p) {
  arg* x = (arg*)p;
  __m256 s = _mm256_setzero_ps();
  for (int r = 0; r < x->reps; r++)
    for (size_t i = 0; i < x->n; i += 8) s = _mm256_add_ps(s, _mm256_load_ps(x->a + i));
  float f[8];
  _mm256_storeu_ps(f, s);
  x->sum = f[0];
  return NULL;
}

int main(int argc, char** argv) {
  const size_t mb = argc > 1 ? (size_t)atoi(argv[1]) : 64;
  const int reps = argc > 2 ? atoi(argv[2]) : 10;
  const size_t n = mb * 262144;
  float* a = (float*)aligned_alloc(64, n * sizeof(float) * 2);
  if (!a) return 1;
  for (size_t i = 0; i < 2 * n; i++) a[i] = 1.0f;
  for (int t = 1; t <= 2; t++)
    for (int rep = 0; rep < 3; rep++) {
      pthread_t th[2];
      arg g[2];
      const double t0 = now();
      for (int i = 0; i < t; i++) {
        g[i].a = a + (size_t)i * n;
        g[i].n = n;
        g[i].reps = reps;
        pthread_create(&th[i], NULL, reader, &g[i]);
      }
      for (int i = 0; i < t; i++) pthread_join(th[i], NULL);
      const double dt = now() - t0;
      printf("%d thread(s), %zu MiB each: %.1f GB/s in total\n", t, mb, (double)t * (double)n * 4.0 * reps / dt / 1e9);
    }
  free(a);
  return 0;
}
