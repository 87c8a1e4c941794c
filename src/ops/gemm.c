/* GEMM-based operators: the shared macro-kernel and task tiling, cnn_sgemm (both operands packed per call) and the
 * fully connected op (weights packed once). See include/cnnrt/gemm.h.
 *
 * Loop nest of one task (rows [m0, m1) x columns [n0, n1) of C, full K):
 *   for each K block (kc):           pack B[kc x (n1-n0)] into this thread's slice (or use pre-packed W)
 *     for each MC block of rows:     pack A[mc x kc] into this thread's slice (or use pre-packed weights)
 *       macro-kernel: for each NR panel of B (stays in L1): for each MR panel of A (A block stays in L2): ukernel
 * The first K block writes C (accumulate = 0) unless C already holds the residual; the last one applies the
 * epilogue (bias, residual, clamp) in the micro-kernel and any other activation on each finished tile. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cnnrt/eltwise.h"
#include "cnnrt/gemm.h"
#include "cnnrt/hardware.h"

static float clamp_f(float v, float lo, float hi) {
  v = v < lo ? lo : v;
  return v > hi ? hi : v;
}

int cnn_gemm_fold_act(const cnn_act* act, float* min, float* max) {
  if (!act || act->type == CNN_ACT_NONE) return 1;
  float a, b;
  if (act->type == CNN_ACT_RELU) {
    a = 0.0f;
    b = INFINITY;
  } else if (act->type == CNN_ACT_CLIP) {
    a = act->a;
    b = act->b;
  } else {
    return 0;
  }
  /* clamp(clamp(x, lo, hi), a, b) == clamp(x, clamp(lo, a, b), clamp(hi, a, b)) for lo <= hi */
  *min = clamp_f(*min, a, b);
  *max = clamp_f(*max, a, b);
  return 1;
}

/* The macro-kernel on a packed B (ldb == 0: panel j/nr at bpack + j*kc) or an unpacked one (row k at
 * bpack + k*ldb, full panels only). */
