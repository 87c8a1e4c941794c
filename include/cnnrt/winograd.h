/* Winograd F(m x m, 3 x 3) convolution (internal): 3x3, stride 1, dilation 1, groups 1, any padding.
 *
 * Algorithm (Lavin & Gray 2016), T = m + 2 (tile of T x T inputs gives m x m outputs):
 *   U[co,ci] = G g[co,ci] G^T            (filter transform, once at weights-create time, in double, rounded once)
 *   V[ci,t]  = B^T d[ci,t] B             (input transform of tile t, per run)
 *   M_p      = U_p x V_p                 (T*T independent GEMMs, one per transform position p:
 *                                         [Cout x Cin] x [Cin x tiles])
 *   Y[co,t]  = A^T M[co,t] A             (output transform, with bias, residual and activation fused)
 * U_p is stored as a packed A operand of the SGEMM (MR-row panels per K block, cnn_gemm_pack_a's layout, the same
 * as the implicit-GEMM conv weights); V_p is written by the input transform straight into packed B panels (kc x NR
 * per K block); the GEMMs run on the SGEMM micro-kernel (cnn_gemm_macro_kernel).
 *
 * Transform kernels process 8 tiles at once, one tile per SIMD lane (AVX2: 8x8 transposes between rows and lanes). */
#ifndef CNNRT_WINOGRAD_H
#define CNNRT_WINOGRAD_H

#include "cnnrt/common.h"
#include "cnnrt/conv.h"
#include "cnnrt/gemm.h"
#include "cnnrt/threadpool.h"

