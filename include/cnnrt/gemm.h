/* Packed SGEMM in the BLIS design: NC/KC/MC loops, A and B packed into MR-row / NR-column panels (zero-padded
 * edges), one MR x NR micro-kernel per ISA with no loops over MR or NR, and a fused epilogue.
 *
 * Notation: C[M,N] = A[M,K] * B[K,N]. A matrix operand is described by a pointer and two strides (in floats):
 * element (r, c) is at p[r*rs + c*cs], so transposed operands need no copy. */
#ifndef CNNRT_GEMM_H
#define CNNRT_GEMM_H

#include "cnnrt/common.h"
#include "cnnrt/threadpool.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Epilogue applied by a micro-kernel to its tile after the last K block, in this order:
 *   c += bias_row[i] (if bias_row) ; c += bias_col[j] (if bias_col) ; c += residual[i*res_ld + j] (if residual) ;
 *   c = min(max(c, min), max).
 * Pointers are already offset to the tile's first row/column. Use min=-INFINITY, max=INFINITY for no clamp. */
typedef struct cnn_gemm_epilogue {
  const float* bias_row;
  const float* bias_col;
  const float* residual;
  size_t res_ld;
  float min, max;
} cnn_gemm_epilogue;

/* Micro-kernel contract:
 *   a: packed A panel, kc x MR, a[k*MR + i];  b: packed B panel, kc x NR, b[k*NR + j] (rows past m / columns past n
 *   are zero in the panels);  c: tile with row stride ldc; only the m <= MR rows and n <= NR columns are touched.
 *   accumulate == 0: C = A*B (C is never read: beta = 0 never reads C); accumulate != 0: C += A*B.
 *   epi: NULL, or applied after the sum (callers pass it only with the last K block). */
typedef void (*cnn_gemm_ukernel_fn)(size_t m, size_t n, size_t kc, const float* a, const float* b, float* c,
                                    size_t ldc, int accumulate, const cnn_gemm_epilogue* epi);

/* Micro-kernel on an unpacked B: row k of the kc x NR block at b + k*ldb (ldb >= NR), the A panel packed as above.
 * Columns [0, NR) of every row may be read whatever n (callers pass only full panels: n == NR). */
typedef void (*cnn_gemm_ukernel_ldb_fn)(size_t m, size_t n, size_t kc, const float* a, const float* b, size_t ldb,
                                        float* c, size_t ldc, int accumulate, const cnn_gemm_epilogue* epi);

/* The micro-kernel (ldb == 0: packed B, as cnn_gemm_ukernel_fn; ldb > 0: unpacked B, as cnn_gemm_ukernel_ldb_fn)
 * that also prefetches (to L2) the pf_lines cache lines from pf on, one per k step, so that a caller's prefetch of
 * the next A block is spread over the tile's compute instead of issued as a burst that stalls on the fill buffers. */
typedef void (*cnn_gemm_ukernel_pf_fn)(size_t m, size_t n, size_t kc, const float* a, const float* b, size_t ldb,
                                       float* c, size_t ldc, int accumulate, const cnn_gemm_epilogue* epi,
                                       const void* pf, size_t pf_lines);

/* see cnn_gemm_config.ukernel_wide */
typedef void (*cnn_gemm_ukernel_wide_fn)(size_t m, size_t n, size_t kc, const float* a, const float* b, float* c,
                                         size_t ldc, int accumulate, const cnn_gemm_epilogue* epi, const void* pf,
                                         size_t pf_lines);

/* Blocking parameters and kernel of one ISA (data, not literals in code). */
typedef struct cnn_gemm_config {
  int isa;
  size_t mr, nr;     /* micro-tile */
  size_t kc, mc, nc; /* cache blocks: KC (L1/L2 depth), MC (rows of A per L2 block), NC (columns of B per task block) */
  cnn_gemm_ukernel_fn ukernel;
  /* M == 1 kernel (GEMV step) on the same nr-column B panels, a = one contiguous row of kc floats; NULL: use
   * ukernel. */
  cnn_gemm_ukernel_fn gemv;
  /* M == 1 kernel over two consecutive nr-column panels (columns [0, 2*nr), the second panel at b + nr*kc, read
   * only when n > nr), each column with gemv's bits; NULL: gemv per panel. */
  cnn_gemm_ukernel_fn gemv2;
  /* the ukernel on an unpacked B (1x1 convolutions read the input in place), or NULL */
  cnn_gemm_ukernel_ldb_fn ukernel_ldb;
  /* the ukernel / ukernel_ldb with the prefetch spread over its k loop, or NULL (the macro-kernel prefetches) */
  cnn_gemm_ukernel_pf_fn ukernel_pf;
  /* or NULL: a full packed panel and the block's last panel after it, when that one has at most nr/2 columns, in one
   * call (n = nr + 1 .. nr + nr/2; the second panel at b + nr*kc), with ukernel_pf's prefetch */
  cnn_gemm_ukernel_wide_fn ukernel_wide;
} cnn_gemm_config;