#define CNN_GEMM_ACT_SPAN 256
static void macro_impl(const cnn_gemm_config* cfg, size_t m, size_t n, size_t kc, const float* apack,
                       const float* bpack, size_t ldb, float* c, size_t ldc, int accumulate, int last,
                       const cnn_gemm_epilogue* epi, cnn_gemm_act_fn act_fn, const cnn_act* act, const void* pf,
                       size_t pf_bytes) {
  const size_t mr = cfg->mr, nr = cfg->nr;
  /* prefetch range [pfp, pfe) as integers (a step may pass the end), pf_step bytes per tile */
  /* a full packed panel followed by the last one with <= nr/2 columns (the tail of a 7x7 or 14x14 output: 49 =
   * 3*16 + 1, 196 = 12*16 + 4): one wide tile for both at column jw, where the ISA has one (the A panel read once) */
  const int wide_tail = !ldb && cfg->ukernel_wide && n > nr && n % nr != 0 && n % nr <= nr / 2;
  const size_t jw = wide_tail ? n / nr * nr - nr : SIZE_MAX;
  uintptr_t pfp = (uintptr_t)pf, pfe = pfp;
  size_t pf_step = 0;
  if (pf && pf_bytes && m && n) {
    pfe = pfp + pf_bytes;
    const size_t tcols = cnn_div_up(n, nr) - (size_t)wide_tail; /* tile columns of the block */
    pf_step = cnn_div_up(cnn_div_up(pf_bytes, 64), tcols * cnn_div_up(m, mr)) * 64;
  }
  const cnn_gemm_ukernel_fn uk = cfg->ukernel;
  const cnn_gemm_ukernel_ldb_fn ukl = cfg->ukernel_ldb;
  if (!last) {
    epi = NULL;
    act_fn = NULL;
  }
  cnn_gemm_epilogue te;
  /* activations that are not a clamp run on the finished rows in segments of up to CNN_GEMM_ACT_SPAN columns (every
   * row of up to 16 column panels, still in L2: <= 144 rows x 256 floats = 144 KiB), not per 16-float tile row: a
   * call per 16 floats cost ~60% more per element (SiLU: 0.73 vs 0.46 ns). 256 rather than 64: the SiLU kernel's
   * 4-vector loop and its per-call work pay off over longer rows (EfficientNet-B0's SiLU expansions, 1 thread, in
   * one process against 64: 16->96 at 112x112 0.88x, 24->144 at 56x56 0.89x, 40->240 at 28x28 0.96x, 80->480 at
   * 14x14 0.97x; 512 measured within noise of 256) */
  size_t act_j0 = 0;
  for (size_t j = 0; j < n; j += nr) {
    const int wide = j == jw;
    const size_t nn = wide ? n - j : cnn_min_sz(nr, n - j);
    const float* bp = ldb ? bpack + j : bpack + j * kc; /* packed: panel j/nr starts at (j/nr)*nr*kc */
    if (ldb && j + nr < n) {
      /* unpacked B: its kc rows are kc streams, too many for the hardware prefetcher; fetch the next panel's
       * lines while the A panels run over this one */
      const float* q = bp + nr;
      const int two = (((uintptr_t)q | ldb * sizeof(float)) & 63) != 0; /* rows not line-aligned: 2 lines */
      for (size_t k = 0; k < kc; k++) {
        __builtin_prefetch(q + k * ldb, 0, 3);
        if (two) __builtin_prefetch(q + k * ldb + nr - 1, 0, 3);
      }
    }
    for (size_t i = 0; i < m; i += mr) {
      const size_t mm = cnn_min_sz(mr, m - i);
      float* cp = c + i * ldc + j;
      const cnn_gemm_epilogue* e = NULL;
      if (epi) {
        te.bias_row = epi->bias_row ? epi->bias_row + i : NULL;
        te.bias_col = epi->bias_col ? epi->bias_col + j : NULL;
        te.residual = epi->residual ? epi->residual + i * epi->res_ld + j : NULL;
        te.res_ld = epi->res_ld;
        te.min = epi->min;
        te.max = epi->max;
        e = &te;
      }
      if (kc >= 64) {
        /* Prefetch the next tile's C rows (and residual rows) while this one computes: they are written / read
         * once, by the epilogue, and come from L3 or memory (the output planes of a 56x56 layer do not fit L2);
         * without it each tile's store and residual load stall on up to 12 misses (measured: layers with a
         * residual 5-12% faster, the others unchanged). Not for short tiles (MobileNetV2's expansions, K = 16..32:
         * 4-7% slower with it), which have no time to cover the misses and pay for the instructions. */
        size_t ni = i + mr, nj = j;
        if (ni >= m) {
          ni = 0;
          nj = j + nr;
        }
        if (nj < n) {
          const size_t nm = cnn_min_sz(mr, m - ni), nnn = cnn_min_sz(nr, n - nj);
          for (size_t r = 0; r < nm; r++) {
            const float* q = c + (ni + r) * ldc + nj;
            __builtin_prefetch(q, 1, 3);
            __builtin_prefetch(q + nnn - 1, 1, 3);
            if (epi && epi->residual) {
              const float* rq = epi->residual + (ni + r) * epi->res_ld + nj;
              __builtin_prefetch(rq, 0, 3);
              __builtin_prefetch(rq + nnn - 1, 0, 3);
            }
          }
        }
      }
      if (wide || (cfg->ukernel_pf && pf_step)) {
        /* the kernel spreads this tile's share of the prefetch over its k loop (a burst of ~60 prefetches per
         * 16-row AVX-512 tile, ~23 per 6-row AVX2 tile, stalled on the fill buffers: 2.5% of MobileNetV2's samples
         * on that one instruction with AVX-512) */
        const size_t lines = pfp < pfe ? cnn_div_up(cnn_min_sz(pf_step, pfe - pfp), 64) : 0;
        if (wide)
          cfg->ukernel_wide(mm, nn, kc, apack + i * kc, bp, cp, ldc, accumulate, e, (const void*)pfp, lines);
        else
          cfg->ukernel_pf(mm, nn, kc, apack + i * kc, bp, ldb, cp, ldc, accumulate, e, (const void*)pfp, lines);
        pfp += pf_step;
        continue;
      }
      for (uintptr_t q = pfp, qe = pfp + pf_step; q < qe && q < pfe; q += 64) __builtin_prefetch((const void*)q, 0, 2);
      pfp += pf_step;
      if (ldb)
        ukl(mm, nn, kc, apack + i * kc, bp, ldb, cp, ldc, accumulate, e);
      else
        uk(mm, nn, kc, apack + i * kc, bp, cp, ldc, accumulate, e);
    }
    if (act_fn && (j + nn >= n || j + nn - act_j0 >= CNN_GEMM_ACT_SPAN)) {
      const size_t len = j + nn - act_j0;
      if (act_j0 == 0 && len == ldc) /* whole rows of C: one call (7x7 / 14x14 rows are 49 / 196 floats) */
        act_fn(act, c, c, m * ldc);
      else
        for (size_t r = 0; r < m; r++) act_fn(act, c + r * ldc + act_j0, c + r * ldc + act_j0, len);
      act_j0 = j + nn;
    }
    if (wide) break; /* the last panel is done */
  }
}

