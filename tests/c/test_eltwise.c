/* Tests of the element-wise, pooling, normalization and data-movement kernels (include/cnnrt/eltwise.h).
 *
 * Two layers of checks:
 *   1. every scalar reference against a naive computation written here (double precision formulas, brute-force
 *      pooling windows, explicit N-d index math);
 *   2. every SIMD variant of the per-ISA table against the scalar reference, on randomized sizes (0..300 elements,
 *      lengths that are not multiples of 8, odd plane sizes, windows that start in the padding).
 *
 * Tolerances (each stated where it is used):
 *   - exact operations (copies, relu/clip/leaky/hardsigmoid/hardswish, binary ops, max/avg pooling, affine, gather,
 *     reductions done in the same order) are compared bit for bit (NaN matches any NaN);
 *   - results that go through exp/tanh get a relative tolerance of a few float ulps: the vector exp of the AVX2
 *     kernels is within ~2.4 ulp of the exact sigmoid (1.04 ulp for exp, 1.5 ulp for tanh, measured over every
 *     third float), libm expf/tanhf within ~1 ulp;
 *   - sums accumulated in double in a different order may differ by one float ulp after the final rounding.
 * A failing comparison is a kernel bug: tolerances are not to be widened to make a test pass. */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cnnrt/eltwise.h"
#include "cnnrt/hardware.h"
#include "cnnrt/threadpool.h"
#include "test_util.h"

#define ULP1 (1.0 / 8388608.0) /* 2^-23: one ulp relative to a value's binade start, i.e. >= 1 ulp everywhere */

/* ------------------------------------------------------------------------------------------------------------- */
/* comparison helpers                                                                                             */

/* Every array comparison is counted (the CHECK lines aggregate them per kernel so that a failure prints its first
 * instance only). */
static size_t g_cmp = 0, g_cmp_bad = 0, g_cmp_elems = 0;

static int same_bits(float a, float b) {
  if (isnan(a) && isnan(b)) return 1;
  uint32_t x, y;
  memcpy(&x, &a, 4);
  memcpy(&y, &b, 4);
  return x == y;
}

/* Bit-exact (NaN == any NaN). Returns the first mismatching index or n. */
static size_t first_diff_bits(const float* got, const float* want, size_t n) {
  g_cmp++;
  g_cmp_elems += n;
  for (size_t i = 0; i < n; i++)
    if (!same_bits(got[i], want[i])) {
      g_cmp_bad++;
      return i;
    }
  return n;
}

/* |got - want| <= atol + rtol*|want|; NaN must match NaN and infinities must be equal. Returns the first failing
 * index or n. (test_util.h's compare() lets inf vs -inf through when rtol > 0, hence this stricter version.) */
static size_t first_diff_tol(const float* got, const float* want, size_t n, double atol, double rtol) {
  g_cmp++;
  g_cmp_elems += n;
  size_t i = 0;
  for (; i < n; i++) {
    const float g = got[i], w = want[i];
    if (isnan(g) || isnan(w)) {
      if (!(isnan(g) && isnan(w))) break;
      continue;
    }
    if (isinf(g) || isinf(w)) {
      if (g != w) break;
      continue;
    }
    if (fabs((double)g - (double)w) > atol + rtol * fabs((double)w)) break;
  }
  if (i < n) g_cmp_bad++;
  return i;
}

#define CHECK_BITS(got, want, n, ...)                                                                          \
  do {                                                                                                        \
    size_t i_ = first_diff_bits((got), (want), (n));                                                          \
    CHECK(i_ == (size_t)(n), __VA_ARGS__);                                                                    \
    if (i_ != (size_t)(n)) printf("   at %zu: got %.9g want %.9g\n", i_, (double)(got)[i_], (double)(want)[i_]); \
  } while (0)

#define CHECK_TOL(got, want, n, atol, rtol, ...)                                                               \
  do {                                                                                                        \
    size_t i_ = first_diff_tol((got), (want), (n), (atol), (rtol));                                           \
    CHECK(i_ == (size_t)(n), __VA_ARGS__);                                                                    \
    if (i_ != (size_t)(n)) printf("   at %zu: got %.9g want %.9g\n", i_, (double)(got)[i_], (double)(want)[i_]); \
  } while (0)

static float* falloc(size_t n) {
  float* p = (float*)malloc((n ? n : 1) * sizeof(float));
  if (!p) {
    printf("out of memory\n");
    exit(2);
  }
  return p;
}

/* Random float in [-scale, scale). */
static void fill_scaled(float* p, size_t n, float scale) {
  for (size_t i = 0; i < n; i++) p[i] = rng_f() * scale;
}

/* ISA tables under test: scalar first, then the SIMD ones this CPU supports. */
static const cnn_eltwise_config* g_cfgs[CNN_ISA_COUNT];
static size_t g_ncfg = 0;
static const cnn_eltwise_config* g_ref; /* scalar */

/* ------------------------------------------------------------------------------------------------------------- */
/* activations                                                                                                    */

static const char* act_name(int t) {
  static const char* names[] = {"none", "relu", "clip", "leaky", "sigmoid", "hardsigmoid", "hardswish", "silu",
                                "tanh"};
  return (t >= 0 && t <= 8) ? names[t] : "?";
}

static int act_is_exact(int t) {
  return t != CNN_ACT_SIGMOID && t != CNN_ACT_SILU && t != CNN_ACT_TANH;
}

/* The formula of common.h in double (the naive oracle). */
static double act_ref(const cnn_act* a, double x) {
  if (isnan(x)) return x; /* every activation propagates NaN */
  switch (a->type) {
    case CNN_ACT_RELU: return x < 0 ? 0 : x;
    case CNN_ACT_CLIP: return x < a->a ? a->a : (x > a->b ? a->b : x);
    case CNN_ACT_LEAKY: return x >= 0 ? x : a->a * x;
    case CNN_ACT_SIGMOID: return 1.0 / (1.0 + exp(-x));
    case CNN_ACT_HARDSIGMOID: return fmax(0.0, fmin(1.0, (double)a->a * x + a->b));
    case CNN_ACT_HARDSWISH: return x <= -3.0 ? 0.0 : x * fmax(0.0, fmin(1.0, x / 6.0 + 0.5));
    case CNN_ACT_SILU: return isinf(x) ? (x > 0 ? x : 0.0) : x / (1.0 + exp(-x));
    case CNN_ACT_TANH: return tanh(x);
    default: return x;
  }
}

/* Tolerance of the scalar kernel against the double formula (atol, rtol):
 *   none/relu/clip/leaky: exact (the float result is the double result rounded, and it is representable);
 *   hardsigmoid: a*x and +b each round once: |err| <= 2 ulp of max(|a*x|, 1) in the unclamped range where
 *     |a*x| <= 1 + |b| -> atol 5e-7 (b is at most 0.5 here);
 *   hardswish: x*(1/6) (1/6 is rounded), + 1/2, and the final product round: about 3 ulp of t in [0,1] times
 *     |x| <= 3 plus one ulp of the result -> atol 1e-6, rtol 2.4e-7;
 *   sigmoid/silu/tanh: libm expf/tanhf (< 1 ulp) plus a division / multiplication: rtol 4 ulp (4.8e-7); atol
 *     FLT_MIN because results in the subnormal range (sigmoid(-100), silu(-104)) carry no relative accuracy. */
static void act_tol(int t, double* atol, double* rtol) {
  switch (t) {
    case CNN_ACT_HARDSIGMOID: *atol = 5e-7; *rtol = 0; break;
    case CNN_ACT_HARDSWISH: *atol = 1e-6; *rtol = 2 * ULP1; break;
    case CNN_ACT_SIGMOID:
    case CNN_ACT_SILU:
    case CNN_ACT_TANH: *atol = FLT_MIN; *rtol = 4 * ULP1; break;
    default: *atol = 0; *rtol = 0; break;
  }
}

static void fill_act_input(float* x, size_t n, float scale) {
  fill_scaled(x, n, scale);
  /* sprinkle special values: NaN and infinities must come out as the formulas say, saturation must hold */
  static const float specials[] = {0.0f, -0.0f, 100.0f, -100.0f, 88.8f, -88.8f, -104.0f, 20.0f, -20.0f,
                                   3.0f, -3.0f, 1e-30f, -1e-30f, 0.625f, -0.625f, INFINITY, -INFINITY, NAN};
  const size_t ns = sizeof(specials) / sizeof(specials[0]);
  for (size_t i = 0; i < n; i += 1 + rng_u32() % 23) x[i] = specials[rng_u32() % ns];
}

