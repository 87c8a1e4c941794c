/* Thread-parallel wrappers: each is a thin parallel-for over a kernel of the ISA table, inline when the pool is
 * NULL / single-threaded or the problem is small. Tasks are contiguous slices (planes, rows or element chunks). */
#include "cnnrt/eltwise.h"

#define PAR_MIN_WORK 16384 /* elements: below this a split costs more than it saves; also the smallest act chunk */

static inline const cnn_eltwise_config* cfg_or_active(const cnn_eltwise_config* cfg) {
  return cfg ? cfg : cnn_eltwise_config_get(-1);
}

/* Number of slices of `items` items (each worth `work_per_item` elements) to hand out: 1 when inline is better,
 * else up to 4 per thread (dynamic scheduling evens out uneven slices), each of >= PAR_MIN_WORK elements. */
static size_t slices(cnn_threadpool* pool, size_t items, size_t work_per_item) {
  const size_t threads = cnn_threadpool_size(pool);
  if (threads <= 1 || items <= 1) return 1;
  const size_t work = items * (work_per_item ? work_per_item : 1);
  if (work < 2 * PAR_MIN_WORK) return 1;
  size_t n = cnn_min_sz(4 * threads, work / PAR_MIN_WORK);
  return cnn_max_sz(1, cnn_min_sz(n, items));
}
/* Slice s of n over [0, items): [items*s/n, items*(s+1)/n). */
static inline size_t slice_begin(size_t items, size_t n, size_t s) { return items * s / n; }

/* ---- pool2d over planes ---- */
typedef struct {
  const cnn_eltwise_config* cfg;
  const cnn_pool2d_desc* d;
  size_t nc, h, w, oh, ow, n;
  const float* x;
  float* y;
} pool2d_ctx;

static void pool2d_task(void* ctx, size_t tid, size_t s) {
  const pool2d_ctx* c = (const pool2d_ctx*)ctx;
  const size_t p0 = slice_begin(c->nc, c->n, s), p1 = slice_begin(c->nc, c->n, s + 1);
  c->cfg->pool2d(c->d, p1 - p0, c->h, c->w, c->oh, c->ow, c->x + p0 * c->h * c->w, c->y + p0 * c->oh * c->ow);
}

void cnn_pool2d_run(const cnn_eltwise_config* cfg, const cnn_pool2d_desc* d, size_t nc, size_t h, size_t w,
                    size_t oh, size_t ow, const float* x, float* y, cnn_threadpool* pool) {
  cfg = cfg_or_active(cfg);
  /* work per plane: outputs times window taps (approximate) */
  const size_t n = slices(pool, nc, oh * ow * d->kernel_h * d->kernel_w);
  if (n <= 1) {
    cfg->pool2d(d, nc, h, w, oh, ow, x, y);
    return;
  }
  pool2d_ctx c = {cfg, d, nc, h, w, oh, ow, n, x, y};
  cnn_parallelize_1d(pool, pool2d_task, &c, n);
}

/* ---- activation over elements ---- */
typedef struct {
  const cnn_eltwise_config* cfg;
  const cnn_act* act;
  size_t total, n;
  const float* x;
  float* y;
} act_ctx;

static void act_task(void* ctx, size_t tid, size_t s) {
  const act_ctx* c = (const act_ctx*)ctx;
  /* slice boundaries on multiples of 16 elements (whole vectors; 64-byte lines for aligned buffers) */
  const size_t blocks = cnn_div_up(c->total, 16);
  const size_t i0 = slice_begin(blocks, c->n, s) * 16;
  const size_t i1 = cnn_min_sz(c->total, slice_begin(blocks, c->n, s + 1) * 16);
  if (i1 > i0) c->cfg->act(c->act, c->x + i0, c->y + i0, i1 - i0);
}

void cnn_act_run(const cnn_eltwise_config* cfg, const cnn_act* act, const float* x, float* y, size_t n,
                 cnn_threadpool* pool) {
  cfg = cfg_or_active(cfg);
  const size_t threads = cnn_threadpool_size(pool);
  size_t ns = 1;
  if (threads > 1 && n >= 2 * PAR_MIN_WORK) ns = cnn_min_sz(4 * threads, n / PAR_MIN_WORK);
  if (ns <= 1) {
    cfg->act(act, x, y, n);
    return;
  }
  act_ctx c = {cfg, act, n, ns, x, y};
  cnn_parallelize_1d(pool, act_task, &c, ns);
}