void cnn_gemm_macro_kernel(const cnn_gemm_config* cfg, size_t m, size_t n, size_t kc, const float* apack,
                           const float* bpack, float* c, size_t ldc, int accumulate, int last,
                           const cnn_gemm_epilogue* epi, cnn_gemm_act_fn act_fn, const cnn_act* act) {
  macro_impl(cfg, m, n, kc, apack, bpack, 0, c, ldc, accumulate, last, epi, act_fn, act, NULL, 0);
}

void cnn_gemm_macro_kernel_pf(const cnn_gemm_config* cfg, size_t m, size_t n, size_t kc, const float* apack,
                              const float* bpack, float* c, size_t ldc, int accumulate, int last,
                              const cnn_gemm_epilogue* epi, cnn_gemm_act_fn act_fn, const cnn_act* act,
                              const void* pf, size_t pf_bytes) {
  macro_impl(cfg, m, n, kc, apack, bpack, 0, c, ldc, accumulate, last, epi, act_fn, act, pf, pf_bytes);
}

void cnn_gemm_macro_kernel_ldb(const cnn_gemm_config* cfg, size_t m, size_t n, size_t kc, const float* apack,
                               const float* b, size_t ldb, float* c, size_t ldc, int accumulate, int last,
                               const cnn_gemm_epilogue* epi, cnn_gemm_act_fn act_fn, const cnn_act* act,
                               const void* pf, size_t pf_bytes) {
  macro_impl(cfg, m, n, kc, apack, b, ldb, c, ldc, accumulate, last, epi, act_fn, act, pf, pf_bytes);
}

void cnn_gemm_tiling_init(const cnn_gemm_config* cfg, size_t M, size_t N, size_t outer, size_t nthreads,
                          cnn_gemm_tiling* t) {
  const size_t mr = cfg->mr, nr = cfg->nr;
  const size_t mp = cnn_max_sz(cnn_div_up(M, mr), 1), np = cnn_max_sz(cnn_div_up(N, nr), 1);
  const size_t nc_panels = cnn_max_sz(cfg->nc / nr, 1);
  size_t nm = 1, nn = cnn_div_up(np, nc_panels);
  if (outer == 0) outer = 1;
  if (nthreads > 1) {
    /* about 4 tasks per thread; split the side whose task extent is larger, so tasks stay square-ish (that
     * minimizes the packing and streaming each task repeats) */
    const size_t want = 4 * nthreads;
    while (outer * nm * nn < want) {
      const size_t mpt = cnn_div_up(mp, nm), npt = cnn_div_up(np, nn);
      const int can_m = mpt > 1, can_n = npt > 1;
      if (!can_m && !can_n) break;
      if (can_n && (!can_m || npt * nr >= mpt * mr))
        nn++;
      else
        nm++;
    }
  }
  const size_t mpt = cnn_div_up(mp, nm), npt = cnn_div_up(np, nn);
  t->mt = mpt * mr;
  t->nt = npt * nr;
  t->m_tasks = cnn_div_up(mp, mpt);
  t->n_tasks = cnn_div_up(np, npt);
}

size_t cnn_gemm_kc_block(const cnn_gemm_config* cfg, size_t K) {
  if (K == 0) return 0;
  const size_t nb = cnn_div_up(K, cfg->kc);
  return cnn_div_up(K, nb);
}

/* Element-wise activation kernel of `isa` for activations the epilogue clamp cannot express. */
static cnn_gemm_act_fn act_kernel(int isa) {
  const cnn_eltwise_config* ec = cnn_eltwise_config_get(isa);
  if (!ec) ec = cnn_eltwise_config_get(CNN_ISA_SCALAR);
  return ec ? ec->act : NULL;
}

/* ------------------------------------------------------------------------------------------------------------ */
/* cnn_sgemm */