static void test_act(void) {
  const size_t nmax = 300;
  float* x = falloc(nmax);
  float* ref = falloc(nmax);
  float* got = falloc(nmax);
  float* want = falloc(nmax);
  for (int t = 0; t <= CNN_ACT_TANH; t++) {
    cnn_act act = {t, 0.0f, 0.0f};
    if (t == CNN_ACT_CLIP) { act.a = -0.5f; act.b = 6.0f; }
    if (t == CNN_ACT_LEAKY) act.a = 0.1f;
    if (t == CNN_ACT_HARDSIGMOID) { act.a = 0.2f; act.b = 0.5f; }
    double atol, rtol;
    act_tol(t, &atol, &rtol);
    int fails_ref = 0, fails_simd = 0;
    for (int it = 0; it < 60; it++) {
      const size_t n = it < 20 ? (size_t)it : rng_range(0, nmax);
      const float scale = (it % 3 == 0) ? 1.0f : (it % 3 == 1 ? 8.0f : 120.0f);
      fill_act_input(x, n, scale);
      /* 1. scalar vs the double formula */
      cnn_f32_act__scalar(&act, x, ref, n);
      for (size_t i = 0; i < n; i++) want[i] = (float)act_ref(&act, x[i]);
      if (first_diff_tol(ref, want, n, atol, rtol) != n) {
        if (!fails_ref++) CHECK_TOL(ref, want, n, atol, rtol, "act %s scalar vs formula, n=%zu", act_name(t), n);
      }
      /* 2. every ISA vs scalar, out of place and in place */
      for (size_t c = 1; c < g_ncfg; c++) {
        memset(got, 0xAB, nmax * sizeof(float));
        g_cfgs[c]->act(&act, x, got, n);
        /* exact ops: bit-identical; exp-based: each side is within ~2.4 ulp (AVX2) / ~2 ulp (libm + divide) of
         * the exact value, so they agree to 1e-6 relative (about 8 ulp); subnormal results: atol FLT_MIN. */
        const int ok = act_is_exact(t) ? first_diff_bits(got, ref, n) == n
                                       : first_diff_tol(got, ref, n, FLT_MIN, 1e-6) == n;
        /* nothing written past n */
        int tail_ok = 1;
        uint32_t pat;
        for (size_t i = n; i < nmax; i++) {
          memcpy(&pat, &got[i], 4);
          tail_ok &= pat == 0xABABABABu;
        }
        /* exp-based SIMD results directly against the double formula: the vector exp / sigmoid / tanh were
         * measured within 2.4 ulp of the exact values over every third float -> rtol 3 ulp (3 * 2^-23 bounds 3 ulp
         * anywhere in a binade), atol FLT_MIN (subnormal outputs) */
        if (!act_is_exact(t)) {
          for (size_t i = 0; i < n; i++) want[i] = (float)act_ref(&act, x[i]);
          if (first_diff_tol(got, want, n, FLT_MIN, 3 * ULP1) != n && !fails_simd++)
            CHECK_TOL(got, want, n, FLT_MIN, 3 * ULP1, "act %s %s vs formula, n=%zu", act_name(t),
                      cnn_isa_name(g_cfgs[c]->isa), n);
        }
        float* inplace = want;
        memcpy(inplace, x, n * sizeof(float));
        g_cfgs[c]->act(&act, inplace, inplace, n);
        const int ip_ok = first_diff_bits(inplace, got, n) == n;
        if (!(ok && tail_ok && ip_ok) && !fails_simd++) {
          if (act_is_exact(t))
            CHECK_BITS(got, ref, n, "act %s %s vs scalar, n=%zu", act_name(t), cnn_isa_name(g_cfgs[c]->isa), n);
          else
            CHECK_TOL(got, ref, n, FLT_MIN, 1e-6, "act %s %s vs scalar, n=%zu", act_name(t),
                      cnn_isa_name(g_cfgs[c]->isa), n);
          CHECK(tail_ok, "act %s %s wrote past n=%zu", act_name(t), cnn_isa_name(g_cfgs[c]->isa), n);
          CHECK(ip_ok, "act %s %s in place differs, n=%zu", act_name(t), cnn_isa_name(g_cfgs[c]->isa), n);
        }
      }
    }
    CHECK(fails_ref == 0, "act %s: scalar vs formula failed %d times", act_name(t), fails_ref);
    CHECK(fails_simd == 0, "act %s: SIMD vs scalar failed %d times", act_name(t), fails_simd);
  }
  /* saturation / special values, every ISA (exact expectations) */
  for (size_t c = 0; c < g_ncfg; c++) {
    const char* isa = cnn_isa_name(g_cfgs[c]->isa);
    float in[11] = {-100.0f, 100.0f, -20.0f, 20.0f, NAN, INFINITY, -INFINITY, 0.0f, -1000.0f, 1000.0f, -0.0f};
    float out[11];
    cnn_act a = {CNN_ACT_SIGMOID, 0, 0};
    g_cfgs[c]->act(&a, in, out, 11);
    CHECK(out[0] >= 0.0f && out[0] < 1e-43f && out[1] == 1.0f && isnan(out[4]) && out[5] == 1.0f && out[6] == 0.0f &&
              out[7] == 0.5f && out[8] == 0.0f && out[9] == 1.0f,
          "%s sigmoid specials: %g %g nan->%g %g %g %g", isa, out[0], out[1], out[4], out[5], out[6], out[7]);
    a.type = CNN_ACT_TANH;
    g_cfgs[c]->act(&a, in, out, 11);
    CHECK(out[0] == -1.0f && out[1] == 1.0f && out[2] == -1.0f && out[3] == 1.0f && isnan(out[4]) && out[5] == 1.0f &&
              out[6] == -1.0f && same_bits(out[10], -0.0f),
          "%s tanh specials: %g %g %g %g nan->%g", isa, out[0], out[1], out[2], out[3], out[4]);
    a.type = CNN_ACT_SILU;
    g_cfgs[c]->act(&a, in, out, 11);
    CHECK(out[0] > -1e-40f && out[0] <= 0.0f && out[1] == 100.0f && isnan(out[4]) && out[5] == INFINITY &&
              out[6] == 0.0f && out[8] == 0.0f,
          "%s silu specials: %g %g nan->%g inf->%g -inf->%g", isa, out[0], out[1], out[4], out[5], out[6]);
    a.type = CNN_ACT_RELU;
    g_cfgs[c]->act(&a, in, out, 11);
    CHECK(isnan(out[4]) && out[6] == 0.0f && same_bits(out[10], -0.0f), "%s relu specials", isa);
    a.type = CNN_ACT_HARDSWISH;
    g_cfgs[c]->act(&a, in, out, 11);
    CHECK(isnan(out[4]) && out[5] == INFINITY && out[6] == 0.0f && out[0] == 0.0f && out[1] == 100.0f,
          "%s hardswish specials", isa);
  }
  free(x);
  free(ref);
  free(got);
  free(want);
}

/* Dense sweep of sigmoid / silu / tanh: float bit patterns spread over [-100, 100] (every 16411th one below 1.0 in
 * magnitude, so that exponents down to subnormals are covered, and 65536 evenly spaced in [-100, 100]) plus edge values
 * around the fast-path limit |x| = 87, the underflow range and specials, against the double formula with the same
 * tolerance as test_act (rtol 3 * 2^-23, atol FLT_MIN); and every output must depend on its own input only: the
 * same values run one call per element, and in calls of random lengths starting at random offsets, give the same
 * bits as one call over the whole array. */
static void test_act_sweep(void) {
  const size_t nmax = 300000;
  float* x = falloc(nmax);
  float* got = falloc(nmax);
  float* alt = falloc(nmax);
  float* want = falloc(nmax);
  size_t n = 0;
  for (uint32_t b = 0; b < 0x3f800000u && n + 2 < nmax; b += 16411) {
    float f;
    memcpy(&f, &b, 4);
    x[n++] = f;
    x[n++] = -f;
  }
  for (int k = 0; k <= 65536 && n < nmax; k++) x[n++] = -100.0f + 200.0f * (float)k / 65536.0f;
  static const float edge[] = {86.999f, 87.0f, 87.001f, 87.5f, 88.72f, 88.73f, 89.0f, 92.0f, 103.9f, 104.0f,
                               150.0f, 1e10f, FLT_MAX, INFINITY, NAN, FLT_MIN, 1e-45f, 0.0f};
  for (size_t k = 0; k < sizeof(edge) / sizeof(edge[0]) && n + 2 <= nmax; k++) {
    x[n++] = edge[k];
    x[n++] = -edge[k];
  }
  const int types[3] = {CNN_ACT_SIGMOID, CNN_ACT_SILU, CNN_ACT_TANH};
  for (size_t c = 0; c < g_ncfg; c++) {
    for (int ti = 0; ti < 3; ti++) {
      const cnn_act act = {types[ti], 0.0f, 0.0f};
      g_cfgs[c]->act(&act, x, got, n);
      for (size_t i = 0; i < n; i++) want[i] = (float)act_ref(&act, x[i]);
      /* the scalar kernel's own bound is 4 ulp (act_tol: libm + divide); the SIMD ones 3 ulp */
      const double rtol = c == 0 ? 4 * ULP1 : 3 * ULP1;
      CHECK_TOL(got, want, n, FLT_MIN, rtol, "act sweep %s %s vs formula", act_name(types[ti]),
                cnn_isa_name(g_cfgs[c]->isa));
      if (c != 0 && types[ti] != CNN_ACT_TANH) {
        /* the fast sigmoid / silu (|x| <= 87) in units of the exact value's own ulp (normal results). Measured on
         * this sweep: AVX2 2.10 / 2.10, avx512 2.86 / 2.32 (every 97th float in [-87, 87]: 2.30 / 2.24 and
         * 2.84 / 2.85, avx2-math.h and act__avx512.c). Bound 3: a 2-ulp error in one entry of the avx512 kernel's
         * 2^(j/16) table (about 1/16 of the inputs) gives 3.5 ulp and fails it; the rtol check above (3 ulp of the
         * binade start, up to 6 ulp of the value) lets that pass. */
        double worst = 0.0;
        size_t wi = 0;
        for (size_t i = 0; i < n; i++) {
          const double r = act_ref(&act, x[i]);
          if (!(fabsf(x[i]) <= 87.0f) || !(fabs(r) >= FLT_MIN)) continue;
          int e;
          frexp(r, &e);
          const double u = fabs((double)got[i] - r) / ldexp(1.0, e - 24);
          if (u > worst) {
            worst = u;
            wi = i;
          }
        }
        CHECK(worst <= 3.0, "act sweep %s %s: %.2f ulp at x = %.9g (bound 3)", act_name(types[ti]),
              cnn_isa_name(g_cfgs[c]->isa), worst, (double)x[wi]);
      }
      for (size_t i = 0; i < n; i++) g_cfgs[c]->act(&act, x + i, alt + i, 1);
      CHECK_BITS(alt, got, n, "act sweep %s %s one element per call", act_name(types[ti]),
                 cnn_isa_name(g_cfgs[c]->isa));
      for (size_t i = 0; i < n;) {
        const size_t len = cnn_min_sz(n - i, rng_range(1, 80));
        g_cfgs[c]->act(&act, x + i, alt + i, len);
        i += len;
      }
      CHECK_BITS(alt, got, n, "act sweep %s %s random splits", act_name(types[ti]), cnn_isa_name(g_cfgs[c]->isa));
      /* the avx512 kernel's tanh (and every activation but sigmoid / silu) is the AVX2 kernel's; its sigmoid and
       * silu are its own formula (act__avx512.c), checked above against the double formula */
      if (g_cfgs[c]->isa == CNN_ISA_AVX512 && types[ti] == CNN_ACT_TANH) {
        const cnn_eltwise_config* a2 = cnn_eltwise_config_get(CNN_ISA_AVX2);
        a2->act(&act, x, alt, n);
        CHECK_BITS(alt, got, n, "act sweep %s avx512 vs avx2 bits", act_name(types[ti]));
      }
    }
  }
  free(x);
  free(got);
  free(alt);
  free(want);
}

