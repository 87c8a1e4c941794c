/* Fixed-size thread pool: workers sleep on a condition variable between jobs (after a short spin), the caller works
 * too, tasks are handed out one index at a time through an atomic counter. See include/cnnrt/threadpool.h. */
#include "cnnrt/threadpool.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
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

/* Spin iterations before sleeping: a few microseconds, enough to catch the next layer's job without a futex wake,
 * short enough that an idle pool costs nothing measurable. */
#define CNN_SPIN_ITERS 4000

struct cnn_threadpool {
  size_t nthreads; /* including the caller */
  pthread_t* threads;
  pid_t owner_pid;

  pthread_mutex_t job_lock; /* serializes callers */
  pthread_mutex_t lock;     /* protects the sleeping protocol */
  pthread_cond_t wake;
  pthread_cond_t done;

  /* current job */
  cnn_task_1d fn1;
  cnn_task_2d fn2;
  void* ctx;
  size_t range, nj;
  atomic_size_t next;

  atomic_uint generation;
  atomic_size_t pending; /* workers that have not finished the current job */
  atomic_int stop;
};

typedef struct {
  cnn_threadpool* pool;
  size_t tid;
} worker_arg;

static void run_tasks(cnn_threadpool* p, size_t tid) {
  const size_t range = p->range;
  for (;;) {
    size_t i = atomic_fetch_add_explicit(&p->next, 1, memory_order_relaxed);
    if (i >= range) break;
    if (p->fn1)
      p->fn1(p->ctx, tid, i);
    else
      p->fn2(p->ctx, tid, i / p->nj, i % p->nj);
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
      g = atomic_load_explicit(&p->generation, memory_order_acquire);
    }
    if (g == seen) {
      pthread_mutex_lock(&p->lock);
      while ((g = atomic_load(&p->generation)) == seen && !atomic_load(&p->stop)) pthread_cond_wait(&p->wake, &p->lock);
      pthread_mutex_unlock(&p->lock);
    }
    if (atomic_load(&p->stop)) break;
    seen = g;
    run_tasks(p, tid);
    if (atomic_fetch_sub_explicit(&p->pending, 1, memory_order_acq_rel) == 1) {
      pthread_mutex_lock(&p->lock);
      pthread_cond_signal(&p->done);
      pthread_mutex_unlock(&p->lock);
    }
  }
  return NULL;
}

cnn_threadpool* cnn_threadpool_create(size_t num_threads) {
  if (num_threads == 0) num_threads = (size_t)cnn_hw_num_cpus();
  if (num_threads > 1024) num_threads = 1024;
  cnn_threadpool* p = (cnn_threadpool*)calloc(1, sizeof(*p));
  if (!p) return NULL;
  p->nthreads = num_threads;
  p->owner_pid = getpid();
  pthread_mutex_init(&p->job_lock, NULL);
  pthread_mutex_init(&p->lock, NULL);
  pthread_cond_init(&p->wake, NULL);
  pthread_cond_init(&p->done, NULL);
  atomic_init(&p->next, 0);
  atomic_init(&p->generation, 0);
  atomic_init(&p->pending, 0);
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

void cnn_threadpool_destroy(cnn_threadpool* p) {
  if (!p) return;
  if (getpid() == p->owner_pid) {
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
  if (!p || getpid() != p->owner_pid) return 1;
  return p->nthreads;
}

static void run_job(cnn_threadpool* p, cnn_task_1d fn1, cnn_task_2d fn2, void* ctx, size_t range, size_t nj) {
  pthread_mutex_lock(&p->job_lock);
  p->fn1 = fn1;
  p->fn2 = fn2;
  p->ctx = ctx;
  p->range = range;
  p->nj = nj;
  atomic_store_explicit(&p->next, 0, memory_order_relaxed);
  atomic_store_explicit(&p->pending, p->nthreads - 1, memory_order_relaxed);
  pthread_mutex_lock(&p->lock);
  atomic_fetch_add_explicit(&p->generation, 1, memory_order_release);
  pthread_cond_broadcast(&p->wake);
  pthread_mutex_unlock(&p->lock);

  run_tasks(p, 0);

  for (int s = 0; atomic_load_explicit(&p->pending, memory_order_acquire) != 0 && s < CNN_SPIN_ITERS; s++) CNN_PAUSE();
  if (atomic_load_explicit(&p->pending, memory_order_acquire) != 0) {
    pthread_mutex_lock(&p->lock);
    while (atomic_load(&p->pending) != 0) pthread_cond_wait(&p->done, &p->lock);
    pthread_mutex_unlock(&p->lock);
  }
  pthread_mutex_unlock(&p->job_lock);
}

void cnn_parallelize_1d(cnn_threadpool* p, cnn_task_1d fn, void* ctx, size_t n) {
  if (n == 0) return;
  if (!p || p->nthreads <= 1 || n == 1 || getpid() != p->owner_pid) {
    for (size_t i = 0; i < n; i++) fn(ctx, 0, i);
    return;
  }
  run_job(p, fn, NULL, ctx, n, 1);
}

void cnn_parallelize_2d(cnn_threadpool* p, cnn_task_2d fn, void* ctx, size_t ni, size_t nj) {
  if (ni == 0 || nj == 0) return;
  if (!p || p->nthreads <= 1 || ni * nj == 1 || getpid() != p->owner_pid) {
    for (size_t i = 0; i < ni; i++)
      for (size_t j = 0; j < nj; j++) fn(ctx, 0, i, j);
    return;
  }
  run_job(p, NULL, fn, ctx, ni * nj, nj);
}
