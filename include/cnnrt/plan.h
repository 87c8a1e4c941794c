/* The plan executor: an array of prepared nodes run in order, in C, with no allocation and no Python.
 *
 * Tensors are named by integer ids; `tensors[id]` is the base pointer of each tensor for this run (arena slices,
 * constants, the caller's input and output arrays). Each node reads its inputs and writes its outputs through those
 * pointers plus the element offsets stored in its parameters. The parameters are plain structs owned by the caller
 * (the Python planner), filled once per input shape. */
#ifndef CNNRT_PLAN_H
#define CNNRT_PLAN_H

#include "cnnrt/common.h"
#include "cnnrt/conv.h"
#include "cnnrt/eltwise.h"
#include "cnnrt/gemm.h"
#include "cnnrt/threadpool.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
  CNN_NODE_CONV = 1,        /* in: x [, residual]; out: y */
  CNN_NODE_FC = 2,          /* in: x [, residual]; out: y */
  CNN_NODE_MATMUL = 3,      /* in: a, b; out: y — batched, both operands at run time */
  CNN_NODE_POOL2D = 4,      /* in: x; out: y */
  CNN_NODE_GLOBAL_POOL = 5, /* in: x; out: y */
  CNN_NODE_ACT = 6,         /* in: x; out: y */
  CNN_NODE_BINARY = 7,      /* in: a, b; out: y */
  CNN_NODE_AFFINE = 8,      /* in: x; out: y (per-channel scale/shift held in params) */
  CNN_NODE_SOFTMAX = 9,     /* in: x; out: y */
  CNN_NODE_LRN = 10,        /* in: x; out: y */
  CNN_NODE_REDUCE = 11,     /* in: x; out: y */
  CNN_NODE_COPY = 12,       /* in: x; out: y — strided copy at offsets (Transpose, Slice, Concat part, Split part) */
  CNN_NODE_FILL = 13,       /* out: y */
  CNN_NODE_GATHER = 14,     /* in: x; out: y */
} cnn_node_kind;

typedef struct cnn_conv_node { cnn_conv2d_plan plan; } cnn_conv_node;
typedef struct cnn_fc_node {
  const cnn_fc_weights* w;
  size_t m;
  size_t x_rs, x_cs;
  cnn_act act;
} cnn_fc_node;
typedef struct cnn_matmul_node {
  const cnn_gemm_config* cfg;
  size_t batch, m, n, k;
  size_t a_bs, a_rs, a_cs; /* batch, row, column strides of a (batch stride 0 = broadcast) */
  size_t b_bs, b_rs, b_cs;
  cnn_act act;
} cnn_matmul_node;
typedef struct cnn_pool_node {
  const cnn_eltwise_config* cfg;
  cnn_pool2d_desc desc;
  size_t nc, h, w, oh, ow;
} cnn_pool_node;
typedef struct cnn_global_pool_node { const cnn_eltwise_config* cfg; int32_t type; size_t nc, hw; } cnn_global_pool_node;
typedef struct cnn_act_node { const cnn_eltwise_config* cfg; cnn_act act; size_t n; } cnn_act_node;
typedef struct cnn_binary_node {
  const cnn_eltwise_config* cfg;
  int32_t op;
  cnn_act act;
  size_t ndim;
  size_t shape[CNN_MAX_DIMS];
  ptrdiff_t a_strides[CNN_MAX_DIMS], b_strides[CNN_MAX_DIMS];
} cnn_binary_node;
typedef struct cnn_affine_node {
  const cnn_eltwise_config* cfg;
  size_t n, c, hw;
  const float* scale;
  const float* shift;
  cnn_act act;
} cnn_affine_node;
typedef struct cnn_softmax_node { const cnn_eltwise_config* cfg; int32_t log; size_t outer, axis, inner; } cnn_softmax_node;
typedef struct cnn_lrn_node { size_t n, c, hw, size; float alpha, beta, bias; } cnn_lrn_node;
typedef struct cnn_reduce_node { int32_t type; size_t outer, axis, inner; } cnn_reduce_node;
typedef struct cnn_copy_node {
  size_t ndim;
  size_t shape[CNN_MAX_DIMS];
  ptrdiff_t x_strides[CNN_MAX_DIMS], y_strides[CNN_MAX_DIMS];
  ptrdiff_t x_offset, y_offset; /* elements */
} cnn_copy_node;
typedef struct cnn_fill_node { size_t n; float value; ptrdiff_t y_offset; } cnn_fill_node;
typedef struct cnn_gather_node { size_t outer, axis_in, inner, nidx; const int64_t* idx; } cnn_gather_node;

#define CNN_NODE_MAX_IN 3
typedef struct cnn_node {
  int32_t kind;
  int32_t nin;
  int32_t inputs[CNN_NODE_MAX_IN]; /* tensor ids; -1 = absent */
  int32_t out;                 /* tensor id */
  const void* params;          /* one of the structs above, by kind */
} cnn_node;

/* Optional per-node timing (profiling): if `times_ns` is not NULL, times_ns[i] receives node i's wall time. */
void cnn_plan_execute(const cnn_node* nodes, size_t n, float* const* tensors, void* workspace, cnn_threadpool* pool,
                      uint64_t* times_ns);

#ifdef __cplusplus
}
#endif
#endif