/* ---- global pooling over planes ---- */
typedef struct {
  const cnn_eltwise_config* cfg;
  int type;
  size_t nc, hw, n;
  const float* x;
  float* y;
} gpool_ctx;

static void gpool_task(void* ctx, size_t tid, size_t s) {
  const gpool_ctx* c = (const gpool_ctx*)ctx;
  const size_t p0 = slice_begin(c->nc, c->n, s), p1 = slice_begin(c->nc, c->n, s + 1);
  c->cfg->global_pool(c->type, p1 - p0, c->hw, c->x + p0 * c->hw, c->y + p0);
}

void cnn_global_pool_run(const cnn_eltwise_config* cfg, int type, size_t nc, size_t hw, const float* x, float* y,
                         cnn_threadpool* pool) {
  cfg = cfg_or_active(cfg);
  const size_t n = slices(pool, nc, hw);
  if (n <= 1) {
    cfg->global_pool(type, nc, hw, x, y);
    return;
  }
  gpool_ctx c = {cfg, type, nc, hw, n, x, y};
  cnn_parallelize_1d(pool, gpool_task, &c, n);
}

/* ---- channel affine over the n*c planes ---- */
typedef struct {
  const cnn_eltwise_config* cfg;
  size_t nb, c, hw, n;
  const float* scale;
  const float* shift;
  const cnn_act* act;
  const float* x;
  float* y;
} affine_ctx;

static void affine_task(void* ctx, size_t tid, size_t s) {
  const affine_ctx* c = (const affine_ctx*)ctx;
  size_t p = slice_begin(c->nb * c->c, c->n, s);
  const size_t p1 = slice_begin(c->nb * c->c, c->n, s + 1);
  while (p < p1) { /* one call per run of channels within an image */
    const size_t ch = p % c->c, cnt = cnn_min_sz(p1 - p, c->c - ch);
    c->cfg->channel_affine(1, cnt, c->hw, c->scale + ch, c->shift + ch, c->act, c->x + p * c->hw, c->y + p * c->hw);
    p += cnt;
  }
}

void cnn_channel_affine_run(const cnn_eltwise_config* cfg, size_t n, size_t c, size_t hw, const float* scale,
                            const float* shift, const cnn_act* act, const float* x, float* y, cnn_threadpool* pool) {
  cfg = cfg_or_active(cfg);
  const size_t ns = slices(pool, n * c, hw);
  if (ns <= 1) {
    cfg->channel_affine(n, c, hw, scale, shift, act, x, y);
    return;
  }
  affine_ctx ctx = {cfg, n, c, hw, ns, scale, shift, act, x, y};
  cnn_parallelize_1d(pool, affine_task, &ctx, ns);
}

/* ---- softmax over outer rows ---- */
typedef struct {
  const cnn_eltwise_config* cfg;
  int log;
  size_t outer, axis, inner, n;
  const float* x;
  float* y;
} softmax_ctx;

static void softmax_task(void* ctx, size_t tid, size_t s) {
  const softmax_ctx* c = (const softmax_ctx*)ctx;
  const size_t o0 = slice_begin(c->outer, c->n, s), o1 = slice_begin(c->outer, c->n, s + 1);
  const size_t step = c->axis * c->inner;
  c->cfg->softmax(c->log, o1 - o0, c->axis, c->inner, c->x + o0 * step, c->y + o0 * step);
}

void cnn_softmax_run(const cnn_eltwise_config* cfg, int log, size_t outer, size_t axis, size_t inner, const float* x,
                     float* y, cnn_threadpool* pool) {
  cfg = cfg_or_active(cfg);
  /* exp costs ~ 10x a copy: weigh each element accordingly */
  const size_t ns = slices(pool, outer, axis * inner * 10);
  if (ns <= 1) {
    cfg->softmax(log, outer, axis, inner, x, y);
    return;
  }
  softmax_ctx c = {cfg, log, outer, axis, inner, ns, x, y};
  cnn_parallelize_1d(pool, softmax_task, &c, ns);
}
