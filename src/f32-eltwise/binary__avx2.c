/* Binary element-wise inner loop, AVX2. Gives the scalar kernel's bits for every op (POW: powf per element). */
#include <immintrin.h>
#include <math.h>

#include "avx2-math.h"
#include "cnnrt/eltwise.h"

static inline __m256 bin8(int op, __m256 a, __m256 b) {
  switch (op) {
    case CNN_BIN_ADD: return _mm256_add_ps(a, b);
    case CNN_BIN_SUB: return _mm256_sub_ps(a, b);
    case CNN_BIN_MUL: return _mm256_mul_ps(a, b);
    case CNN_BIN_DIV: return _mm256_div_ps(a, b);
    case CNN_BIN_MAX: /* (a > b ? a : b), a + b where either is NaN */
      return _mm256_blendv_ps(_mm256_max_ps(a, b), _mm256_add_ps(a, b), _mm256_cmp_ps(a, b, _CMP_UNORD_Q));
    case CNN_BIN_MIN:
      return _mm256_blendv_ps(_mm256_min_ps(a, b), _mm256_add_ps(a, b), _mm256_cmp_ps(a, b, _CMP_UNORD_Q));
    case CNN_BIN_PRELU:
      return _mm256_blendv_ps(_mm256_mul_ps(a, b), a, _mm256_cmp_ps(a, _mm256_setzero_ps(), _CMP_GE_OQ));
    default: return a;
  }
}

/* sa, sb in {0, 1}: a stride-0 operand is broadcast once; loads of the other are contiguous. */
static inline __m256 ld(const float* p, size_t s, size_t i, __m256 bc) { return s ? _mm256_loadu_ps(p + i) : bc; }
static inline __m256 ldm(const float* p, size_t s, size_t i, __m256 bc, __m256i m) {
  return s ? _mm256_maskload_ps(p + i, m) : bc;
}

static inline void bin_loop(int op, const float* a, size_t sa, const float* b, size_t sb, float* y, size_t n) {
  const __m256 ab = _mm256_set1_ps(a[0]), bb = _mm256_set1_ps(b[0]);
  size_t i = 0;
  for (; i + 32 <= n; i += 32) {
    const __m256 y0 = bin8(op, ld(a, sa, i, ab), ld(b, sb, i, bb));
    const __m256 y1 = bin8(op, ld(a, sa, i + 8, ab), ld(b, sb, i + 8, bb));
    const __m256 y2 = bin8(op, ld(a, sa, i + 16, ab), ld(b, sb, i + 16, bb));
    const __m256 y3 = bin8(op, ld(a, sa, i + 24, ab), ld(b, sb, i + 24, bb));
    _mm256_storeu_ps(y + i, y0);
    _mm256_storeu_ps(y + i + 8, y1);
    _mm256_storeu_ps(y + i + 16, y2);
    _mm256_storeu_ps(y + i + 24, y3);
  }
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, bin8(op, ld(a, sa, i, ab), ld(b, sb, i, bb)));
  if (i < n) {
    const __m256i m = cnn_avx2_tail_mask(n - i);
    _mm256_maskstore_ps(y + i, m, bin8(op, ldm(a, sa, i, ab, m), ldm(b, sb, i, bb, m)));
  }
}

#define BIN_CASE(OP)                                  \
  case OP:                                            \
    if (sa && sb)                                     \
      bin_loop(OP, a, 1, b, 1, y, n);                 \
    else if (sa)                                      \
      bin_loop(OP, a, 1, b, 0, y, n);                 \
    else if (sb)                                      \
      bin_loop(OP, a, 0, b, 1, y, n);                 \
    else                                              \
      bin_loop(OP, a, 0, b, 0, y, n);                 \
    break;

void cnn_f32_binary__avx2(int op, const float* a, size_t sa, const float* b, size_t sb, float* y, size_t n) {
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