/* Per-thread slice of cnn_sgemm's workspace, in floats: an A block (mc x kcb) and a B block (kcb x nt_max), each
 * rounded to CNN_ALIGN. nt_max is the widest task of any tiling (the single-thread one), so the slice does not
 * depend on the thread count the run uses. Returns 0 on overflow. */
static size_t sgemm_slice_floats(const cnn_gemm_config* cfg, size_t M, size_t N, size_t K, size_t* a_floats) {
  const size_t al = CNN_ALIGN / sizeof(float);
  const size_t kcb = cnn_gemm_kc_block(cfg, K);
  const size_t mcr = cnn_round_up(cnn_min_sz(cnn_max_sz(M, 1), cfg->mc), cfg->mr);
  const size_t ntm = cnn_round_up(cnn_min_sz(cnn_max_sz(N, 1), cnn_max_sz(cfg->nc, cfg->nr)), cfg->nr);
  if (kcb != 0 && (mcr > SIZE_MAX / 4 / kcb || ntm > SIZE_MAX / 4 / kcb)) return 0;
  const size_t af = cnn_round_up(mcr * kcb, al), bf = cnn_round_up(ntm * kcb, al);
  if (a_floats) *a_floats = af;
  return af + bf;
}

size_t cnn_sgemm_workspace_size(const cnn_gemm_config* cfg, size_t M, size_t N, size_t K, size_t nthreads) {
  if (!cfg) return 0;
  if (nthreads == 0) nthreads = 1;
  if (M > SIZE_MAX / 8 || N > SIZE_MAX / 8 || K > SIZE_MAX / 8) return SIZE_MAX;
  const size_t slice = sgemm_slice_floats(cfg, M, N, K, NULL);
  if (slice == 0 || slice > SIZE_MAX / sizeof(float) / nthreads) return SIZE_MAX;
  return slice * sizeof(float) * nthreads;
}

typedef struct {
  const cnn_gemm_config* cfg;
  size_t M, N, K, kcb;
  const float* a;
  size_t a_rs, a_cs;
  const float* b;
  size_t b_rs, b_cs;
  float* c;
  size_t ldc;
  cnn_gemm_epilogue epi;
  int has_epi, res_in_c;
  cnn_gemm_act_fn act_fn;
  const cnn_act* act;
  float* ws;
  size_t slice, a_floats;
  cnn_gemm_tiling t;
} sgemm_ctx;

static void sgemm_task(void* vctx, size_t tid, size_t i, size_t j) {
  const sgemm_ctx* x = (const sgemm_ctx*)vctx;
  const cnn_gemm_config* cfg = x->cfg;
  const size_t m0 = i * x->t.mt, m1 = cnn_min_sz(x->M, m0 + x->t.mt);
  const size_t n0 = j * x->t.nt, n1 = cnn_min_sz(x->N, n0 + x->t.nt);
  float* apk = x->ws + tid * x->slice;
  float* bpk = apk + x->a_floats;
  for (size_t pc = 0;;) {
    const size_t kc = cnn_min_sz(x->kcb, x->K - pc);
    const int last = pc + kc >= x->K;
    cnn_gemm_pack_b(cfg->nr, kc, n1 - n0, x->b + pc * x->b_rs + n0 * x->b_cs, x->b_rs, x->b_cs, bpk);
    for (size_t ic = m0; ic < m1; ic += cfg->mc) {
      const size_t mc = cnn_min_sz(cfg->mc, m1 - ic);
      cnn_gemm_pack_a(cfg->mr, mc, kc, x->a + ic * x->a_rs + pc * x->a_cs, x->a_rs, x->a_cs, apk);
      cnn_gemm_epilogue e = x->epi;
      if (e.bias_row) e.bias_row += ic;
      if (e.bias_col) e.bias_col += n0;
      if (e.residual) e.residual += ic * e.res_ld + n0;
      cnn_gemm_macro_kernel(cfg, mc, n1 - n0, kc, apk, bpk, x->c + ic * x->ldc + n0, x->ldc,
                            pc > 0 || x->res_in_c, last, x->has_epi ? &e : NULL, x->act_fn, x->act);
    }
    pc += kc;
    if (pc >= x->K) break;
  }
}

