/* Thread pool stress test: every task of every job runs exactly once, on a valid thread index, and never after its
 * job has returned, while the workers are kept in every state: spinning, asleep, waking late (random idle gaps before
 * jobs, busy or sleeping, up to 1.5 ms: longer than the workers' spin, so they go to sleep and often wake only after
 * the caller has done every task), and with two callers on two pools at once (which share the cores: a job may get
 * no helper at all). A worker that wakes after its job has closed must stay out of it; one that joins a later job
 * must see that job's fields. Timing is not checked (no thresholds); the property is exactly-once and no hang. */
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>

#include "cnnrt/threadpool.h"
#include "test_util.h"

#define MAX_RANGE 400

typedef struct {
  atomic_int hits[MAX_RANGE];
  atomic_int bad_tid;
  atomic_int stale; /* a task ran while the job was not live */
  atomic_long worker_tasks;
  const atomic_int* live; /* the caller's flag: 1 only while cnn_parallelize_* is running this job */
  size_t nthreads, nj, spin_ns;
} job_ctx;

static double now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e9 + t.tv_nsec;
}

static void busy_ns(double ns) {
  const double end = now_ns() + ns;
  while (now_ns() < end) {
  }
}

static void body(job_ctx* c, size_t tid, size_t i) {
  if (!atomic_load(c->live)) atomic_fetch_add(&c->stale, 1);
  if (tid >= c->nthreads) atomic_fetch_add(&c->bad_tid, 1);
  if (tid) atomic_fetch_add(&c->worker_tasks, 1);
  atomic_fetch_add(&c->hits[i], 1);
  if (c->spin_ns) busy_ns((double)c->spin_ns);
}

static void task1(void* ctx, size_t tid, size_t i) { body((job_ctx*)ctx, tid, i); }
static void task2(void* ctx, size_t tid, size_t i, size_t j) {
  job_ctx* c = (job_ctx*)ctx;
  body(c, tid, i * c->nj + j);
}

typedef struct {
  cnn_threadpool* pool;
  uint64_t seed;
  int jobs;
  int failures;
  long worker_tasks;
} stress_arg;

/* a per-thread xorshift (test_util's RNG is global) */
static uint32_t xr(uint64_t* s) {
  *s ^= *s << 13;
  *s ^= *s >> 7;
  *s ^= *s << 17;
  return (uint32_t)(*s >> 16);
}

static void* stress(void* arg) {
  stress_arg* a = (stress_arg*)arg;
  uint64_t s = a->seed * 0x9E3779B97F4A7C15ull + 1;
  const size_t nthreads = cnn_threadpool_size(a->pool);
  atomic_int live = 0;
  for (int jb = 0; jb < a->jobs; jb++) {
    /* the idle gap before the job: none, busy (the caller computes between layers), or asleep */
    const uint32_t g = xr(&s) % 4;
    if (g == 1) busy_ns((double)(xr(&s) % 300000));
    if (g == 2) {
      struct timespec ts = {0, (long)(xr(&s) % 1500000)};
      nanosleep(&ts, NULL);
    }
    job_ctx* c = (job_ctx*)calloc(1, sizeof(job_ctx)); /* freed right after the job: a late task would touch freed
                                                           memory, which the sanitizer build reports */
    if (!c) return NULL;
    c->nthreads = nthreads;
    c->live = &live;
    c->spin_ns = xr(&s) % 3 == 0 ? xr(&s) % 20000 : 0;
    size_t range;
    atomic_store(&live, 1);
    if (xr(&s) % 2) {
      range = 1 + xr(&s) % MAX_RANGE;
      cnn_parallelize_1d(a->pool, task1, c, range);
    } else {
      const size_t ni = 1 + xr(&s) % 20, nj = 1 + xr(&s) % 20;
      range = ni * nj;
      c->nj = nj;
      cnn_parallelize_2d(a->pool, task2, c, ni, nj);
    }
    atomic_store(&live, 0);
    int ok = atomic_load(&c->bad_tid) == 0 && atomic_load(&c->stale) == 0;
    for (size_t i = 0; i < MAX_RANGE; i++) ok &= atomic_load(&c->hits[i]) == (i < range ? 1 : 0);
    if (!ok) {
      a->failures++;
      fprintf(stderr, "FAIL job %d (range %zu, threads %zu): bad tid %d, stale %d\n", jb, range, nthreads,
              atomic_load(&c->bad_tid), atomic_load(&c->stale));
    }
    a->worker_tasks += atomic_load(&c->worker_tasks);
    free(c);
  }
  return NULL;
}

