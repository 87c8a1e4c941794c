/* cnnrt common definitions: activations, alignment, small helpers shared by kernels and operators. */
#ifndef CNNRT_COMMON_H
#define CNNRT_COMMON_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define CNN_ALIGN 64 /* bytes: every buffer cnnrt allocates (packed weights, arena, workspace) is aligned to this */

/* Status codes returned by prepare/plan functions (run functions never fail: everything is checked before). */
enum {
  CNN_OK = 0,
  CNN_ERR_INVALID = -1,  /* an argument is out of range (sizes, strides, groups ...) */
  CNN_ERR_NOMEM = -2,    /* an allocation failed */
  CNN_ERR_UNSUPPORTED = -3,
};

/* Activation applied in an operator's epilogue (fused) or as a stand-alone element-wise op.
 * y = f(x) with parameters a, b:
 *   NONE: x;  RELU: max(x,0);  CLIP: min(max(x,a),b) (ReLU6: a=0,b=6);  LEAKY: x>=0 ? x : a*x;
 *   SIGMOID: 1/(1+exp(-x));  HARDSIGMOID: max(0,min(1,a*x+b));  HARDSWISH: x*max(0,min(1,x/6+1/2));
 *   SILU: x*sigmoid(x);  TANH: tanh(x). */
typedef enum {
  CNN_ACT_NONE = 0,
  CNN_ACT_RELU = 1,
  CNN_ACT_CLIP = 2,
  CNN_ACT_LEAKY = 3,
  CNN_ACT_SIGMOID = 4,
  CNN_ACT_HARDSIGMOID = 5,
  CNN_ACT_HARDSWISH = 6,
  CNN_ACT_SILU = 7,
  CNN_ACT_TANH = 8,
} cnn_act_type;

typedef struct cnn_act {
  int32_t type; /* cnn_act_type */
  float a, b;
} cnn_act;

/* Aligned allocation (CNN_ALIGN). Returns NULL on failure or when bytes == 0 would overflow. Blocks of >= 2 MiB are
 * 2 MiB-aligned mappings advised for transparent huge pages on Linux (CNNRT_HUGEPAGES=0: heap, CNN_ALIGN only).
 * Only cnn_aligned_free may release a block (NULL is allowed). */
void* cnn_aligned_alloc(size_t bytes);
void cnn_aligned_free(void* p);

static inline size_t cnn_round_up(size_t x, size_t m) { return (x + m - 1) / m * m; }
static inline size_t cnn_div_up(size_t x, size_t m) { return (x + m - 1) / m; }
static inline size_t cnn_min_sz(size_t a, size_t b) { return a < b ? a : b; }
static inline size_t cnn_max_sz(size_t a, size_t b) { return a > b ? a : b; }

#ifdef __cplusplus
}
#endif
#endif
