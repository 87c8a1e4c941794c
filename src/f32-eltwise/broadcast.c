/* N-d binary op with numpy broadcasting: dimension collapsing, innermost loop through the ISA kernel, optional fused
 * activation, and a parallel split for large outputs. */
#include "cnnrt/eltwise.h"

#define BIN_PARALLEL_MIN 65536 /* outputs below this run inline */
#define BIN_TASK_MIN 16384     /* smallest slice given to one task */
#define BIN_GATHER 256         /* stack buffer for innermost strides other than 0/1 */

/* per-row fast path (cnn_binary_nd): rows are handled ROW_CONST at a time against these constant vectors */
#define ROW_CONST 1024
#define REP8(v) v, v, v, v, v, v, v, v
#define REP64(v) REP8(v), REP8(v), REP8(v), REP8(v), REP8(v), REP8(v), REP8(v), REP8(v)
#define REP512(v) REP64(v), REP64(v), REP64(v), REP64(v), REP64(v), REP64(v), REP64(v), REP64(v)
static const float g_negzeros[ROW_CONST] = {REP512(-0.0f), REP512(-0.0f)}; /* x*s + (-0) == x*s, -0 included */
static const float g_ones[ROW_CONST] = {REP512(1.0f), REP512(1.0f)};

typedef struct {
  const cnn_eltwise_config* cfg;
  int op;
  const cnn_act* act; /* NULL when no activation */
  size_t nd;          /* collapsed rank >= 1 */
  size_t shape[CNN_MAX_DIMS];
  ptrdiff_t as[CNN_MAX_DIMS], bs[CNN_MAX_DIMS];
  const float* a;
  const float* b;
  float* y;
  size_t total, chunk;
} bin_ctx;

/* y[0..n) = op(a[i*ia], b[i*ib]) for any strides: 0/1 go straight to the kernel, others via a stack gather. */
static void bin_segment(const bin_ctx* c, const float* a, ptrdiff_t ia, const float* b, ptrdiff_t ib, float* y,
                        size_t n) {
  const int a_ok = ia == 0 || ia == 1, b_ok = ib == 0 || ib == 1;
  if (a_ok && b_ok) {
    c->cfg->binary(c->op, a, (size_t)ia, b, (size_t)ib, y, n);
    return;
  }
  float abuf[BIN_GATHER], bbuf[BIN_GATHER];
  for (size_t i0 = 0; i0 < n; i0 += BIN_GATHER) {
    const size_t len = cnn_min_sz(BIN_GATHER, n - i0);
    const float* pa = a + (ptrdiff_t)i0 * ia;
    const float* pb = b + (ptrdiff_t)i0 * ib;
    if (!a_ok) {
      for (size_t i = 0; i < len; i++) abuf[i] = pa[(ptrdiff_t)i * ia];
      pa = abuf;
    }
    if (!b_ok) {
      for (size_t i = 0; i < len; i++) bbuf[i] = pb[(ptrdiff_t)i * ib];
      pb = bbuf;
    }
    c->cfg->binary(c->op, pa, a_ok ? (size_t)ia : 1, pb, b_ok ? (size_t)ib : 1, y + i0, len);
  }
}

/* Outputs [start, end) of the flattened y. */
static void bin_range(const bin_ctx* c, size_t start, size_t end) {
  const size_t nd = c->nd, inner = c->shape[nd - 1];
  const ptrdiff_t ia = c->as[nd - 1], ib = c->bs[nd - 1];
  size_t row = start / inner, col = start % inner;
  /* odometer over the outer dims, started at `row` */
  size_t idx[CNN_MAX_DIMS] = {0};
  ptrdiff_t aoff = 0, boff = 0;
  for (size_t d = nd - 1, r = row; d-- > 0;) {
    idx[d] = r % c->shape[d];
    r /= c->shape[d];
    aoff += (ptrdiff_t)idx[d] * c->as[d];
    boff += (ptrdiff_t)idx[d] * c->bs[d];
  }
  size_t pos = start;
  while (pos < end) {
    const size_t len = cnn_min_sz(inner - col, end - pos);
    float* y = c->y + pos;
    bin_segment(c, c->a + aoff + (ptrdiff_t)col * ia, ia, c->b + boff + (ptrdiff_t)col * ib, ib, y, len);
    if (c->act) c->cfg->act(c->act, y, y, len);
    pos += len;
    col = 0;
    for (size_t d = nd - 1; d-- > 0;) { /* next row */
      aoff += c->as[d];
      boff += c->bs[d];
      if (++idx[d] < c->shape[d]) break;
      aoff -= (ptrdiff_t)c->shape[d] * c->as[d];
      boff -= (ptrdiff_t)c->shape[d] * c->bs[d];
      idx[d] = 0;
    }
  }
}