/* Config for `isa` (NULL if not built/supported); isa < 0 means the active ISA. */
const cnn_gemm_config* cnn_gemm_config_get(int isa);

/* Micro-kernels (scalar is the reference; each optimized one is tested against it). */
void cnn_f32_gemm_ukernel_6x16__scalar(size_t m, size_t n, size_t kc, const float* a, const float* b, float* c,
                                       size_t ldc, int accumulate, const cnn_gemm_epilogue* epi);

void cnn_f32_gemm_ukernel_6x16_ldb__scalar(size_t m, size_t n, size_t kc, const float* a, const float* b, size_t ldb,
                                           float* c, size_t ldc, int accumulate, const cnn_gemm_epilogue* epi);
#if defined(__x86_64__)
void cnn_f32_gemm_ukernel_6x16_ldb__avx2(size_t m, size_t n, size_t kc, const float* a, const float* b, size_t ldb,
                                         float* c, size_t ldc, int accumulate, const cnn_gemm_epilogue* epi);
void cnn_f32_gemm_ukernel_6x16_pf__avx2(size_t m, size_t n, size_t kc, const float* a, const float* b, size_t ldb,
                                        float* c, size_t ldc, int accumulate, const cnn_gemm_epilogue* epi,
                                        const void* pf, size_t pf_lines);
#endif

/* 1x16 (GEMV) micro-kernels: m must be 1 (0: nothing), a is kc contiguous floats, b a kc x 16 panel. */
void cnn_f32_gemm_ukernel_1x16__scalar(size_t m, size_t n, size_t kc, const float* a, const float* b, float* c,
                                       size_t ldc, int accumulate, const cnn_gemm_epilogue* epi);
#if defined(__x86_64__)
void cnn_f32_gemm_ukernel_1x16__avx2(size_t m, size_t n, size_t kc, const float* a, const float* b, float* c,
                                     size_t ldc, int accumulate, const cnn_gemm_epilogue* epi);
#endif
/* 1x32 (GEMV over two consecutive 16-column panels, the second at b + 16*kc; n <= 32) micro-kernels. */
void cnn_f32_gemm_ukernel_1x32__scalar(size_t m, size_t n, size_t kc, const float* a, const float* b, float* c,
                                       size_t ldc, int accumulate, const cnn_gemm_epilogue* epi);
#if defined(__x86_64__)
void cnn_f32_gemm_ukernel_1x32__avx2(size_t m, size_t n, size_t kc, const float* a, const float* b, float* c,
                                     size_t ldc, int accumulate, const cnn_gemm_epilogue* epi);
#endif

#if defined(__x86_64__)
/* AVX2+FMA 6x16 micro-kernel (compiled with -mavx2 -mfma; call only when cnn_hw_isa_supported(CNN_ISA_AVX2)). */
void cnn_f32_gemm_ukernel_6x16__avx2(size_t m, size_t n, size_t kc, const float* a, const float* b, float* c,
                                     size_t ldc, int accumulate, const cnn_gemm_epilogue* epi);
#endif
#if defined(__x86_64__)
/* AVX-512F 16x16 micro-kernel and its unpacked-B variant (compiled with -mavx512f; call only when
 * cnn_hw_isa_supported(CNN_ISA_AVX512)). */
void cnn_f32_gemm_ukernel_16x16__avx512(size_t m, size_t n, size_t kc, const float* a, const float* b, float* c,
                                        size_t ldc, int accumulate, const cnn_gemm_epilogue* epi);