/* ------------------------------------------------------------------------------------------------------------- */
/* binary                                                                                                         */

static const char* bin_name(int op) {
  static const char* names[] = {"add", "sub", "mul", "div", "max", "min", "pow", "prelu"};
  return (op >= 0 && op <= 7) ? names[op] : "?";
}

/* Naive op in float (C11, no contraction): the exact ops round once, as the kernels must. */
static float bin_naive(int op, float a, float b) {
  switch (op) {
    case CNN_BIN_ADD: return a + b;
    case CNN_BIN_SUB: return a - b;
    case CNN_BIN_MUL: return a * b;
    case CNN_BIN_DIV: return a / b;
    case CNN_BIN_MAX: return (isnan(a) || isnan(b)) ? NAN : fmaxf(a, b);
    case CNN_BIN_MIN: return (isnan(a) || isnan(b)) ? NAN : fminf(a, b);
    case CNN_BIN_POW: return (float)pow((double)a, (double)b);
    case CNN_BIN_PRELU: return a >= 0 ? a : a * b;
    default: return 0;
  }
}

/* Scalar vs naive: bit-exact (up to the sign of zero for max/min of +-0, which fmaxf leaves open) except POW:
 * glibc powf is within 1 ulp of the correctly rounded double pow -> rtol 2 ulp. */
static int bin_naive_ok(int op, const float* got, const float* want, size_t n) {
  if (op == CNN_BIN_POW) return first_diff_tol(got, want, n, 0, 2 * ULP1) == n;
  return first_diff_tol(got, want, n, 0, 0) == n;
}

static void fill_bin_inputs(int op, float* a, float* b, size_t n) {
  if (op == CNN_BIN_POW) { /* positive bases, moderate exponents */
    for (size_t i = 0; i < n; i++) {
      a[i] = 0.05f + 2.0f * fabsf(rng_f());
      b[i] = 3.0f * rng_f();
    }
    return;
  }
  fill_scaled(a, n, 4.0f);
  fill_scaled(b, n, 4.0f);
  if (op == CNN_BIN_DIV)
    for (size_t i = 0; i < n; i++) if (b[i] == 0.0f) b[i] = 1.0f;
  if (op == CNN_BIN_MAX || op == CNN_BIN_MIN) { /* NaN propagation from either side; +0 vs -0 ties */
    for (size_t i = 0; i < n; i += 1 + rng_u32() % 17) (rng_u32() & 1 ? a : b)[i] = NAN;
    for (size_t i = 5; i < n; i += 1 + rng_u32() % 13) {
      a[i] = (rng_u32() & 1) ? 0.0f : -0.0f;
      b[i] = (rng_u32() & 1) ? 0.0f : -0.0f;
    }
  }
}

static void test_binary(void) {
  const size_t nmax = 300;
  float* a = falloc(nmax);
  float* b = falloc(nmax);
  float* ref = falloc(nmax);
  float* got = falloc(nmax);
  float* want = falloc(nmax);
  for (int op = 0; op <= CNN_BIN_PRELU; op++) {
    int fails = 0;
    for (int it = 0; it < 48; it++) {
      const size_t n = it < 12 ? (size_t)it * 3 : rng_range(1, nmax);
      const size_t sa = (size_t)(it & 1), sb = (size_t)((it >> 1) & 1);
      if (n == 0 && (sa == 0 || sb == 0)) continue;
      fill_bin_inputs(op, a, b, nmax);
      cnn_f32_binary__scalar(op, a, sa, b, sb, ref, n);
      for (size_t i = 0; i < n; i++) want[i] = bin_naive(op, a[i * sa], b[i * sb]);
      if (!bin_naive_ok(op, ref, want, n) && !fails++)
        CHECK(0, "binary %s scalar vs naive, n=%zu sa=%zu sb=%zu", bin_name(op), n, sa, sb);
      for (size_t c = 1; c < g_ncfg; c++) {
        /* every op, POW included (both call powf), must give the scalar bits */
        g_cfgs[c]->binary(op, a, sa, b, sb, got, n);
        if (first_diff_bits(got, ref, n) != n && !fails++)
          CHECK_BITS(got, ref, n, "binary %s %s vs scalar, n=%zu sa=%zu sb=%zu", bin_name(op),
                     cnn_isa_name(g_cfgs[c]->isa), n, sa, sb);
        /* in place: y == a (stride 1) */
        if (sa == 1) {
          memcpy(got, a, n * sizeof(float));
          g_cfgs[c]->binary(op, got, 1, b, sb, got, n);
          if (first_diff_bits(got, ref, n) != n && !fails++)
            CHECK_BITS(got, ref, n, "binary %s %s in place", bin_name(op), cnn_isa_name(g_cfgs[c]->isa));
        }
      }
    }
    CHECK(fails == 0, "binary %s: %d failures", bin_name(op), fails);
  }
  free(a);
  free(b);
  free(ref);
  free(got);
  free(want);
}

/* N-d broadcasting against explicit index math. An operand of rank r <= ndim is right-aligned (numpy); each of its
 * dims is either the output's or 1 (broadcast). Optionally the operand is stored transposed (its last two dims
 * swapped in memory) so that the innermost stride is neither 0 nor 1. */
typedef struct {
  size_t rank;
  size_t shape[CNN_MAX_DIMS]; /* operand's own shape (right-aligned to the output) */
  int transposed;
  ptrdiff_t mem_strides[CNN_MAX_DIMS]; /* element strides of the operand's dims in its buffer */
  size_t size;
} operand_desc;

static void make_operand(operand_desc* o, size_t ndim, const size_t* yshape, size_t rank, int transposed) {
  o->rank = rank;
  for (size_t d = 0; d < rank; d++) {
    const size_t yd = yshape[ndim - rank + d];
    o->shape[d] = (rng_u32() % 3 == 0) ? 1 : yd;
  }
  o->transposed = transposed && rank >= 2;
  /* memory order: row-major over the dims, with the last two swapped when transposed */
  size_t order[CNN_MAX_DIMS];
  for (size_t d = 0; d < rank; d++) order[d] = d;
  if (o->transposed) {
    order[rank - 2] = rank - 1;
    order[rank - 1] = rank - 2;
  }
  ptrdiff_t s = 1;
  for (size_t k = rank; k-- > 0;) {
    o->mem_strides[order[k]] = s;
    s *= (ptrdiff_t)o->shape[order[k]];
  }
  o->size = (size_t)s;
}

/* Broadcast strides of the operand in output coordinates (0 for broadcast or missing dims). */
static void operand_strides(const operand_desc* o, size_t ndim, ptrdiff_t* st) {
  for (size_t d = 0; d < ndim; d++) st[d] = 0;
  for (size_t d = 0; d < o->rank; d++) st[ndim - o->rank + d] = o->shape[d] == 1 ? 0 : o->mem_strides[d];
}