static void check(int ok, const char* what) {
  if (ok) {
    g_pass++;
  } else {
    g_fail++;
    fprintf(stderr, "FAIL %s\n", what);
  }
}

/* stress() on pool p1 from this thread and on p2 (which may be p1) from a second one, at the same time */
static void two_callers(cnn_threadpool* p1, cnn_threadpool* p2, uint64_t seed, int jobs, const char* what) {
  stress_arg a1 = {p1, seed, jobs, 0, 0}, a2 = {p2, seed + 1, jobs, 0, 0};
  pthread_t t;
  const int started = pthread_create(&t, NULL, stress, &a2) == 0;
  stress(&a1);
  if (started) pthread_join(t, NULL);
  check(started && a1.failures == 0 && a2.failures == 0, what);
}

/* Partitioned claiming: a job's range is split into one contiguous part per participant, each starting with its
 * own part. first[t] records the first index thread t ran. */
typedef struct {
  atomic_long first[2];
  atomic_int count;
} part_ctx;
static void part_task(void* ctx, size_t tid, size_t i) {
  part_ctx* c = (part_ctx*)ctx;
  long expect = -1;
  if (tid < 2) atomic_compare_exchange_strong(&c->first[tid], &expect, (long)i);
  atomic_fetch_add(&c->count, 1);
  busy_ns(200000.0); /* 0.2 ms per task: a spinning worker joins long before the caller could reach its part */
}
static void noop_task(void* ctx, size_t tid, size_t i) {
  (void)ctx;
  (void)tid;
  (void)i;
  busy_ns(20000.0);
}

int main(void) {
  /* one caller, pools of 2..4 threads (more threads than this machine's cores is allowed) */
  for (size_t n = 2; n <= 4; n++) {
    cnn_threadpool* p = cnn_threadpool_create(n);
    stress_arg a = {p, n, 600, 0, 0};
    stress(&a);
    check(a.failures == 0, "exactly once, one caller");
    /* the workers did take part: the jobs total well over a second of task time, so a pool whose workers never
     * ran anything would be a pool that runs everything inline */
    check(a.worker_tasks > 0, "workers ran tasks");
    printf("pool of %zu: %d jobs, %ld tasks ran on workers\n", n, a.jobs, a.worker_tasks);
    cnn_threadpool_destroy(p);
  }
  /* two callers on two pools at once: the pools share the cores (a job may get no helper) */
  {
    cnn_threadpool* p1 = cnn_threadpool_create(2);
    cnn_threadpool* p2 = cnn_threadpool_create(2);
    two_callers(p1, p2, 11, 400, "exactly once, two callers on two pools");
    cnn_threadpool_destroy(p1);
    cnn_threadpool_destroy(p2);
  }
  /* one pool, two callers: their jobs are serialized, each still exactly once */
  {
    cnn_threadpool* p = cnn_threadpool_create(2);
    two_callers(p, p, 21, 300, "exactly once, two callers on one pool");
    cnn_threadpool_destroy(p);
  }
  /* a 2-thread pool runs a job of 8 long tasks: the caller starts at index 0, a worker that joins starts at 4 (its
   * part), not at 1 (the next index of a single counter). The worker is kept warm by a job just before; a VM can
   * still deschedule it for longer than the caller's part takes (0.8 ms), so up to 5 tries must see it once. */
  {
    cnn_threadpool* p = cnn_threadpool_create(2);
    int caller_first0 = 1, worker_own_part = 0, all_ran = 1;
    for (int tr = 0; tr < 5 && !worker_own_part; tr++) {
      part_ctx c;
      atomic_init(&c.first[0], -1);
      atomic_init(&c.first[1], -1);
      atomic_init(&c.count, 0);
      cnn_parallelize_1d(p, noop_task, NULL, 4);
      cnn_parallelize_1d(p, part_task, &c, 8);
      caller_first0 &= atomic_load(&c.first[0]) == 0;
      all_ran &= atomic_load(&c.count) == 8;
      worker_own_part = atomic_load(&c.first[1]) == 4;
    }
    check(caller_first0 && all_ran, "partitioned claiming: the caller starts at index 0, every task runs once");
    check(worker_own_part, "partitioned claiming: a worker that joins starts in its own part (index 4 of 8)");
    cnn_threadpool_destroy(p);
  }
  printf("test_threadpool: %d passed, %d failed\n", g_pass, g_fail);
  return g_fail ? 1 : 0;
}