void cnn_f32_gemm_ukernel_16x16_ldb__avx512(size_t m, size_t n, size_t kc, const float* a, const float* b,
                                            size_t ldb, float* c, size_t ldc, int accumulate,
                                            const cnn_gemm_epilogue* epi);
void cnn_f32_gemm_ukernel_16x16_pf__avx512(size_t m, size_t n, size_t kc, const float* a, const float* b,
                                           size_t ldb, float* c, size_t ldc, int accumulate,
                                           const cnn_gemm_epilogue* epi, const void* pf, size_t pf_lines);
void cnn_f32_gemm_ukernel_16x16_wide__avx512(size_t m, size_t n, size_t kc, const float* a, const float* b, float* c,
                                             size_t ldc, int accumulate, const cnn_gemm_epilogue* epi, const void* pf,
                                             size_t pf_lines);
#endif
#if defined(__aarch64__)
/* NEON 6x16 micro-kernel and its 1x16 GEMV companion (aarch64: Advanced SIMD is always present). */
void cnn_f32_gemm_ukernel_6x16__neon(size_t m, size_t n, size_t kc, const float* a, const float* b, float* c,
                                     size_t ldc, int accumulate, const cnn_gemm_epilogue* epi);
void cnn_f32_gemm_ukernel_1x16__neon(size_t m, size_t n, size_t kc, const float* a, const float* b, float* c,
                                     size_t ldc, int accumulate, const cnn_gemm_epilogue* epi);
void cnn_f32_gemm_ukernel_1x32__neon(size_t m, size_t n, size_t kc, const float* a, const float* b, float* c,
                                     size_t ldc, int accumulate, const cnn_gemm_epilogue* epi);
#endif

/* Packing. pack_a: rows [0,m) x cols [0,kc) of A (strides rs, cs) into ceil(m/mr) panels of kc x mr, zero-padded.
 * pack_b: rows [0,kc) x cols [0,n) of B into ceil(n/nr) panels of kc x nr, zero-padded. */
void cnn_gemm_pack_a(size_t mr, size_t m, size_t kc, const float* a, size_t rs, size_t cs, float* packed);
void cnn_gemm_pack_b(size_t nr, size_t kc, size_t n, const float* b, size_t rs, size_t cs, float* packed);

/* ---- Building blocks shared by the GEMM-based operators (sgemm, fc, implicit-GEMM conv). ---- */

/* Element-wise activation applied in place to finished tiles (same type as cnn_act_fn in eltwise.h). */
typedef void (*cnn_gemm_act_fn)(const cnn_act* act, const float* x, float* y, size_t n);

/* Fold `act` into the clamp of an epilogue: RELU and CLIP compose with [*min, *max] into a single clamp (returns 1);
 * NONE or NULL leaves it unchanged (returns 1); any other activation returns 0 (the caller applies it per tile). */
int cnn_gemm_fold_act(const cnn_act* act, float* min, float* max);

/* Macro-kernel: C[m, n] (row stride ldc) (+)= Apacked * Bpacked for one KC block, calling cfg->ukernel per
 * MR x NR tile (B panels outer, A panels inner). apack: ceil(m/mr) panels of kc x mr; bpack: ceil(n/nr) panels of
 * kc x nr. epi (whole-block pointers, i.e. offset to C's first row/column) is applied only when `last`, followed by
 * act_fn(act, row) on every finished tile row when act_fn is not NULL. */
void cnn_gemm_macro_kernel(const cnn_gemm_config* cfg, size_t m, size_t n, size_t kc, const float* apack,
                           const float* bpack, float* c, size_t ldc, int accumulate, int last,
                           const cnn_gemm_epilogue* epi, cnn_gemm_act_fn act_fn, const cnn_act* act);

/* Same, and spreads software prefetches (to L2) of the pf_bytes at `pf` over the tiles (NULL / 0: none): callers
 * pass the A block the next call will read, so that its first read overlaps this block's compute. */
void cnn_gemm_macro_kernel_pf(const cnn_gemm_config* cfg, size_t m, size_t n, size_t kc, const float* apack,
                              const float* bpack, float* c, size_t ldc, int accumulate, int last,
                              const cnn_gemm_epilogue* epi, cnn_gemm_act_fn act_fn, const cnn_act* act,
                              const void* pf, size_t pf_bytes);

/* Macro-kernel on an unpacked B (row k at b + k*ldb, n a multiple of nr, cfg->ukernel_ldb set): as
 * cnn_gemm_macro_kernel_pf, and prefetches the next panel's rows of B while the A panels run over this one. */