static void test_binary_nd(cnn_threadpool* pool) {
  const cnn_act acts[3] = {{CNN_ACT_NONE, 0, 0}, {CNN_ACT_RELU, 0, 0}, {CNN_ACT_SIGMOID, 0, 0}};
  int fails = 0, cases = 0;
  for (int it = 0; it < 400; it++) {
    const size_t ndim = 1 + (size_t)(it % 5);
    size_t shape[CNN_MAX_DIMS];
    size_t total = 1;
    const int big = it % 40 == 39; /* > 64K outputs: the parallel split */
    for (size_t d = 0; d + 1 < ndim; d++) {
      shape[d] = rng_range(1, 6);
      total *= shape[d];
    }
    /* big: 70K..100K outputs */
    shape[ndim - 1] = big ? cnn_div_up(70000, total) + rng_range(0, 30000 / total) : rng_range(1, 6);
    total *= shape[ndim - 1];
    /* rank of each operand: full, 1, or 4 (when ndim >= 4), as in bias-add / channel-scale patterns */
    const size_t ranks[3] = {ndim, 1, ndim >= 4 ? 4 : ndim};
    operand_desc oa, ob;
    make_operand(&oa, ndim, shape, ranks[rng_u32() % 3], it % 7 == 3);
    make_operand(&ob, ndim, shape, ranks[rng_u32() % 3], it % 11 == 5);
    ptrdiff_t as[CNN_MAX_DIMS], bs[CNN_MAX_DIMS];
    operand_strides(&oa, ndim, as);
    operand_strides(&ob, ndim, bs);
    const int op = (int)(rng_u32() % 8);
    const cnn_act* act = (it % 4 == 0) ? NULL : &acts[rng_u32() % 3];
    float* a = falloc(oa.size);
    float* b = falloc(ob.size);
    if (op == CNN_BIN_POW) {
      for (size_t i = 0; i < oa.size; i++) a[i] = 0.05f + 2.0f * fabsf(rng_f());
      for (size_t i = 0; i < ob.size; i++) b[i] = 3.0f * rng_f();
    } else {
      fill_scaled(a, oa.size, 4.0f);
      fill_scaled(b, ob.size, 4.0f);
      if (op == CNN_BIN_DIV)
        for (size_t i = 0; i < ob.size; i++) if (b[i] == 0.0f) b[i] = 1.0f;
    }
    float* want = falloc(total);
    float* got = falloc(total);
    /* explicit index math: decompose the flat output index */
    for (size_t f = 0; f < total; f++) {
      size_t r = f;
      ptrdiff_t ao = 0, bo = 0;
      for (size_t d = ndim; d-- > 0;) {
        const size_t i = r % shape[d];
        r /= shape[d];
        ao += (ptrdiff_t)i * as[d];
        bo += (ptrdiff_t)i * bs[d];
      }
      float v;
      cnn_f32_binary__scalar(op, a + ao, 0, b + bo, 0, &v, 1); /* op semantics checked by test_binary */
      if (act) cnn_f32_act__scalar(act, &v, &v, 1);
      want[f] = v;
    }
    for (size_t c = 0; c < g_ncfg; c++) {
      for (int p = 0; p < 2; p++) {
        memset(got, 0, total * sizeof(float));
        cnn_binary_nd(g_cfgs[c], op, ndim, shape, a, as, b, bs, got, act, p ? pool : NULL);
        cases++;
        /* scalar table: bit-exact; SIMD: bit-exact except a sigmoid act (vector exp: rtol 1e-6, see test_act) */
        const int approx = c > 0 && act && act->type == CNN_ACT_SIGMOID;
        const size_t bad = approx ? first_diff_tol(got, want, total, FLT_MIN, 1e-6) : first_diff_bits(got, want, total);
        if (bad != total && !fails++)
          CHECK(0, "binary_nd %s %s rank %zu (a rank %zu%s, b rank %zu%s) total %zu pool %d: at %zu got %g want %g",
                bin_name(op), cnn_isa_name(g_cfgs[c]->isa), ndim, oa.rank, oa.transposed ? " T" : "", ob.rank,
                ob.transposed ? " T" : "", total, p, bad, got[bad], want[bad]);
      }
    }
    /* in place into a (y aliases a with equal strides): a full-rank, non-transposed, non-broadcast operand */
    if (oa.rank == ndim && !oa.transposed && oa.size == total) {
      int full = 1;
      for (size_t d = 0; d < ndim; d++) full &= oa.shape[d] == shape[d];
      if (full) {
        for (size_t c = 0; c < g_ncfg; c++) {
          float* y = falloc(total);
          memcpy(y, a, total * sizeof(float));
          cnn_binary_nd(g_cfgs[c], op, ndim, shape, y, as, b, bs, y, act, pool);
          const int approx = c > 0 && act && act->type == CNN_ACT_SIGMOID;
          const size_t bad = approx ? first_diff_tol(y, want, total, FLT_MIN, 1e-6) : first_diff_bits(y, want, total);
          if (bad != total && !fails++) CHECK(0, "binary_nd in place %s rank %zu", bin_name(op), ndim);
          free(y);
        }
      }
    }
    free(a);
    free(b);
    free(want);
    free(got);
  }
  CHECK(fails == 0, "binary_nd: %d of %d cases failed", fails, cases);
}

/* One operand a scalar per row of the other ([rows, inner] after collapsing: a per-channel scale or bias, batch
 * folded into the rows), MUL and ADD: cnn_binary_nd's per-row path (rows in blocks of 1024), both operand orders,
 * 4-d shapes, in place, with activations, zeros of both signs in x and s. Bit-exact against the scalar op (a
 * sigmoid act on a SIMD table: rtol 1e-6). */
static void test_binary_rows(cnn_threadpool* pool) {
  static const size_t shapes[][4] = {{1, 1, 1, 1}, {1, 5, 1, 7}, {2, 3, 7, 7}, {1, 1023, 1, 1}, {1, 1024, 7, 7},
                                     {3, 700, 1, 49}, {1, 32, 56, 56}, {2, 1025, 2, 3}};
  const cnn_act acts[3] = {{CNN_ACT_NONE, 0, 0}, {CNN_ACT_RELU, 0, 0}, {CNN_ACT_SIGMOID, 0, 0}};
  int fails = 0, cases = 0;
  for (size_t si = 0; si < sizeof(shapes) / sizeof(shapes[0]); si++) {
    const size_t* sh = shapes[si];
    const size_t rows = sh[0] * sh[1], inner = sh[2] * sh[3], total = rows * inner;
    ptrdiff_t xs[4] = {(ptrdiff_t)(sh[1] * inner), (ptrdiff_t)inner, (ptrdiff_t)sh[3], 1};
    ptrdiff_t vs[4] = {(ptrdiff_t)sh[1], 1, 0, 0};
    if (sh[0] == 1) vs[0] = 0;
    float* x = falloc(total);
    float* v = falloc(rows);
    fill_scaled(x, total, 4.0f);
    fill_scaled(v, rows, 2.0f);
    x[0] = -0.0f;
    if (total > 1) x[1] = 0.0f;
    v[0] = rows > 1 ? 0.0f : -1.0f;
    if (rows > 1) v[1] = -0.0f;
    float* want = falloc(total);
    float* got = falloc(total);
    static const int ops[2] = {CNN_BIN_ADD, CNN_BIN_MUL};
    for (int oi = 0; oi < 2; oi++) {
      const int op = ops[oi];
      for (int order = 0; order < 2; order++)
        for (int ai = 0; ai < 3; ai++) {
          const cnn_act* act = ai ? &acts[ai] : NULL;
          for (size_t r = 0; r < rows; r++)
            for (size_t i = 0; i < inner; i++) {
              float o;
              if (order)
                cnn_f32_binary__scalar(op, v + r, 0, x + r * inner + i, 0, &o, 1);
              else
                cnn_f32_binary__scalar(op, x + r * inner + i, 0, v + r, 0, &o, 1);
              if (act) cnn_f32_act__scalar(act, &o, &o, 1);
              want[r * inner + i] = o;
            }
          for (size_t c = 0; c < g_ncfg; c++)
            for (int mode = 0; mode < 3; mode++) { /* no pool, pool, pool + in place */
              float* y = got;
              if (mode == 2) memcpy(y, x, total * sizeof(float));
              else memset(y, 0x7f, total * sizeof(float));
              const float* xin = mode == 2 ? y : x;
              if (order)
                cnn_binary_nd(g_cfgs[c], op, 4, sh, v, vs, xin, xs, y, act, mode ? pool : NULL);
              else
                cnn_binary_nd(g_cfgs[c], op, 4, sh, xin, xs, v, vs, y, act, mode ? pool : NULL);
              cases++;
              const int approx = c > 0 && ai == 2;
              const size_t bad =
                  approx ? first_diff_tol(y, want, total, FLT_MIN, 1e-6) : first_diff_bits(y, want, total);
              if (bad != total && !fails++)
                CHECK(0, "binary rows %s %s shape %zux%zux%zux%zu order %d act %d mode %d: at %zu got %g want %g",
                      bin_name(op), cnn_isa_name(g_cfgs[c]->isa), sh[0], sh[1], sh[2], sh[3], order, ai, mode, bad,
                      y[bad], want[bad]);
            }
        }
    }
    free(x);
    free(v);
    free(want);
    free(got);
  }
  CHECK(fails == 0, "binary rows: %d of %d cases failed", fails, cases);
}

/* ------------------------------------------------------------------------------------------------------------- */
/* pooling                                                                                                        */

/* Brute force: every tap of the window, counted as inside the input / inside the padded input. Taps are visited in
 * (ky, kx) order and the sum divided by the float count, the order the contract implies for a plain loop, so the
 * scalar kernel must match bit for bit. */
