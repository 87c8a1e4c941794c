/* Binary element-wise inner loop, portable reference. */
#include <math.h>

#include "cnnrt/eltwise.h"

/* Semantics shared with the SIMD variants (identical bits for every op; POW calls powf in both):
 *   MAX / MIN propagate NaN from either operand (the NaN returned is a + b);
 *   PRELU: a >= 0 ? a : a*b. */
static inline float bin1(int op, float a, float b) {
  switch (op) {
    case CNN_BIN_ADD: return a + b;
    case CNN_BIN_SUB: return a - b;
    case CNN_BIN_MUL: return a * b;
    case CNN_BIN_DIV: return a / b;
    case CNN_BIN_MAX: return (a != a || b != b) ? a + b : (a > b ? a : b);
    case CNN_BIN_MIN: return (a != a || b != b) ? a + b : (a < b ? a : b);
    case CNN_BIN_POW: return powf(a, b);
    case CNN_BIN_PRELU: return a >= 0.0f ? a : a * b;
    default: return 0.0f;
  }
}

/* y[i] = op(a[i*sa], b[i*sb]); the op switch is hoisted out of the loop by inlining bin1 per case. */
#define BIN_LOOP(OP)                                                  \
  for (size_t i = 0; i < n; i++) y[i] = bin1(OP, a[i * sa], b[i * sb]); \
  break;

void cnn_f32_binary__scalar(int op, const float* a, size_t sa, const float* b, size_t sb, float* y, size_t n) {
  switch (op) {
    case CNN_BIN_ADD: BIN_LOOP(CNN_BIN_ADD)
    case CNN_BIN_SUB: BIN_LOOP(CNN_BIN_SUB)
    case CNN_BIN_MUL: BIN_LOOP(CNN_BIN_MUL)
    case CNN_BIN_DIV: BIN_LOOP(CNN_BIN_DIV)
    case CNN_BIN_MAX: BIN_LOOP(CNN_BIN_MAX)
    case CNN_BIN_MIN: BIN_LOOP(CNN_BIN_MIN)
    case CNN_BIN_POW: BIN_LOOP(CNN_BIN_POW)
    case CNN_BIN_PRELU: BIN_LOOP(CNN_BIN_PRELU)
    default: break;
  }
}
