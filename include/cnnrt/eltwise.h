/* Element-wise, pooling, normalization and data-movement kernels (float32, NCHW / plain N-d row-major).
 * Every function has a scalar reference; SIMD variants are chosen through cnn_eltwise_config_get(isa). */
#ifndef CNNRT_ELTWISE_H
#define CNNRT_ELTWISE_H

#include "cnnrt/common.h"
#include "cnnrt/threadpool.h"

#ifdef __cplusplus
extern "C" {
#endif

#define CNN_MAX_DIMS 8

/* ---------- unary activation: y[i] = act(x[i]) (x == y allowed) ---------- */
typedef void (*cnn_act_fn)(const cnn_act* act, const float* x, float* y, size_t n);
void cnn_f32_act__scalar(const cnn_act* act, const float* x, float* y, size_t n);
void cnn_f32_act__avx2(const cnn_act* act, const float* x, float* y, size_t n);
/* avx512 ISA: sigmoid / silu on 16 lanes (the AVX2 kernel's bits), the other activations the AVX2 kernel */
void cnn_f32_act__avx512(const cnn_act* act, const float* x, float* y, size_t n);
void cnn_f32_act__neon(const cnn_act* act, const float* x, float* y, size_t n);

/* ---------- binary with numpy broadcasting ----------
 * y[idx] = op(a[idx . a_strides], b[idx . b_strides]) over `shape` (ndim <= CNN_MAX_DIMS, row-major y, strides in
 * elements, 0 for broadcast dims); then act. y may alias a or b when their strides equal y's. */
typedef enum { CNN_BIN_ADD = 0, CNN_BIN_SUB, CNN_BIN_MUL, CNN_BIN_DIV, CNN_BIN_MAX, CNN_BIN_MIN, CNN_BIN_POW,
               CNN_BIN_PRELU /* a >= 0 ? a : a*b */ } cnn_binary_op;
/* Contiguous inner loop: y[i] = op(a[i*sa], b[i*sb]) for i < n, sa, sb in {0, 1}. */
typedef void (*cnn_binary_fn)(int op, const float* a, size_t sa, const float* b, size_t sb, float* y, size_t n);
void cnn_f32_binary__scalar(int op, const float* a, size_t sa, const float* b, size_t sb, float* y, size_t n);
void cnn_f32_binary__avx2(int op, const float* a, size_t sa, const float* b, size_t sb, float* y, size_t n);
void cnn_f32_binary__neon(int op, const float* a, size_t sa, const float* b, size_t sb, float* y, size_t n);

/* ---------- 2-D pooling, NCHW ----------
 * Output size is computed by the caller (ceil_mode handled there); windows are clipped to the input.
 * avg: divisor = count_include_pad ? number of window positions inside the padded input (pads included, positions
 * past the padded edge created by ceil_mode excluded, as ONNX defines) : number of positions inside the input.
 * A window with no position inside the input gives -inf (max: padding acts as -inf) or 0 (average). Max skips NaN
 * inputs (it keeps m unless v > m); every ISA variant gives the scalar kernel's bits. */
typedef struct cnn_pool2d_desc {
  int32_t type; /* 0 max, 1 average */
  int32_t count_include_pad;
  size_t kernel_h, kernel_w, stride_h, stride_w, dilation_h, dilation_w;
  size_t pad_top, pad_left, pad_bottom, pad_right;
} cnn_pool2d_desc;
/* x: [nc, h, w] (batch*channels planes) -> y: [nc, oh, ow]. */
typedef void (*cnn_pool2d_fn)(const cnn_pool2d_desc* d, size_t nc, size_t h, size_t w, size_t oh, size_t ow,
                              const float* x, float* y);
void cnn_f32_pool2d__scalar(const cnn_pool2d_desc* d, size_t nc, size_t h, size_t w, size_t oh, size_t ow,
                            const float* x, float* y);
void cnn_f32_pool2d__avx2(const cnn_pool2d_desc* d, size_t nc, size_t h, size_t w, size_t oh, size_t ow,
                          const float* x, float* y);
void cnn_f32_pool2d__neon(const cnn_pool2d_desc* d, size_t nc, size_t h, size_t w, size_t oh, size_t ow,
                          const float* x, float* y);
/* Global pooling: y[p] = mean (type 1) or max (type 0) of plane p (nc planes of hw). */
typedef void (*cnn_global_pool_fn)(int type, size_t nc, size_t hw, const float* x, float* y);
void cnn_f32_global_pool__scalar(int type, size_t nc, size_t hw, const float* x, float* y);
void cnn_f32_global_pool__avx2(int type, size_t nc, size_t hw, const float* x, float* y);
void cnn_f32_global_pool__neon(int type, size_t nc, size_t hw, const float* x, float* y);

/* ---------- per-channel affine (stand-alone BatchNormalization): y = x*scale[c] + shift[c], then act ---------- */
typedef void (*cnn_channel_affine_fn)(size_t n, size_t c, size_t hw, const float* scale, const float* shift,
                                      const cnn_act* act, const float* x, float* y);
void cnn_f32_channel_affine__avx2(size_t n, size_t c, size_t hw, const float* scale, const float* shift,
                                  const cnn_act* act, const float* x, float* y);
void cnn_f32_channel_affine__scalar(size_t n, size_t c, size_t hw, const float* scale, const float* shift,
                                    const cnn_act* act, const float* x, float* y);
void cnn_f32_channel_affine__avx2(size_t n, size_t c, size_t hw, const float* scale, const float* shift,
                                  const cnn_act* act, const float* x, float* y);
void cnn_f32_channel_affine__neon(size_t n, size_t c, size_t hw, const float* scale, const float* shift,
                                  const cnn_act* act, const float* x, float* y);

/* ---------- softmax / log-softmax over the middle axis of [outer, axis, inner] (x == y allowed) ---------- */
typedef void (*cnn_softmax_fn)(int log, size_t outer, size_t axis, size_t inner, const float* x, float* y);
void cnn_f32_softmax__scalar(int log, size_t outer, size_t axis, size_t inner, const float* x, float* y);
void cnn_f32_softmax__avx2(int log, size_t outer, size_t axis, size_t inner, const float* x, float* y);
void cnn_f32_softmax__neon(int log, size_t outer, size_t axis, size_t inner, const float* x, float* y);

/* ---------- LRN across channels (ONNX): y = x / (bias + alpha/size * sum_{c' in window} x[c']^2)^beta ----------
 * y must not overlap x. */
void cnn_f32_lrn__scalar(size_t n, size_t c, size_t hw, size_t size, float alpha, float beta, float bias,
                         const float* x, float* y);

/* ---------- reduction: mean (type 1), max (type 0), sum (type 2) over the middle axis of [outer, axis, inner] ----- */
void cnn_f32_reduce__scalar(int type, size_t outer, size_t axis, size_t inner, const float* x, float* y);

/* ---------- data movement (no ISA variants needed: memcpy-bound) ----------
 * Strided N-d copy: y[idx . y_strides] = x[idx . x_strides] over `shape` (strides in elements, may be negative
 * for x: Slice with negative steps). Used for Transpose, Slice, Concat (into a view), Split, Pad (after a fill). */
void cnn_copy_strided(size_t ndim, const size_t* shape, const float* x, const ptrdiff_t* x_strides, float* y,
                      const ptrdiff_t* y_strides);
void cnn_fill(float* y, size_t n, float value);
/* Gather along an axis of [outer, axis_in, inner] with indices (already normalized, in range): y[o, i, r] =
 * x[o, idx[i], r], y shape [outer, nidx, inner]. */
void cnn_gather(size_t outer, size_t axis_in, size_t inner, const int64_t* idx, size_t nidx, const float* x, float* y);

/* ---------- per-ISA table ---------- */
typedef struct cnn_eltwise_config {
  int isa;
  cnn_act_fn act;
  cnn_binary_fn binary;
  cnn_pool2d_fn pool2d;
  cnn_global_pool_fn global_pool;
  cnn_channel_affine_fn channel_affine;
  cnn_softmax_fn softmax;
} cnn_eltwise_config;
/* NULL if `isa` is not supported; isa < 0: active ISA. */
const cnn_eltwise_config* cnn_eltwise_config_get(int isa);

/* ---------- drivers: N-d broadcasting and thread-parallel wrappers ----------
 * `cfg` picks the kernels (NULL: the active ISA's table). `pool` may be NULL; small problems run inline on the
 * caller. None of them allocates. */

/* Binary op with broadcasting over `shape` (see the contract above), then `act` (NULL or NONE: none). Collapses
 * dimensions that are contiguous for a, b and y, runs cfg->binary on the innermost dimension (strides 0 or 1; other
 * innermost strides go through a small stack buffer) and splits large problems (> 64K elements) across `pool`. */
void cnn_binary_nd(const cnn_eltwise_config* cfg, int op, size_t ndim, const size_t* shape, const float* a,
                   const ptrdiff_t* a_strides, const float* b, const ptrdiff_t* b_strides, float* y,
                   const cnn_act* act, cnn_threadpool* pool);
/* cfg->pool2d with the nc planes split across threads. */
void cnn_pool2d_run(const cnn_eltwise_config* cfg, const cnn_pool2d_desc* d, size_t nc, size_t h, size_t w,
                    size_t oh, size_t ow, const float* x, float* y, cnn_threadpool* pool);
/* cfg->act over n elements in chunks of at least 16K elements (x == y allowed). */
void cnn_act_run(const cnn_eltwise_config* cfg, const cnn_act* act, const float* x, float* y, size_t n,
                 cnn_threadpool* pool);
/* cfg->global_pool with the nc planes split across threads. */
void cnn_global_pool_run(const cnn_eltwise_config* cfg, int type, size_t nc, size_t hw, const float* x, float* y,
                         cnn_threadpool* pool);
/* cfg->channel_affine with the n*c planes split across threads (x == y allowed). */
void cnn_channel_affine_run(const cnn_eltwise_config* cfg, size_t n, size_t c, size_t hw, const float* scale,
                            const float* shift, const cnn_act* act, const float* x, float* y, cnn_threadpool* pool);
/* cfg->softmax with the outer rows split across threads. */
void cnn_softmax_run(const cnn_eltwise_config* cfg, int log, size_t outer, size_t axis, size_t inner, const float* x,
                     float* y, cnn_threadpool* pool);

#ifdef __cplusplus
}
#endif
#endif
