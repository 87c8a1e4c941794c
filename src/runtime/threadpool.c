/* Fixed-size thread pool: workers sleep on a condition variable between jobs (after a short spin), the caller works
 * too, tasks are handed out one index at a time through atomic counters. A job is open until the caller runs out of
 * tasks; then it closes, and the caller waits only for the workers that joined it (each finishing the task it holds),
 * never for one still waking up. See include/cnnrt/threadpool.h.
 *
 * The index range of a job is split into one contiguous part per participant (the caller and the enlisted
 * workers), each with its own counter on its own cache line: participant t claims from part t first, then takes
 * what is left of the others (in order t+1, t+2, ...). Tasks stay dynamic (a slow or absent worker's part is taken
 * over), but consecutive layers split the same way now run the same part of their outputs on the same core: a
 * depthwise layer split by channel groups, the global pool and the per-channel Mul after it, a 1x1 layer split by
 * output channels. With the single counter the parts interleaved between the cores, and half of every layer's input
 * came from the other core's L2. EfficientNet-B0 at 2 threads, one session, switched at run time and alternated:
 * 0.917-0.975 (paired 0.930-0.961, four runs of 16-20 rounds); MobileNetV2, ResNet-18, ResNet-50, SqueezeNet and
 * the seed ConvNet within +-1.5%. */
#include "cnnrt/threadpool.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cnnrt/hardware.h"

#if defined(__x86_64__)
#include <immintrin.h>
#define CNN_PAUSE() _mm_pause()
#elif defined(__aarch64__)
#define CNN_PAUSE() __asm__ volatile("yield")
#else
#define CNN_PAUSE() ((void)0)
#endif

#define CNN_POOL_PARTS 64 /* jobs with more participants share one part */
/* Spin iterations before sleeping: a few microseconds, enough to catch the next layer's job without a futex wake,
 * short enough that an idle pool costs nothing measurable. */
#define CNN_SPIN_ITERS 4000
/* Every this many spin iterations a spinning thread yields its CPU: when the scheduler has put the caller and a
 * worker on the same CPU (a futex wake places the woken thread near its waker), a pure pause loop would keep the
 * other one from running until the time slice ends. Measured on the 2-core VM: with pure spinning, some processes
 * ran the ConvNet at batch 1 2.4x slower with 2 threads than with 1 (0.41x, persistent for the process); with the
 * yield, none did. */
#define CNN_SPIN_YIELD 64

/* Process-wide core budget shared by every pool: g_busy counts the threads executing a job right now (each caller
 * plus the helpers it enlisted). A job enlists only as many helpers as there are idle cores, so several sessions
 * running at once share the cores instead of oversubscribing them. Callers are never held back. The workers not
 * enlisted skip the job; tasks are handed out dynamically and each output is computed the same way by whichever
 * thread runs it, so results do not depend on how many helpers joined. CNNRT_SHARE_CORES=0 turns the budget off. */
static atomic_long g_busy = 0;
static atomic_long g_peak_busy = 0;
static int g_share = -1;
static long g_cores = 0;

static int share_cores(void) {
  if (g_share < 0) {
    const char* e = getenv("CNNRT_SHARE_CORES");
    g_cores = cnn_hw_num_cpus();
    g_share = !(e && e[0] == '0');
  }
  return g_share;
}

static void note_busy(long v) {
  long pk = atomic_load_explicit(&g_peak_busy, memory_order_relaxed);
  while (v > pk && !atomic_compare_exchange_weak(&g_peak_busy, &pk, v)) {
  }
}

/* Take up to `want` helper slots; returns how many were granted. */
static size_t enlist_helpers(size_t want) {
  long now = atomic_fetch_add(&g_busy, 1) + 1; /* the caller */
  if (!share_cores()) {
    atomic_fetch_add(&g_busy, (long)want);
    note_busy(now + (long)want);
    return want;
  }
  for (;;) {
    long avail = g_cores - now;
    long k = avail < 0 ? 0 : (avail < (long)want ? avail : (long)want);
    if (atomic_compare_exchange_weak(&g_busy, &now, now + k)) {
      note_busy(now + k);
      return (size_t)k;
    }
  }
}

