/* Thread pool wake-up cost (not run by check): jobs of 40 tasks x 5 us on a pool of 2, each after an idle gap of
 * 0..5000 us in which the caller either computes (busy) or sleeps. For each gap: when the worker ran its first task
 * (from the job's start; "absent" = it ran none), and how long the caller waited after finishing its own last task.
 * A worker that has gone to sleep (gaps longer than its spin) may wake only after the caller has run every task: the
 * pool must then not make the caller wait for it.   make -C tests/c bench-pool */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "cnnrt/threadpool.h"

#define ROUNDS 40

static double now_us(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e6 + t.tv_nsec * 1e-3;
}

static void spin_us(double us) {
  const double end = now_us() + us;
  while (now_us() < end) {
  }
}

/* written by the task bodies; the job's return orders them before the caller reads them */
static double g_first_worker, g_last_caller;
static int g_worker_ran;

static void task(void* ctx, size_t tid, size_t i) {
  (void)ctx;
  (void)i;
  if (tid == 1 && !g_worker_ran) {
    g_worker_ran = 1;
    g_first_worker = now_us();
  }
  spin_us(5);
  if (tid == 0) g_last_caller = now_us();
}

static int cmp(const void* a, const void* b) {
  const double x = *(const double*)a, y = *(const double*)b;
  return x < y ? -1 : x > y;
}

int main(void) {
  cnn_threadpool* pool = cnn_threadpool_create(2);
  const double gaps[] = {0, 20, 50, 100, 200, 500, 1000, 5000};
  for (int r = 0; r < 100; r++) cnn_parallelize_1d(pool, task, NULL, 40); /* the worker thread is up and running */
  printf("gap (us)  idle   worker's first task (us): median p90   absent   caller's wait after its last task (us): "
         "median p90 max\n");
  for (size_t gi = 0; gi < sizeof(gaps) / sizeof(gaps[0]); gi++) {
    for (int sleep_gap = 0; sleep_gap < 2; sleep_gap++) {
      double first[ROUNDS], wait[ROUNDS];
      int present = 0;
      for (int r = 0; r < ROUNDS; r++) {
        if (sleep_gap) {
          struct timespec s = {0, (long)(gaps[gi] * 1000)};
          nanosleep(&s, NULL);
        } else {
          spin_us(gaps[gi]);
        }
        g_worker_ran = 0;
        const double t0 = now_us();
        cnn_parallelize_1d(pool, task, NULL, 40);
        const double t1 = now_us();
        if (g_worker_ran) first[present++] = g_first_worker - t0;
        wait[r] = t1 - g_last_caller;
      }
      qsort(first, present, sizeof(double), cmp);
      qsort(wait, ROUNDS, sizeof(double), cmp);
      printf("%8.0f  %s  %10.1f %8.1f   %3d/%d  %10.1f %8.1f %8.1f\n", gaps[gi], sleep_gap ? "sleep" : "busy ",
             present ? first[present / 2] : 0.0, present ? first[present * 9 / 10] : 0.0, ROUNDS - present, ROUNDS,
             wait[ROUNDS / 2], wait[ROUNDS * 9 / 10], wait[ROUNDS - 1]);
    }
  }
  cnn_threadpool_destroy(pool);
  return 0;
}
