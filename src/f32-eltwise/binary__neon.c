/* Binary element-wise inner loop, NEON (aarch64). Gives the scalar kernel's bits for every op (compare + select
 * for MAX / MIN / PRELU, so NaN and signed zeros follow the scalar ternaries; POW: powf per element). */
#include <arm_neon.h>
#include <math.h>

#include "cnnrt/eltwise.h"

static inline float32x4_t bin4(int op, float32x4_t a, float32x4_t b) {
  switch (op) {
    case CNN_BIN_ADD: return vaddq_f32(a, b);
    case CNN_BIN_SUB: return vsubq_f32(a, b);
    case CNN_BIN_MUL: return vmulq_f32(a, b);
    case CNN_BIN_DIV: return vdivq_f32(a, b);
    case CNN_BIN_MAX:
    case CNN_BIN_MIN: {
      /* (a > b ? a : b) / (a < b ? a : b), a + b where either is NaN */
      const uint32x4_t ordered = vandq_u32(vceqq_f32(a, a), vceqq_f32(b, b));
      const uint32x4_t pick_a = op == CNN_BIN_MAX ? vcgtq_f32(a, b) : vcltq_f32(a, b);
      return vbslq_f32(ordered, vbslq_f32(pick_a, a, b), vaddq_f32(a, b));
    }
    case CNN_BIN_PRELU:
      return vbslq_f32(vcgeq_f32(a, vdupq_n_f32(0.0f)), a, vmulq_f32(a, b));
    default: return a;
  }
}

static inline float bin1(int op, float a, float b) {
  switch (op) {
    case CNN_BIN_ADD: return a + b;
    case CNN_BIN_SUB: return a - b;
    case CNN_BIN_MUL: return a * b;
    case CNN_BIN_DIV: return a / b;
    case CNN_BIN_MAX: return (a != a || b != b) ? a + b : (a > b ? a : b);
    case CNN_BIN_MIN: return (a != a || b != b) ? a + b : (a < b ? a : b);
    case CNN_BIN_PRELU: return a >= 0.0f ? a : a * b;
    default: return a;
  }
}

/* sa, sb in {0, 1}: a stride-0 operand is broadcast once; loads of the other are contiguous. */
static inline float32x4_t ld(const float* p, size_t s, size_t i, float32x4_t bc) { return s ? vld1q_f32(p + i) : bc; }

static inline void bin_loop(int op, const float* a, size_t sa, const float* b, size_t sb, float* y, size_t n) {
  const float32x4_t ab = vdupq_n_f32(a[0]), bb = vdupq_n_f32(b[0]);
  size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const float32x4_t y0 = bin4(op, ld(a, sa, i, ab), ld(b, sb, i, bb));
    const float32x4_t y1 = bin4(op, ld(a, sa, i + 4, ab), ld(b, sb, i + 4, bb));
    const float32x4_t y2 = bin4(op, ld(a, sa, i + 8, ab), ld(b, sb, i + 8, bb));
    const float32x4_t y3 = bin4(op, ld(a, sa, i + 12, ab), ld(b, sb, i + 12, bb));
    vst1q_f32(y + i, y0);
    vst1q_f32(y + i + 4, y1);
    vst1q_f32(y + i + 8, y2);
    vst1q_f32(y + i + 12, y3);
  }
  for (; i + 4 <= n; i += 4) vst1q_f32(y + i, bin4(op, ld(a, sa, i, ab), ld(b, sb, i, bb)));
  for (; i < n; i++) y[i] = bin1(op, a[i * sa], b[i * sb]);
}

#define BIN_CASE(OP)                      \
  case OP:                                \
    if (sa && sb)                         \
      bin_loop(OP, a, 1, b, 1, y, n);     \
    else if (sa)                          \
      bin_loop(OP, a, 1, b, 0, y, n);     \
    else if (sb)                          \
      bin_loop(OP, a, 0, b, 1, y, n);     \
    else                                  \
      bin_loop(OP, a, 0, b, 0, y, n);     \
    break;

void cnn_f32_binary__neon(int op, const float* a, size_t sa, const float* b, size_t sb, float* y, size_t n) {
  if (n == 0) return;
  switch (op) {
    BIN_CASE(CNN_BIN_ADD)
    BIN_CASE(CNN_BIN_SUB)
    BIN_CASE(CNN_BIN_MUL)
    BIN_CASE(CNN_BIN_DIV)
    BIN_CASE(CNN_BIN_MAX)
    BIN_CASE(CNN_BIN_MIN)
    BIN_CASE(CNN_BIN_PRELU)
    case CNN_BIN_POW:
      for (size_t i = 0; i < n; i++) y[i] = powf(a[i * sa], b[i * sb]);
      break;
    default: break;
  }
}