long cnn_threadpool_peak_busy(int reset) {
  long v = atomic_load(&g_peak_busy);
  if (reset) atomic_store(&g_peak_busy, atomic_load(&g_busy));
  return v;
}

/* Fork detection. A pool made before a fork has no workers in the child, which then runs every job inline. A
 * pthread_atfork child handler counts forks: a pool remembers the count it was made at, and a different count means
 * this is a forked child. This replaced a getpid() per parallel-for (a system call, 243 ns on this VM; a
 * MobileNetV2 run at 2 threads makes 120 such calls, ~0.4% of it). If the handler cannot be registered, getpid()
 * decides, as before. */
static atomic_uint g_forks = 0;
static atomic_int g_atfork_ok = 0;
static pthread_once_t g_atfork_once = PTHREAD_ONCE_INIT;
static void on_fork_child(void) { atomic_fetch_add(&g_forks, 1); }
static void atfork_init(void) { atomic_store(&g_atfork_ok, pthread_atfork(NULL, NULL, on_fork_child) == 0); }

struct cnn_threadpool {
  size_t nthreads; /* including the caller */
  pthread_t* threads;
  pid_t owner_pid;
  unsigned forks; /* g_forks when the pool was made */

  pthread_mutex_t job_lock; /* serializes callers */
  pthread_mutex_t lock;     /* protects the sleeping protocol */
  pthread_cond_t wake;
  pthread_cond_t done;

  /* current job */
  cnn_task_1d fn1;
  cnn_task_2d fn2;
  void* ctx;
  size_t nj;
  size_t parts; /* parts of the range: one per participant (claiming from part tid first), or 1 shared by all */
  struct {
    _Alignas(64) atomic_size_t next;
    size_t end;
  } part[CNN_POOL_PARTS];

  atomic_uint generation;
  /* Membership of the current job: the number of workers inside it, plus CNN_JOB_CLOSED once the caller has run out
   * of tasks. A worker joins only an open job and the caller waits only for the workers inside, never for one that
   * has not woken up yet (see run_job). */
  atomic_uint state;
  size_t helpers; /* workers enlisted for the current job (tid 1..helpers work; the others skip it) */
  atomic_int stop;
};

#define CNN_JOB_CLOSED 0x80000000u

typedef struct {
  cnn_threadpool* pool;
  size_t tid;
} worker_arg;

static void run_tasks(cnn_threadpool* p, size_t tid) {
  const size_t P = p->parts;
  for (size_t k = 0; k < P; k++) {
    const size_t c = (tid + k) % P;
    for (;;) {
      size_t i = atomic_fetch_add_explicit(&p->part[c].next, 1, memory_order_relaxed);
      if (i >= p->part[c].end) break;
      if (p->fn1)
        p->fn1(p->ctx, tid, i);
      else
        p->fn2(p->ctx, tid, i / p->nj, i % p->nj);
    }
  }
}

static void* worker_main(void* arg) {
  worker_arg* wa = (worker_arg*)arg;
  cnn_threadpool* p = wa->pool;
  const size_t tid = wa->tid;
  free(wa);
  unsigned seen = 0; /* the generation at creation: a job posted before this thread starts is still seen */
  for (;;) {
    /* spin a little, then sleep */
    unsigned g = atomic_load_explicit(&p->generation, memory_order_acquire);
    for (int s = 0; g == seen && s < CNN_SPIN_ITERS && !atomic_load(&p->stop); s++) {
      CNN_PAUSE();
      if (s % CNN_SPIN_YIELD == CNN_SPIN_YIELD - 1) sched_yield();
      g = atomic_load_explicit(&p->generation, memory_order_acquire);
    }
    if (g == seen) {
      pthread_mutex_lock(&p->lock);
      while ((g = atomic_load(&p->generation)) == seen && !atomic_load(&p->stop)) pthread_cond_wait(&p->wake, &p->lock);
      pthread_mutex_unlock(&p->lock);
    }
    if (atomic_load(&p->stop)) break;
    seen = g;
    /* Join the job unless the caller has already closed it. The job's fields are read only after joining: the
     * caller writes them before it opens the job (release) and does not return, or post another job, while a
     * worker is inside. A worker that woke late may join the job after the one it was woken for; that is the
     * current job, and it works on it like any other. */
    unsigned st = atomic_load_explicit(&p->state, memory_order_acquire);
    while (!(st & CNN_JOB_CLOSED) && !atomic_compare_exchange_weak_explicit(&p->state, &st, st + 1,
                                                                            memory_order_acq_rel,
                                                                            memory_order_acquire)) {
    }
    if (st & CNN_JOB_CLOSED) continue;
    if (tid <= p->helpers) run_tasks(p, tid);
    if (atomic_fetch_sub_explicit(&p->state, 1, memory_order_acq_rel) == (CNN_JOB_CLOSED | 1u)) {
      pthread_mutex_lock(&p->lock); /* the caller checks under the lock before it sleeps: no lost wake-up */
      pthread_cond_signal(&p->done);
      pthread_mutex_unlock(&p->lock);
    }
  }
  return NULL;
}