static void bin_task(void* ctx, size_t tid, size_t t) {
  const bin_ctx* c = (const bin_ctx*)ctx;
  const size_t start = t * c->chunk;
  bin_range(c, start, cnn_min_sz(start + c->chunk, c->total));
}

void cnn_binary_nd(const cnn_eltwise_config* cfg, int op, size_t ndim, const size_t* shape, const float* a,
                   const ptrdiff_t* a_strides, const float* b, const ptrdiff_t* b_strides, float* y,
                   const cnn_act* act, cnn_threadpool* pool) {
  if (!cfg) cfg = cnn_eltwise_config_get(-1);
  if (ndim > CNN_MAX_DIMS) return;
  bin_ctx c;
  c.cfg = cfg;
  c.op = op;
  c.act = (act && act->type != CNN_ACT_NONE) ? act : NULL;
  c.a = a;
  c.b = b;
  c.y = y;
  /* drop size-1 dims, then merge a dim into the next inner one when it is contiguous with it for a and b
   * (y is row-major, so always contiguous) */
  size_t nd = 0;
  for (size_t d = 0; d < ndim; d++) {
    if (shape[d] == 0) return;
    if (shape[d] == 1) continue;
    if (nd > 0 && a_strides[d] * (ptrdiff_t)shape[d] == c.as[nd - 1] &&
        b_strides[d] * (ptrdiff_t)shape[d] == c.bs[nd - 1]) {
      c.shape[nd - 1] *= shape[d];
      c.as[nd - 1] = a_strides[d];
      c.bs[nd - 1] = b_strides[d];
      continue;
    }
    c.shape[nd] = shape[d];
    c.as[nd] = a_strides[d];
    c.bs[nd] = b_strides[d];
    nd++;
  }
  if (nd == 0) { /* a single element */
    c.shape[0] = 1;
    c.as[0] = c.bs[0] = 0;
    nd = 1;
  }
  c.nd = nd;
  /* One operand is a scalar per row of the other (a per-channel scale or bias, e.g. squeeze-and-excitation's
   * x * s[n, c]): MUL and ADD go through the per-channel affine kernel, one call over all rows, instead of one
   * binary call per row (EfficientNet-B0's 7x7 stage: 1152 rows of 49 floats took 27 us, 0.5 ns per element).
   * x * s + (-0) and x * 1 + s give the bits of x * s and x + s (the affine kernel multiplies, then adds). */
  if ((op == CNN_BIN_MUL || op == CNN_BIN_ADD) && nd == 2) {
    const size_t rows = c.shape[0], inner = c.shape[1];
    const float *x = NULL, *v = NULL;
    if (c.as[1] == 1 && c.as[0] == (ptrdiff_t)inner && c.bs[1] == 0 && c.bs[0] == 1) {
      x = a;
      v = b;
    } else if (c.bs[1] == 1 && c.bs[0] == (ptrdiff_t)inner && c.as[1] == 0 && c.as[0] == 1) {
      x = b;
      v = a;
    }
    if (x) {
      for (size_t r0 = 0; r0 < rows; r0 += ROW_CONST) {
        const size_t nr = cnn_min_sz(ROW_CONST, rows - r0);
        const float* scale = op == CNN_BIN_MUL ? v + r0 : g_ones;
        const float* shift = op == CNN_BIN_MUL ? g_negzeros : v + r0;
        cnn_channel_affine_run(cfg, 1, nr, inner, scale, shift, c.act, x + r0 * inner, y + r0 * inner, pool);
      }
      return;
    }
  }
  size_t total = 1;
  for (size_t d = 0; d < nd; d++) total *= c.shape[d];
  c.total = total;
  const size_t threads = cnn_threadpool_size(pool);
  if (threads <= 1 || total <= BIN_PARALLEL_MIN) {
    bin_range(&c, 0, total);
    return;
  }
  size_t ntasks = cnn_min_sz(4 * threads, cnn_div_up(total, BIN_TASK_MIN));
  c.chunk = cnn_round_up(cnn_div_up(total, ntasks), 16);
  ntasks = cnn_div_up(total, c.chunk);
  cnn_parallelize_1d(pool, bin_task, &c, ntasks);
}
