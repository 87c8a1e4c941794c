/* Softmax / log-softmax over the middle axis of [outer, axis, inner], AVX2. Same algorithm as the scalar kernel
 * (max, exp(x - m) summed in double, then scale or subtract log(sum)); the exp is the vector one of avx2-math.h.
 * inner == 1: vectors along the axis; inner > 1: vectors across up to 64 inner positions (masked past the end). */
#include <immintrin.h>
#include <math.h>

#include "avx2-math.h"
#include "cnnrt/eltwise.h"

static inline __m256d sum_pd(__m256d acc, __m256 e) {
  return _mm256_add_pd(acc, _mm256_add_pd(_mm256_cvtps_pd(_mm256_castps256_ps128(e)),
                                          _mm256_cvtps_pd(_mm256_extractf128_ps(e, 1))));
}

static void softmax_row(int log, size_t n, const float* x, float* y) {
  size_t i = 0;
  const __m256 ninf = _mm256_set1_ps(-INFINITY);
  __m256 m0 = ninf, m1 = ninf;
  for (; i + 16 <= n; i += 16) {
    m0 = _mm256_max_ps(_mm256_loadu_ps(x + i), m0);
    m1 = _mm256_max_ps(_mm256_loadu_ps(x + i + 8), m1);
  }
  for (; i + 8 <= n; i += 8) m0 = _mm256_max_ps(_mm256_loadu_ps(x + i), m0);
  float m = cnn_avx2_hmax(_mm256_max_ps(m0, m1));
  for (; i < n; i++) m = x[i] > m ? x[i] : m;

  const __m256 vm = _mm256_set1_ps(m);
  __m256d s0 = _mm256_setzero_pd(), s1 = s0;
  for (i = 0; i + 16 <= n; i += 16) {
    const __m256 e0 = cnn_avx2_exp(_mm256_sub_ps(_mm256_loadu_ps(x + i), vm));
    const __m256 e1 = cnn_avx2_exp(_mm256_sub_ps(_mm256_loadu_ps(x + i + 8), vm));
    s0 = sum_pd(s0, e0);
    s1 = sum_pd(s1, e1);
    if (!log) {
      _mm256_storeu_ps(y + i, e0);
      _mm256_storeu_ps(y + i + 8, e1);
    }
  }
  for (; i < n; i += 8) {
    const __m256i msk = cnn_avx2_tail_mask(cnn_min_sz(8, n - i));
    /* masked-off lanes: exp(-inf) = 0 adds nothing */
    const __m256 v = _mm256_blendv_ps(ninf, _mm256_maskload_ps(x + i, msk), _mm256_castsi256_ps(msk));
    const __m256 e = cnn_avx2_exp(_mm256_sub_ps(v, vm));
    s0 = sum_pd(s0, e);
    if (!log) _mm256_maskstore_ps(y + i, msk, e);
  }
  s0 = _mm256_add_pd(s0, s1);
  __m128d t = _mm_add_pd(_mm256_castpd256_pd128(s0), _mm256_extractf128_pd(s0, 1));
  const double s = _mm_cvtsd_f64(_mm_add_sd(t, _mm_unpackhi_pd(t, t)));

  if (log) {
    const __m256 ls = _mm256_set1_ps(logf((float)s));
    for (i = 0; i + 8 <= n; i += 8)
      _mm256_storeu_ps(y + i, _mm256_sub_ps(_mm256_sub_ps(_mm256_loadu_ps(x + i), vm), ls));
    if (i < n) {
      const __m256i msk = cnn_avx2_tail_mask(n - i);
      _mm256_maskstore_ps(y + i, msk, _mm256_sub_ps(_mm256_sub_ps(_mm256_maskload_ps(x + i, msk), vm), ls));
    }
  } else {
    const __m256 inv = _mm256_set1_ps((float)(1.0 / s));
    for (i = 0; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_mul_ps(_mm256_loadu_ps(y + i), inv));
    if (i < n) {
      const __m256i msk = cnn_avx2_tail_mask(n - i);
      _mm256_maskstore_ps(y + i, msk, _mm256_mul_ps(_mm256_maskload_ps(y + i, msk), inv));
    }
  }
}

#define SOFTMAX_VECS 8 /* inner positions handled together: 8 vectors = 64 columns (256 contiguous bytes per row) */

