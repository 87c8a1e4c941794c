/* A small fixed-size thread pool with a parallel-for.
 *
 * - Threads are created once (cnn_threadpool_create) and sleep on a condition variable when idle (a short spin at
 *   most after a job), so an idle pool costs no CPU.
 * - The calling thread works too: a pool of size n has n-1 worker threads.
 * - A range of one item, or a pool of size 1, runs inline on the caller.
 * - One job at a time per pool: cnn_parallelize_* calls on the same pool from several threads are serialized by an
 *   internal mutex.
 * - Fork safety: a child process that inherits a pool (pid differs from the creator's) runs every job inline on the
 *   calling thread; it never waits for threads that do not exist in the child.
 */
#ifndef CNNRT_THREADPOOL_H
#define CNNRT_THREADPOOL_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cnn_threadpool cnn_threadpool;

/* Task bodies. `tid` is the index (0 .. size-1) of the thread that runs the task; use it to pick a per-thread
 * workspace slice. Tasks of one job run concurrently and must not depend on each other. */
typedef void (*cnn_task_1d)(void* ctx, size_t tid, size_t i);
typedef void (*cnn_task_2d)(void* ctx, size_t tid, size_t i, size_t j);

/* Create a pool that runs jobs on `num_threads` threads in total (the caller included). 0 means one per CPU.
 * Returns NULL on failure. */
cnn_threadpool* cnn_threadpool_create(size_t num_threads);
void cnn_threadpool_destroy(cnn_threadpool* pool);
/* Threads that run a job (1 for NULL). */
size_t cnn_threadpool_size(const cnn_threadpool* pool);

/* Cores are shared by every pool in the process: a job enlists only as many of its pool's workers as there are idle
 * cores (callers always run), so concurrent sessions do not oversubscribe the machine; CNNRT_SHARE_CORES=0 turns
 * this off. Returns the largest number of threads seen executing jobs at once (and restarts the count if reset). */
long cnn_threadpool_peak_busy(int reset);

/* Run fn(ctx, tid, i) for i in [0, n). `pool` may be NULL (inline). Returns when every task is done; it does not
 * wait for a worker that wakes up only after the caller has taken the last task (that worker skips the job). */
void cnn_parallelize_1d(cnn_threadpool* pool, cnn_task_1d fn, void* ctx, size_t n);
/* Run fn(ctx, tid, i, j) for i in [0, ni), j in [0, nj). */
void cnn_parallelize_2d(cnn_threadpool* pool, cnn_task_2d fn, void* ctx, size_t ni, size_t nj);

#ifdef __cplusplus
}
#endif
#endif
