/* Plan executor: runs prepared nodes in order. See include/cnnrt/plan.h. */
#include "cnnrt/plan.h"

#include <math.h>
#include <time.h>

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void run_matmul(const cnn_matmul_node* p, const float* a, const float* b, float* y, void* ws,
                       cnn_threadpool* pool) {
  cnn_gemm_epilogue epi = {NULL, NULL, NULL, 0, -INFINITY, INFINITY};
  const cnn_act* act = NULL;
  if (p->act.type == CNN_ACT_RELU) {
    epi.min = 0.0f;
  } else if (p->act.type == CNN_ACT_CLIP) {
    epi.min = p->act.a;
    epi.max = p->act.b;
  } else if (p->act.type != CNN_ACT_NONE) {
    act = &p->act;
  }
  for (size_t i = 0; i < p->batch; i++) {
    cnn_sgemm(p->cfg, p->m, p->n, p->k, a + i * p->a_bs, p->a_rs, p->a_cs, b + i * p->b_bs, p->b_rs, p->b_cs,
              y + i * p->m * p->n, p->n, &epi, act, ws, pool);
  }
}

static void run_node(const cnn_node* nd, float* const* t, void* ws, cnn_threadpool* pool) {
  const float* x = nd->nin > 0 && nd->inputs[0] >= 0 ? t[nd->inputs[0]] : NULL;
  const float* x1 = nd->nin > 1 && nd->inputs[1] >= 0 ? t[nd->inputs[1]] : NULL;
  float* y = t[nd->out];
  switch (nd->kind) {
    case CNN_NODE_CONV: {
      const cnn_conv_node* p = (const cnn_conv_node*)nd->params;
      cnn_conv2d_run(&p->plan, x, y, x1, ws, pool);
      break;
    }
    case CNN_NODE_FC: {
      const cnn_fc_node* p = (const cnn_fc_node*)nd->params;
      cnn_fc_run(p->w, p->m, x, p->x_rs, p->x_cs, y, x1, &p->act, ws, pool);
      break;
    }
    case CNN_NODE_MATMUL:
      run_matmul((const cnn_matmul_node*)nd->params, x, x1, y, ws, pool);
      break;
    case CNN_NODE_POOL2D: {
      const cnn_pool_node* p = (const cnn_pool_node*)nd->params;
      cnn_pool2d_run(p->cfg, &p->desc, p->nc, p->h, p->w, p->oh, p->ow, x, y, pool);
      break;
    }
    case CNN_NODE_GLOBAL_POOL: {
      const cnn_global_pool_node* p = (const cnn_global_pool_node*)nd->params;
      cnn_global_pool_run(p->cfg, p->type, p->nc, p->hw, x, y, pool);
      break;
    }
    case CNN_NODE_ACT: {
      const cnn_act_node* p = (const cnn_act_node*)nd->params;
      cnn_act_run(p->cfg, &p->act, x, y, p->n, pool);
      break;
    }
    case CNN_NODE_BINARY: {
      const cnn_binary_node* p = (const cnn_binary_node*)nd->params;
      cnn_binary_nd(p->cfg, p->op, p->ndim, p->shape, x, p->a_strides, x1, p->b_strides, y, &p->act, pool);
      break;
    }
    case CNN_NODE_AFFINE: {
      const cnn_affine_node* p = (const cnn_affine_node*)nd->params;
      cnn_channel_affine_run(p->cfg, p->n, p->c, p->hw, p->scale, p->shift, &p->act, x, y, pool);
      break;
    }
    case CNN_NODE_SOFTMAX: {
      const cnn_softmax_node* p = (const cnn_softmax_node*)nd->params;
      cnn_softmax_run(p->cfg, p->log, p->outer, p->axis, p->inner, x, y, pool);
      break;
    }
    case CNN_NODE_LRN: {
      const cnn_lrn_node* p = (const cnn_lrn_node*)nd->params;
      cnn_f32_lrn__scalar(p->n, p->c, p->hw, p->size, p->alpha, p->beta, p->bias, x, y);
      break;
    }
    case CNN_NODE_REDUCE: {
      const cnn_reduce_node* p = (const cnn_reduce_node*)nd->params;
      cnn_f32_reduce__scalar(p->type, p->outer, p->axis, p->inner, x, y);
      break;
    }
    case CNN_NODE_COPY: {
      const cnn_copy_node* p = (const cnn_copy_node*)nd->params;
      cnn_copy_strided(p->ndim, p->shape, x + p->x_offset, p->x_strides, y + p->y_offset, p->y_strides);
      break;
    }
    case CNN_NODE_FILL: {
      const cnn_fill_node* p = (const cnn_fill_node*)nd->params;
      cnn_fill(y + p->y_offset, p->n, p->value);
      break;
    }
    case CNN_NODE_GATHER: {
      const cnn_gather_node* p = (const cnn_gather_node*)nd->params;
      cnn_gather(p->outer, p->axis_in, p->inner, p->idx, p->nidx, x, y);
      break;
    }
    default:
      break; /* kinds are validated when the plan is built */
  }
}

void cnn_plan_execute(const cnn_node* nodes, size_t n, float* const* tensors, void* workspace, cnn_threadpool* pool,
                      uint64_t* times_ns) {
  for (size_t i = 0; i < n; i++) {
    if (times_ns) {
      uint64_t t0 = now_ns();
      run_node(&nodes[i], tensors, workspace, pool);
      times_ns[i] = now_ns() - t0;
    } else {
      run_node(&nodes[i], tensors, workspace, pool);
    }
  }
}
