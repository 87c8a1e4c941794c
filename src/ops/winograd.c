/* Winograd F(m x m, 3 x 3) convolution operator (see include/cnnrt/winograd.h for the algorithm and layouts).
 *
 * Run: tasks (image n, block of nb tiles) x (chunk of output channels), split across the pool. One task:
 *   1. input transform: for every input channel and group of 8 tiles, gather the T x T inputs (zeros outside the
 *      image) and transform them straight into the packed B panels of the T*T GEMMs (thread's workspace slice);
 *   2. T*T GEMMs M_p[co, tile] = U_p[co, :] x V_p[:, tile] on the SGEMM micro-kernel (K = Cin blocked like the
 *      implicit-GEMM conv);
 *   3. output transform per output channel and group of 8 tiles, bias (and the clamp when there is no residual) in
 *      the transform; residual, clamp and any other activation while writing the m x m outputs of each tile.
 * Tile blocks hold up to 64 tiles (fewer when the channels are many, so the slice stays near L2, and when there are
 * too few tasks for the threads); with fewer than 2 tasks per thread the output channels are split as well (each
 * chunk repeats the input transform).
 *
 * Accuracy guard (cnn_wino_select): a layer runs Winograd only if, on a deterministic probe input, its output is
 * within cnn_wino_budget(m) of the implicit-GEMM conv's (relative to the largest output); otherwise the next smaller
 * tile is tried, then the caller keeps GEMM. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cnnrt/eltwise.h"
#include "cnnrt/hardware.h"
#include "cnnrt/winograd.h"

#define MAX_ELEMS ((size_t)PTRDIFF_MAX / 8)

static int mul_ok(size_t a, size_t b, size_t* r) {
  if (a != 0 && b > MAX_ELEMS / a) return 0;
  *r = a * b;
  return 1;
}

struct cnn_wino_weights {
  const cnn_wino_tx* tx;
  const cnn_gemm_config* cfg;
  int m, T, forced;
  size_t cin, cout, kcb, mpad;
  size_t pt, pl;
  float* u;    /* position p: packed A (cnn_gemm_pack_a per K block) at u + p*mpad*cin, K block pc at + pc*mpad */
  float* bias; /* cout floats or NULL */
  float lo, hi;
  cnn_gemm_act_fn act_fn;
  cnn_act act;
  cnn_wino_in_fn in_fn;
  cnn_wino_out_fn out_fn;
  size_t bytes;
};

int cnn_wino_eligible(const cnn_conv2d_desc* d) {
  return d && cnn_conv2d_desc_check(d) == CNN_OK && d->kernel_h == 3 && d->kernel_w == 3 && d->stride_h == 1 &&
         d->stride_w == 1 && d->dilation_h == 1 && d->dilation_w == 1 && d->groups == 1;
}

int cnn_wino_auto_enabled(void) {
  const char* e = getenv("CNNRT_WINOGRAD");
  return !(e && e[0] == '0' && e[1] == 0);
}

/* Tile rule for AUTO (measured with tests/c/bench_winograd.c on AVX2, see the report in that file): few channels
 * leave the GEMMs too short (K = Cin) and the transforms dominate; below 16 channels the implicit GEMM wins. */
int cnn_wino_auto_tile(const cnn_conv2d_desc* d) {
  if (!cnn_wino_eligible(d)) return 0;
  if (d->in_channels < 16 || d->out_channels < 16) return 0;
  return 6;
}

static double g_budget_override = -1.0;
void cnn_wino_set_budget_override(double b) { g_budget_override = b; }

/* 1e-3 of the output range for every tile: the error of a float32 layer that inference tolerates (fp16/bf16
 * inference works with 1e-3 .. 1e-2 relative error per layer); typical measured probe errors are ~1e-7 (F(2,3)),
 * ~1e-6 (F(4,3)) and ~1e-5 (F(6,3)), so only pathological weights (huge dynamic range, overflow) exceed it. */
double cnn_wino_budget(int m) {
  (void)m;
  return g_budget_override >= 0 ? g_budget_override : 1e-3;
}