cnn_threadpool* cnn_threadpool_create(size_t num_threads) {
  if (num_threads == 0) num_threads = (size_t)cnn_hw_num_cpus();
  if (num_threads > 1024) num_threads = 1024;
  /* the part counters are cache-line aligned members */
  const size_t bytes = (sizeof(cnn_threadpool) + 63) / 64 * 64;
  cnn_threadpool* p = (cnn_threadpool*)aligned_alloc(64, bytes);
  if (!p) return NULL;
  memset(p, 0, bytes);
  p->nthreads = num_threads;
  pthread_once(&g_atfork_once, atfork_init);
  p->owner_pid = getpid();
  p->forks = atomic_load(&g_forks);
  pthread_mutex_init(&p->job_lock, NULL);
  pthread_mutex_init(&p->lock, NULL);
  pthread_cond_init(&p->wake, NULL);
  pthread_cond_init(&p->done, NULL);
  atomic_init(&p->generation, 0);
  atomic_init(&p->state, CNN_JOB_CLOSED);
  atomic_init(&p->stop, 0);
  if (num_threads > 1) {
    p->threads = (pthread_t*)calloc(num_threads - 1, sizeof(pthread_t));
    if (!p->threads) {
      free(p);
      return NULL;
    }
    for (size_t t = 1; t < num_threads; t++) {
      worker_arg* wa = (worker_arg*)malloc(sizeof(*wa));
      int rc = -1;
      if (wa) {
        wa->pool = p;
        wa->tid = t;
        rc = pthread_create(&p->threads[t - 1], NULL, worker_main, wa);
        if (rc != 0) free(wa);
      }
      if (rc != 0) { /* run with the threads we got */
        p->nthreads = t;
        break;
      }
    }
  }
  return p;
}

/* 1 in the process that made the pool (its workers exist), 0 in a forked child */
static int in_owner(const cnn_threadpool* p) {
  if (atomic_load_explicit(&g_atfork_ok, memory_order_relaxed))
    return atomic_load_explicit(&g_forks, memory_order_relaxed) == p->forks;
  return getpid() == p->owner_pid;
}

void cnn_threadpool_destroy(cnn_threadpool* p) {
  if (!p) return;
  if (in_owner(p)) {
    pthread_mutex_lock(&p->lock);
    atomic_store(&p->stop, 1);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->lock);
    for (size_t t = 1; t < p->nthreads; t++) pthread_join(p->threads[t - 1], NULL);
    pthread_cond_destroy(&p->wake);
    pthread_cond_destroy(&p->done);
    pthread_mutex_destroy(&p->lock);
    pthread_mutex_destroy(&p->job_lock);
  }
  /* In a forked child the worker threads do not exist and the mutexes may be in any state: just free. */
  free(p->threads);
  free(p);
}

size_t cnn_threadpool_size(const cnn_threadpool* p) {
  if (!p || !in_owner(p)) return 1;
  return p->nthreads;
}