void cnn_sgemm(const cnn_gemm_config* cfg, size_t M, size_t N, size_t K, const float* a, size_t a_rs, size_t a_cs,
               const float* b, size_t b_rs, size_t b_cs, float* c, size_t ldc, const cnn_gemm_epilogue* epi,
               const cnn_act* act, void* workspace, cnn_threadpool* pool) {
  if (M == 0 || N == 0) return;
  sgemm_ctx x;
  x.cfg = cfg;
  x.M = M;
  x.N = N;
  x.K = K;
  x.kcb = cnn_gemm_kc_block(cfg, K);
  x.a = a;
  x.a_rs = a_rs;
  x.a_cs = a_cs;
  x.b = b;
  x.b_rs = b_rs;
  x.b_cs = b_cs;
  x.c = c;
  x.ldc = ldc;
  x.res_in_c = 0;
  if (epi) {
    x.epi = *epi;
  } else {
    x.epi.bias_row = x.epi.bias_col = x.epi.residual = NULL;
    x.epi.res_ld = 0;
    x.epi.min = -INFINITY;
    x.epi.max = INFINITY;
  }
  /* residual aliasing C (in-place add): start the sum from C instead of reading the residual in the epilogue */
  if (x.epi.residual == c && x.epi.res_ld == ldc) {
    x.epi.residual = NULL;
    x.res_in_c = 1;
  }
  x.act = act;
  x.act_fn = NULL;
  if (!cnn_gemm_fold_act(act, &x.epi.min, &x.epi.max)) x.act_fn = act_kernel(cfg->isa);
  x.has_epi = x.epi.bias_row || x.epi.bias_col || x.epi.residual || x.epi.min != -INFINITY ||
              x.epi.max != INFINITY;
  x.ws = (float*)workspace;
  x.slice = sgemm_slice_floats(cfg, M, N, K, &x.a_floats);
  cnn_gemm_tiling_init(cfg, M, N, 1, cnn_threadpool_size(pool), &x.t);
  cnn_parallelize_2d(pool, sgemm_task, &x, x.t.m_tasks, x.t.n_tasks);
}

/* ------------------------------------------------------------------------------------------------------------ */
/* Fully connected */

struct cnn_fc_weights {
  const cnn_gemm_config* cfg;
  size_t K, N, kcb, npad;
  float* w;    /* K blocks; block at row pc holds ceil(N/nr) panels of kc x nr: offset pc*npad + panel*nr*kc */
  float* bias; /* N floats or NULL (a copy) */
  size_t bytes;
};

cnn_fc_weights* cnn_fc_weights_create(size_t K, size_t N, const float* w, size_t w_rs, size_t w_cs, const float* bias,
                                      int isa) {
  const cnn_gemm_config* cfg = cnn_gemm_config_get(isa);
  if (!cfg || !w || K == 0 || N == 0) return NULL;
  if (N > SIZE_MAX / 2 || K > SIZE_MAX / 2) return NULL;
  const size_t npad = cnn_round_up(N, cfg->nr);
  if (npad > SIZE_MAX / sizeof(float) / K) return NULL;
  const size_t wbytes = npad * K * sizeof(float);
  cnn_fc_weights* fw = (cnn_fc_weights*)calloc(1, sizeof(*fw));
  if (!fw) return NULL;
  fw->cfg = cfg;
  fw->K = K;
  fw->N = N;
  fw->kcb = cnn_gemm_kc_block(cfg, K);
  fw->npad = npad;
  fw->w = (float*)cnn_aligned_alloc(wbytes);
  fw->bias = bias ? (float*)cnn_aligned_alloc(N * sizeof(float)) : NULL;
  if (!fw->w || (bias && !fw->bias)) {
    cnn_fc_weights_destroy(fw);
    return NULL;
  }
  for (size_t pc = 0; pc < K; pc += fw->kcb) {
    const size_t kc = cnn_min_sz(fw->kcb, K - pc);
    cnn_gemm_pack_b(cfg->nr, kc, N, w + pc * w_rs, w_rs, w_cs, fw->w + pc * npad);
  }
  if (bias) memcpy(fw->bias, bias, N * sizeof(float));
  fw->bytes = sizeof(*fw) + wbytes + (bias ? N * sizeof(float) : 0);
  return fw;
}

void cnn_fc_weights_destroy(cnn_fc_weights* w) {
  if (!w) return;
  cnn_aligned_free(w->w);
  cnn_aligned_free(w->bias);
  free(w);
}

size_t cnn_fc_weights_bytes(const cnn_fc_weights* w) { return w ? w->bytes : 0; }