static void set_act(cnn_wino_weights* ww, const cnn_act* act) {
  ww->act = *act;
  ww->lo = -INFINITY;
  ww->hi = INFINITY;
  ww->act_fn = NULL;
  if (!cnn_gemm_fold_act(act, &ww->lo, &ww->hi)) {
    const cnn_eltwise_config* ec = cnn_eltwise_config_get(ww->cfg->isa);
    if (!ec) ec = cnn_eltwise_config_get(CNN_ISA_SCALAR);
    ww->act_fn = ec ? ec->act : NULL;
  }
}

void cnn_wino_weights_destroy(cnn_wino_weights* ww) {
  if (!ww) return;
  cnn_aligned_free(ww->u);
  cnn_aligned_free(ww->bias);
  free(ww);
}

size_t cnn_wino_weights_bytes(const cnn_wino_weights* ww) { return ww ? ww->bytes : 0; }
int cnn_wino_tile(const cnn_wino_weights* ww) { return ww ? ww->m : 0; }

cnn_wino_weights* cnn_wino_weights_create(const cnn_conv2d_desc* d, const float* w, const float* bias, int isa, int m) {
  if (!cnn_wino_eligible(d) || !w) return NULL;
  const cnn_wino_tx* tx = cnn_wino_tx_get(m);
  if (!tx) return NULL;
  if (isa < 0) isa = cnn_hw_active_isa();
  const cnn_gemm_config* cfg = cnn_gemm_config_get(isa);
  if (!cfg) return NULL;
  const size_t T = (size_t)tx->T, TT = T * T, cin = d->in_channels, cout = d->out_channels;
  const size_t mpad = cnn_round_up(cout, cfg->mr);
  size_t nu, nt;
  if (!mul_ok(TT * mpad, cin, &nu) || !mul_ok(TT * cout, cin, &nt) || nu > MAX_ELEMS / 4) return NULL;
  cnn_wino_weights* ww = (cnn_wino_weights*)calloc(1, sizeof(*ww));
  if (!ww) return NULL;
  ww->tx = tx;
  ww->cfg = cfg;
  ww->m = m;
  ww->T = tx->T;
  ww->cin = cin;
  ww->cout = cout;
  ww->kcb = cnn_gemm_kc_block(cfg, cin);
  ww->mpad = mpad;
  ww->pt = d->pad_top;
  ww->pl = d->pad_left;
  ww->u = (float*)cnn_aligned_alloc(nu * sizeof(float));
  ww->bias = bias ? (float*)cnn_aligned_alloc(cout * sizeof(float)) : NULL;
  float* tmp = (float*)malloc(nt * sizeof(float)); /* [p][co][ci] */
  if (!ww->u || (bias && !ww->bias) || !tmp) {
    free(tmp);
    cnn_wino_weights_destroy(ww);
    return NULL;
  }
  if (bias) memcpy(ww->bias, bias, cout * sizeof(float));
  const double* G = tx->g;
  for (size_t co = 0; co < cout; co++)
    for (size_t ci = 0; ci < cin; ci++) {
      const float* g = w + (co * cin + ci) * 9;
      double t1[CNN_WINO_TMAX][3]; /* G g */
      for (size_t p = 0; p < T; p++)
        for (size_t k = 0; k < 3; k++)
          t1[p][k] = G[p * 3] * g[k] + G[p * 3 + 1] * g[3 + k] + G[p * 3 + 2] * g[6 + k];
      for (size_t p = 0; p < T; p++)
        for (size_t q = 0; q < T; q++) {
          const double v = t1[p][0] * G[q * 3] + t1[p][1] * G[q * 3 + 1] + t1[p][2] * G[q * 3 + 2];
          tmp[((p * T + q) * cout + co) * cin + ci] = (float)v;
        }
    }
  for (size_t p = 0; p < TT; p++)
    for (size_t pc = 0; pc < cin; pc += ww->kcb) {
      const size_t kc = cnn_min_sz(ww->kcb, cin - pc);
      cnn_gemm_pack_a(cfg->mr, cout, kc, tmp + p * cout * cin + pc, cin, 1, ww->u + p * mpad * cin + pc * mpad);
    }
  free(tmp);
  ww->in_fn = cnn_wino_input__scalar;
  ww->out_fn = cnn_wino_output__scalar;
#if defined(__x86_64__) && !defined(CNNRT_NO_AVX2)
  if (cfg->isa == CNN_ISA_AVX2) {
    ww->in_fn = cnn_wino_input__avx2;
    ww->out_fn = cnn_wino_output__avx2;
  }
#endif
  set_act(ww, &d->act);
  if (!ww->act_fn && !(d->act.type == CNN_ACT_NONE || d->act.type == CNN_ACT_RELU || d->act.type == CNN_ACT_CLIP)) {
    cnn_wino_weights_destroy(ww);
    return NULL;
  }
  ww->bytes = sizeof(*ww) + nu * sizeof(float) + (bias ? cout * sizeof(float) : 0);
  return ww;
}

