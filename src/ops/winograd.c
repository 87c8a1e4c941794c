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
 * tile is tried, then the caller keeps GEMM. A tile also fails when a worst-case bound of its intermediates (for inputs
 * up to 2^20 in magnitude) would overflow float: the probe alone cannot see an overflow its input does not hit. */
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
  cnn_wino_outpool_fn outpool_fn; /* fused output transform + 2x2 max-pool, or NULL: cnn_wino_output_pool_ref */
  double amp; /* worst-case |intermediate| (M and the output transform) for inputs |x| <= 1 */
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

/* Tile rule (measured with tests/c/bench_winograd.c, AVX2, 2-core Zen 3; table in the header of that file):
 * F(4,3) was the fastest or tied on every ConvNet / VGG16 / ResNet-18 layer with >= 12 x 12 outputs (1.5-5x the
 * implicit GEMM); F(6,3) beat it only on a few large layers and by less than the run-to-run noise (its transforms
 * cost twice as much and its 6-wide tiles waste more border), F(2,3) only on outputs of <= 8 x 8 at batch 1, which
 * the plan rule (cnn_wino_use) sends to GEMM anyway. Below 16 input or output channels the GEMMs (K = Cin, M = Cout)
 * are too short for the transforms to pay off. CNNRT_WINOGRAD_TILE=2|4|6 overrides the tile. */
int cnn_wino_auto_tile(const cnn_conv2d_desc* d) {
  if (!cnn_wino_eligible(d)) return 0;
  const char* e = getenv("CNNRT_WINOGRAD_TILE");
  if (e && (e[0] == '2' || e[0] == '4' || e[0] == '6') && e[1] == 0) return e[0] - '0';
  if (d->in_channels < 16 || d->out_channels < 16) return 0;
  return 4;
}

/* Small outputs (chosen by the planner, which knows the shape: fewer than 16 F(4,3) tiles but at least 16 F(2,3)
 * tiles, e.g. 8x8 and 7x7 at batch 1): measured with tests/c/bench_winograd.c, F(2,3) ran 1.6x (ConvNet 128->128 at
 * 8x8) and 2.1x (ResNet-18 512->512 at 7x7) the implicit GEMM, where F(4,3) was slower than GEMM. */
int cnn_wino_auto_tile_small(const cnn_conv2d_desc* d) {
  const int m = cnn_wino_auto_tile(d);
  const char* e = getenv("CNNRT_WINOGRAD_TILE");
  return m == 0 || (e && e[0] && e[1] == 0 && (e[0] == '2' || e[0] == '4' || e[0] == '6')) ? m : 2;
}

static double g_budget_override = -1.0;
void cnn_wino_set_budget_override(double b) { g_budget_override = b; }

/* 1e-3 of the output range for every tile. Why: (1) it is the error a layer may add without changing what a CNN
 * computes in practice: fp16/bf16 inference runs every layer with 1e-3..1e-2 relative error and keeps accuracy, and
 * the repo's end-to-end checks allow 1e-4..1e-3 of the output scale for a whole network; (2) it sits far above what
 * Winograd gives on ordinary weights, measured by this probe on random layers (uniform weights, C in = out):
 *   C = 16 .. 512:  F(2,3) 4e-7 .. 7e-7,  F(4,3) 3e-6 .. 1.3e-5,  F(6,3) 4e-6 .. 1.5e-5
 * (float32 GEMM itself: ~1e-7), so it trips only for pathological weights (huge dynamic range or magnitude,
 * overflow, NaN), which is what the guard is for, and not for ordinary layers on a bad day. */
double cnn_wino_budget(int m) {
  (void)m;
  return g_budget_override >= 0 ? g_budget_override : 1e-3;
}

