/* Measured single-precision FMA peak of this machine (AVX2 + FMA3), per thread and for N threads together.
 *
 * Each thread runs a loop of vfmadd231ps on 12 independent YMM accumulators (8 floats each): with a 4-5 cycle FMA
 * latency and 2 FMA pipes, 8-10 independent chains are needed to keep both pipes busy; 12 leaves headroom and
 * still fits in the 16 YMM registers with the two multiplicands. One FMA = 8 lanes x 2 FLOP = 16 FLOP.
 *
 *   gcc -O2 -mavx2 -mfma -pthread fma_peak.c -o fma_peak && ./fma_peak THREADS SECONDS
 * prints: "threads=N gflops_total=... gflops_per_thread=..." (the best of several repetitions).
 * benchmarks/bench.py compiles and runs it at run time.
 */
#define _GNU_SOURCE
#include <immintrin.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define NACC 12
#define INNER 1000 /* FMA rounds per timed chunk (12 * 1000 FMAs) */

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

typedef struct {
    double seconds;
    pthread_barrier_t *barrier;
    double flops, elapsed;
    float sink;
} job_t;

static void *worker(void *arg) {
    job_t *job = (job_t *)arg;
    __m256 acc[NACC];
    for (int i = 0; i < NACC; i++) acc[i] = _mm256_set1_ps(0.001f * (float)i);
    /* a * x + acc with a ~ 1 - tiny and x tiny keeps values bounded (no overflow/denormals) */
    const __m256 a = _mm256_set1_ps(0.999999f), x = _mm256_set1_ps(1e-7f);
    pthread_barrier_wait(job->barrier);
    long long rounds = 0;
    double t0 = now(), t;
    do {
        for (int k = 0; k < INNER; k++) {
            acc[0] = _mm256_fmadd_ps(acc[0], a, x);
            acc[1] = _mm256_fmadd_ps(acc[1], a, x);
            acc[2] = _mm256_fmadd_ps(acc[2], a, x);
            acc[3] = _mm256_fmadd_ps(acc[3], a, x);
            acc[4] = _mm256_fmadd_ps(acc[4], a, x);
            acc[5] = _mm256_fmadd_ps(acc[5], a, x);
            acc[6] = _mm256_fmadd_ps(acc[6], a, x);
            acc[7] = _mm256_fmadd_ps(acc[7], a, x);
            acc[8] = _mm256_fmadd_ps(acc[8], a, x);
            acc[9] = _mm256_fmadd_ps(acc[9], a, x);
            acc[10] = _mm256_fmadd_ps(acc[10], a, x);
            acc[11] = _mm256_fmadd_ps(acc[11], a, x);
        }
        rounds += INNER;
        t = now();
    } while (t - t0 < job->seconds);
    job->elapsed = t - t0;
    job->flops = (double)rounds * NACC * 16.0;
    __m256 s = acc[0];
    for (int i = 1; i < NACC; i++) s = _mm256_add_ps(s, acc[i]);
    float out[8];
    _mm256_storeu_ps(out, s);
    job->sink = out[0];
    return NULL;
}

static double run(int nthreads, double seconds, float *sink) {
    pthread_t th[256];
    job_t jobs[256];
    pthread_barrier_t barrier;
    pthread_barrier_init(&barrier, NULL, (unsigned)nthreads);
    for (int i = 0; i < nthreads; i++) {
        jobs[i].seconds = seconds;
        jobs[i].barrier = &barrier;
        pthread_create(&th[i], NULL, worker, &jobs[i]);
    }
    double total = 0.0;
    for (int i = 0; i < nthreads; i++) {
        pthread_join(th[i], NULL);
        total += jobs[i].flops / jobs[i].elapsed;
        *sink += jobs[i].sink;
    }
    pthread_barrier_destroy(&barrier);
    return total;
}

int main(int argc, char **argv) {
    int nthreads = argc > 1 ? atoi(argv[1]) : 1;
    double seconds = argc > 2 ? atof(argv[2]) : 0.3;
    int reps = argc > 3 ? atoi(argv[3]) : 5;
    if (nthreads < 1 || nthreads > 256) nthreads = 1;
    float sink = 0.0f;
    run(nthreads, 0.05, &sink); /* warm up: clocks ramp */
    double best = 0.0;
    for (int r = 0; r < reps; r++) {
        double g = run(nthreads, seconds, &sink);
        if (g > best) best = g;
    }
    printf("threads=%d gflops_total=%.2f gflops_per_thread=%.2f sink=%g\n", nthreads, best * 1e-9,
           best * 1e-9 / nthreads, (double)sink);
    return 0;
}