static void pool_naive(const cnn_pool2d_desc* d, size_t nc, size_t h, size_t w, size_t oh, size_t ow, const float* x,
                       float* y) {
  for (size_t p = 0; p < nc; p++)
    for (size_t oy = 0; oy < oh; oy++)
      for (size_t ox = 0; ox < ow; ox++) {
        float m = -INFINITY, s = 0.0f;
        long n_in = 0, n_pad = 0;
        for (size_t ky = 0; ky < d->kernel_h; ky++)
          for (size_t kx = 0; kx < d->kernel_w; kx++) {
            const long iy = (long)(oy * d->stride_h + ky * d->dilation_h) - (long)d->pad_top;
            const long ix = (long)(ox * d->stride_w + kx * d->dilation_w) - (long)d->pad_left;
            if (iy >= -(long)d->pad_top && iy < (long)(h + d->pad_bottom) && ix >= -(long)d->pad_left &&
                ix < (long)(w + d->pad_right))
              n_pad++;
            if (iy < 0 || iy >= (long)h || ix < 0 || ix >= (long)w) continue;
            const float v = x[(p * h + (size_t)iy) * w + (size_t)ix];
            n_in++;
            if (v > m) m = v;
            s += v;
          }
        float out;
        if (d->type == 0) {
          out = m;
        } else {
          const long div = d->count_include_pad ? n_pad : n_in;
          out = div ? s / (float)div : 0.0f;
        }
        y[(p * oh + oy) * ow + ox] = out;
      }
}

/* Output size, ONNX rules: floor or ceil of (in + pads - extent) / stride + 1; in ceil mode a last window that
 * would start past the input + begin pad is dropped. 0 when the window does not fit. */
static size_t pool_out(size_t in, size_t pb, size_t pe, size_t k, size_t s, size_t dil, int ceil_mode) {
  const size_t ext = (k - 1) * dil + 1;
  if (in + pb + pe < ext) return 0;
  const size_t span = in + pb + pe - ext;
  size_t o = (ceil_mode ? cnn_div_up(span, s) : span / s) + 1;
  if (ceil_mode && (o - 1) * s >= in + pb) o--;
  return o;
}

/* 2x2 stride-2 max pooling without padding (its own AVX2 path): widths 1..40 (8-, 4- and 1-wide parts), odd sizes,
 * ceil mode (a last window crossing the edge, pad_bottom/right 1), NaN and signed zeros among the inputs. */
static void test_pool2d_2x2(void) {
  int fails = 0, cases = 0;
  for (size_t w = 1; w <= 40; w++)
    for (int ceil_mode = 0; ceil_mode < 2; ceil_mode++) {
      const size_t h = 1 + (w * 7) % 9;
      cnn_pool2d_desc d = {0, 0, 2, 2, 2, 2, 1, 1, 0, 0, (size_t)ceil_mode, (size_t)ceil_mode};
      const size_t oh = pool_out(h, 0, d.pad_bottom, 2, 2, 1, ceil_mode), ow = pool_out(w, 0, d.pad_right, 2, 2, 1, ceil_mode);
      if (oh == 0 || ow == 0) continue;
      const size_t nc = 1 + w % 3;
      float* x = falloc(nc * h * w);
      float* want = falloc(nc * oh * ow);
      float* got = falloc(nc * oh * ow);
      fill_scaled(x, nc * h * w, 2.0f);
      for (size_t i = 0; i < nc * h * w; i += 13) x[i] = (i % 3) == 0 ? NAN : (i % 3) == 1 ? -0.0f : 0.0f;
      cnn_f32_pool2d__scalar(&d, nc, h, w, oh, ow, x, want);
      for (size_t c = 1; c < g_ncfg; c++) {
        g_cfgs[c]->pool2d(&d, nc, h, w, oh, ow, x, got);
        cases++;
        if (first_diff_bits(got, want, nc * oh * ow) != nc * oh * ow && !fails++)
          CHECK_BITS(got, want, nc * oh * ow, "max 2x2 s2 %s in %zux%zu ceil %d", cnn_isa_name(g_cfgs[c]->isa), h, w,
                     ceil_mode);
      }
      free(x);
      free(want);
      free(got);
    }
  CHECK(fails == 0, "max 2x2 s2: %d of %d configurations failed", fails, cases);
}

/* 3x3 stride-2 max pooling (its own AVX2 / NEON path: each input row's 3-tap maxima computed once, the row two
 * output rows share carried over, chunks of 256 outputs): widths 1..40 and wide rows (several chunks, a last chunk
 * of 8..263), pads 0..2 on each side, ceil mode, and inputs drawn mostly from {+0, -0, NaN, -inf, 1, -1} so that
 * ties decide which zero comes out (the scalar kernel's first tap in (ky, kx) order) and whole windows may hold only
 * NaN / -inf. Also checked against the naive pooling. */
static void test_pool2d_3x3s2(void) {
  static const float vals[6] = {0.0f, -0.0f, NAN, -INFINITY, 1.0f, -1.0f};
  static const size_t wides[] = {263, 264, 265, 519, 520, 531, 777};
  int fails = 0, cases = 0;
  for (size_t wi = 0; wi < 40 + sizeof(wides) / sizeof(wides[0]); wi++)
    for (int rep = 0; rep < 4; rep++) {
      const size_t w = wi < 40 ? wi + 1 : wides[wi - 40];
      const size_t h = 1 + (wi * 5 + (size_t)rep * 3) % 13;
      const int ceil_mode = rep & 1;
      cnn_pool2d_desc d = {0, 0, 3, 3, 2, 2, 1, 1, 0, 0, 0, 0};
      d.pad_top = rng_range(0, 2);
      d.pad_left = rng_range(0, 2);
      d.pad_bottom = rng_range(0, 2);
      d.pad_right = rng_range(0, 2);
      const size_t oh = pool_out(h, d.pad_top, d.pad_bottom, 3, 2, 1, ceil_mode);
      const size_t ow = pool_out(w, d.pad_left, d.pad_right, 3, 2, 1, ceil_mode);
      if (oh == 0 || ow == 0) continue;
      const size_t nc = 1 + wi % 3;
      float* x = falloc(nc * h * w);
      float* want = falloc(nc * oh * ow);
      float* ref = falloc(nc * oh * ow);
      float* got = falloc(nc * oh * ow);
      fill_scaled(x, nc * h * w, 2.0f);
      for (size_t i = 0; i < nc * h * w; i++)
        if (rep >= 2 || rng_range(0, 3) != 0) x[i] = vals[rng_range(0, rep >= 2 ? 3 : 5)];
      pool_naive(&d, nc, h, w, oh, ow, x, want);
      cnn_f32_pool2d__scalar(&d, nc, h, w, oh, ow, x, ref);
      cases++;
      if (first_diff_bits(ref, want, nc * oh * ow) != nc * oh * ow && !fails++)
        CHECK_BITS(ref, want, nc * oh * ow, "max 3x3 s2 scalar vs naive in %zux%zu", h, w);
      for (size_t c = 1; c < g_ncfg; c++) {
        g_cfgs[c]->pool2d(&d, nc, h, w, oh, ow, x, got);
        cases++;
        if (first_diff_bits(got, ref, nc * oh * ow) != nc * oh * ow && !fails++)
          CHECK_BITS(got, ref, nc * oh * ow, "max 3x3 s2 %s in %zux%zu pads t%zu l%zu b%zu r%zu ceil %d",
                     cnn_isa_name(g_cfgs[c]->isa), h, w, d.pad_top, d.pad_left, d.pad_bottom, d.pad_right, ceil_mode);
      }
      free(x);
      free(want);
      free(ref);
      free(got);
    }
  CHECK(fails == 0, "max 3x3 s2: %d of %d configurations failed", fails, cases);
  CHECK(cases > 300, "max 3x3 s2: only %d configurations ran", cases);
}