static inline __m256 ld_cols(const float* p, size_t v, size_t nfull, __m256i tail) {
  return v < nfull ? _mm256_loadu_ps(p + 8 * v) : _mm256_maskload_ps(p + 8 * v, tail);
}
static inline void st_cols(float* p, size_t v, size_t nfull, __m256i tail, __m256 x) {
  if (v < nfull)
    _mm256_storeu_ps(p + 8 * v, x);
  else
    _mm256_maskstore_ps(p + 8 * v, tail, x);
}

/* Columns [0, nc) (nc <= 64) of one outer slice; element (a, r) at x[a*inner + r]. Per-column state (max, double
 * sums) lives in small stack arrays, so each pass reads whole row segments of 256 bytes. Lanes past nc are masked
 * off on loads and stores. */
static void softmax_cols(int log, size_t axis, size_t inner, size_t nc, const float* x, float* y) {
  const size_t nfull = nc / 8, nv = cnn_div_up(nc, 8);
  const __m256i tail = cnn_avx2_tail_mask(nc % 8);
  __m256 m[SOFTMAX_VECS];
  __m256d s[2 * SOFTMAX_VECS];
  for (size_t v = 0; v < nv; v++) {
    m[v] = _mm256_set1_ps(-INFINITY);
    s[2 * v] = s[2 * v + 1] = _mm256_setzero_pd();
  }
  for (size_t a = 0; a < axis; a++)
    for (size_t v = 0; v < nv; v++) m[v] = _mm256_max_ps(ld_cols(x + a * inner, v, nfull, tail), m[v]);
  for (size_t a = 0; a < axis; a++)
    for (size_t v = 0; v < nv; v++) {
      const __m256 e = cnn_avx2_exp(_mm256_sub_ps(ld_cols(x + a * inner, v, nfull, tail), m[v]));
      s[2 * v] = _mm256_add_pd(s[2 * v], _mm256_cvtps_pd(_mm256_castps256_ps128(e)));
      s[2 * v + 1] = _mm256_add_pd(s[2 * v + 1], _mm256_cvtps_pd(_mm256_extractf128_ps(e, 1)));
      if (!log) st_cols(y + a * inner, v, nfull, tail, e);
    }
  __m256 f[SOFTMAX_VECS]; /* log: log(float(sum)) as the scalar kernel; softmax: float(1/sum) */
  for (size_t v = 0; v < nv; v++) {
    if (log) {
      float sf[8];
      _mm_storeu_ps(sf, _mm256_cvtpd_ps(s[2 * v]));
      _mm_storeu_ps(sf + 4, _mm256_cvtpd_ps(s[2 * v + 1]));
      for (int k = 0; k < 8; k++) sf[k] = logf(sf[k]); /* lanes past nc: log of a positive garbage sum, unused */
      f[v] = _mm256_loadu_ps(sf);
    } else {
      const __m256d one = _mm256_set1_pd(1.0);
      f[v] = _mm256_set_m128(_mm256_cvtpd_ps(_mm256_div_pd(one, s[2 * v + 1])),
                             _mm256_cvtpd_ps(_mm256_div_pd(one, s[2 * v])));
    }
  }
  for (size_t a = 0; a < axis; a++)
    for (size_t v = 0; v < nv; v++) {
      const __m256 r = log ? _mm256_sub_ps(_mm256_sub_ps(ld_cols(x + a * inner, v, nfull, tail), m[v]), f[v])
                           : _mm256_mul_ps(ld_cols(y + a * inner, v, nfull, tail), f[v]);
      st_cols(y + a * inner, v, nfull, tail, r);
    }
}

void cnn_f32_softmax__avx2(int log, size_t outer, size_t axis, size_t inner, const float* x, float* y) {
  if (axis == 0 || inner == 0) return;
  for (size_t o = 0; o < outer; o++) {
    const float* xo = x + o * axis * inner;
    float* yo = y + o * axis * inner;
    if (inner == 1) {
      softmax_row(log, axis, xo, yo);
      continue;
    }
    for (size_t r = 0; r < inner; r += 8 * SOFTMAX_VECS)
      softmax_cols(log, axis, inner, cnn_min_sz(8 * SOFTMAX_VECS, inner - r), xo + r, yo + r);
  }
}