/* Per-thread slice: the packed X block (mc x kcb floats). */
static size_t fc_slice_floats(const cnn_fc_weights* w, size_t M) {
  const size_t mcr = cnn_round_up(cnn_min_sz(cnn_max_sz(M, 1), w->cfg->mc), w->cfg->mr);
  return cnn_round_up(mcr * w->kcb, CNN_ALIGN / sizeof(float));
}

/* X packed once for all tasks (round_up(M, mr) x K floats, K blocks of kcb columns: block pc at pc * mpad), used
 * when more than one thread runs M > 1: the tasks split N, and with a slice each, every task packed all of X again
 * (ConvNet batch 32, 2048 -> 512: 8 tasks, packing 26% of the samples, 2 threads no faster than 1). 0 when not used
 * or past CNN_FC_SHARED_MAX floats (a batch that large packs per task, as with one thread). */
#define CNN_FC_SHARED_MAX ((size_t)1 << 23)
static size_t fc_shared_floats(const cnn_fc_weights* w, size_t M, size_t nthreads) {
  if (nthreads <= 1 || M <= 1) return 0;
  const size_t mpad = cnn_round_up(M, w->cfg->mr);
  if (mpad > CNN_FC_SHARED_MAX / w->K) return 0;
  return cnn_round_up(mpad * w->K, CNN_ALIGN / sizeof(float));
}

size_t cnn_fc_workspace_size(const cnn_fc_weights* w, size_t M, size_t nthreads) {
  if (!w) return 0;
  if (nthreads == 0) nthreads = 1;
  const size_t slice = fc_slice_floats(w, M);
  const size_t shared = fc_shared_floats(w, M, nthreads); /* < 2^23 + CNN_ALIGN floats */
  if (slice > (SIZE_MAX / sizeof(float) - shared) / nthreads) return SIZE_MAX;
  return (slice * nthreads + shared) * sizeof(float);
}

typedef struct {
  const cnn_fc_weights* w;
  size_t M;
  const float* x;
  size_t x_rs, x_cs;
  float* y;
  cnn_gemm_epilogue epi;
  int has_epi, res_in_c;
  cnn_gemm_act_fn act_fn;
  const cnn_act* act;
  float* ws;
  size_t slice;
  cnn_gemm_tiling t;
  float* xshared; /* X packed for all tasks (fc_shared_floats), or NULL: each task packs its rows per K block */
  size_t mpad;
} fc_ctx;

/* Packs K block kb of X (all M rows) into the shared buffer. */
static void fc_pack_task(void* vctx, size_t tid, size_t kb) {
  (void)tid;
  const fc_ctx* x = (const fc_ctx*)vctx;
  const cnn_fc_weights* w = x->w;
  const size_t pc = kb * w->kcb, kc = cnn_min_sz(w->kcb, w->K - pc);
  cnn_gemm_pack_a(w->cfg->mr, x->M, kc, x->x + pc * x->x_cs, x->x_rs, x->x_cs, x->xshared + pc * x->mpad);
}

static void fc_task(void* vctx, size_t tid, size_t i, size_t j) {
  const fc_ctx* x = (const fc_ctx*)vctx;
  const cnn_fc_weights* w = x->w;
  const cnn_gemm_config* cfg = w->cfg;
  const size_t N = w->N, K = w->K;
  const size_t m0 = i * x->t.mt, m1 = cnn_min_sz(x->M, m0 + x->t.mt);
  const size_t n0 = j * x->t.nt, n1 = cnn_min_sz(N, n0 + x->t.nt);
  float* apk = x->ws + tid * x->slice;
  for (size_t pc = 0; pc < K; pc += w->kcb) {
    const size_t kc = cnn_min_sz(w->kcb, K - pc);
    const int last = pc + kc >= K;
    const float* bpk = w->w + pc * w->npad + n0 * kc;
    for (size_t ic = m0; ic < m1; ic += cfg->mc) {
      const size_t mc = cnn_min_sz(cfg->mc, m1 - ic);
      const float* ap = apk;
      if (x->xshared) /* row panel ic/mr of K block pc */
        ap = x->xshared + pc * x->mpad + ic * kc;
      else
        cnn_gemm_pack_a(cfg->mr, mc, kc, x->x + ic * x->x_rs + pc * x->x_cs, x->x_rs, x->x_cs, apk);
      cnn_gemm_epilogue e = x->epi;
      if (e.bias_col) e.bias_col += n0;
      if (e.residual) e.residual += ic * e.res_ld + n0;
      cnn_gemm_macro_kernel(cfg, mc, n1 - n0, kc, ap, bpk, x->y + ic * N + n0, N, pc > 0 || x->res_in_c, last,
                            x->has_epi ? &e : NULL, x->act_fn, x->act);
    }
  }
}