static void test_pool2d(void) {
  int fails_ref = 0, fails_simd = 0, cases = 0;
  for (size_t k = 1; k <= 5; k++)
    for (size_t s = 1; s <= 3; s++)
      for (size_t dil = 1; dil <= 2; dil++)
        for (int type = 0; type < 2; type++)
          for (int cip = 0; cip < 2; cip++)
            for (int rep = 0; rep < 6; rep++) {
              cnn_pool2d_desc d;
              d.type = type;
              d.count_include_pad = cip;
              /* square kernels mostly, some k x k' */
              d.kernel_h = k;
              d.kernel_w = rep == 5 ? rng_range(1, 5) : k;
              d.stride_h = rep == 4 ? rng_range(1, 3) : s;
              d.stride_w = s;
              d.dilation_h = dil;
              d.dilation_w = rep == 3 ? 3 - dil : dil;
              const size_t ext_h = (d.kernel_h - 1) * d.dilation_h + 1, ext_w = (d.kernel_w - 1) * d.dilation_w + 1;
              /* asymmetric pads <= kernel-1 most of the time; rep 2: up to the full window extent (windows that lie
               * entirely in the padding) */
              const size_t pmax_h = rep == 2 ? ext_h : d.kernel_h - 1, pmax_w = rep == 2 ? ext_w : d.kernel_w - 1;
              d.pad_top = rng_range(0, pmax_h);
              d.pad_bottom = rng_range(0, pmax_h);
              d.pad_left = rng_range(0, pmax_w);
              d.pad_right = rng_range(0, pmax_w);
              /* odd plane sizes; some wide enough for the 8-wide interior path */
              const size_t h = rng_range(1, 13) | 1;
              const size_t w = (rep & 1) ? rng_range(1, 15) : rng_range(17, 61);
              const int ceil_mode = (rep + (int)k) & 1;
              const size_t oh = pool_out(h, d.pad_top, d.pad_bottom, d.kernel_h, d.stride_h, d.dilation_h, ceil_mode);
              const size_t ow = pool_out(w, d.pad_left, d.pad_right, d.kernel_w, d.stride_w, d.dilation_w, ceil_mode);
              if (oh == 0 || ow == 0) continue;
              const size_t nc = rng_range(1, 3);
              float* x = falloc(nc * h * w);
              float* want = falloc(nc * oh * ow);
              float* ref = falloc(nc * oh * ow);
              float* got = falloc(nc * oh * ow);
              fill_scaled(x, nc * h * w, 2.0f);
              pool_naive(&d, nc, h, w, oh, ow, x, want);
              cnn_f32_pool2d__scalar(&d, nc, h, w, oh, ow, x, ref);
              cases++;
              /* bit-exact: same taps, same order, same division */
              if (first_diff_bits(ref, want, nc * oh * ow) != nc * oh * ow && !fails_ref++)
                CHECK_BITS(ref, want, nc * oh * ow,
                           "pool2d scalar vs naive: type %d cip %d k %zux%zu s %zux%zu d %zux%zu pads t%zu l%zu b%zu "
                           "r%zu in %zux%zu out %zux%zu",
                           type, cip, d.kernel_h, d.kernel_w, d.stride_h, d.stride_w, d.dilation_h, d.dilation_w,
                           d.pad_top, d.pad_left, d.pad_bottom, d.pad_right, h, w, oh, ow);
              for (size_t c = 1; c < g_ncfg; c++) {
                g_cfgs[c]->pool2d(&d, nc, h, w, oh, ow, x, got);
                /* bit-exact: the SIMD kernel visits taps in the scalar order and divides by the same float */
                if (first_diff_bits(got, ref, nc * oh * ow) != nc * oh * ow && !fails_simd++)
                  CHECK_BITS(got, ref, nc * oh * ow,
                             "pool2d %s vs scalar: type %d cip %d k %zux%zu s %zux%zu d %zux%zu pads t%zu l%zu b%zu "
                             "r%zu in %zux%zu out %zux%zu",
                             cnn_isa_name(g_cfgs[c]->isa), type, cip, d.kernel_h, d.kernel_w, d.stride_h, d.stride_w,
                             d.dilation_h, d.dilation_w, d.pad_top, d.pad_left, d.pad_bottom, d.pad_right, h, w, oh,
                             ow);
              }
              free(x);
              free(want);
              free(ref);
              free(got);
            }
  CHECK(fails_ref == 0, "pool2d scalar vs naive: %d of %d configurations failed", fails_ref, cases);
  CHECK(fails_simd == 0, "pool2d SIMD vs scalar: %d of %d configurations failed", fails_simd, cases);
  CHECK(cases > 500, "pool2d: only %d configurations ran", cases);

  /* ONNX example: AveragePool 3x3 s2 pads 1, ceil mode, count_include_pad=1 on 4x4 (the last window starts at
   * input row 3 and covers padded rows 3..5 of which row 5 lies past the bottom pad: divisor 6, not 9) */
  {
    cnn_pool2d_desc d = {1, 1, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1};
    float x[16], y[9];
    for (int i = 0; i < 16; i++) x[i] = (float)(i + 1);
    const size_t oh = pool_out(4, 1, 1, 3, 2, 1, 1);
    CHECK(oh == 3, "ceil-mode output size %zu", oh);
    for (size_t c = 0; c < g_ncfg; c++) {
      g_cfgs[c]->pool2d(&d, 1, 4, 4, 3, 3, x, y);
      /* y[0,0]: taps (0..1)x(0..1) = 1+2+5+6 = 14 over 9 padded taps; y[2,2]: rows 3..4 x cols 3..4 in the padded
       * input [-1, 5): valid taps only x[3][3] = 16, padded taps 2x2 = 4 */
      CHECK(fabsf(y[0] - 14.0f / 9.0f) < 1e-6f && fabsf(y[8] - 16.0f / 4.0f) < 1e-6f,
            "%s avgpool ceil divisor: %g %g", cnn_isa_name(g_cfgs[c]->isa), y[0], y[8]);
    }
  }
}

static void test_global_pool(void) {
  int fails = 0;
  for (int it = 0; it < 80; it++) {
    const size_t nc = rng_range(1, 9);
    const size_t hw = it < 40 ? (size_t)it : (it % 10 == 0 ? 3136 : rng_range(0, 300));
    for (int type = 0; type < 2; type++) {
      float* x = falloc(nc * hw);
      float ref[16], got[16], want[16];
      fill_scaled(x, nc * hw, 3.0f);
      for (size_t p = 0; p < nc; p++) {
        double s = 0;
        float m = -INFINITY;
        for (size_t i = 0; i < hw; i++) {
          s += x[p * hw + i];
          if (x[p * hw + i] > m) m = x[p * hw + i];
        }
        want[p] = type == 0 ? m : (hw ? (float)(s / (double)hw) : 0.0f);
      }
      cnn_f32_global_pool__scalar(type, nc, hw, x, ref);
      /* scalar vs naive: same double sum in the same order -> bit-exact */
      if (first_diff_bits(ref, want, nc) != nc && !fails++)
        CHECK_BITS(ref, want, nc, "global pool type %d scalar vs naive hw=%zu", type, hw);
      for (size_t c = 1; c < g_ncfg; c++) {
        g_cfgs[c]->global_pool(type, nc, hw, x, got);
        /* max: exact; mean: both sum in double, in a different order -> the float results differ by at most one
         * rounding step: 1 ulp */
        const size_t bad = type == 0 ? first_diff_tol(got, ref, nc, 0, 0) : first_diff_tol(got, ref, nc, 0, ULP1);
        if (bad != nc && !fails++)
          CHECK(0, "global pool type %d %s vs scalar hw=%zu: %g vs %g", type, cnn_isa_name(g_cfgs[c]->isa), hw,
                got[bad], ref[bad]);
      }
      free(x);
    }
  }
  CHECK(fails == 0, "global pool: %d failures", fails);
}

/* ------------------------------------------------------------------------------------------------------------- */
/* affine, softmax, lrn, reduce                                                                                   */

static void test_channel_affine(void) {
  int fails = 0;
  const int types[5] = {CNN_ACT_NONE, CNN_ACT_RELU, CNN_ACT_CLIP, CNN_ACT_HARDSWISH, CNN_ACT_SILU};
  for (int it = 0; it < 40; it++) {
    const size_t n = rng_range(1, 2), c = rng_range(1, 7), hw = it < 10 ? (size_t)it * 7 : rng_range(0, 700);
    const cnn_act act = {types[it % 5], 0.0f, 6.0f};
    float* x = falloc(n * c * hw);
    float* ref = falloc(n * c * hw);
    float* got = falloc(n * c * hw);
    float* want = falloc(n * c * hw);
    float scale[8], shift[8];
    fill_scaled(x, n * c * hw, 3.0f);
    fill_scaled(scale, 8, 2.0f);
    fill_scaled(shift, 8, 1.0f);
    for (size_t p = 0; p < n * c; p++)
      for (size_t i = 0; i < hw; i++) {
        const float v = x[p * hw + i] * scale[p % c];
        want[p * hw + i] = v + shift[p % c];
      }
    cnn_f32_act__scalar(&act, want, want, n * c * hw);
    cnn_f32_channel_affine__scalar(n, c, hw, scale, shift, &act, x, ref);
    /* multiply then add in float, then the scalar act: bit-exact */
    if (first_diff_bits(ref, want, n * c * hw) != n * c * hw && !fails++)
      CHECK_BITS(ref, want, n * c * hw, "affine scalar vs naive hw=%zu", hw);
    for (size_t k = 1; k < g_ncfg; k++) {
      memcpy(got, x, n * c * hw * sizeof(float)); /* in place */
      g_cfgs[k]->channel_affine(n, c, hw, scale, shift, &act, got, got);
      /* affine part bit-exact; silu through the vector exp: rtol 1e-6 (see test_act) */
      const size_t bad = act_is_exact(act.type) ? first_diff_bits(got, ref, n * c * hw)
                                                : first_diff_tol(got, ref, n * c * hw, FLT_MIN, 1e-6);
      if (bad != n * c * hw && !fails++)
        CHECK(0, "affine %s %s vs scalar hw=%zu at %zu: %g vs %g", act_name(act.type), cnn_isa_name(g_cfgs[k]->isa),
              hw, bad, got[bad], ref[bad]);
    }
    free(x);
    free(ref);
    free(got);
    free(want);
  }
  CHECK(fails == 0, "channel affine: %d failures", fails);
}

