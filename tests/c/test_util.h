/* Tiny test helpers shared by the C kernel tests: a seeded RNG, float comparison with a stated tolerance, and
 * per-ISA iteration. Each test file is its own program and prints "N passed, M failed". */
#ifndef CNNRT_TEST_UTIL_H
#define CNNRT_TEST_UTIL_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "cnnrt/common.h"
#include "cnnrt/hardware.h"

static int g_pass = 0, g_fail = 0;

static uint64_t g_rng = 0x9E3779B97F4A7C15ull;
static inline void rng_seed(uint64_t s) { g_rng = s * 0x9E3779B97F4A7C15ull + 1; }
static inline uint32_t rng_u32(void) {
  g_rng ^= g_rng << 13; g_rng ^= g_rng >> 7; g_rng ^= g_rng << 17;
  return (uint32_t)(g_rng >> 16);
}
/* uniform integer in [lo, hi] */
static inline size_t rng_range(size_t lo, size_t hi) { return lo + rng_u32() % (hi - lo + 1); }
/* uniform float in [-1, 1) */
static inline float rng_f(void) { return (float)((double)rng_u32() / 4294967296.0 * 2.0 - 1.0); }
static inline void rng_fill(float* p, size_t n) { for (size_t i = 0; i < n; i++) p[i] = rng_f(); }

/* max |a-b| / (atol + rtol*|b|) style check: returns the worst ratio (<= 1 passes). */
static inline double compare(const float* got, const float* want, size_t n, double atol, double rtol, size_t* where) {
  double worst = 0; size_t w = 0;
  for (size_t i = 0; i < n; i++) {
    double d = fabs((double)got[i] - (double)want[i]);
    double lim = atol + rtol * fabs((double)want[i]);
    double r = (d == 0) ? 0 : (lim > 0 ? d / lim : INFINITY);
    if (isnan(got[i]) != isnan(want[i])) r = INFINITY;
    if (r > worst) { worst = r; w = i; }
  }
  if (where) *where = w;
  return worst;
}

/* Rounding-error bounds shared by the conv and Winograd tests (Higham, "Accuracy and Stability of Numerical
 * Algorithms", sec. 3.1): gamma_n = n u / (1 - n u), u = 2^-24. */
#define U 5.9604644775390625e-08 /* 2^-24 */
static inline double gamma_n(size_t n) { return (double)n * U / (1.0 - (double)n * U); }

static inline int act_is_clamp(const cnn_act* a) {
  return a->type == CNN_ACT_NONE || a->type == CNN_ACT_RELU || a->type == CNN_ACT_CLIP;
}

/* worst |got - want| / tol over n outputs, tol = g * S[i] (S: the output's sum of |terms|); activations other than
 * a clamp widen it to 1.5 max(1, |a|) tol + 16 u (1 + |want|) (they are Lipschitz with constant max(1, |a|) and
 * computed by other kernels); NaN on either side is infinitely bad. *where: the worst index. */
static inline double worst_gamma_ratio(const float* got, const float* want, const float* S, size_t n, double g,
                                       const cnn_act* act, size_t* where) {
  double worst = 0;
  size_t wi = 0;
  for (size_t i = 0; i < n; i++) {
    double tol = g * S[i];
    if (act && !act_is_clamp(act)) tol = 1.5 * fmax(1.0, fabs(act->a)) * tol + 16 * U * (1.0 + fabs(want[i]));
    const double d = fabs((double)got[i] - (double)want[i]);
    double r = d == 0 ? 0 : (tol > 0 ? d / tol : INFINITY);
    if (isnan(got[i]) || isnan(want[i])) r = INFINITY;
    if (r > worst) {
      worst = r;
      wi = i;
    }
  }
  if (where) *where = wi;
  return worst;
}

#define CHECK(cond, ...) do { if (cond) g_pass++; else { g_fail++; printf("FAIL %s:%d: ", __FILE__, __LINE__); printf(__VA_ARGS__); printf("\n"); } } while (0)

/* A random fused activation (each type, with fixed parameters), shared by the conv and Winograd tests. */
static inline cnn_act random_act(void) {
  cnn_act a;
  a.type = (int32_t)rng_range(0, 8);
  a.a = 0;
  a.b = 0;
  if (a.type == CNN_ACT_CLIP) {
    a.a = -0.5f;
    a.b = 0.75f;
  } else if (a.type == CNN_ACT_LEAKY) {
    a.a = 0.1f;
  } else if (a.type == CNN_ACT_HARDSIGMOID) {
    a.a = 0.2f;
    a.b = 0.5f;
  }
  return a;
}

static inline int test_summary(const char* name) {
  printf("%s: %d passed, %d failed\n", name, g_pass, g_fail);
  return g_fail ? 1 : 0;
}

#endif