/* ------------------------------------------------------------------------------------------------------------ */
/* Geometry of a run */

typedef struct {
  size_t th, tw, ntiles; /* tiles per column / row, total per image */
  size_t nb, nblocks;    /* tiles per block, blocks per image */
  size_t mchunk, msplit; /* output channels per task (multiple of mr), chunks */
} wgeo;

/* tiles per block before the split for threads: up to 64, fewer so that the V and M buffers (T*T*(Cin+Cout)*nb
 * floats) stay near 512 KiB, at least 16 (one NR panel) */
static size_t base_nb(const cnn_wino_weights* ww, size_t ntiles) {
  const size_t TT = (size_t)ww->T * ww->T;
  size_t nb = (size_t)131072 / (TT * (ww->cin + ww->mpad));
  nb = nb / 16 * 16;
  if (nb < 16) nb = 16;
  if (nb > 64) nb = 64;
  return cnn_min_sz(nb, ntiles);
}

static void geo_init(const cnn_wino_weights* ww, size_t batch, size_t oh, size_t ow, size_t nthreads, wgeo* g) {
  const size_t m = (size_t)ww->m, mr = ww->cfg->mr;
  g->th = cnn_div_up(oh, m);
  g->tw = cnn_div_up(ow, m);
  g->ntiles = g->th * g->tw;
  size_t nb = base_nb(ww, g->ntiles);
  if (nthreads > 1)
    while (batch * cnn_div_up(g->ntiles, nb) < 2 * nthreads && nb > 8) nb = (nb + 1) / 2;
  g->nb = nb;
  g->nblocks = cnn_div_up(g->ntiles, nb);
  size_t s = 1;
  if (nthreads > 1)
    while (batch * g->nblocks * s < 2 * nthreads && cnn_div_up(ww->cout, s + 1) >= 2 * mr) s++;
  g->mchunk = cnn_round_up(cnn_div_up(ww->cout, s), mr);
  g->msplit = cnn_div_up(ww->cout, g->mchunk);
}

typedef struct {
  size_t v, m, d, y, slice; /* floats */
} wslice;

static int slice_init(const cnn_wino_weights* ww, size_t ntiles, wslice* s) {
  const size_t al = CNN_ALIGN / sizeof(float), TT = (size_t)ww->T * ww->T;
  const size_t nbpad = cnn_round_up(base_nb(ww, ntiles), 16);
  size_t v, mm;
  if (!mul_ok(TT * nbpad, ww->cin, &v) || !mul_ok(TT * nbpad, ww->mpad, &mm)) return 0;
  s->v = cnn_round_up(v, al);
  s->m = cnn_round_up(mm, al);
  s->d = cnn_round_up(TT * CNN_WINO_LANES, al);
  s->y = cnn_round_up((size_t)ww->m * ww->m * CNN_WINO_LANES, al);
  s->slice = s->v + s->m + s->d + s->y;
  return s->slice < MAX_ELEMS / 8;
}

int cnn_wino_use(const cnn_wino_weights* ww, size_t batch, size_t oh, size_t ow) {
  if (!ww) return 0;
  if (ww->forced) return 1;
  /* measured: below 8 x 8 outputs the tiles are mostly border and the implicit GEMM is as fast or faster */
  (void)batch;
  return oh >= 8 && ow >= 8;
}