static void test_softmax(void) {
  int fails = 0;
  for (int it = 0; it < 120; it++) {
    const int lg = it & 1;
    const size_t outer = rng_range(1, 3);
    const size_t axis = it < 40 ? (size_t)(it / 2) + 1 : rng_range(1, 300);
    const size_t inner = (it % 3 == 0) ? 1 : (it % 3 == 1 ? rng_range(2, 20) : 37);
    const size_t n = outer * axis * inner;
    float* x = falloc(n);
    float* ref = falloc(n);
    float* got = falloc(n);
    float* want = falloc(n);
    /* it % 5 == 4: large logits (stability: exp(x) alone would overflow) */
    fill_scaled(x, n, it % 5 == 4 ? 500.0f : 4.0f);
    for (size_t o = 0; o < outer; o++)
      for (size_t r = 0; r < inner; r++) {
        double m = -INFINITY, s = 0;
        for (size_t a = 0; a < axis; a++) m = fmax(m, x[(o * axis + a) * inner + r]);
        for (size_t a = 0; a < axis; a++) s += exp((double)x[(o * axis + a) * inner + r] - m);
        for (size_t a = 0; a < axis; a++) {
          const double v = x[(o * axis + a) * inner + r];
          want[(o * axis + a) * inner + r] = (float)(lg ? (v - m) - log(s) : exp(v - m) / s);
        }
      }
    cnn_f32_softmax__scalar(lg, outer, axis, inner, x, ref);
    /* softmax scalar vs double: the float x - m rounds once (|x - m| <= 1000 here, so up to 6e-5 absolute in the
     * argument, i.e. that much relative in the value) plus expf (1 ulp) and the final scaling: the large-logit
     * case is bounded by ulp(|x-m|) -> atol 1e-30 (far-below-max terms underflow towards 0), rtol 1e-6 for the
     * normal range and 8e-5 for the large one.
     * log-softmax: (x - m) - log(sum): absolute error ~ ulp(|x - m|) + ulp(log sum) -> atol 4 ulp of the
     * operands' magnitude. */
    const double big = it % 5 == 4 ? 1000.0 : 8.0;
    const double atol = lg ? 4 * ULP1 * big : 1e-30;
    const double rtol = lg ? 2 * ULP1 : (it % 5 == 4 ? 8e-5 : 1e-6);
    if (first_diff_tol(ref, want, n, atol, rtol) != n && !fails++)
      CHECK_TOL(ref, want, n, atol, rtol, "softmax log=%d scalar vs double: %zux%zux%zu", lg, outer, axis, inner);
    for (size_t c = 1; c < g_ncfg; c++) {
      g_cfgs[c]->softmax(lg, outer, axis, inner, x, got);
      /* vs scalar: the same float x - m on both sides; the exps differ by <= ~3.4 ulp, the sums are in double, the
       * final scale rounds once more on the SIMD side -> rtol 1e-6 (about 8 ulp); log: the same (x-m) minus a
       * log of sums that agree to ~1 ulp -> atol 2 ulp of |log sum| <= 4 ulp of the magnitude. */
      const double at2 = lg ? 4 * ULP1 * big : 1e-30, rt2 = lg ? 2 * ULP1 : 1e-6;
      if (first_diff_tol(got, ref, n, at2, rt2) != n && !fails++)
        CHECK_TOL(got, ref, n, at2, rt2, "softmax log=%d %s vs scalar: %zux%zux%zu", lg,
                  cnn_isa_name(g_cfgs[c]->isa), outer, axis, inner);
      /* in place gives the same bits */
      memcpy(want, x, n * sizeof(float));
      g_cfgs[c]->softmax(lg, outer, axis, inner, want, want);
      if (first_diff_bits(want, got, n) != n && !fails++) CHECK(0, "softmax in place differs");
    }
    for (size_t i = 0; i < n; i++)
      if (!isfinite(ref[i])) {
        if (!fails++) CHECK(0, "softmax produced %g", ref[i]);
        break;
      }
    free(x);
    free(ref);
    free(got);
    free(want);
  }
  CHECK(fails == 0, "softmax: %d failures", fails);
}

static void test_lrn(void) {
  int fails = 0;
  for (int it = 0; it < 20; it++) {
    const size_t n = rng_range(1, 2), c = rng_range(1, 12), hw = rng_range(1, 40), size = rng_range(1, 7);
    const float alpha = 1e-2f * (1 + (float)(it % 3)), beta = 0.75f, bias = 1.0f + 0.5f * (float)(it % 2);
    float* x = falloc(n * c * hw);
    float* y = falloc(n * c * hw);
    fill_scaled(x, n * c * hw, 3.0f);
    cnn_f32_lrn__scalar(n, c, hw, size, alpha, beta, bias, x, y);
    size_t bad = 0;
    for (size_t b = 0; b < n && !bad; b++)
      for (size_t ch = 0; ch < c; ch++)
        for (size_t i = 0; i < hw; i++) {
          double s = 0;
          const long lo = (long)ch - (long)((size - 1) / 2), hi = (long)ch + (long)(size / 2);
          for (long cc = lo; cc <= hi; cc++)
            if (cc >= 0 && cc < (long)c) s += (double)x[(b * c + (size_t)cc) * hw + i] * x[(b * c + (size_t)cc) * hw + i];
          const double want = x[(b * c + ch) * hw + i] / pow(bias + alpha / (double)size * s, beta);
          const float got = y[(b * c + ch) * hw + i];
          /* float sum of <= 7 squares (~4 ulp), powf (1 ulp) raised to beta < 1, a division: rtol 8 ulp */
          if (fabs(got - want) > 8 * ULP1 * fabs(want)) bad++;
        }
    if (bad && !fails++) CHECK(0, "lrn scalar vs double: n %zu c %zu hw %zu size %zu", n, c, hw, size);
    free(x);
    free(y);
  }
  CHECK(fails == 0, "lrn: %d failures", fails);
}

static void test_reduce(void) {
  int fails = 0;
  for (int it = 0; it < 60; it++) {
    const int type = it % 3;
    const size_t outer = rng_range(1, 4), axis = rng_range(1, 50), inner = it % 2 ? 1 : rng_range(1, 150);
    float* x = falloc(outer * axis * inner);
    float* y = falloc(outer * inner);
    float* want = falloc(outer * inner);
    fill_scaled(x, outer * axis * inner, 5.0f);
    for (size_t o = 0; o < outer; o++)
      for (size_t r = 0; r < inner; r++) {
        double s = 0;
        float m = -INFINITY;
        for (size_t a = 0; a < axis; a++) {
          const float v = x[(o * axis + a) * inner + r];
          s += v;
          if (v > m) m = v;
        }
        want[o * inner + r] = type == 0 ? m : (float)(type == 1 ? s / (double)axis : s);
      }
    cnn_f32_reduce__scalar(type, outer, axis, inner, x, y);
    /* double sums in the same order: bit-exact */
    if (first_diff_bits(y, want, outer * inner) != outer * inner && !fails++)
      CHECK_BITS(y, want, outer * inner, "reduce type %d %zux%zux%zu", type, outer, axis, inner);
    free(x);
    free(y);
    free(want);
  }
  CHECK(fails == 0, "reduce: %d failures", fails);
}

/* ------------------------------------------------------------------------------------------------------------- */
/* data movement                                                                                                  */