/* M == 1 with a contiguous X row: the GEMV kernel straight on the packed W panels (no X packing); task i covers
 * panels [i*ppt, (i+1)*ppt), two at a time where the ISA has a two-panel kernel (two weight streams in flight:
 * cnn_f32_gemm_ukernel_1x32__avx2). */
static void fc_gemv_task(void* vctx, size_t tid, size_t i) {
  (void)tid;
  const fc_ctx* x = (const fc_ctx*)vctx;
  const cnn_fc_weights* w = x->w;
  const cnn_gemm_config* cfg = w->cfg;
  const size_t N = w->N, K = w->K, nr = cfg->nr;
  const size_t n0 = i * x->t.nt, n1 = cnn_min_sz(N, n0 + x->t.nt);
  const size_t step = cfg->gemv2 ? 2 * nr : nr;
  for (size_t pc = 0; pc < K; pc += w->kcb) {
    const size_t kc = cnn_min_sz(w->kcb, K - pc);
    const int last = pc + kc >= K;
    for (size_t j = n0; j < n1; j += step) {
      const size_t nn = cnn_min_sz(step, n1 - j);
      cnn_gemm_epilogue e = x->epi;
      if (e.bias_col) e.bias_col += j;
      if (e.residual) e.residual += j;
      (nn > nr ? cfg->gemv2 : cfg->gemv)(1, nn, kc, x->x + pc, w->w + pc * w->npad + j * kc, x->y + j, N,
                                         pc > 0 || x->res_in_c, last && x->has_epi ? &e : NULL);
      if (last && x->act_fn) x->act_fn(x->act, x->y + j, x->y + j, nn);
    }
  }
}

void cnn_fc_run(const cnn_fc_weights* w, size_t M, const float* x, size_t x_rs, size_t x_cs, float* y,
                const float* residual, const cnn_act* act, void* workspace, cnn_threadpool* pool) {
  if (!w || M == 0) return;
  fc_ctx c;
  c.w = w;
  c.M = M;
  c.x = x;
  c.x_rs = x_rs;
  c.x_cs = x_cs;
  c.y = y;
  c.epi.bias_row = NULL;
  c.epi.bias_col = w->bias;
  c.epi.residual = residual;
  c.epi.res_ld = w->N;
  c.epi.min = -INFINITY;
  c.epi.max = INFINITY;
  c.res_in_c = 0;
  if (residual == y) { /* in-place residual add */
    c.epi.residual = NULL;
    c.res_in_c = 1;
  }
  c.act = act;
  c.act_fn = NULL;
  if (!cnn_gemm_fold_act(act, &c.epi.min, &c.epi.max)) c.act_fn = act_kernel(w->cfg->isa);
  c.has_epi = c.epi.bias_col || c.epi.residual || c.epi.min != -INFINITY || c.epi.max != INFINITY;
  c.slice = fc_slice_floats(w, M);
  c.xshared = NULL;
  c.mpad = cnn_round_up(M, w->cfg->mr);
  /* the shared X block first, then the per-thread slices (workspace sized for nthreads >= the pool's threads, so a
   * shared block exists whenever this run uses one) */
  const size_t shared = fc_shared_floats(w, M, cnn_threadpool_size(pool));
  c.ws = (float*)workspace + shared;
  if (M == 1 && x_cs == 1 && w->cfg->gemv) {
    const size_t nt = cnn_threadpool_size(pool), np = cnn_div_up(w->N, w->cfg->nr);
    const size_t tasks = nt > 1 ? cnn_min_sz(np, 4 * nt) : 1;
    c.t.nt = cnn_div_up(np, tasks) * w->cfg->nr;
    cnn_parallelize_1d(pool, fc_gemv_task, &c, cnn_div_up(w->N, c.t.nt));
    return;
  }
  cnn_gemm_tiling_init(w->cfg, M, w->N, 1, cnn_threadpool_size(pool), &c.t);
  if (shared && c.t.n_tasks > 1) {
    c.xshared = (float*)workspace;
    cnn_parallelize_1d(pool, fc_pack_task, &c, cnn_div_up(w->K, w->kcb));
  }
  cnn_parallelize_2d(pool, fc_task, &c, c.t.m_tasks, c.t.n_tasks);
}