size_t cnn_wino_workspace_size(const cnn_wino_weights* ww, size_t batch, size_t h, size_t w, size_t oh, size_t ow,
                               size_t nthreads) {
  if (!ww) return 0;
  if (nthreads == 0) nthreads = 1;
  (void)batch;
  (void)h;
  (void)w;
  wslice s;
  if (!slice_init(ww, cnn_div_up(oh, (size_t)ww->m) * cnn_div_up(ow, (size_t)ww->m), &s)) return 0;
  size_t b;
  if (!mul_ok(s.slice, nthreads, &b) || !mul_ok(b, sizeof(float), &b)) return 0;
  return b;
}

/* ------------------------------------------------------------------------------------------------------------ */
/* Run */

typedef struct {
  const cnn_wino_weights* ww;
  const float* in;
  float* out;
  const float* res;
  size_t H, W, oh, ow;
  wgeo g;
  wslice s;
  float* ws;
} wctx;

/* gather the T x T inputs of 8 tiles (lanes; tiles past `count` are zero) of one channel plane */
static void gather(const wctx* x, const float* plane, size_t t0, size_t count, float* dbuf) {
  const cnn_wino_weights* ww = x->ww;
  const int T = ww->T;
  const ptrdiff_t H = (ptrdiff_t)x->H, W = (ptrdiff_t)x->W, m = ww->m;
  for (size_t l = 0; l < CNN_WINO_LANES; l++) {
    if (l >= count) {
      for (int e = 0; e < T * T; e++) dbuf[e * CNN_WINO_LANES + l] = 0.0f;
      continue;
    }
    const size_t t = t0 + l;
    const ptrdiff_t y0 = (ptrdiff_t)(t / x->g.tw) * m - (ptrdiff_t)ww->pt;
    const ptrdiff_t x0 = (ptrdiff_t)(t % x->g.tw) * m - (ptrdiff_t)ww->pl;
    const int inner_x = x0 >= 0 && x0 + T <= W;
    for (int r = 0; r < T; r++) {
      float* dst = dbuf + (size_t)r * T * CNN_WINO_LANES + l;
      const ptrdiff_t iy = y0 + r;
      if (iy < 0 || iy >= H) {
        for (int s = 0; s < T; s++) dst[s * CNN_WINO_LANES] = 0.0f;
        continue;
      }
      const float* row = plane + iy * W;
      if (inner_x) {
        for (int s = 0; s < T; s++) dst[s * CNN_WINO_LANES] = row[x0 + s];
      } else {
        for (int s = 0; s < T; s++) {
          const ptrdiff_t ix = x0 + s;
          dst[s * CNN_WINO_LANES] = (ix >= 0 && ix < W) ? row[ix] : 0.0f;
        }
      }
    }
  }
}