static void test_copy(void) {
  int fails = 0;
  /* random permutations (transposes) of rank 1..5 tensors: y = transpose(x, perm), y contiguous */
  for (int it = 0; it < 120; it++) {
    const size_t nd = 1 + (size_t)(it % 5);
    size_t xs_shape[CNN_MAX_DIMS], perm[CNN_MAX_DIMS], yshape[CNN_MAX_DIMS];
    size_t total = 1;
    for (size_t d = 0; d < nd; d++) {
      xs_shape[d] = rng_range(1, it % 10 == 0 ? 70 : 7);
      total *= xs_shape[d];
      perm[d] = d;
    }
    for (size_t d = nd; d-- > 1;) { /* Fisher-Yates */
      const size_t j = rng_range(0, d);
      const size_t t = perm[d];
      perm[d] = perm[j];
      perm[j] = t;
    }
    ptrdiff_t xstr[CNN_MAX_DIMS], xperm[CNN_MAX_DIMS], ystr[CNN_MAX_DIMS];
    ptrdiff_t s = 1;
    for (size_t d = nd; d-- > 0;) {
      xstr[d] = s;
      s *= (ptrdiff_t)xs_shape[d];
    }
    for (size_t d = 0; d < nd; d++) {
      yshape[d] = xs_shape[perm[d]];
      xperm[d] = xstr[perm[d]];
    }
    s = 1;
    for (size_t d = nd; d-- > 0;) {
      ystr[d] = s;
      s *= (ptrdiff_t)yshape[d];
    }
    float* x = falloc(total);
    float* y = falloc(total);
    float* want = falloc(total);
    fill_scaled(x, total, 1.0f);
    for (size_t f = 0; f < total; f++) { /* explicit index math over y */
      size_t r = f;
      ptrdiff_t xo = 0;
      for (size_t d = nd; d-- > 0;) {
        xo += (ptrdiff_t)(r % yshape[d]) * xperm[d];
        r /= yshape[d];
      }
      want[f] = x[xo];
    }
    cnn_copy_strided(nd, yshape, x, xperm, y, ystr);
    if (first_diff_bits(y, want, total) != total && !fails++) CHECK(0, "copy transpose rank %zu", nd);
    free(x);
    free(y);
    free(want);
  }
  /* negative-step slice: y = x[:, ::-1, 1::2] style on [4, 9, 11], x pointer at the first selected element */
  {
    const size_t shape[3] = {4, 9, 6};
    float x[4 * 9 * 11], y[4 * 9 * 6], want[4 * 9 * 6];
    fill_scaled(x, 4 * 9 * 11, 1.0f);
    /* dim0: all, dim1: reversed (8 down to 0), dim2: 10, 8, .., 0 (step -2) */
    const ptrdiff_t xs[3] = {99, -11, -2}, ys[3] = {54, 6, 1};
    const float* x0 = x + 8 * 11 + 10;
    for (size_t a = 0; a < 4; a++)
      for (size_t b = 0; b < 9; b++)
        for (size_t c = 0; c < 6; c++) want[(a * 9 + b) * 6 + c] = x[a * 99 + (8 - b) * 11 + (10 - 2 * c)];
    cnn_copy_strided(3, shape, x0, xs, y, ys);
    CHECK_BITS(y, want, 4 * 9 * 6, "copy negative-step slice");
    /* step -1 on the innermost dim (reversed runs) */
    const size_t shape2[2] = {9, 11};
    const ptrdiff_t xs2[2] = {11, -1}, ys2[2] = {11, 1};
    float y2[99], w2[99];
    for (size_t b = 0; b < 9; b++)
      for (size_t c = 0; c < 11; c++) w2[b * 11 + c] = x[b * 11 + 10 - c];
    cnn_copy_strided(2, shape2, x + 10, xs2, y2, ys2);
    CHECK_BITS(y2, w2, 99, "copy reversed innermost");
  }
  /* concat into a view: [2, 3, 5] and [2, 2, 5] into y [2, 5, 5] at channel offsets 0 and 3 (strided y) */
  {
    float a[30], b[20], y[50], want[50];
    fill_scaled(a, 30, 1.0f);
    fill_scaled(b, 20, 1.0f);
    const size_t sa[3] = {2, 3, 5}, sb[3] = {2, 2, 5};
    const ptrdiff_t xa[3] = {15, 5, 1}, xb[3] = {10, 5, 1}, yv[3] = {25, 5, 1};
    cnn_copy_strided(3, sa, a, xa, y, yv);
    cnn_copy_strided(3, sb, b, xb, y + 15, yv);
    for (size_t n = 0; n < 2; n++)
      for (size_t c = 0; c < 5; c++)
        for (size_t i = 0; i < 5; i++)
          want[(n * 5 + c) * 5 + i] = c < 3 ? a[(n * 3 + c) * 5 + i] : b[(n * 2 + c - 3) * 5 + i];
    CHECK_BITS(y, want, 50, "copy concat into view");
  }
  CHECK(fails == 0, "copy: %d failures", fails);

  /* fill and gather */
  {
    float y[37];
    cnn_fill(y, 37, 2.5f);
    int ok = 1;
    for (int i = 0; i < 37; i++) ok &= y[i] == 2.5f;
    cnn_fill(y, 37, 0.0f);
    for (int i = 0; i < 37; i++) ok &= same_bits(y[i], 0.0f);
    cnn_fill(y, 37, -0.0f);
    for (int i = 0; i < 37; i++) ok &= same_bits(y[i], -0.0f);
    CHECK(ok, "fill");
    float x[3 * 5 * 4], g[3 * 6 * 4];
    fill_scaled(x, 60, 1.0f);
    const int64_t idx[6] = {4, 0, 0, 2, 3, 1};
    cnn_gather(3, 5, 4, idx, 6, x, g);
    ok = 1;
    for (size_t o = 0; o < 3; o++)
      for (size_t i = 0; i < 6; i++)
        for (size_t r = 0; r < 4; r++) ok &= same_bits(g[(o * 6 + i) * 4 + r], x[(o * 5 + (size_t)idx[i]) * 4 + r]);
    CHECK(ok, "gather");
  }
}

/* ------------------------------------------------------------------------------------------------------------- */
/* parallel wrappers: any split gives the kernel's bits                                                          */

static void test_parallel(cnn_threadpool* pool) {
  for (size_t c = 0; c < g_ncfg; c++) {
    const cnn_eltwise_config* cfg = g_cfgs[c];
    const char* isa = cnn_isa_name(cfg->isa);
    const size_t nc = 40, h = 57, w = 63;
    cnn_pool2d_desc d = {0, 0, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1};
    const size_t oh = pool_out(h, 1, 1, 3, 2, 1, 0), ow = pool_out(w, 1, 1, 3, 2, 1, 0);
    const size_t nx = nc * h * w, ny = nc * oh * ow;
    float* x = falloc(nx);
    float* y1 = falloc(nx);
    float* y2 = falloc(nx);
    fill_scaled(x, nx, 4.0f);
    for (int type = 0; type < 2; type++) {
      d.type = type;
      cfg->pool2d(&d, nc, h, w, oh, ow, x, y1);
      cnn_pool2d_run(cfg, &d, nc, h, w, oh, ow, x, y2, pool);
      CHECK_BITS(y2, y1, ny, "%s pool2d_run type %d", isa, type);
      cfg->global_pool(type, nc, h * w, x, y1);
      cnn_global_pool_run(cfg, type, nc, h * w, x, y2, pool);
      CHECK_BITS(y2, y1, nc, "%s global_pool_run type %d", isa, type);
    }
    const cnn_act act = {CNN_ACT_SILU, 0, 0};
    cfg->act(&act, x, y1, nx - 5);
    cnn_act_run(cfg, &act, x, y2, nx - 5, pool);
    CHECK_BITS(y2, y1, nx - 5, "%s act_run", isa);
    float scale[20], shift[20];
    fill_scaled(scale, 20, 2.0f);
    fill_scaled(shift, 20, 1.0f);
    const cnn_act relu = {CNN_ACT_RELU, 0, 0};
    cfg->channel_affine(2, 20, h * w, scale, shift, &relu, x, y1);
    cnn_channel_affine_run(cfg, 2, 20, h * w, scale, shift, &relu, x, y2, pool);
    CHECK_BITS(y2, y1, nx, "%s channel_affine_run", isa);
    cfg->softmax(0, 140, 1000, 1, x, y1);
    cnn_softmax_run(cfg, 0, 140, 1000, 1, x, y2, pool);
    CHECK_BITS(y2, y1, 140000, "%s softmax_run", isa);
    cfg->softmax(1, 7, 30, 500, x, y1);
    cnn_softmax_run(cfg, 1, 7, 30, 500, x, y2, NULL);
    CHECK_BITS(y2, y1, 7 * 30 * 500, "%s softmax_run inline", isa);
    free(x);
    free(y1);
    free(y2);
  }
}

static void test_config(void) {
  const cnn_eltwise_config* s = cnn_eltwise_config_get(CNN_ISA_SCALAR);
  CHECK(s && s->isa == CNN_ISA_SCALAR && s->act == cnn_f32_act__scalar, "scalar config");
  const cnn_eltwise_config* a = cnn_eltwise_config_get(-1);
  CHECK(a != NULL, "active config");
  const cnn_eltwise_config* v = cnn_eltwise_config_get(CNN_ISA_AVX2);
  CHECK((v != NULL) == (cnn_hw_isa_supported(CNN_ISA_AVX2) != 0), "avx2 config iff supported");
  if (v) CHECK(v->isa == CNN_ISA_AVX2 && v->pool2d && v->softmax && v->binary, "avx2 table filled");
  const cnn_eltwise_config* nv = cnn_eltwise_config_get(CNN_ISA_NEON);
  CHECK((nv != NULL) == (cnn_hw_isa_supported(CNN_ISA_NEON) != 0), "neon config iff supported");
#if defined(__aarch64__)
  if (nv)
    CHECK(nv->isa == CNN_ISA_NEON && nv->act == cnn_f32_act__neon && nv->binary == cnn_f32_binary__neon &&
              nv->pool2d == cnn_f32_pool2d__neon && nv->global_pool == cnn_f32_global_pool__neon &&
              nv->channel_affine == cnn_f32_channel_affine__neon && nv->softmax == cnn_f32_softmax__neon,
          "neon table filled with the NEON kernels");
#endif
  CHECK(cnn_eltwise_config_get(CNN_ISA_COUNT) == NULL, "unknown isa");
}

int main(int argc, char** argv) {
  uint64_t seed = argc > 1 ? strtoull(argv[1], NULL, 0) : 12345;
  rng_seed(seed);
  printf("test_eltwise: seed %llu\n", (unsigned long long)seed);
  g_ref = cnn_eltwise_config_get(CNN_ISA_SCALAR);
  g_cfgs[g_ncfg++] = g_ref;
  for (int isa = 1; isa < CNN_ISA_COUNT; isa++) {
    const cnn_eltwise_config* c = cnn_eltwise_config_get(isa);
    if (c && c != g_ref) g_cfgs[g_ncfg++] = c;
  }
  for (size_t c = 0; c < g_ncfg; c++) printf("  testing %s\n", cnn_isa_name(g_cfgs[c]->isa));
  cnn_threadpool* pool = cnn_threadpool_create(2);

  test_config();
  test_act();
  test_act_sweep();
  test_binary();
  test_binary_nd(pool);
  test_binary_rows(pool);
  test_pool2d();
  test_pool2d_2x2();
  test_pool2d_3x3s2();
  test_global_pool();
  test_channel_affine();
  test_softmax();
  test_lrn();
  test_reduce();
  test_copy();
  test_parallel(pool);

  cnn_threadpool_destroy(pool);
  printf("test_eltwise: %zu array comparisons (%zu elements), %zu mismatched\n", g_cmp, g_cmp_elems, g_cmp_bad);
  return test_summary("test_eltwise");
}