static void run_job(cnn_threadpool* p, cnn_task_1d fn1, cnn_task_2d fn2, void* ctx, size_t range, size_t nj) {
  const size_t want = p->nthreads - 1 < range - 1 ? p->nthreads - 1 : range - 1;
  const size_t helpers = enlist_helpers(want);
  if (helpers == 0) { /* every other core is busy: run inline, wake nobody */
    for (size_t i = 0; i < range; i++) {
      if (fn1)
        fn1(ctx, 0, i);
      else
        fn2(ctx, 0, i / nj, i % nj);
    }
    atomic_fetch_sub(&g_busy, 1);
    return;
  }
  pthread_mutex_lock(&p->job_lock);
  p->fn1 = fn1;
  p->fn2 = fn2;
  p->ctx = ctx;
  p->nj = nj;
  p->helpers = helpers;
  p->parts = helpers + 1 <= CNN_POOL_PARTS ? helpers + 1 : 1; /* helpers < range: no part is empty */
  for (size_t c = 0; c < p->parts; c++) {
    atomic_store_explicit(&p->part[c].next, c * range / p->parts, memory_order_relaxed);
    p->part[c].end = (c + 1) * range / p->parts;
  }
  atomic_store_explicit(&p->state, 0, memory_order_release); /* open, nobody inside */
  pthread_mutex_lock(&p->lock);
  atomic_fetch_add_explicit(&p->generation, 1, memory_order_release);
  pthread_cond_broadcast(&p->wake);
  pthread_mutex_unlock(&p->lock);

  run_tasks(p, 0);

  /* Every task has been handed out: close the job and wait only for the workers inside it (each finishes the task
   * it holds). A worker that has not woken up by now stays out. Waiting for every worker to check in cost the
   * caller the wake-up latency of a sleeping vCPU, which on this VM is often 0.1-5 ms (measured: a 200 us job
   * after a 0.5 ms idle gap waited a median 1.5 ms, up to 5 ms, for a worker that then ran none of its tasks). */
  if (atomic_fetch_or_explicit(&p->state, CNN_JOB_CLOSED, memory_order_acq_rel) != 0) {
    for (int s = 0; atomic_load_explicit(&p->state, memory_order_acquire) != CNN_JOB_CLOSED && s < CNN_SPIN_ITERS;
         s++) {
      CNN_PAUSE();
      if (s % CNN_SPIN_YIELD == CNN_SPIN_YIELD - 1) sched_yield();
    }
    if (atomic_load_explicit(&p->state, memory_order_acquire) != CNN_JOB_CLOSED) {
      pthread_mutex_lock(&p->lock);
      while (atomic_load(&p->state) != CNN_JOB_CLOSED) pthread_cond_wait(&p->done, &p->lock);
      pthread_mutex_unlock(&p->lock);
    }
  }
  atomic_fetch_sub(&g_busy, (long)(1 + helpers));
  pthread_mutex_unlock(&p->job_lock);
}

void cnn_parallelize_1d(cnn_threadpool* p, cnn_task_1d fn, void* ctx, size_t n) {
  if (n == 0) return;
  if (!p || p->nthreads <= 1 || n == 1 || !in_owner(p)) {
    note_busy(atomic_fetch_add(&g_busy, 1) + 1); /* an inline caller occupies a core too */
    for (size_t i = 0; i < n; i++) fn(ctx, 0, i);
    atomic_fetch_sub(&g_busy, 1);
    return;
  }
  run_job(p, fn, NULL, ctx, n, 1);
}

void cnn_parallelize_2d(cnn_threadpool* p, cnn_task_2d fn, void* ctx, size_t ni, size_t nj) {
  if (ni == 0 || nj == 0) return;
  if (!p || p->nthreads <= 1 || ni * nj == 1 || !in_owner(p)) {
    note_busy(atomic_fetch_add(&g_busy, 1) + 1);
    for (size_t i = 0; i < ni; i++)
      for (size_t j = 0; j < nj; j++) fn(ctx, 0, i, j);
    atomic_fetch_sub(&g_busy, 1);
    return;
  }
  run_job(p, NULL, fn, ctx, ni * nj, nj);
}