static void wino_task(void* vctx, size_t tid, size_t i, size_t j) {
  const wctx* x = (const wctx*)vctx;
  const cnn_wino_weights* ww = x->ww;
  const cnn_gemm_config* cfg = ww->cfg;
  const size_t TT = (size_t)ww->T * ww->T, m = (size_t)ww->m, cin = ww->cin, cout = ww->cout, kcb = ww->kcb;
  const size_t n = i / x->g.nblocks, blk = i % x->g.nblocks;
  const size_t t0 = blk * x->g.nb, nt = cnn_min_sz(x->g.nb, x->g.ntiles - t0);
  const size_t nbpad = cnn_round_up(nt, 16);
  const size_t c0 = j * x->g.mchunk, c1 = cnn_min_sz(cout, c0 + x->g.mchunk);
  float* vbuf = x->ws + tid * x->s.slice;
  float* mbuf = vbuf + x->s.v;
  float* dbuf = mbuf + x->s.m;
  float* ybuf = dbuf + x->s.d;
  const size_t HW = x->H * x->W;

  /* 1. input transform into packed B panels: position p, K block pc, panel jp, row c-pc, column t%16 */
  const size_t vstride = cin * nbpad;
  for (size_t c = 0; c < cin; c++) {
    const size_t pc = c / kcb * kcb, kc = cnn_min_sz(kcb, cin - pc);
    const float* plane = x->in + (n * cin + c) * HW;
    float* base = vbuf + pc * nbpad + (c - pc) * 16;
    for (size_t g8 = 0; g8 < nbpad; g8 += CNN_WINO_LANES) {
      const size_t cnt = g8 < nt ? cnn_min_sz(CNN_WINO_LANES, nt - g8) : 0;
      gather(x, plane, t0 + g8, cnt, dbuf);
      ww->in_fn(ww->tx, dbuf, base + (g8 / 16) * kc * 16 + g8 % 16, vstride);
    }
  }

  /* 2. T*T GEMMs: M_p[c0..c1, 0..nt) */
  const size_t mstride = ww->mpad * nbpad;
  for (size_t p = 0; p < TT; p++) {
    const float* a_p = ww->u + p * ww->mpad * cin;
    const float* v_p = vbuf + p * vstride;
    float* m_p = mbuf + p * mstride;
    for (size_t ic = c0; ic < c1; ic += cfg->mc) {
      const size_t mc = cnn_min_sz(cfg->mc, c1 - ic);
      for (size_t pc = 0; pc < cin; pc += kcb) {
        const size_t kc = cnn_min_sz(kcb, cin - pc);
        cnn_gemm_macro_kernel(cfg, mc, nt, kc, a_p + pc * ww->mpad + ic * kc, v_p + pc * nbpad, m_p + ic * nbpad,
                              nbpad, pc > 0, pc + kc >= cin, NULL, NULL, NULL);
      }
    }
  }

  /* 3. output transform + epilogue */
  const int has_res = x->res != NULL;
  const float lo = has_res ? -INFINITY : ww->lo, hi = has_res ? INFINITY : ww->hi;
  const size_t oh = x->oh, ow = x->ow, tw = x->g.tw;
  for (size_t co = c0; co < c1; co++) {
    const float b = ww->bias ? ww->bias[co] : 0.0f;
    const size_t obase = (n * cout + co) * oh * ow;
    float* oplane = x->out + obase;
    const float* rplane = has_res ? x->res + obase : NULL;
    for (size_t g8 = 0; g8 < nt; g8 += CNN_WINO_LANES) {
      ww->out_fn(ww->tx, mbuf + co * nbpad + g8, mstride, b, lo, hi, ybuf);
      const size_t cnt = cnn_min_sz(CNN_WINO_LANES, nt - g8);
      for (size_t l = 0; l < cnt; l++) {
        const size_t t = t0 + g8 + l, oy0 = t / tw * m, ox0 = t % tw * m;
        const size_t ni = cnn_min_sz(m, oh - oy0), nj = cnn_min_sz(m, ow - ox0);
        for (size_t ii = 0; ii < ni; ii++) {
          float* orow = oplane + (oy0 + ii) * ow + ox0;
          const float* y = ybuf + ii * m * CNN_WINO_LANES + l;
          if (has_res) {
            const float* rrow = rplane + (oy0 + ii) * ow + ox0;
            for (size_t jj = 0; jj < nj; jj++) {
              float v = y[jj * CNN_WINO_LANES] + rrow[jj];
              v = v < ww->lo ? ww->lo : v;
              orow[jj] = v > ww->hi ? ww->hi : v;
            }
          } else {
            for (size_t jj = 0; jj < nj; jj++) orow[jj] = y[jj * CNN_WINO_LANES];
          }
          if (ww->act_fn) ww->act_fn(&ww->act, orow, orow, nj);
        }
      }
    }
  }
}

void cnn_wino_run(const cnn_wino_weights* ww, size_t batch, size_t h, size_t w, size_t oh, size_t ow, const float* in,
                  float* out, const float* residual, void* workspace, cnn_threadpool* pool, size_t nthreads) {
  size_t nt = cnn_threadpool_size(pool);
  if (nthreads == 0) nthreads = 1;
  if (nt > nthreads) {
    pool = NULL;
    nt = 1;
  }
  wctx x;
  x.ww = ww;
  x.in = in;
  x.out = out;
  x.res = residual;
  x.H = h;
  x.W = w;
  x.oh = oh;
  x.ow = ow;
  geo_init(ww, batch, oh, ow, nt, &x.g);
  slice_init(ww, x.g.ntiles, &x.s);
  x.ws = (float*)workspace;
  cnn_parallelize_2d(pool, wino_task, &x, batch * x.g.nblocks, x.g.msplit);
}