void cnn_gemm_macro_kernel_ldb(const cnn_gemm_config* cfg, size_t m, size_t n, size_t kc, const float* apack,
                               const float* b, size_t ldb, float* c, size_t ldc, int accumulate, int last,
                               const cnn_gemm_epilogue* epi, cnn_gemm_act_fn act_fn, const cnn_act* act,
                               const void* pf, size_t pf_bytes);

/* Task tiling for a parallel GEMM of `outer` independent M x N problems: tasks of mt rows (multiple of mr) x nt
 * columns (multiple of nr, <= max(nc, nr)), m_tasks x n_tasks per problem. With nthreads > 1 the tasks are split
 * (larger side first) until there are about 4 per thread, so that dynamic scheduling balances them. */
typedef struct cnn_gemm_tiling {
  size_t mt, nt;
  size_t m_tasks, n_tasks;
} cnn_gemm_tiling;
void cnn_gemm_tiling_init(const cnn_gemm_config* cfg, size_t M, size_t N, size_t outer, size_t nthreads,
                          cnn_gemm_tiling* t);

/* K blocking: K is cut into ceil(K/kc) blocks of equal size (the last one shorter), returns that block size
 * (0 when K == 0). Packed-weight layouts and runs must use the same value. */
size_t cnn_gemm_kc_block(const cnn_gemm_config* cfg, size_t K);

/* Reference GEMM (naive triple loop): C[M,N] = A*B (+ epilogue over the whole matrix). For tests. */
void cnn_gemm_ref(size_t M, size_t N, size_t K, const float* a, size_t a_rs, size_t a_cs, const float* b,
                  size_t b_rs, size_t b_cs, float* c, size_t ldc, const cnn_gemm_epilogue* epi);

/* General SGEMM with both operands packed per call: C[M,N] (row stride ldc) = A*B + epilogue (whole-matrix
 * pointers, like cnn_gemm_ref), then act (NULL or any cnn_act: RELU/CLIP fold into the clamp, others run per tile).
 * `workspace` (CNN_ALIGN-aligned) holds cnn_sgemm_workspace_size(cfg, M, N, K, nthreads) bytes, nthreads >=
 * cnn_threadpool_size(pool). epi->residual may equal c (same ld): in-place add. */
size_t cnn_sgemm_workspace_size(const cnn_gemm_config* cfg, size_t M, size_t N, size_t K, size_t nthreads);
void cnn_sgemm(const cnn_gemm_config* cfg, size_t M, size_t N, size_t K, const float* a, size_t a_rs, size_t a_cs,
               const float* b, size_t b_rs, size_t b_cs, float* c, size_t ldc, const cnn_gemm_epilogue* epi,
               const cnn_act* act, void* workspace, cnn_threadpool* pool);

/* ---- Fully connected: Y[M,N] = act(X[M,K] * W + bias + residual), W (K x N) packed once. ---- */
typedef struct cnn_fc_weights cnn_fc_weights;
/* W element (k, n) is at w[k*w_rs + n*w_cs] (ONNX Gemm with transB=1 gives w_rs=1, w_cs=K). bias: N floats or NULL.
 * isa < 0: active ISA. Returns NULL on bad arguments or out of memory. */
cnn_fc_weights* cnn_fc_weights_create(size_t K, size_t N, const float* w, size_t w_rs, size_t w_cs, const float* bias,
                                      int isa);
void cnn_fc_weights_destroy(cnn_fc_weights* w);
size_t cnn_fc_weights_bytes(const cnn_fc_weights* w);
size_t cnn_fc_workspace_size(const cnn_fc_weights* w, size_t M, size_t nthreads);
/* X element (m, k) at x[m*x_rs + k*x_cs]; Y row stride N; residual (M x N, row stride N) or NULL, may equal y.
 * workspace: cnn_fc_workspace_size(w, M, nthreads) bytes with nthreads >= cnn_threadpool_size(pool). */
void cnn_fc_run(const cnn_fc_weights* w, size_t M, const float* x, size_t x_rs, size_t x_cs, float* y,
                const float* residual, const cnn_act* act, void* workspace, cnn_threadpool* pool);

#ifdef __cplusplus
}
#endif
#endif