#ifdef __cplusplus
extern "C" {
#endif

#define CNN_WINO_LANES 8
#define CNN_WINO_TMAX 8

/* Non-zero entries of one matrix row. */
typedef struct cnn_wino_row {
  int nnz;
  int idx[CNN_WINO_TMAX];
  float coef[CNN_WINO_TMAX];
} cnn_wino_row;

typedef struct cnn_wino_tx {
  int m, T;
  const double* bt; /* B^T: T x T, row-major */
  const double* g;  /* G:   T x 3 */
  const double* at; /* A^T: m x T */
  cnn_wino_row btr[CNN_WINO_TMAX]; /* rows of B^T (sparse, float) */
  cnn_wino_row atr[CNN_WINO_TMAX]; /* rows of A^T (sparse, float) */
} cnn_wino_tx;

/* Transform matrices of F(m,3), m in {2, 4, 6}; NULL otherwise. */
const cnn_wino_tx* cnn_wino_tx_get(int m);

/* Input transform of 8 tiles (lanes): rows[r*8 + l] points to row r (r < T) of lane l's T x T input window, with
 * 8 readable floats (the first T are used); V = B^T d B of position p = q1*T + q2 for the 8 lanes is stored at
 * v + p*pstride (8 consecutive floats). */
typedef void (*cnn_wino_in_fn)(const cnn_wino_tx* tx, const float* const* rows, float* v, size_t pstride);
/* Output transform of 8 tiles: position p of the 8 lanes at mp + p*pstride (8 floats); y = A^T M A + bias (m x m per
 * lane); row i of lane l goes to out + offs[i*8 + l] (offs < 0: not written), its first ncols[l] columns only, as
 * min(max(y + residual, lo), hi) with the residual row at res + offs[i*8 + l] (res NULL: no residual). Offsets, not
 * row pointers: the caller computes them once per block of tiles and moves only out/res from channel to channel. */
typedef void (*cnn_wino_out_fn)(const cnn_wino_tx* tx, const float* mp, size_t pstride, float bias, float lo,
                                float hi, float* out, const float* res, const ptrdiff_t* offs, const int* ncols);
void cnn_wino_input__scalar(const cnn_wino_tx* tx, const float* const* rows, float* v, size_t pstride);
void cnn_wino_output__scalar(const cnn_wino_tx* tx, const float* mp, size_t pstride, float bias, float lo, float hi,
                             float* out, const float* res, const ptrdiff_t* offs, const int* ncols);
/* Output transform + clamp + MaxPool(2x2, stride 2) of 8 tiles (m even): pooled row r (< m/2) of lane l goes to
 * out + offs[r*8 + l] (offs < 0: not written), its first pcols[l] (<= m/2) pooled columns. Max skips NaN, taking the
 * window's values in the order of the pooling kernels (row 2r: 2q, 2q+1; row 2r+1: 2q, 2q+1), so the result equals
 * out_fn followed by cnn_f32_pool2d bit for bit. cnn_wino_output_pool_ref does exactly that (the reference, and the
 * kernel of ISAs without a fused one). */
typedef void (*cnn_wino_outpool_fn)(const cnn_wino_tx* tx, const float* mp, size_t pstride, float bias, float lo,
                                    float hi, float* out, const ptrdiff_t* offs, const int* pcols);
void cnn_wino_output_pool_ref(cnn_wino_out_fn out_fn, const cnn_wino_tx* tx, const float* mp, size_t pstride,
                              float bias, float lo, float hi, float* out, const ptrdiff_t* offs, const int* pcols);
#if defined(__x86_64__) && !defined(CNNRT_NO_AVX2)
void cnn_wino_output_pool__avx2(const cnn_wino_tx* tx, const float* mp, size_t pstride, float bias, float lo, float hi,
                                float* out, const ptrdiff_t* offs, const int* pcols);
void cnn_wino_input__avx2(const cnn_wino_tx* tx, const float* const* rows, float* v, size_t pstride);
void cnn_wino_output__avx2(const cnn_wino_tx* tx, const float* mp, size_t pstride, float bias, float lo, float hi,
                           float* out, const float* res, const ptrdiff_t* offs, const int* ncols);
#endif
#if defined(__aarch64__)
/* NEON: the AVX2 kernels on 4-lane vectors (the 8 tiles as two halves of 4). */
void cnn_wino_input__neon(const cnn_wino_tx* tx, const float* const* rows, float* v, size_t pstride);
void cnn_wino_output__neon(const cnn_wino_tx* tx, const float* mp, size_t pstride, float bias, float lo, float hi,
                           float* out, const float* res, const ptrdiff_t* offs, const int* ncols);
#endif

/* ---- the operator (src/ops/winograd.c) ---- */
typedef struct cnn_wino_weights cnn_wino_weights;

/* 1 if the descriptor is a 3x3 stride-1 dilation-1 groups-1 convolution. */
int cnn_wino_eligible(const cnn_conv2d_desc* d);
/* 0 when the environment variable CNNRT_WINOGRAD is "0" (AUTO then never picks Winograd). */
int cnn_wino_auto_enabled(void);
/* Tile (m) that AUTO starts from for this layer, or 0 when AUTO should not use Winograd for it (channels). */
int cnn_wino_auto_tile(const cnn_conv2d_desc* d);
/* The same for a layer known to have small outputs (CNN_CONV_ALGO_AUTO_SMALL): 2 unless CNNRT_WINOGRAD_TILE says
 * otherwise. */
int cnn_wino_auto_tile_small(const cnn_conv2d_desc* d);
/* Accuracy budget of the probe for tile m: max|wino - gemm| / max|gemm| must not exceed it. */
double cnn_wino_budget(int m);
/* Tests: replace the budget of every tile by b (b < 0: back to the defaults). */
void cnn_wino_set_budget_override(double b);

/* Filter transform for tile m (no probe). NULL on bad arguments / out of memory. isa < 0: active ISA. */
cnn_wino_weights* cnn_wino_weights_create(const cnn_conv2d_desc* d, const float* w, const float* bias, int isa, int m);
/* Accuracy-guarded creation: tries m_first, then the smaller tiles, keeping the first whose probe error (vs the
 * implicit-GEMM conv on a deterministic input) is within cnn_wino_budget(m) and whose worst-case intermediates cannot
 * overflow for inputs up to 2^20 in magnitude (error INFINITY otherwise). NULL when none passes (or on error);
 * *err gets the probe error of the returned tile (or of the last one tried). forced: plans always use it. */
cnn_wino_weights* cnn_wino_select(const cnn_conv2d_desc* d, const float* w, const float* bias, int isa, int m_first,
                                  int forced, double* err);
/* Probe error of a Winograd weights object against the implicit-GEMM conv of the same weights. */
double cnn_wino_probe(const cnn_wino_weights* ww, const cnn_conv2d_desc* d, const float* w, const float* bias);
void cnn_wino_weights_destroy(cnn_wino_weights* ww);
size_t cnn_wino_weights_bytes(const cnn_wino_weights* ww);
int cnn_wino_tile(const cnn_wino_weights* ww);
/* 1 if a plan for this shape should run Winograd (always when forced; otherwise the size rule). */
int cnn_wino_use(const cnn_wino_weights* ww, size_t batch, size_t oh, size_t ow);
/* Workspace bytes for a run (0 on overflow). */
size_t cnn_wino_workspace_size(const cnn_wino_weights* ww, size_t batch, size_t h, size_t w, size_t oh, size_t ow,
                               size_t nthreads);
/* Same contract as cnn_conv2d_run (residual may equal out); nthreads: the plan's (a larger pool runs inline). */
void cnn_wino_run(const cnn_wino_weights* ww, size_t batch, size_t h, size_t w, size_t oh, size_t ow, const float* in,
                  float* out, const float* residual, void* workspace, cnn_threadpool* pool, size_t nthreads);
/* 1 if cnn_wino_run_pool can fuse a 2x2 stride-2 max-pool into the output transform (even tile; the activation,
 * if any, is a clamp, which commutes with max). */
int cnn_wino_can_pool(const cnn_wino_weights* ww);
/* cnn_wino_run, with maxpool2 != 0 (and cnn_wino_can_pool): out receives MaxPool(kernel 2x2, stride 2, no padding,
 * floor) of the convolution's output, (oh/2) x (ow/2) per channel; no residual. */
void cnn_wino_run_pool(const cnn_wino_weights* ww, size_t batch, size_t h, size_t w, size_t oh, size_t ow,
                       const float* in, float* out, const float* residual, void* workspace, cnn_threadpool* pool,
                       size_t nthreads, int maxpool2);

#ifdef __cplusplus
}
#endif
#endif