/* ------------------------------------------------------------------------------------------------------------ */
/* Accuracy guard */

double cnn_wino_probe(const cnn_wino_weights* ww, const cnn_conv2d_desc* d, const float* w, const float* bias) {
  const size_t m = (size_t)ww->m, cin = d->in_channels, cout = d->out_channels;
  const size_t H = 2 * m + 3, W = 2 * m + 3;
  size_t oh, ow;
  if (!cnn_conv2d_out_size(d, H, W, &oh, &ow)) return INFINITY;
  int st;
  cnn_conv2d_weights* gw = cnn_conv2d_weights_create(d, w, bias, ww->cfg->isa, CNN_CONV_ALGO_GEMM, &st);
  if (!gw) return INFINITY;
  cnn_conv2d_plan plan;
  double err = INFINITY;
  float *x = NULL, *y0 = NULL, *y1 = NULL, *ws0 = NULL, *ws1 = NULL;
  if (cnn_conv2d_plan_init(&plan, gw, 1, H, W, 1) != CNN_OK) goto done;
  const size_t wsb = cnn_wino_workspace_size(ww, 1, H, W, oh, ow, 1);
  x = (float*)cnn_aligned_alloc(cin * H * W * sizeof(float));
  y0 = (float*)cnn_aligned_alloc(cout * oh * ow * sizeof(float));
  y1 = (float*)cnn_aligned_alloc(cout * oh * ow * sizeof(float));
  ws0 = (float*)cnn_aligned_alloc(plan.workspace_bytes ? plan.workspace_bytes : 64);
  ws1 = (float*)cnn_aligned_alloc(wsb ? wsb : 64);
  if (!x || !y0 || !y1 || !ws0 || !ws1 || !wsb) goto done;
  uint64_t r = 0x2545F4914F6CDD1Dull;
  for (size_t i = 0; i < cin * H * W; i++) {
    r ^= r << 13;
    r ^= r >> 7;
    r ^= r << 17;
    x[i] = (float)((double)(r >> 11) / 9007199254740992.0 * 2.0 - 1.0);
  }
  cnn_conv2d_run(&plan, x, y0, NULL, ws0, NULL);
  cnn_wino_run(ww, 1, H, W, oh, ow, x, y1, NULL, ws1, NULL, 1);
  double emax = 0, ymax = 0;
  for (size_t i = 0; i < cout * oh * ow; i++) {
    const double e = fabs((double)y1[i] - (double)y0[i]);
    if (!(e <= emax)) emax = e; /* NaN sticks */
    if (fabs((double)y0[i]) > ymax) ymax = fabs((double)y0[i]);
  }
  err = isnan(emax) ? INFINITY : (ymax > 0 ? emax / ymax : (emax > 0 ? INFINITY : 0.0));
done:
  cnn_aligned_free(x);
  cnn_aligned_free(y0);
  cnn_aligned_free(y1);
  cnn_aligned_free(ws0);
  cnn_aligned_free(ws1);
  cnn_conv2d_weights_destroy(gw);
  return err;
}

cnn_wino_weights* cnn_wino_select(const cnn_conv2d_desc* d, const float* w, const float* bias, int isa, int m_first,
                                  int forced, double* err) {
  if (err) *err = INFINITY;
  if (!cnn_wino_eligible(d)) return NULL;
  cnn_conv2d_desc dn = *d; /* probe the convolution itself, before the activation */
  memset(&dn.act, 0, sizeof(dn.act));
  for (int m = m_first; m >= 2; m -= 2) {
    cnn_wino_weights* ww = cnn_wino_weights_create(&dn, w, bias, isa, m);
    if (!ww) continue;
    const double e = cnn_wino_probe(ww, &dn, w, bias);
    if (err) *err = e;
    if (e <= cnn_wino_budget(m)) {
      set_act(ww, &d->act);
      if (!ww->act_fn && !(d->act.type == CNN_ACT_NONE || d->act.type == CNN_ACT_RELU ||
                           d->act.type == CNN_ACT_CLIP)) {
        cnn_wino_weights_destroy(ww);
        return NULL;
      }
      ww->forced = forced;
      return ww;
    }
    cnn_wino_weights_destroy(ww);
  }
  return NULL;
}