/* 1 when the activation runs: folded into the output transform's clamp, or by the ISA's activation kernel */
static int set_act(cnn_wino_weights* ww, const cnn_act* act) {
  ww->act = *act;
  ww->lo = -INFINITY;
  ww->hi = INFINITY;
  ww->act_fn = NULL;
  if (cnn_gemm_fold_act(act, &ww->lo, &ww->hi)) return 1;
  const cnn_eltwise_config* ec = cnn_eltwise_config_get(ww->cfg->isa);
  if (!ec) ec = cnn_eltwise_config_get(CNN_ISA_SCALAR);
  ww->act_fn = ec ? ec->act : NULL;
  return ww->act_fn != NULL;
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
  /* worst-case magnitude of the intermediates for |x| <= 1: |V_p| <= rowsum|B^T|[p1] * rowsum|B^T|[p2], |M_p| <=
   * max_co sum_ci |U_p| |V_p|, and the output transform multiplies by at most (max rowsum |A^T|)^2 */
  {
    double bsum[CNN_WINO_TMAX], amax = 0, mmax = 0;
    for (size_t p = 0; p < T; p++) {
      bsum[p] = 0;
      for (size_t r = 0; r < T; r++) bsum[p] += fabs(tx->bt[p * T + r]);
    }
    for (int i = 0; i < m; i++) {
      double a = 0;
      for (size_t p = 0; p < T; p++) a += fabs(tx->at[i * T + p]);
      if (a > amax) amax = a;
    }
    for (size_t p = 0; p < TT; p++)
      for (size_t co = 0; co < cout; co++) {
        double su = 0;
        for (size_t ci = 0; ci < cin; ci++) su += fabs(tmp[(p * cout + co) * cin + ci]);
        su *= bsum[p / T] * bsum[p % T];
        if (su > mmax) mmax = su;
      }
    ww->amp = mmax * amax * amax;
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
  if (cnn_isa_is_avx2(cfg->isa)) {
    ww->in_fn = cnn_wino_input__avx2;
    ww->out_fn = cnn_wino_output__avx2;
    ww->outpool_fn = cnn_wino_output_pool__avx2;
  }
#endif
#if defined(__aarch64__) && !defined(CNNRT_NO_NEON)
  if (cfg->isa == CNN_ISA_NEON) {
    ww->in_fn = cnn_wino_input__neon;
    ww->out_fn = cnn_wino_output__neon;
  }
#endif
  if (!set_act(ww, &d->act)) {
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
  size_t ntot;           /* batch * ntiles: tiles are numbered across the batch, blocks may span images */
  size_t nb, nblocks;    /* tiles per block, blocks */
  size_t mchunk, msplit; /* output channels per task (multiple of mr), chunks */
} wgeo;

/* Blocking (measured on the 2-core Zen 3, 1 thread, batch-1 ResNet/VGG/SqueezeNet layers and the ConvNet at batch
 * 32, min of alternating runs): a block of nb tiles reads the transformed weights U (T*T*Cout*Cin floats) once per
 * output-channel pass and writes/reads V (T*T*Cin*nb) and M (T*T*mb*nb). With mb = all output channels (M in L2/L3,
 * WINO_M_FLOATS) V is read once, and the traffic per tile is ~ U/nb + V + 2M: large-weight layers (U > 1 MiB, i.e.
 * >= 128 channels) want few, big blocks (nb = 64: VGG 512->512 at 28x28 14.8 vs 16.6 ms with nb = 32, 19.2 ms with
 * the old 16-tile blocks and 54-channel passes), small-weight layers want their M and V near L2 (nb = 32: 16->64 at
 * 55x55 0.44 vs 0.51 ms, 64->64 at 56x56 1.15 vs 1.22 ms). */
#define WINO_M_FLOATS ((size_t)1 << 21)
static size_t base_nb(const cnn_wino_weights* ww, size_t ntiles) {
  const size_t TT = (size_t)ww->T * ww->T;
  const double ubytes = (double)TT * (double)ww->mpad * (double)ww->cin * 4.0;
  const size_t nb = ubytes > 1048576.0 ? 64 : 32;
  return cnn_max_sz(cnn_min_sz(nb, ntiles), 1);
}

static void geo_init(const cnn_wino_weights* ww, size_t batch, size_t oh, size_t ow, size_t nthreads, wgeo* g) {
  const size_t m = (size_t)ww->m, mr = ww->cfg->mr;
  g->th = cnn_div_up(oh, m);
  g->tw = cnn_div_up(ow, m);
  g->ntiles = g->th * g->tw;
  g->ntot = batch * g->ntiles;
  size_t nb = base_nb(ww, g->ntot);
  size_t nblocks = cnn_div_up(g->ntot, nb);
  nb = cnn_min_sz(nb, cnn_round_up(cnn_div_up(g->ntot, nblocks), 8)); /* balanced blocks */
  /* fewer than 2 tasks per thread: split the output channels first (the two-phase run shares each block's input
   * transform between the chunks, and every chunk reads only its rows of the transformed weights, once), then
   * smaller blocks, down to one NR panel (16 tiles), where the channels are too few to split */
  size_t s = 1;
  if (nthreads > 1) {
    while (nblocks * s < 2 * nthreads && cnn_div_up(ww->cout, s + 1) >= 2 * mr) s++;
    while (nblocks * s < 2 * nthreads && nb > 16) {
      nb = cnn_max_sz(cnn_round_up(nb / 2, 8), 16);
      nblocks = cnn_div_up(g->ntot, nb);
    }
  }
  g->nb = nb;
  g->nblocks = nblocks;
  g->mchunk = cnn_round_up(cnn_div_up(ww->cout, s), mr);
  g->msplit = cnn_div_up(ww->cout, g->mchunk);
}

/* per-thread slice (floats): V (B panels of the T*T GEMMs), M (their outputs), the zero-padded input bands of one
 * channel (one per image the block touches, each at most the whole padded plane: (th*m + 2) rows of tw*m + 2 + 8
 * floats), 8 zeros */
typedef struct {
  size_t v, m, pad, slice;
  size_t mb; /* output channels per GEMM + output-transform pass (M: mb rows x T*T positions, <= WINO_M_FLOATS) */
} wslice;

/* floats between the per-position planes of V and M: without it the stride between positions is often a multiple
 * of 4 KiB (e.g. 64 channels x 16 tiles), and the 36..64 stores of one transform all land in one L1 set */
#define SKEW 16
#define MAX_SEGS 72 /* images one block can touch: nb <= 64 tiles -> at most 65 */

static int slice_init(const cnn_wino_weights* ww, size_t batch, size_t oh, size_t ow, wslice* s) {
  const size_t al = CNN_ALIGN / sizeof(float), TT = (size_t)ww->T * ww->T, m = (size_t)ww->m;
  const size_t th = cnn_div_up(oh, m), tw = cnn_div_up(ow, m);
  const size_t nb = base_nb(ww, batch * th * tw), nbpad = cnn_round_up(nb, 16);
  const size_t segs = cnn_min_sz(cnn_div_up(nb, th * tw) + 1, batch); /* images a block of <= nb tiles touches */
  const size_t mr = ww->cfg->mr;
  s->mb = cnn_min_sz(cnn_max_sz(WINO_M_FLOATS / (TT * nbpad) / mr, 1) * mr, ww->mpad);
  size_t v, mm, pad;
  if (!mul_ok(nbpad, ww->cin, &v) || !mul_ok(v + SKEW, TT, &v) || !mul_ok(nbpad, s->mb, &mm) ||
      !mul_ok(mm + SKEW, TT, &mm) ||
      !mul_ok(th * m + 2, tw * m + 10, &pad) || !mul_ok(pad, segs, &pad))
    return 0;
  s->v = cnn_round_up(v, al);
  s->m = cnn_round_up(mm, al);
  s->pad = cnn_round_up(pad, al);
  s->slice = s->v + s->m + s->pad + al;
  return s->slice < MAX_ELEMS / 8;
}

int cnn_wino_use(const cnn_wino_weights* ww, size_t batch, size_t oh, size_t ow) {
  if (!ww) return 0;
  if (ww->forced) return 1;
  /* measured: fewer than 16 tiles in the batch (one NR panel of the GEMMs), e.g. 8 x 8 or 7 x 7 outputs with F(4,3)
   * at batch 1, leave the GEMMs mostly padding and the implicit GEMM is faster; so is a tile grid that covers more
   * than twice the output area (tiny images) */
  const size_t m = (size_t)ww->m, th = cnn_div_up(oh, m), tw = cnn_div_up(ow, m);
  return batch * th * tw >= 16 && th * m * tw * m <= 2 * oh * ow;
}

size_t cnn_wino_workspace_size(const cnn_wino_weights* ww, size_t batch, size_t h, size_t w, size_t oh, size_t ow,
                               size_t nthreads) {
  if (!ww) return 0;
  if (nthreads == 0) nthreads = 1;
  (void)batch;
  (void)h;
  (void)w;
  wslice s;
  if (!slice_init(ww, batch, oh, ow, &s)) return 0;
  size_t b;
  if (!mul_ok(s.slice, nthreads, &b)) return 0;
  wgeo g;
  geo_init(ww, batch, oh, ow, nthreads, &g);
  if (g.msplit > 1) { /* two-phase run: every block's B panels, shared */
    size_t sh;
    if (!mul_ok(s.v, g.nblocks, &sh) || b > MAX_ELEMS - sh) return 0;
    b += sh;
  }
  if (!mul_ok(b, sizeof(float), &b)) return 0;
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
  int pool; /* 1: out is MaxPool(2x2, stride 2, floor) of the convolution (oh/2 x ow/2 per channel) */
  wgeo g;
  wslice s;
  float* ws;
  float* shared; /* two-phase runs: the blocks' B panels (nblocks x s.v floats) after the threads' slices */
  size_t cchunk; /* two-phase runs: input channels per input-transform task */
} wctx;

/* The image part of a padded band: rows [r0, r0 + rows) x columns [c0, c0 + cols) of the padded plane (row r is
 * image row r - pt; ld floats apart in buf), only the floats that come from the image. The rest of the band
 * (padding rows and columns, and the 8 columns of slack) holds the same zeros for every channel: wino_input writes
 * them once per task (a memset of the whole band before its channel loop), not once per channel as the copy did
 * before, row by row with zero loops around each row's image part. Measured in one process, old and new alternating
 * every round, both orders: the ConvNet at batch 1 (three Winograd layers) 0.888-0.904 and 1.115-1.128 (old/new) per
 * layer, at batch 32 0.926 / 1.252 whole run; ResNet-18 at batch 1 0.941 / 1.039 whole run. */
static void copy_band(const float* plane, size_t H, size_t W, size_t pt, size_t pl, size_t r0, size_t rows, size_t c0,
                      size_t cols, float* buf, size_t ld) {
  const ptrdiff_t x0 = (ptrdiff_t)c0 - (ptrdiff_t)pl; /* image column of dst[0] */
  const ptrdiff_t a = x0 < 0 ? -x0 : 0;              /* dst columns [a, b) come from the image */
  ptrdiff_t b = (ptrdiff_t)W - x0;
  if (b > (ptrdiff_t)cols) b = (ptrdiff_t)cols;
  if (b <= a) return;
  const ptrdiff_t ra = (ptrdiff_t)pt > (ptrdiff_t)r0 ? (ptrdiff_t)pt - (ptrdiff_t)r0 : 0; /* first row in the image */
  ptrdiff_t rb = (ptrdiff_t)H + (ptrdiff_t)pt - (ptrdiff_t)r0;                            /* one past the last */
  if (rb > (ptrdiff_t)rows) rb = (ptrdiff_t)rows;
  for (ptrdiff_t r = ra; r < rb; r++) {
    const float* src = plane + (size_t)(r + (ptrdiff_t)r0 - (ptrdiff_t)pt) * W + x0;
    float* dst = buf + (size_t)r * ld;
    for (ptrdiff_t j = a; j < b; j++) dst[j] = src[j];
  }
}

/* 1. input transform of block i, input channels [ca, cb), into vbuf (the block's B panels); the padded bands go to
 * thread tid's slice. (A software prefetch of the next channel's band rows while this channel is transformed was
 * removed: one process, with and without it alternating, both orders - the ConvNet at batch 1 3-4% faster without,
 * at batch 32 and VGG-16 neutral (0.986-1.007, 0.953-0.993), ResNet-18 at batch 1 within +-3%.) */
static void wino_input(const wctx* x, size_t tid, size_t i, size_t ca, size_t cb, float* vbuf) {
  const cnn_wino_weights* ww = x->ww;
  const size_t m = (size_t)ww->m, cin = ww->cin, kcb = ww->kcb;
  const size_t t0 = i * x->g.nb, nt = cnn_min_sz(x->g.nb, x->g.ntot - t0); /* global tiles [t0, t0 + nt) */
  const size_t nbpad = cnn_round_up(nt, 16);
  float* pbuf = x->ws + tid * x->s.slice + x->s.v + x->s.m;
  float* zeros = pbuf + x->s.pad;
  memset(zeros, 0, CNN_WINO_LANES * sizeof(float));
  const size_t HW = x->H * x->W, ntiles = x->g.ntiles;

  /* 1. input transform into packed B panels: position p, K block pc, panel jp, row c-pc, column t%16. For each image
   * the block touches, the input band of its tiles (tile rows tya..tyb; tile columns txa..txb when that is one tile
   * row, else all) is first copied zero-padded, so every lane reads its T x T window (8 floats per row) without
   * bounds checks. */
  const size_t T = (size_t)ww->T, tw = x->g.tw, L = CNN_WINO_LANES;
  const size_t n0 = t0 / ntiles, nseg = (t0 + nt - 1) / ntiles - n0 + 1;
  struct {
    size_t tya, txa, prows, pcols, ld, off;
  } seg[MAX_SEGS];
  for (size_t sg = 0, off = 0; sg < nseg; sg++) {
    const size_t base = (n0 + sg) * ntiles;
    const size_t sa = cnn_max_sz(t0, base) - base, sb = cnn_min_sz(t0 + nt, base + ntiles) - 1 - base;
    const size_t tya = sa / tw, tyb = sb / tw;
    const size_t txa = tya == tyb ? sa % tw : 0, txb = tya == tyb ? sb % tw : tw - 1;
    seg[sg].tya = tya;
    seg[sg].txa = txa;
    seg[sg].prows = (tyb - tya) * m + T;
    seg[sg].pcols = (txb - txa) * m + T;
    seg[sg].ld = seg[sg].pcols + 8;
    seg[sg].off = off;
    off += seg[sg].prows * seg[sg].ld;
  }
  /* the padded bands have the same layout for every channel: the lane row pointers of every group of 8 tiles are
   * computed once per task (no divisions in the channel loop) */
  const float* rows[(64 / CNN_WINO_LANES) * CNN_WINO_TMAX * CNN_WINO_LANES];
  for (size_t g8 = 0; g8 < nbpad; g8 += L) {
    const float** gr = rows + (g8 / L) * T * L;
    for (size_t l = 0; l < L; l++) {
      if (g8 + l < nt) {
        const size_t gt = t0 + g8 + l, sg = gt / ntiles - n0, t = gt % ntiles, ld = seg[sg].ld;
        const float* o = pbuf + seg[sg].off + (t / tw - seg[sg].tya) * m * ld + (t % tw - seg[sg].txa) * m;
        for (size_t r = 0; r < T; r++) gr[r * L + l] = o + r * ld;
      } else {
        for (size_t r = 0; r < T; r++) gr[r * L + l] = zeros;
      }
    }
  }
  for (size_t sg = 0; sg < nseg; sg++) memset(pbuf + seg[sg].off, 0, seg[sg].prows * seg[sg].ld * sizeof(float));
  const size_t vstride = cin * nbpad + SKEW;
  for (size_t c = ca; c < cb; c++) {
    const size_t pc = c / kcb * kcb, kc = cnn_min_sz(kcb, cin - pc);
    for (size_t sg = 0; sg < nseg; sg++)
      copy_band(x->in + ((n0 + sg) * cin + c) * HW, x->H, x->W, ww->pt, ww->pl, seg[sg].tya * m, seg[sg].prows,
                seg[sg].txa * m, seg[sg].pcols, pbuf + seg[sg].off, seg[sg].ld);
    float* base = vbuf + pc * nbpad + (c - pc) * 16;
    for (size_t g8 = 0; g8 < nbpad; g8 += L)
      ww->in_fn(ww->tx, rows + (g8 / L) * T * L, base + (g8 / 16) * kc * 16 + g8 % 16, vstride);
  }
}

/* 2 + 3. block i's GEMMs and output transform for output-channel chunk j, from the B panels in vbuf; M goes to thread
 * tid's slice */
static void wino_compute(const wctx* x, size_t tid, size_t i, size_t j, const float* vbuf) {
  const cnn_wino_weights* ww = x->ww;
  const cnn_gemm_config* cfg = ww->cfg;
  const size_t TT = (size_t)ww->T * ww->T, m = (size_t)ww->m, cin = ww->cin, cout = ww->cout, kcb = ww->kcb;
  const size_t t0 = i * x->g.nb, nt = cnn_min_sz(x->g.nb, x->g.ntot - t0);
  const size_t nbpad = cnn_round_up(nt, 16), vstride = cin * nbpad + SKEW;
  const size_t c0 = j * x->g.mchunk, c1 = cnn_min_sz(cout, c0 + x->g.mchunk);
  float* mbuf = x->ws + tid * x->s.slice + x->s.v;
  const size_t ntiles = x->g.ntiles, tw = x->g.tw, L = CNN_WINO_LANES;

  /* 2 + 3. per block of mb output channels: T*T GEMMs M_p[co, 0..nt) (co in the block), then the output transform
   * and epilogue of those channels (bias, residual, clamp in the kernel; other activations on the written rows).
   * Output offsets (without the channel term), rows and columns of each tile are computed once per task. */
  const size_t oh = x->oh, ow = x->ow, mb = x->s.mb, ohw = oh * ow;
  const size_t mstride = mb * nbpad + SKEW;
  size_t obase[64];
  int orow_n[64], ocol_n[64];
  for (size_t k = 0; k < nbpad; k++) {
    if (k < nt) {
      const size_t gt = t0 + k, n = gt / ntiles, t = gt % ntiles, oy0 = t / tw * m, ox0 = t % tw * m;
      orow_n[k] = (int)cnn_min_sz(m, oh - oy0);
      ocol_n[k] = (int)cnn_min_sz(m, ow - ox0);
      obase[k] = n * cout * ohw + oy0 * ow + ox0;
    } else {
      orow_n[k] = ocol_n[k] = 0;
      obase[k] = 0;
    }
  }
  /* pooled output (ph x pw planes): the output transform pools 2x2 windows of its m x m tiles (tiles start at even
   * rows and columns, so the windows of pooled rows/columns [0, ph) x [0, pw) are whole inside tiles) */
  const size_t ph = oh / 2, pw = ow / 2, phw = ph * pw;
  /* row offsets (within a channel plane) of every group's lanes: offs + (g8/L)*m*L, -1 for rows not written */
  ptrdiff_t offs[(64 / CNN_WINO_LANES) * CNN_WINO_TMAX * CNN_WINO_LANES];
  if (x->pool) {
    for (size_t k = 0; k < nbpad; k++) {
      if (k < nt) {
        const size_t gt = t0 + k, n = gt / ntiles, t = gt % ntiles, py0 = t / tw * m / 2, px0 = t % tw * m / 2;
        orow_n[k] = py0 < ph ? (int)cnn_min_sz(m / 2, ph - py0) : 0;
        ocol_n[k] = px0 < pw ? (int)cnn_min_sz(m / 2, pw - px0) : 0;
        obase[k] = n * cout * phw + py0 * pw + px0;
      }
    }
    for (size_t g8 = 0; g8 < nbpad; g8 += L)
      for (size_t l = 0; l < L; l++)
        for (size_t r = 0; r < m / 2; r++) {
          const size_t k = g8 + l;
          offs[(g8 / L) * m * L + r * L + l] = r < (size_t)orow_n[k] ? (ptrdiff_t)(obase[k] + r * pw) : -1;
        }
  } else {
    for (size_t g8 = 0; g8 < nbpad; g8 += L)
      for (size_t l = 0; l < L; l++)
        for (size_t ii = 0; ii < m; ii++) {
          const size_t k = g8 + l;
          offs[(g8 / L) * m * L + ii * L + l] = ii < (size_t)orow_n[k] ? (ptrdiff_t)(obase[k] + ii * ow) : -1;
        }
  }
  for (size_t ib = c0; ib < c1; ib += mb) {
    const size_t mc = cnn_min_sz(mb, c1 - ib);
    for (size_t p = 0; p < TT; p++) {
      const float* a_p = ww->u + p * ww->mpad * cin;
      const float* v_p = vbuf + p * vstride;
      for (size_t pc = 0; pc < cin; pc += kcb) {
        const size_t kc = cnn_min_sz(kcb, cin - pc);
        cnn_gemm_macro_kernel(cfg, mc, nt, kc, a_p + pc * ww->mpad + ib * kc, v_p + pc * nbpad, mbuf + p * mstride,
                              nbpad, pc > 0, pc + kc >= cin, NULL, NULL, NULL);
      }
    }
    if (x->pool) {
      for (size_t co = ib; co < ib + mc; co++) {
        const float b = ww->bias ? ww->bias[co] : 0.0f;
        float* const out_c = x->out + co * phw;
        for (size_t g8 = 0; g8 < nt; g8 += L) {
          const float* mp = mbuf + (co - ib) * nbpad + g8;
          const ptrdiff_t* go = offs + (g8 / L) * m * L;
          if (ww->outpool_fn)
            ww->outpool_fn(ww->tx, mp, mstride, b, ww->lo, ww->hi, out_c, go, ocol_n + g8);
          else
            cnn_wino_output_pool_ref(ww->out_fn, ww->tx, mp, mstride, b, ww->lo, ww->hi, out_c, go, ocol_n + g8);
        }
      }
      continue;
    }
    for (size_t co = ib; co < ib + mc; co++) {
      const float b = ww->bias ? ww->bias[co] : 0.0f;
      float* const out_c = x->out + co * ohw;
      const float* const res_c = x->res ? x->res + co * ohw : NULL;
      for (size_t g8 = 0; g8 < nt; g8 += L) {
        const ptrdiff_t* go = offs + (g8 / L) * m * L;
        ww->out_fn(ww->tx, mbuf + (co - ib) * nbpad + g8, mstride, b, ww->lo, ww->hi, out_c, res_c, go, ocol_n + g8);
        if (ww->act_fn)
          for (size_t e = 0; e < m * L; e++)
            if (go[e] >= 0) ww->act_fn(&ww->act, out_c + go[e], out_c + go[e], (size_t)ocol_n[g8 + e % L]);
      }
    }
  }
}

/* one task does a whole block (i) for one output-channel chunk (j), the input transform in its own slice */
static void wino_task(void* vctx, size_t tid, size_t i, size_t j) {
  const wctx* x = (const wctx*)vctx;
  float* vbuf = x->ws + tid * x->s.slice;
  wino_input(x, tid, i, 0, x->ww->cin, vbuf);
  wino_compute(x, tid, i, j, vbuf);
}

/* two phases (blocks split across output-channel chunks): the input transform of every block once, split by input
 * channels, into shared panels; then the chunks read them */
static void wino_in_task(void* vctx, size_t tid, size_t i, size_t k) {
  const wctx* x = (const wctx*)vctx;
  const size_t ca = k * x->cchunk, cb = cnn_min_sz(x->ww->cin, ca + x->cchunk);
  wino_input(x, tid, i, ca, cb, x->shared + i * x->s.v);
}
static void wino_out_task(void* vctx, size_t tid, size_t i, size_t j) {
  const wctx* x = (const wctx*)vctx;
  wino_compute(x, tid, i, j, x->shared + i * x->s.v);
}

int cnn_wino_can_pool(const cnn_wino_weights* ww) { return ww && ww->m % 2 == 0 && !ww->act_fn; }

void cnn_wino_run(const cnn_wino_weights* ww, size_t batch, size_t h, size_t w, size_t oh, size_t ow, const float* in,
                  float* out, const float* residual, void* workspace, cnn_threadpool* pool, size_t nthreads) {
  cnn_wino_run_pool(ww, batch, h, w, oh, ow, in, out, residual, workspace, pool, nthreads, 0);
}

void cnn_wino_run_pool(const cnn_wino_weights* ww, size_t batch, size_t h, size_t w, size_t oh, size_t ow,
                       const float* in, float* out, const float* residual, void* workspace, cnn_threadpool* pool,
                       size_t nthreads, int maxpool2) {
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
  x.H = h;
  x.W = w;
  x.oh = oh;
  x.ow = ow;
  x.pool = maxpool2 && cnn_wino_can_pool(ww);
  if (x.pool) residual = NULL; /* a residual cannot be added before a fused pool (plans refuse that) */
  x.res = residual;
  geo_init(ww, batch, oh, ow, nt, &x.g);
  slice_init(ww, batch, oh, ow, &x.s);
  x.ws = (float*)workspace;
  x.shared = NULL;
  if (x.g.msplit > 1 && nt == nthreads) { /* the workspace has the shared panels (cnn_wino_workspace_size) */
    x.shared = x.ws + nt * x.s.slice;
    const size_t k = cnn_div_up(2 * nt, x.g.nblocks); /* about 2 input tasks per thread */
    x.cchunk = cnn_div_up(ww->cin, k);
    cnn_parallelize_2d(pool, wino_in_task, &x, x.g.nblocks, cnn_div_up(ww->cin, x.cchunk));
    cnn_parallelize_2d(pool, wino_out_task, &x, x.g.nblocks, x.g.msplit);
    return;
  }
  cnn_parallelize_2d(pool, wino_task, &x, x.g.nblocks, x.g.msplit);
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
    /* overflow headroom: no intermediate may overflow for inputs up to 2^20 in magnitude (far above normalized
     * activations or 0..255 pixels); only weights of pathological magnitude (~1e25 and above) trip this */
    const double e = ww->amp * 1048576.0 <= 3.4e38 ? cnn_wino_probe(ww, &dn, w, bias) : INFINITY;
    if (err) *err = e;
    if (e <= cnn_wino_budget(m)) {
      if (!set_act(ww, &d->act)) {
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
