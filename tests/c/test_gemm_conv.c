/* Tests of the SGEMM micro-kernels, packing, cnn_sgemm, the fully connected op and every convolution algorithm on
 * every ISA this CPU supports, against the naive references (cnn_gemm_ref, cnn_conv2d_ref: double sums).
 *
 * Tolerance (the same rule everywhere, fixed before looking at results):
 *   An output is a sum of n terms (products a_k*b_k, the bias, the residual) added in some order in float. The
 *   classical worst-case bound for floating-point summation in ANY order (Higham, "Accuracy and Stability of
 *   Numerical Algorithms", 2nd ed., sec. 3.1 and 4.2) is |computed - exact| <= gamma_n * S with
 *   gamma_n = n*u / (1 - n*u), u = 2^-24 and S = sum_k |term_k| (products rounded or fused: at most one more
 *   rounding per term, counted in n). The references sum in double and round once (one more u*|exact| <= u*S).
 *   So for each output:      tol = gamma_{n+2} * S            (S computed by running the reference on |operands|)
 *   Clamps are 1-Lipschitz and do not change it. Other activations f, computed by the element-wise kernel in float
 *   while the reference evaluates f in double on the exact sum, add their Lipschitz constant and their own error:
 *                            tol = L * gamma_{n+2} * S + 16*u*(1 + |want|),   L = 1.5 * max(1, |act.a|)
 *   (|f'| <= 1.5 for hardswish, <= max(1,|a|) for leaky / hardsigmoid(a x + b), <= 1.1 for silu, <= 1 for the
 *   others; "a few ulp" is the element-wise kernels' documented accuracy).
 *   Micro-kernel vs micro-kernel (both float): each is within gamma*S of the exact value, so tol = 2*gamma*S.
 *   This bound cannot fail for a correct kernel whatever its summation order, and a single wrong or missing term
 *   (typically ~S/n) is still far above it for the sizes used here (n*gamma_n ~ n^2 u << 1). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cnnrt/common.h"
#include "cnnrt/conv.h"
#include "cnnrt/eltwise.h"
#include "cnnrt/gemm.h"
#include "cnnrt/hardware.h"
#include "cnnrt/threadpool.h"
#include "test_util.h"

static float* falloc(size_t n) {
  float* p = (float*)cnn_aligned_alloc((n ? n : 1) * sizeof(float));
  if (!p) {
    fprintf(stderr, "out of memory\n");
    exit(2);
  }
  return p;
}
static float* frand(size_t n) {
  float* p = falloc(n);
  rng_fill(p, n);
  return p;
}
static float* fabs_copy(const float* x, size_t n) {
  if (!x) return NULL;
  float* p = falloc(n);
  for (size_t i = 0; i < n; i++) p[i] = fabsf(x[i]);
  return p;
}

/* worst |got-want| / tol over n outputs; tol per output as described at the top. nterms: terms per output sum. */
static double worst_ratio(const float* got, const float* want, const float* S, size_t n, size_t nterms,
                          const cnn_act* act, size_t* where) {
  return worst_gamma_ratio(got, want, S, n, gamma_n(nterms + 2), act, where);
}

static const char* act_name(int t) {
  static const char* names[] = {"none", "relu", "clip", "leaky", "sigmoid", "hardsigmoid", "hardswish", "silu", "tanh"};
  return t >= 0 && t <= 8 ? names[t] : "?";
}

/* y = act(x) in double, the oracle for the GEMM tests (same formulas as common.h) */
static float act_ref1(const cnn_act* a, double x) {
  switch (a->type) {
    case CNN_ACT_RELU: return (float)(x > 0 ? x : 0);
    case CNN_ACT_CLIP: x = x < a->a ? a->a : x; return (float)(x > a->b ? a->b : x);
    case CNN_ACT_LEAKY: return (float)(x >= 0 ? x : a->a * x);
    case CNN_ACT_SIGMOID: return (float)(1.0 / (1.0 + exp(-x)));
    case CNN_ACT_HARDSIGMOID: { double v = a->a * x + a->b; v = v < 0 ? 0 : v; return (float)(v > 1 ? 1 : v); }
    case CNN_ACT_HARDSWISH: { double v = x / 6.0 + 0.5; v = v < 0 ? 0 : v; return (float)(x * (v > 1 ? 1 : v)); }
    case CNN_ACT_SILU: return (float)(x / (1.0 + exp(-x)));
    case CNN_ACT_TANH: return (float)tanh(x);
    default: return (float)x;
  }
}

static int isa_list(int* isas) {
  int n = 0;
  for (int isa = 0; isa < CNN_ISA_COUNT; isa++)
    if (cnn_hw_isa_supported(isa) && (isa == CNN_ISA_SCALAR || isa == CNN_ISA_AVX2 || isa == CNN_ISA_AVX512 || isa == CNN_ISA_NEON))
      isas[n++] = isa;
  return n;
}

/* ============================================================================================================ */
/* micro-kernels: AVX2 vs scalar */

#define LDC 21 /* > 16: columns past n must stay untouched */
#define SENTINEL 1234.5f

/* 1x16 GEMV micro-kernels (every ISA that has one) against the scalar 1x16 reference: kc odd/even/1, n 1..16,
 * accumulate, each epilogue term. */
static void test_gemv_ukernels(void) {
  int isas[4];
  const int nisa = isa_list(isas);
  const size_t kcs[] = {1, 2, 3, 8, 255, 300};
  for (int ii = 0; ii < nisa; ii++) {
    const cnn_gemm_config* cfg = cnn_gemm_config_get(isas[ii]);
    if (!cfg || !cfg->gemv || cfg->nr != 16) continue;
    for (size_t ki = 0; ki < sizeof(kcs) / sizeof(kcs[0]); ki++)
      for (size_t n = 1; n <= 16; n += (n < 3 ? 1 : 5)) {
        const size_t kc = kcs[ki];
        float* a = frand(kc);
        float* b = frand(kc * 16);
        float* bc = frand(16);
        float* br = frand(1);
        float* res = frand(16);
        float* c0 = frand(17);
        float* c1 = falloc(17);
        memcpy(c1, c0, 17 * sizeof(float));
        const int acc = (int)rng_range(0, 1);
        cnn_gemm_epilogue e = {rng_range(0, 1) ? br : NULL, rng_range(0, 1) ? bc : NULL, rng_range(0, 1) ? res : NULL,
                               16, rng_range(0, 1) ? -0.5f : -INFINITY, rng_range(0, 1) ? 0.7f : INFINITY};
        const int with_epi = (int)rng_range(0, 2) != 0;
        cnn_f32_gemm_ukernel_1x16__scalar(1, n, kc, a, b, c0, 16, acc, with_epi ? &e : NULL);
        cfg->gemv(1, n, kc, a, b, c1, 16, acc, with_epi ? &e : NULL);
        double worst = 0;
        for (size_t j = 0; j < 17; j++) {
          const double d = fabs((double)c0[j] - (double)c1[j]);
          if (j >= n) CHECK(c0[j] == c1[j], "gemv %s wrote column %zu >= n=%zu", cnn_isa_name(isas[ii]), j, n);
          if (d > worst) worst = d;
        }
        CHECK(worst <= 1e-4 * (double)(kc + 4), "gemv %s kc=%zu n=%zu: diff %g", cnn_isa_name(isas[ii]), kc, n, worst);
        float* fr[] = {a, b, bc, br, res, c0, c1};
        for (size_t i = 0; i < sizeof(fr) / sizeof(fr[0]); i++) cnn_aligned_free(fr[i]);
      }
  }
}

/* Two-panel GEMV kernels (cnn_gemm_config.gemv2): n 1..32 (one panel only for n <= 16), kc odd/even/1, accumulate,
 * each epilogue term; every column bit-equal to the ISA's 1x16 kernel on its panel (the 1x32 kernel forms the same
 * sums in the same order), and within the 1x16 test's bound of the scalar 1x32 reference; columns >= n and the
 * second panel's columns beyond n untouched. */
static void test_gemv2_ukernels(void) {
  int isas[4];
  const int nisa = isa_list(isas);
  const size_t kcs[] = {1, 2, 3, 8, 255, 300};
  int ran = 0;
  for (int ii = 0; ii < nisa; ii++) {
    const cnn_gemm_config* cfg = cnn_gemm_config_get(isas[ii]);
    if (!cfg || !cfg->gemv2 || !cfg->gemv || cfg->nr != 16) continue;
    for (size_t ki = 0; ki < sizeof(kcs) / sizeof(kcs[0]); ki++)
      for (size_t n = 1; n <= 32; n += (n < 3 || (n >= 15 && n <= 18) ? 1 : 5)) {
        const size_t kc = kcs[ki];
        float* a = frand(kc);
        float* b = frand(kc * 32);
        float* bc = frand(32);
        float* br = frand(1);
        float* res = frand(32);
        float* c0 = frand(33);
        float* c1 = falloc(33);
        float* c2 = falloc(33);
        memcpy(c1, c0, 33 * sizeof(float));
        memcpy(c2, c0, 33 * sizeof(float));
        const int acc = (int)rng_range(0, 1);
        cnn_gemm_epilogue e = {rng_range(0, 1) ? br : NULL, rng_range(0, 1) ? bc : NULL, rng_range(0, 1) ? res : NULL,
                               32, rng_range(0, 1) ? -0.5f : -INFINITY, rng_range(0, 1) ? 0.7f : INFINITY};
        const int with_epi = (int)rng_range(0, 2) != 0;
        cnn_f32_gemm_ukernel_1x32__scalar(1, n, kc, a, b, c0, 32, acc, with_epi ? &e : NULL);
        cfg->gemv2(1, n, kc, a, b, c1, 32, acc, with_epi ? &e : NULL);
        /* the ISA's 1x16 kernel on each panel */
        cfg->gemv(1, n < 16 ? n : 16, kc, a, b, c2, 32, acc, with_epi ? &e : NULL);
        if (n > 16) {
          cnn_gemm_epilogue e2 = e;
          if (e2.bias_col) e2.bias_col += 16;
          if (e2.residual) e2.residual += 16;
          cfg->gemv(1, n - 16, kc, a, b + 16 * kc, c2 + 16, 32, acc, with_epi ? &e2 : NULL);
        }
        double worst = 0;
        for (size_t j = 0; j < 33; j++) {
          const double d = fabs((double)c0[j] - (double)c1[j]);
          if (j >= n) CHECK(c0[j] == c1[j], "gemv2 %s wrote column %zu >= n=%zu", cnn_isa_name(isas[ii]), j, n);
          if (d > worst) worst = d;
        }
        CHECK(worst <= 1e-4 * (double)(kc + 4), "gemv2 %s kc=%zu n=%zu: diff %g vs the reference",
              cnn_isa_name(isas[ii]), kc, n, worst);
        CHECK(memcmp(c1, c2, 33 * sizeof(float)) == 0, "gemv2 %s kc=%zu n=%zu: not the 1x16 kernel's bits",
              cnn_isa_name(isas[ii]), kc, n);
        ran++;
        float* fr[] = {a, b, bc, br, res, c0, c1, c2};
        for (size_t i = 0; i < sizeof(fr) / sizeof(fr[0]); i++) cnn_aligned_free(fr[i]);
      }
  }
  CHECK(ran > 0, "gemv2: no ISA has a two-panel kernel");
}

/* The epilogue of mode eo (0: none, 1: bias row, 2: bias col, 3: residual, 4: clamp, 5: all) with residual row stride
 * ld, and the C before a micro-kernel call: c0 = c1 = SENTINEL outside the m x n tile, random inside. */
static cnn_gemm_epilogue tile_epi(int eo, const float* bias_row, const float* bias_col, const float* res, size_t ld) {
  cnn_gemm_epilogue e = {NULL, NULL, NULL, ld, -INFINITY, INFINITY};
  if (eo == 1 || eo == 5) e.bias_row = bias_row;
  if (eo == 2 || eo == 5) e.bias_col = bias_col;
  if (eo == 3 || eo == 5) e.residual = res;
  if (eo == 4 || eo == 5) {
    e.min = -0.3f;
    e.max = 0.4f;
  }
  return e;
}
static void tile_c_init(float* c0, float* c1, size_t rows, size_t ldc, size_t m, size_t n) {
  for (size_t i = 0; i < rows * ldc; i++) c0[i] = SENTINEL;
  for (size_t i = 0; i < m; i++)
    for (size_t j = 0; j < n; j++) c0[i * ldc + j] = rng_f();
  memcpy(c1, c0, rows * ldc * sizeof(float));
}

static void test_ukernels(void) {
#if defined(__x86_64__)
  if (!cnn_hw_isa_supported(CNN_ISA_AVX2)) {
    printf("ukernel: AVX2 not supported, skipped\n");
    return;
  }
  const size_t kcs[] = {1, 2, 7, 255, 300};
  int fails = 0;
  for (size_t ki = 0; ki < sizeof(kcs) / sizeof(kcs[0]); ki++) {
    const size_t kc = kcs[ki];
    float* a = falloc(kc * 6);
    float* b = falloc(kc * 16);
    float* aa = falloc(kc * 6);
    float* ab = falloc(kc * 16);
    for (size_t m = 1; m <= 6; m++)
      for (size_t n = 1; n <= 16; n++) {
        /* packed panels: zero past m / n, as the contract says */
        for (size_t k = 0; k < kc; k++) {
          for (size_t i = 0; i < 6; i++) a[k * 6 + i] = i < m ? rng_f() : 0.0f;
          for (size_t j = 0; j < 16; j++) b[k * 16 + j] = j < n ? rng_f() : 0.0f;
        }
        for (size_t i = 0; i < kc * 6; i++) aa[i] = fabsf(a[i]);
        for (size_t i = 0; i < kc * 16; i++) ab[i] = fabsf(b[i]);
        float bias_row[6], bias_col[16], res[8 * LDC];
        rng_fill(bias_row, 6);
        rng_fill(bias_col, 16);
        rng_fill(res, 8 * LDC);
        for (int accumulate = 0; accumulate <= 1; accumulate++)
          for (int eo = 0; eo < 6; eo++) {
            const cnn_gemm_epilogue e = tile_epi(eo, bias_row, bias_col, res, LDC);
            float c0[8 * LDC], c1[8 * LDC];
            tile_c_init(c0, c1, 8, LDC, m, n);
            float cp[8 * LDC];
            memcpy(cp, c0, sizeof(c0));
            cnn_f32_gemm_ukernel_6x16__scalar(m, n, kc, a, b, c0, LDC, accumulate, eo ? &e : NULL);
            cnn_f32_gemm_ukernel_6x16__avx2(m, n, kc, a, b, c1, LDC, accumulate, eo ? &e : NULL);
            /* the prefetching entry (lines of A, more or fewer than its loop steps): the same bits */
            cnn_f32_gemm_ukernel_6x16_pf__avx2(m, n, kc, a, b, 0, cp, LDC, accumulate, eo ? &e : NULL, a,
                                               rng_range(0, kc * 6 * sizeof(float) / 64 + 2));
            CHECK(memcmp(cp, c1, sizeof(cp)) == 0, "ukernel avx2 pf entry differs m=%zu n=%zu kc=%zu acc=%d epi=%d", m,
                  n, kc, accumulate, eo);

            /* S per output: sum |a*b| + |biases| + |residual| (scalar kernel on absolute values) + |C| */
            float cabs[8 * LDC];
            for (size_t i = 0; i < 8 * LDC; i++) cabs[i] = 0;
            cnn_gemm_epilogue ea = e;
            float abr[6], abc[16], ares[8 * LDC];
            for (int i = 0; i < 6; i++) abr[i] = fabsf(bias_row[i]);
            for (int i = 0; i < 16; i++) abc[i] = fabsf(bias_col[i]);
            for (int i = 0; i < 8 * LDC; i++) ares[i] = fabsf(res[i]);
            ea.bias_row = e.bias_row ? abr : NULL;
            ea.bias_col = e.bias_col ? abc : NULL;
            ea.residual = e.residual ? ares : NULL;
            ea.min = -INFINITY;
            ea.max = INFINITY;
            cnn_f32_gemm_ukernel_6x16__scalar(m, n, kc, aa, ab, cabs, LDC, 0, &ea);
            int ok = 1;
            for (size_t i = 0; i < 8 && ok; i++)
              for (size_t j = 0; j < LDC && ok; j++) {
                const size_t o = i * LDC + j;
                if (i >= m || j >= n) {
                  if (c1[o] != SENTINEL) ok = 0; /* touched outside the tile */
                  continue;
                }
                double s = cabs[o];
                if (accumulate) {
                  /* c0 was overwritten: the accumulated C is bounded by 1 (rng_f) */
                  s += 1.0;
                }
                const double tol = 2 * gamma_n(kc + 4) * s;
                if (fabs((double)c0[o] - (double)c1[o]) > tol) ok = 0;
              }
            if (!ok && fails++ < 10)
              printf("  ukernel mismatch m=%zu n=%zu kc=%zu acc=%d epi=%d\n", m, n, kc, accumulate, eo);
            CHECK(ok, "ukernel avx2 vs scalar m=%zu n=%zu kc=%zu acc=%d epi=%d", m, n, kc, accumulate, eo);
          }
      }
    cnn_aligned_free(a);
    cnn_aligned_free(b);
    cnn_aligned_free(aa);
    cnn_aligned_free(ab);
  }
#endif
}

/* The unpacked-B micro-kernels (1x1 convolutions read B in place): AVX2 vs the scalar one on full panels (the only
 * ones callers pass), every m, B rows ldb >= 16 apart (past n: garbage that must not matter), each epilogue part. */
static void test_ukernel_ldb(void) {
  const size_t kcs[] = {1, 3, 64, 255};
  int fails = 0;
  for (size_t ki = 0; ki < sizeof(kcs) / sizeof(kcs[0]); ki++) {
    const size_t kc = kcs[ki], ldb = 16 + rng_range(0, 40);
    float* a = falloc(kc * 6);
    float* b = frand(kc * ldb);
    float* ab = falloc(kc * ldb);
    for (size_t i = 0; i < kc * ldb; i++) ab[i] = fabsf(b[i]);
    for (size_t m = 1; m <= 6; m++) {
      for (size_t k = 0; k < kc; k++)
        for (size_t i = 0; i < 6; i++) a[k * 6 + i] = i < m ? rng_f() : 0.0f;
      float aa[6 * 256];
      for (size_t i = 0; i < kc * 6; i++) aa[i] = fabsf(a[i]);
      float bias_row[6], res[8 * LDC];
      rng_fill(bias_row, 6);
      rng_fill(res, 8 * LDC);
      for (int accumulate = 0; accumulate <= 1; accumulate++)
        for (int eo = 0; eo < 4; eo++) { /* none, bias row, residual, all + clamp */
          cnn_gemm_epilogue e = {NULL, NULL, NULL, LDC, -INFINITY, INFINITY};
          if (eo == 1 || eo == 3) e.bias_row = bias_row;
          if (eo >= 2) e.residual = res;
          if (eo == 3) {
            e.min = -0.3f;
            e.max = 0.4f;
          }
          float c0[8 * LDC], c1[8 * LDC], cabs[8 * LDC];
          for (size_t i = 0; i < 8 * LDC; i++) c0[i] = SENTINEL;
          for (size_t i = 0; i < m; i++)
            for (size_t j = 0; j < 16; j++) c0[i * LDC + j] = rng_f();
          memcpy(c1, c0, sizeof(c0));
          float cp[8 * LDC];
          memcpy(cp, c0, sizeof(c0));
          cnn_f32_gemm_ukernel_6x16_ldb__scalar(m, 16, kc, a, b, ldb, c0, LDC, accumulate, eo ? &e : NULL);
#if defined(__x86_64__)
          if (cnn_hw_isa_supported(CNN_ISA_AVX2)) {
            cnn_f32_gemm_ukernel_6x16_ldb__avx2(m, 16, kc, a, b, ldb, c1, LDC, accumulate, eo ? &e : NULL);
            cnn_f32_gemm_ukernel_6x16_pf__avx2(m, 16, kc, a, b, ldb, cp, LDC, accumulate, eo ? &e : NULL, a,
                                               rng_range(0, kc * 6 * sizeof(float) / 64 + 2));
            CHECK(memcmp(cp, c1, sizeof(cp)) == 0, "ukernel ldb avx2 pf entry differs m=%zu kc=%zu acc=%d epi=%d", m, kc,
                  accumulate, eo);
          } else
#endif
            cnn_f32_gemm_ukernel_6x16_ldb__scalar(m, 16, kc, a, b, ldb, c1, LDC, accumulate, eo ? &e : NULL);
          /* S: the scalar kernel on absolute values (no clamp) + |C| */
          float ares[8 * LDC], abr[6];
          for (size_t i = 0; i < 8 * LDC; i++) ares[i] = fabsf(res[i]);
          for (size_t i = 0; i < 6; i++) abr[i] = fabsf(bias_row[i]);
          cnn_gemm_epilogue ea = {e.bias_row ? abr : NULL, NULL, e.residual ? ares : NULL, LDC, -INFINITY, INFINITY};
          for (size_t i = 0; i < 8 * LDC; i++) cabs[i] = 0;
          cnn_f32_gemm_ukernel_6x16_ldb__scalar(m, 16, kc, aa, ab, ldb, cabs, LDC, 0, &ea);
          int ok = 1;
          for (size_t i = 0; i < 8 && ok; i++)
            for (size_t j = 0; j < LDC && ok; j++) {
              const size_t o = i * LDC + j;
              if (i >= m || j >= 16) {
                if (c1[o] != SENTINEL) ok = 0;
                continue;
              }
              const double tol = 2 * gamma_n(kc + 4) * (cabs[o] + (accumulate ? 1.0 : 0.0));
              if (fabs((double)c0[o] - (double)c1[o]) > tol) ok = 0;
            }
          if (!ok && fails++ < 10) printf("  ukernel ldb mismatch m=%zu kc=%zu ldb=%zu acc=%d epi=%d\n", m, kc, ldb, accumulate, eo);
          CHECK(ok, "ukernel ldb vs scalar m=%zu kc=%zu ldb=%zu acc=%d epi=%d", m, kc, ldb, accumulate, eo);
        }
    }
    cnn_aligned_free(a);
    cnn_aligned_free(b);
    cnn_aligned_free(ab);
  }
}

/* ============================================================================================================ */
/* sgemm and fc vs cnn_gemm_ref */

/* c1 (rows x ldc floats) against the exact tile in double precision: A a packed panel of mr rows (a[k*mr + i]), B
 * consecutive packed 16-column panels of kc rows (column j of row k at b[(j/16)*kc*16 + k*16 + j%16]), c0 the C
 * before the call, e the epilogue (NULL fields and infinite bounds for none). Within the m x n tile
 * |got - exact| <= gamma_{kc+4} * S, S = sum |a*b| + |C| + |biases| + |residual|; outside it c1 must still hold
 * SENTINEL. The micro-kernel tests of the NEON and AVX-512 kernels share it. */
static int exact_tile_ok(size_t m, size_t n, size_t kc, const float* a, size_t mr, const float* b, const float* c0,
                         const float* c1, size_t rows, size_t ldc, int accumulate, const cnn_gemm_epilogue* e) {
  for (size_t i = 0; i < rows; i++)
    for (size_t j = 0; j < ldc; j++) {
      const size_t o = i * ldc + j;
      if (i >= m || j >= n) {
        if (c1[o] != SENTINEL) return 0;
        continue;
      }
      double want = 0, S = 0;
      for (size_t k = 0; k < kc; k++) {
        const double t = (double)a[k * mr + i] * (double)b[(j / 16) * kc * 16 + k * 16 + j % 16];
        want += t;
        S += fabs(t);
      }
      if (accumulate) { want += c0[o]; S += fabs(c0[o]); }
      if (e->bias_row) { want += e->bias_row[i]; S += fabs(e->bias_row[i]); }
      if (e->bias_col) { want += e->bias_col[j]; S += fabs(e->bias_col[j]); }
      if (e->residual) { want += e->residual[i * e->res_ld + j]; S += fabs(e->residual[i * e->res_ld + j]); }
      want = want < e->min ? e->min : (want > e->max ? e->max : want);
      if (fabs((double)c1[o] - want) > gamma_n(kc + 4) * S) return 0;
    }
  return 1;
}

#if defined(__aarch64__)
/* NEON 6x16 micro-kernel (and, for m == 1, the 1x16 GEMV one) vs a double-precision tile computed here (every
 * m <= 6, n <= 16, both accumulate modes, each epilogue part): |got - exact| <= gamma_{kc+4} * S,
 * S = sum |a*b| + |C| + |biases| + |residual|; nothing
 * outside the m x n tile is written. */
static void test_ukernel_neon(void) {
  enum { UMR = 6, UNR = 16, ULDC = 21, UROWS = 8 };
  const size_t kcs[] = {1, 2, 7, 255, 300};
  int fails = 0;
  for (size_t ki = 0; ki < sizeof(kcs) / sizeof(kcs[0]); ki++) {
    const size_t kc = kcs[ki];
    float* a = falloc(kc * UMR);
    float* b = falloc(kc * UNR);
    for (size_t m = 1; m <= UMR; m++)
      for (size_t n = 1; n <= UNR; n++) {
        for (size_t k = 0; k < kc; k++) {
          for (size_t i = 0; i < UMR; i++) a[k * UMR + i] = i < m ? rng_f() : 0.0f;
          for (size_t j = 0; j < UNR; j++) b[k * UNR + j] = j < n ? rng_f() : 0.0f;
        }
        float bias_row[UMR], bias_col[UNR], res[UROWS * ULDC];
        rng_fill(bias_row, UMR);
        rng_fill(bias_col, UNR);
        rng_fill(res, UROWS * ULDC);
        for (int accumulate = 0; accumulate <= 1; accumulate++)
          for (int eo = 0; eo < 6; eo++) { /* 0: none, 1: bias row, 2: bias col, 3: residual, 4: clamp, 5: all */
            const cnn_gemm_epilogue e = tile_epi(eo, bias_row, bias_col, res, ULDC);
            float c0[UROWS * ULDC], c1[UROWS * ULDC];
            tile_c_init(c0, c1, UROWS, ULDC, m, n);
            cnn_f32_gemm_ukernel_6x16__neon(m, n, kc, a, b, c1, ULDC, accumulate, eo ? &e : NULL);
            float cg[UROWS * ULDC];
            if (m == 1) { /* the GEMV kernel reads A as kc contiguous floats: column 0 of the panel */
              float* arow = falloc(kc);
              for (size_t k = 0; k < kc; k++) arow[k] = a[k * UMR];
              memcpy(cg, c0, sizeof(c0));
              cnn_f32_gemm_ukernel_1x16__neon(1, n, kc, arow, b, cg, ULDC, accumulate, eo ? &e : NULL);
              cnn_aligned_free(arow);
            }
            const int ok = exact_tile_ok(m, n, kc, a, UMR, b, c0, c1, UROWS, ULDC, accumulate, &e) &&
                           (m != 1 || exact_tile_ok(m, n, kc, a, UMR, b, c0, cg, UROWS, ULDC, accumulate, &e));
            if (!ok && fails++ < 10)
              printf("  ukernel neon mismatch m=%zu n=%zu kc=%zu acc=%d epi=%d\n", m, n, kc, accumulate, eo);
            CHECK(ok, "ukernel neon vs exact m=%zu n=%zu kc=%zu acc=%d epi=%d", m, n, kc, accumulate, eo);
          }
      }
    cnn_aligned_free(a);
    cnn_aligned_free(b);
  }
  const cnn_gemm_config* cfg = cnn_gemm_config_get(CNN_ISA_NEON);
  CHECK(cfg && cfg->isa == CNN_ISA_NEON && cfg->mr == UMR && cfg->nr == UNR &&
            cfg->ukernel == cnn_f32_gemm_ukernel_6x16__neon && cfg->gemv == cnn_f32_gemm_ukernel_1x16__neon,
        "neon gemm config");
}
#endif

#if defined(__x86_64__)
/* AVX-512F 16x16 micro-kernel, packed and unpacked B, vs a double-precision tile computed here: every m <= 16
 * (the 4-, 8- and 16-row paths), every n <= 16 (the rows-in-lanes path for n <= 8, masked columns above), both
 * accumulate modes, each epilogue part, kc 1..300 (odd, not a multiple of the unroll);
 * |got - exact| <= gamma_{kc+4} * S, S = sum |a*b| + |C| + |biases| + |residual|; nothing outside the m x n tile is
 * written. The unpacked-B variant reads rows ldb >= 16 apart whose columns past n hold garbage. */
static void test_ukernel_avx512(void) {
  if (!cnn_hw_isa_supported(CNN_ISA_AVX512)) {
    printf("ukernel avx512: AVX-512F not supported, skipped\n");
    return;
  }
  enum { UMR = 16, UNR = 16, ULDC = 21, UROWS = 18 };
  const size_t kcs[] = {1, 2, 3, 7, 64, 255, 300};
  int fails = 0;
  for (size_t ki = 0; ki < sizeof(kcs) / sizeof(kcs[0]); ki++) {
    const size_t kc = kcs[ki], ldb = 16 + rng_range(0, 40);
    float* a = falloc(kc * UMR);
    float* b = falloc(kc * UNR);
    float* bu = falloc(kc * ldb);
    for (size_t m = 1; m <= UMR; m++)
      for (size_t n = 1; n <= UNR; n++) {
        for (size_t k = 0; k < kc; k++) {
          for (size_t i = 0; i < UMR; i++) a[k * UMR + i] = i < m ? rng_f() : 0.0f;
          for (size_t j = 0; j < UNR; j++) b[k * UNR + j] = j < n ? rng_f() : 0.0f;
          for (size_t j = 0; j < ldb; j++) bu[k * ldb + j] = j < n ? b[k * UNR + j] : 1e3f * rng_f();
        }
        float bias_row[UMR], bias_col[UNR], res[UROWS * ULDC];
        rng_fill(bias_row, UMR);
        rng_fill(bias_col, UNR);
        rng_fill(res, UROWS * ULDC);
        /* variant 0: packed B; 1: unpacked B; 2: packed B through the prefetching entry (lines of A, more or fewer
         * than kc) */
        for (int variant = 0; variant < 3; variant++)
          for (int accumulate = 0; accumulate <= 1; accumulate++)
            for (int eo = 0; eo < 6; eo++) { /* 0: none, 1: bias row, 2: bias col, 3: residual, 4: clamp, 5: all */
              if (variant >= 1 && n <= 8 && eo != 5) continue; /* the narrow path: one mode is enough */
              const cnn_gemm_epilogue e = tile_epi(eo, bias_row, bias_col, res, ULDC);
              float c0[UROWS * ULDC], c1[UROWS * ULDC];
              tile_c_init(c0, c1, UROWS, ULDC, m, n);
              if (variant == 0)
                cnn_f32_gemm_ukernel_16x16__avx512(m, n, kc, a, b, c1, ULDC, accumulate, eo ? &e : NULL);
              else if (variant == 1)
                cnn_f32_gemm_ukernel_16x16_ldb__avx512(m, n, kc, a, bu, ldb, c1, ULDC, accumulate, eo ? &e : NULL);
              else
                cnn_f32_gemm_ukernel_16x16_pf__avx512(m, n, kc, a, b, 0, c1, ULDC, accumulate, eo ? &e : NULL, a,
                                                      rng_range(0, kc * UMR * sizeof(float) / 64));
              const int ok = exact_tile_ok(m, n, kc, a, UMR, b, c0, c1, UROWS, ULDC, accumulate, &e);
              if (!ok && fails++ < 10)
                printf("  ukernel avx512 mismatch variant %d m=%zu n=%zu kc=%zu acc=%d epi=%d\n", variant,
                       m, n, kc, accumulate, eo);
              CHECK(ok, "ukernel avx512 variant %d vs exact m=%zu n=%zu kc=%zu acc=%d epi=%d", variant, m, n, kc,
                    accumulate, eo);
            }
      }
    cnn_aligned_free(a);
    cnn_aligned_free(b);
    cnn_aligned_free(bu);
  }
  /* the wide tile: a full panel and a last one of 1..8 columns (n = 17..24), B as two consecutive packed panels */
  for (size_t ki = 0; ki < sizeof(kcs) / sizeof(kcs[0]); ki++) {
    const size_t kc = kcs[ki];
    float* a = falloc(kc * UMR);
    float* b = falloc(2 * kc * UNR);
    for (size_t m = 1; m <= UMR; m += (m < 4 ? 1 : 3))
      for (size_t n = 17; n <= 24; n++) {
        for (size_t k = 0; k < kc; k++) {
          for (size_t i = 0; i < UMR; i++) a[k * UMR + i] = i < m ? rng_f() : 0.0f;
          for (size_t j = 0; j < UNR; j++) b[k * UNR + j] = rng_f();
          for (size_t j = 0; j < UNR; j++) b[kc * UNR + k * UNR + j] = 16 + j < n ? rng_f() : 0.0f;
        }
        enum { WLDC = 29 };
        float bias_row[UMR], bias_col[24], res[UROWS * WLDC];
        rng_fill(bias_row, UMR);
        rng_fill(bias_col, 24);
        rng_fill(res, UROWS * WLDC);
        for (int accumulate = 0; accumulate <= 1; accumulate++)
          for (int eo = 0; eo < 6; eo++) {
            const cnn_gemm_epilogue e = tile_epi(eo, bias_row, bias_col, res, WLDC);
            float c0[UROWS * WLDC], c1[UROWS * WLDC];
            tile_c_init(c0, c1, UROWS, WLDC, m, n);
            cnn_f32_gemm_ukernel_16x16_wide__avx512(m, n, kc, a, b, c1, WLDC, accumulate, eo ? &e : NULL, a,
                                                    rng_range(0, kc * UMR * sizeof(float) / 64 + 2));
            const int ok = exact_tile_ok(m, n, kc, a, UMR, b, c0, c1, UROWS, WLDC, accumulate, &e);
            if (!ok && fails++ < 10)
              printf("  ukernel avx512 wide mismatch m=%zu n=%zu kc=%zu acc=%d epi=%d\n", m, n, kc, accumulate, eo);
            CHECK(ok, "ukernel avx512 wide vs exact m=%zu n=%zu kc=%zu acc=%d epi=%d", m, n, kc, accumulate, eo);
          }
      }
    cnn_aligned_free(a);
    cnn_aligned_free(b);
  }
  const cnn_gemm_config* cfg = cnn_gemm_config_get(CNN_ISA_AVX512);
  CHECK(cfg && cfg->isa == CNN_ISA_AVX512 && cfg->mr == UMR && cfg->nr == UNR &&
            cfg->ukernel == cnn_f32_gemm_ukernel_16x16__avx512 &&
            cfg->ukernel_ldb == cnn_f32_gemm_ukernel_16x16_ldb__avx512 &&
            cfg->ukernel_pf == cnn_f32_gemm_ukernel_16x16_pf__avx512 &&
            cfg->ukernel_wide == cnn_f32_gemm_ukernel_16x16_wide__avx512,
        "avx512 gemm config");
}
#endif

static void test_sgemm_one(const cnn_gemm_config* cfg, cnn_threadpool* pool, size_t M, size_t N, size_t K, int ta,
                           int tb, int eo, const cnn_act* act) {
  const size_t lda = ta ? M : K, ldb = tb ? K : N, ldc = N + (eo & 8 ? 3 : 0);
  const size_t a_rs = ta ? 1 : lda, a_cs = ta ? lda : 1, b_rs = tb ? 1 : ldb, b_cs = tb ? ldb : 1;
  float* a = frand(M * K);
  float* b = frand(K * N);
  float* br = frand(M);
  float* bc = frand(N);
  float* res = frand(M * ldc);
  float* c = falloc(M * ldc);
  float* want = falloc(M * ldc);
  float* S = falloc(M * ldc);
  for (size_t i = 0; i < M * ldc; i++) c[i] = SENTINEL;
  cnn_gemm_epilogue e = {(eo & 1) ? br : NULL, (eo & 2) ? bc : NULL, (eo & 4) ? res : NULL, ldc, -INFINITY, INFINITY};
  int inplace = (eo & 16) && e.residual;
  if (inplace) { /* residual == C */
    memcpy(c, res, M * ldc * sizeof(float));
    e.residual = c;
  }
  /* reference: pre-activation with the clamp-free epilogue, then act in double */
  cnn_gemm_epilogue er = e;
  er.residual = e.residual ? res : NULL;
  cnn_gemm_ref(M, N, K, a, a_rs, a_cs, b, b_rs, b_cs, want, ldc, &er);
  for (size_t i = 0; i < M; i++)
    for (size_t j = 0; j < N; j++) want[i * ldc + j] = act_ref1(act, want[i * ldc + j]);
  float *aa = fabs_copy(a, M * K), *ab = fabs_copy(b, K * N), *abr = fabs_copy(br, M), *abc = fabs_copy(bc, N),
        *ares = fabs_copy(res, M * ldc);
  cnn_gemm_epilogue ea = {e.bias_row ? abr : NULL, e.bias_col ? abc : NULL, e.residual ? ares : NULL, ldc,
                          -INFINITY, INFINITY};
  cnn_gemm_ref(M, N, K, aa, a_rs, a_cs, ab, b_rs, b_cs, S, ldc, &ea);

  const size_t nthreads = cnn_threadpool_size(pool);
  const size_t wsb = cnn_sgemm_workspace_size(cfg, M, N, K, nthreads);
  void* ws = cnn_aligned_alloc(wsb);
  cnn_sgemm(cfg, M, N, K, a, a_rs, a_cs, b, b_rs, b_cs, c, ldc, &e, act, ws, pool);
  /* compare the valid part, check the gap columns are untouched */
  int untouched = 1;
  double worst = 0;
  for (size_t i = 0; i < M; i++) {
    double r = worst_ratio(c + i * ldc, want + i * ldc, S + i * ldc, N, K + 2, act, NULL);
    if (r > worst) worst = r;
    for (size_t j = N; j < ldc; j++)
      if (c[i * ldc + j] != (inplace ? res[i * ldc + j] : SENTINEL)) untouched = 0;
  }
  CHECK(worst <= 1 && untouched, "sgemm isa=%d M=%zu N=%zu K=%zu ta=%d tb=%d epi=%d act=%s threads=%zu: ratio %g%s",
        cfg->isa, M, N, K, ta, tb, eo, act_name(act->type), nthreads, worst, untouched ? "" : " (wrote outside)");
  cnn_aligned_free(ws);
  float* fr[] = {a, b, br, bc, res, c, want, S, aa, ab, abr, abc, ares};
  for (size_t i = 0; i < sizeof(fr) / sizeof(fr[0]); i++) cnn_aligned_free(fr[i]);
}

static void test_sgemm(cnn_threadpool* pool1, cnn_threadpool* pool2) {
  int isas[4];
  const int nisa = isa_list(isas);
  const cnn_act none = {CNN_ACT_NONE, 0, 0};
  for (int ii = 0; ii < nisa; ii++) {
    const cnn_gemm_config* cfg = cnn_gemm_config_get(isas[ii]);
    CHECK(cfg != NULL && cfg->isa == isas[ii], "gemm config for isa %d", isas[ii]);
    if (!cfg) continue;
    /* fixed: K not a multiple of KC, K just above KC, tiny, edge tiles */
    const size_t fixed[][3] = {{1, 1, 1},    {6, 16, 1},  {7, 17, 257}, {13, 33, 300}, {64, 64, 64},
                               {5, 200, 513}, {100, 3, 90}, {150, 40, 260}, {1, 1000, 70}, {1, 1, 0}};
    for (size_t f = 0; f < sizeof(fixed) / sizeof(fixed[0]); f++)
      for (int t = 0; t < 2; t++)
        test_sgemm_one(cfg, t ? pool2 : pool1, fixed[f][0], fixed[f][1], fixed[f][2], 0, 0, 7, &none);
    /* randomized: odd sizes, transposed strides, epilogue options, activations */
    for (int it = 0; it < 40; it++) {
      const size_t M = rng_range(1, 160), N = rng_range(1, 160), K = rng_range(1, 600);
      const cnn_act act = random_act();
      test_sgemm_one(cfg, (it & 1) ? pool2 : pool1, M, N, K, (int)rng_range(0, 1), (int)rng_range(0, 1),
                     (int)rng_range(0, 31), &act);
    }
  }
}

static void test_fc_one(int isa, cnn_threadpool* pool, size_t M, size_t K, size_t N, int tw, int with_bias,
                        int with_res, const cnn_act* act) {
  const size_t w_rs = tw ? 1 : N, w_cs = tw ? K : 1;
  float* x = frand(M * K);
  float* w = frand(K * N);
  float* bias = frand(N);
  float* res = frand(M * N);
  float* y = falloc(M * N);
  float* want = falloc(M * N);
  float* S = falloc(M * N);
  cnn_fc_weights* fw = cnn_fc_weights_create(K, N, w, w_rs, w_cs, with_bias ? bias : NULL, isa);
  CHECK(fw != NULL, "fc create");
  if (!fw) return;
  cnn_gemm_epilogue er = {NULL, with_bias ? bias : NULL, with_res ? res : NULL, N, -INFINITY, INFINITY};
  cnn_gemm_ref(M, N, K, x, K, 1, w, w_rs, w_cs, want, N, &er);
  for (size_t i = 0; i < M * N; i++) want[i] = act_ref1(act, want[i]);
  float *ax = fabs_copy(x, M * K), *aw = fabs_copy(w, K * N), *ab = fabs_copy(bias, N), *ar = fabs_copy(res, M * N);
  cnn_gemm_epilogue ea = {NULL, with_bias ? ab : NULL, with_res ? ar : NULL, N, -INFINITY, INFINITY};
  cnn_gemm_ref(M, N, K, ax, K, 1, aw, w_rs, w_cs, S, N, &ea);
  const size_t nthreads = cnn_threadpool_size(pool);
  void* ws = cnn_aligned_alloc(cnn_fc_workspace_size(fw, M, nthreads));
  cnn_fc_run(fw, M, x, K, 1, y, with_res ? res : NULL, act, ws, pool);
  const double r = worst_ratio(y, want, S, M * N, K + 2, act, NULL);
  CHECK(r <= 1, "fc isa=%d M=%zu K=%zu N=%zu tw=%d bias=%d res=%d act=%s threads=%zu: ratio %g", isa, M, K, N, tw,
        with_bias, with_res, act_name(act->type), nthreads, r);
  CHECK(cnn_fc_weights_bytes(fw) >= K * N * sizeof(float), "fc bytes");
  cnn_aligned_free(ws);
  cnn_fc_weights_destroy(fw);
  float* fr[] = {x, w, bias, res, y, want, S, ax, aw, ab, ar};
  for (size_t i = 0; i < sizeof(fr) / sizeof(fr[0]); i++) cnn_aligned_free(fr[i]);
}

static void test_fc(cnn_threadpool* pool1, cnn_threadpool* pool2) {
  int isas[4];
  const int nisa = isa_list(isas);
  for (int ii = 0; ii < nisa; ii++) {
    const cnn_act relu = {CNN_ACT_RELU, 0, 0};
    test_fc_one(isas[ii], pool2, 1, 512, 100, 1, 1, 0, &relu);   /* batch 1, ONNX transB=1 */
    test_fc_one(isas[ii], pool1, 3, 700, 37, 0, 1, 1, &relu);    /* K > KC, residual */
    /* 2 threads, M > 1, tasks across N: X packed once into the shared block (K blocks packed in parallel) */
    test_fc_one(isas[ii], pool2, 32, 1100, 150, 1, 1, 1, &relu);
    test_fc_one(isas[ii], pool2, 7, 513, 97, 0, 0, 1, &relu);
    for (int it = 0; it < 16; it++) {
      const cnn_act act = random_act();
      test_fc_one(isas[ii], (it & 1) ? pool2 : pool1, rng_range(1, 20), rng_range(1, 400), rng_range(1, 150),
                  (int)rng_range(0, 1), (int)rng_range(0, 1), (int)rng_range(0, 1), &act);
    }
    /* M == 1: the GEMV (1x16) kernel: K across several K blocks and odd, N not a multiple of 16, every epilogue */
    for (int it = 0; it < 12; it++) {
      const cnn_act act = random_act();
      test_fc_one(isas[ii], (it & 1) ? pool2 : pool1, 1, rng_range(1, 900), rng_range(1, 200), (int)rng_range(0, 1),
                  (int)rng_range(0, 1), (int)rng_range(0, 1), &act);
    }
    /* in-place residual (residual == y), M = 5 and M = 1 */
    for (int mi = 0; mi < 2; mi++) {
      const size_t M = mi ? 1 : 5, K = 300, N = 40;
      float* x = frand(M * K);
      float* w = frand(K * N);
      float* y = frand(M * N);
      float* want = falloc(M * N);
      float* S = falloc(M * N);
      float *ax = fabs_copy(x, M * K), *aw = fabs_copy(w, K * N), *ay = fabs_copy(y, M * N);
      cnn_gemm_epilogue er = {NULL, NULL, y, N, -INFINITY, INFINITY};
      cnn_gemm_ref(M, N, K, x, K, 1, w, N, 1, want, N, &er);
      cnn_gemm_epilogue ea = {NULL, NULL, ay, N, -INFINITY, INFINITY};
      cnn_gemm_ref(M, N, K, ax, K, 1, aw, N, 1, S, N, &ea);
      cnn_fc_weights* fw = cnn_fc_weights_create(K, N, w, N, 1, NULL, isas[ii]);
      void* ws = cnn_aligned_alloc(cnn_fc_workspace_size(fw, M, 2));
      const cnn_act none = {CNN_ACT_NONE, 0, 0};
      cnn_fc_run(fw, M, x, K, 1, y, y, &none, ws, pool2);
      const double r = worst_ratio(y, want, S, M * N, K + 2, &none, NULL);
      CHECK(r <= 1, "fc in-place residual isa=%d: ratio %g", isas[ii], r);
      cnn_aligned_free(ws);
      cnn_fc_weights_destroy(fw);
      float* fr[] = {x, w, y, want, S, ax, aw, ay};
      for (size_t i = 0; i < sizeof(fr) / sizeof(fr[0]); i++) cnn_aligned_free(fr[i]);
    }
    CHECK(cnn_fc_weights_create(0, 4, (const float*)&pool1, 4, 1, NULL, isas[ii]) == NULL, "fc rejects K=0");
  }
}

/* ============================================================================================================ */
/* convolution */

typedef struct {
  cnn_conv2d_desc d;
  size_t batch, h, w;
  int with_bias, with_res, inplace;
} conv_case;

static const char* algo_name(int a) {
  switch (a) {
    case CNN_CONV_ALGO_AUTO: return "auto";
    case CNN_CONV_ALGO_GEMM: return "gemm";
    case CNN_CONV_ALGO_DEPTHWISE: return "depthwise";
    case CNN_CONV_ALGO_DIRECT: return "direct";
    case CNN_CONV_ALGO_REFERENCE: return "reference";
    default: return "?";
  }
}

static void print_case(const conv_case* c) {
  const cnn_conv2d_desc* d = &c->d;
  printf("    n=%zu cin=%zu cout=%zu g=%zu hw=%zux%zu k=%zux%zu s=%zux%zu d=%zux%zu pad=%zu,%zu,%zu,%zu bias=%d res=%d%s "
         "act=%s\n",
         c->batch, d->in_channels, d->out_channels, d->groups, c->h, c->w, d->kernel_h, d->kernel_w, d->stride_h,
         d->stride_w, d->dilation_h, d->dilation_w, d->pad_top, d->pad_left, d->pad_bottom, d->pad_right,
         c->with_bias, c->with_res, c->inplace ? "(in-place)" : "", act_name(d->act.type));
}

/* Runs case c with every algorithm that applies on every ISA, with 1 and 2 threads. */
static void run_conv_case(const conv_case* c, cnn_threadpool* pool2) {
  const cnn_conv2d_desc* d = &c->d;
  size_t oh, ow;
  if (!cnn_conv2d_out_size(d, c->h, c->w, &oh, &ow)) return;
  const size_t cin_g = d->in_channels / d->groups;
  const size_t in_n = c->batch * d->in_channels * c->h * c->w, out_n = c->batch * d->out_channels * oh * ow;
  const size_t w_n = d->out_channels * cin_g * d->kernel_h * d->kernel_w;
  float* in = frand(in_n);
  float* wt = frand(w_n);
  float* bias = c->with_bias ? frand(d->out_channels) : NULL;
  float* res = c->with_res ? frand(out_n) : NULL;
  float* want = falloc(out_n);
  float* S = falloc(out_n);
  float* out = falloc(out_n);
  cnn_conv2d_ref(d, c->batch, c->h, c->w, in, wt, bias, res, want);
  {
    cnn_conv2d_desc da = *d;
    da.act.type = CNN_ACT_NONE;
    float *ai = fabs_copy(in, in_n), *aw = fabs_copy(wt, w_n), *ab = fabs_copy(bias, d->out_channels),
          *ar = fabs_copy(res, out_n);
    cnn_conv2d_ref(&da, c->batch, c->h, c->w, ai, aw, ab, ar, S);
    cnn_aligned_free(ai);
    cnn_aligned_free(aw);
    cnn_aligned_free(ab);
    cnn_aligned_free(ar);
  }
  const size_t nterms = cin_g * d->kernel_h * d->kernel_w + 2;
  const int dw_shape = d->groups == d->in_channels;
  const int algos[] = {CNN_CONV_ALGO_AUTO, CNN_CONV_ALGO_GEMM, CNN_CONV_ALGO_DIRECT, CNN_CONV_ALGO_DEPTHWISE,
                       CNN_CONV_ALGO_REFERENCE};
  int isas[4];
  const int nisa = isa_list(isas);
  for (int ii = 0; ii < nisa; ii++)
    for (size_t ai = 0; ai < sizeof(algos) / sizeof(algos[0]); ai++) {
      const int algo = algos[ai];
      int st = 12345;
      cnn_conv2d_weights* cw = cnn_conv2d_weights_create(d, wt, bias, isas[ii], algo, &st);
      if (algo == CNN_CONV_ALGO_DEPTHWISE && !dw_shape) {
        CHECK(cw == NULL && st == CNN_ERR_UNSUPPORTED, "depthwise must refuse a non-depthwise shape");
        cnn_conv2d_weights_destroy(cw);
        continue;
      }
      CHECK(cw != NULL && st == CNN_OK, "conv create isa=%d algo=%s status %d", isas[ii], algo_name(algo), st);
      if (!cw) {
        print_case(c);
        continue;
      }
      if (algo == CNN_CONV_ALGO_AUTO) {
        /* Winograd is AUTO's pick only for 3x3 stride-1 dilation-1 groups-1 layers */
        const int wino_ok = d->kernel_h == 3 && d->kernel_w == 3 && d->stride_h == 1 && d->stride_w == 1 &&
                            d->dilation_h == 1 && d->dilation_w == 1 && d->groups == 1;
        const int got = cnn_conv2d_weights_algo(cw);
        /* the direct kernel's shapes: groups 1, Cin <= 4, dilation 1, stride_w 1 or 2, kh*kw <= 64 */
        const int direct_ok = d->groups == 1 && d->in_channels <= CNN_DIRECT_MAX_CIN && d->dilation_h == 1 &&
                              d->dilation_w == 1 && d->stride_w <= 2 && d->kernel_h * d->kernel_w <= 64;
        CHECK(direct_ok ? got == CNN_CONV_ALGO_DIRECT
              : dw_shape ? got == CNN_CONV_ALGO_DEPTHWISE
                         : (got == CNN_CONV_ALGO_GEMM || (wino_ok && got == CNN_CONV_ALGO_WINOGRAD)),
              "auto picks direct for few input channels, else depthwise iff groups == Cin, Winograd only where it "
              "applies");
      }
      if (algo == CNN_CONV_ALGO_DIRECT) {
        const int direct_ok = d->groups == 1 && d->in_channels <= CNN_DIRECT_MAX_CIN && d->dilation_h == 1 &&
                              d->dilation_w == 1 && d->stride_w <= 2 && d->kernel_h * d->kernel_w <= 64;
        CHECK(cnn_conv2d_weights_algo(cw) == (direct_ok ? CNN_CONV_ALGO_DIRECT : CNN_CONV_ALGO_GEMM),
              "direct where it applies, else GEMM");
      }
      for (size_t nthreads = 1; nthreads <= 2; nthreads++) {
        cnn_conv2d_plan plan;
        const int ps = cnn_conv2d_plan_init(&plan, cw, c->batch, c->h, c->w, nthreads);
        CHECK(ps == CNN_OK && plan.out_h == oh && plan.out_w == ow, "plan");
        if (ps != CNN_OK) continue;
        void* ws = plan.workspace_bytes ? cnn_aligned_alloc(plan.workspace_bytes) : NULL;
        const float* r = res;
        if (c->inplace && res) {
          memcpy(out, res, out_n * sizeof(float));
          r = out;
        } else {
          for (size_t i = 0; i < out_n; i++) out[i] = NAN; /* every output must be written */
        }
        /* nthreads == 1 with a 2-thread pool: the run must fall back to one thread (workspace has 1 slice) */
        cnn_conv2d_run(&plan, in, out, r, ws, pool2);
        size_t where;
        const double ratio = worst_ratio(out, want, S, out_n, nterms, &d->act, &where);
        CHECK(ratio <= 1, "conv isa=%s algo=%s threads=%zu: ratio %g at %zu (got %g want %g)", cnn_isa_name(isas[ii]),
              algo_name(algo), nthreads, ratio, where, out[where], want[where]);
        if (ratio > 1) print_case(c);
        cnn_aligned_free(ws);
      }
      cnn_conv2d_weights_destroy(cw);
    }
  float* fr[] = {in, wt, bias, res, want, S, out};
  for (size_t i = 0; i < sizeof(fr) / sizeof(fr[0]); i++) cnn_aligned_free(fr[i]);
}

static conv_case make_case(size_t batch, size_t cin, size_t cout, size_t g, size_t h, size_t w, size_t kh, size_t kw,
                           size_t s, size_t dil, size_t pad, int bias, int res, int act) {
  conv_case c;
  memset(&c, 0, sizeof(c));
  c.d.in_channels = cin;
  c.d.out_channels = cout;
  c.d.groups = g;
  c.d.kernel_h = kh;
  c.d.kernel_w = kw;
  c.d.stride_h = c.d.stride_w = s;
  c.d.dilation_h = c.d.dilation_w = dil;
  c.d.pad_top = c.d.pad_left = c.d.pad_bottom = c.d.pad_right = pad;
  c.d.act.type = act;
  if (act == CNN_ACT_CLIP) {
    c.d.act.a = 0;
    c.d.act.b = 6;
  }
  c.batch = batch;
  c.h = h;
  c.w = w;
  c.with_bias = bias;
  c.with_res = res;
  return c;
}

static void test_conv_random(cnn_threadpool* pool2, int ncases) {
  static const size_t ks[][2] = {{1, 1}, {3, 3}, {5, 5}, {7, 7}, {1, 3}, {3, 1}};
  int done = 0, tries = 0;
  while (done < ncases && tries < 100 * ncases) {
    tries++;
    conv_case c;
    memset(&c, 0, sizeof(c));
    cnn_conv2d_desc* d = &c.d;
    const size_t kk = rng_range(0, 5);
    d->kernel_h = ks[kk][0];
    d->kernel_w = ks[kk][1];
    d->stride_h = rng_range(1, 3);
    d->stride_w = rng_range(0, 3) ? d->stride_h : rng_range(1, 3);
    d->dilation_h = rng_range(0, 2) ? 1 : rng_range(2, 3);
    d->dilation_w = rng_range(0, 3) ? d->dilation_h : rng_range(1, 3);
    d->pad_top = rng_range(0, 3);
    d->pad_left = rng_range(0, 3);
    d->pad_bottom = rng_range(0, 3);
    d->pad_right = rng_range(0, 3);
    const size_t gsel = rng_range(0, 5);
    if (gsel >= 4) { /* depthwise, sometimes with a channel multiplier */
      d->in_channels = d->groups = rng_range(1, 40);
      d->out_channels = d->in_channels * (rng_range(0, 3) ? 1 : rng_range(2, 3));
    } else {
      const size_t g = gsel == 3 ? 3 : gsel == 2 ? 2 : 1;
      d->groups = g;
      d->in_channels = g * rng_range(1, 40 / g);
      d->out_channels = g * rng_range(1, 40 / g);
    }
    c.batch = rng_range(1, 3);
    c.h = rng_range(1, 20);
    c.w = rng_range(1, 20);
    if (rng_range(0, 1)) { /* mostly odd sizes */
      c.h |= 1;
      c.w |= 1;
    }
    c.with_bias = (int)rng_range(0, 1);
    c.with_res = (int)rng_range(0, 2) == 0;
    c.inplace = c.with_res && rng_range(0, 3) == 0;
    d->act = random_act();
    size_t oh, ow;
    if (!cnn_conv2d_out_size(d, c.h, c.w, &oh, &ow)) {
      /* the kernel does not fit: the plan must refuse it */
      int st;
      float* wt = frand(d->out_channels * (d->in_channels / d->groups) * d->kernel_h * d->kernel_w);
      cnn_conv2d_weights* cw = cnn_conv2d_weights_create(d, wt, NULL, -1, CNN_CONV_ALGO_AUTO, &st);
      cnn_conv2d_plan p;
      CHECK(cw && cnn_conv2d_plan_init(&p, cw, c.batch, c.h, c.w, 1) != CNN_OK, "plan must reject a kernel that does "
            "not fit");
      cnn_conv2d_weights_destroy(cw);
      cnn_aligned_free(wt);
      continue;
    }
    /* keep each case cheap (the reference is naive and runs under sanitizers too) */
    const double macs = (double)c.batch * d->out_channels * oh * ow * (d->in_channels / d->groups) * d->kernel_h *
                        d->kernel_w;
    if (macs > 3e5) continue;
    run_conv_case(&c, pool2);
    done++;
  }
  printf("conv random: %d cases\n", done);
}

/* Stride-2 implicit GEMM (the AVX2 packer's de-interleaving masked loads): panels spanning several output rows
 * (OW 1..24), every kernel width, padding 0..3 on each side, dilation 1..2, K blocks. Same bound as every conv case. */
static void test_conv_stride2(cnn_threadpool* pool2, int ncases) {
  static const size_t ks[][2] = {{1, 1}, {3, 3}, {5, 5}, {7, 7}, {1, 3}, {3, 1}, {2, 2}};
  int done = 0, tries = 0;
  while (done < ncases && tries < 100 * ncases) {
    tries++;
    conv_case c;
    memset(&c, 0, sizeof(c));
    cnn_conv2d_desc* d = &c.d;
    const size_t kk = rng_range(0, 6);
    d->kernel_h = ks[kk][0];
    d->kernel_w = ks[kk][1];
    d->stride_w = 2;
    d->stride_h = rng_range(1, 2);
    d->dilation_h = rng_range(0, 3) ? 1 : 2;
    d->dilation_w = rng_range(0, 3) ? 1 : 2;
    d->pad_top = rng_range(0, 3);
    d->pad_left = rng_range(0, 3);
    d->pad_bottom = rng_range(0, 3);
    d->pad_right = rng_range(0, 3);
    d->groups = 1;
    d->in_channels = rng_range(0, 5) ? rng_range(1, 12) : rng_range(40, 70); /* sometimes K > KC */
    d->out_channels = rng_range(1, 20);
    c.batch = rng_range(1, 2);
    c.h = rng_range(1, 16);
    c.w = rng_range(1, 48);
    c.with_bias = (int)rng_range(0, 1);
    c.with_res = (int)rng_range(0, 2) == 0;
    d->act = random_act();
    size_t oh, ow;
    if (!cnn_conv2d_out_size(d, c.h, c.w, &oh, &ow)) continue;
    const double macs = (double)c.batch * d->out_channels * oh * ow * d->in_channels * d->kernel_h * d->kernel_w;
    if (macs > 4e5) continue;
    run_conv_case(&c, pool2);
    done++;
  }
  printf("conv stride 2: %d cases\n", done);
}

static void test_conv_regressions(cnn_threadpool* pool2) {
  conv_case c;
  /* 1x1 pointwise, N not a multiple of 16, K > KC (two K blocks) */
  c = make_case(1, 300, 20, 1, 5, 7, 1, 1, 1, 1, 0, 1, 1, CNN_ACT_RELU);
  run_conv_case(&c, pool2);
  /* 3x3, K = 576 (ResNet 64 channels: 3 K blocks), output panels crossing rows, in-place residual */
  c = make_case(1, 64, 13, 1, 9, 9, 3, 3, 1, 1, 1, 1, 1, CNN_ACT_CLIP);
  c.inplace = 1;
  run_conv_case(&c, pool2);
  /* output rows of exactly 16 and 17 pixels (panel boundaries), stride 2 interior fast path */
  c = make_case(2, 8, 12, 1, 16, 16, 3, 3, 1, 1, 1, 0, 0, CNN_ACT_NONE);
  run_conv_case(&c, pool2);
  c = make_case(1, 5, 7, 1, 40, 35, 3, 3, 2, 1, 1, 1, 0, CNN_ACT_SILU);
  run_conv_case(&c, pool2);
  c = make_case(1, 3, 6, 1, 17, 40, 5, 5, 1, 1, 2, 1, 1, CNN_ACT_HARDSWISH);
  run_conv_case(&c, pool2);
  /* padding larger than the kernel: whole border rows/columns read only padding */
  c = make_case(1, 4, 5, 1, 3, 4, 3, 3, 1, 1, 3, 1, 1, CNN_ACT_NONE);
  run_conv_case(&c, pool2);
  /* kernel covering the whole padded input: 1x1 output */
  c = make_case(2, 6, 9, 3, 5, 5, 7, 7, 1, 1, 1, 1, 0, CNN_ACT_TANH);
  run_conv_case(&c, pool2);
  /* stride larger than the kernel, dilation */
  c = make_case(1, 4, 4, 2, 19, 19, 3, 3, 3, 2, 2, 0, 1, CNN_ACT_LEAKY);
  run_conv_case(&c, pool2);
  /* depthwise: 3x3 s1 fast path (wide rows), s2, 5x5, multiplier 2, 1x1 plane */
  c = make_case(1, 6, 6, 6, 20, 45, 3, 3, 1, 1, 1, 1, 1, CNN_ACT_CLIP);
  run_conv_case(&c, pool2);
  c = make_case(1, 5, 5, 5, 21, 43, 3, 3, 2, 1, 1, 1, 0, CNN_ACT_RELU);
  run_conv_case(&c, pool2);
  c = make_case(2, 3, 3, 3, 30, 33, 5, 5, 1, 1, 2, 1, 1, CNN_ACT_SIGMOID);
  run_conv_case(&c, pool2);
  c = make_case(1, 4, 8, 4, 9, 26, 3, 3, 1, 2, 2, 1, 0, CNN_ACT_NONE);
  run_conv_case(&c, pool2);
  c = make_case(1, 7, 7, 7, 1, 1, 3, 3, 1, 1, 1, 1, 1, CNN_ACT_RELU);
  run_conv_case(&c, pool2);
  c = make_case(1, 2, 2, 2, 12, 50, 3, 3, 3, 1, 0, 0, 0, CNN_ACT_NONE);
  run_conv_case(&c, pool2);
  /* depthwise in-place residual */
  c = make_case(1, 3, 3, 3, 11, 29, 3, 3, 1, 1, 1, 1, 1, CNN_ACT_NONE);
  c.inplace = 1;
  run_conv_case(&c, pool2);
  /* depthwise, 8-channels-in-lanes kernel (multiplier 1, >= 8 channels, rows <= 32): full and partial channel groups,
   * 3x3/5x5/1x7 s1/s2, planes under 8 pixels, rows under 8 columns (masked transposes), the overlapping last
   * transpose block with an in-place residual, padding larger than the kernel */
  c = make_case(1, 20, 20, 20, 14, 14, 3, 3, 1, 1, 1, 1, 1, CNN_ACT_CLIP);
  run_conv_case(&c, pool2);
  c = make_case(2, 19, 19, 19, 14, 14, 3, 3, 2, 1, 1, 1, 0, CNN_ACT_RELU);
  run_conv_case(&c, pool2);
  c = make_case(1, 16, 16, 16, 7, 7, 3, 3, 1, 1, 1, 1, 1, CNN_ACT_NONE);
  c.inplace = 1;
  run_conv_case(&c, pool2);
  c = make_case(1, 24, 24, 24, 13, 11, 3, 3, 1, 1, 1, 0, 1, CNN_ACT_NONE);
  c.inplace = 1;
  run_conv_case(&c, pool2);
  c = make_case(1, 17, 17, 17, 28, 28, 5, 5, 1, 1, 2, 1, 0, CNN_ACT_SILU);
  run_conv_case(&c, pool2);
  c = make_case(1, 9, 9, 9, 15, 15, 5, 5, 2, 1, 2, 1, 1, CNN_ACT_HARDSWISH);
  run_conv_case(&c, pool2);
  c = make_case(1, 8, 8, 8, 2, 3, 3, 3, 1, 1, 1, 1, 1, CNN_ACT_RELU);
  run_conv_case(&c, pool2);
  c = make_case(1, 8, 8, 8, 5, 6, 3, 3, 3, 1, 3, 0, 0, CNN_ACT_NONE);
  run_conv_case(&c, pool2);
  c = make_case(1, 10, 10, 10, 6, 31, 1, 7, 1, 1, 0, 1, 0, CNN_ACT_NONE);
  c.d.pad_left = c.d.pad_right = 3;
  run_conv_case(&c, pool2);
  /* depthwise padded-plane kernel: odd left padding (stride 2 phase swap), rows of 8..40 columns, multiplier 3 */
  c = make_case(1, 3, 9, 3, 23, 37, 3, 3, 2, 1, 1, 1, 1, CNN_ACT_NONE);
  c.d.pad_left = 0;
  run_conv_case(&c, pool2);
  c = make_case(1, 4, 4, 4, 9, 40, 5, 5, 2, 1, 2, 0, 0, CNN_ACT_CLIP);
  c.d.pad_left = 3;
  run_conv_case(&c, pool2);
  c = make_case(1, 1, 16, 1, 33, 35, 3, 3, 1, 1, 1, 1, 0, CNN_ACT_RELU);
  run_conv_case(&c, pool2);
  /* depthwise straight from the input planes (AVX2 no-copy kernel: planes whose padded copy would exceed 32 KB,
   * with rows wider than the 8-channel kernel takes, or a multiplier, or fewer than 8 channels): stride 2 with odd
   * sizes and batch 2, 5x5 with an in-place residual and multiplier 2, asymmetric padding with pure-padding rows and
   * columns, stride 2 down / 1 across, SiLU */
  c = make_case(2, 5, 5, 5, 61, 121, 3, 3, 2, 1, 1, 1, 0, CNN_ACT_SILU);
  run_conv_case(&c, pool2);
  c = make_case(1, 3, 6, 3, 85, 99, 5, 5, 1, 1, 2, 1, 1, CNN_ACT_CLIP);
  c.inplace = 1;
  run_conv_case(&c, pool2);
  c = make_case(1, 12, 12, 12, 90, 101, 3, 3, 1, 1, 1, 0, 1, CNN_ACT_RELU);
  c.d.pad_top = 3;
  c.d.pad_left = 0;
  c.d.pad_right = 4;
  run_conv_case(&c, pool2);
  c = make_case(2, 9, 9, 9, 70, 150, 5, 5, 2, 1, 2, 1, 0, CNN_ACT_NONE);
  c.d.stride_w = 1;
  run_conv_case(&c, pool2);
  /* wide rows: many 16-pixel panels with every tap inside the input (the packer's fast path), 3x3, 5x5,
   * dilation 2, groups */
  c = make_case(1, 24, 10, 1, 30, 50, 3, 3, 1, 1, 1, 1, 1, CNN_ACT_RELU);
  run_conv_case(&c, pool2);
  c = make_case(2, 7, 9, 1, 21, 70, 5, 5, 1, 1, 2, 1, 0, CNN_ACT_NONE);
  run_conv_case(&c, pool2);
  c = make_case(1, 8, 12, 2, 19, 41, 3, 3, 1, 2, 2, 0, 1, CNN_ACT_SILU);
  c.inplace = 1;
  run_conv_case(&c, pool2);
  c = make_case(1, 100, 8, 1, 9, 37, 3, 3, 1, 1, 0, 1, 0, CNN_ACT_NONE); /* K = 900: several K blocks */
  run_conv_case(&c, pool2);
  /* asymmetric padding on a 1x3 kernel */
  c = make_case(1, 5, 6, 1, 7, 23, 1, 3, 1, 1, 0, 1, 0, CNN_ACT_NONE);
  c.d.pad_left = 2;
  c.d.pad_right = 0;
  c.d.pad_top = 1;
  run_conv_case(&c, pool2);
}

/* Direct kernel (few input channels): Cin 1..4, Cout not a multiple of 4, 1x1..7x7, stride 1/2 (stride_h 3 too),
 * asymmetric padding, rows from 1 to over 3 register tiles (24 columns) with every tail, several row bands, batch 2,
 * in-place residual, every activation; then random shapes. */
/* 1x1 stride-1 convolutions with 24..192 output channels per group, K >= 64, on planes of 196+ pixels (B read in
 * place by the micro-kernel, a partial last panel packed), and a few just outside those bounds: N below, at and above
 * multiples of 16, K from 1 up past one K block, groups, batch > 1, residual (also in place), every activation;
 * every ISA, 1 and 2 threads (run_conv_case). */
static void test_conv_pointwise(cnn_threadpool* pool2, int ncases) {
  for (int i = 0; i < ncases; i++) {
    const size_t g = rng_range(0, 3) ? 1 : 2;
    /* mostly 24..96 output channels; sometimes 16..200, or 1..16 (one row panel: the unpacked-B path whatever K) */
    const size_t cout_g = rng_range(0, 5) ? rng_range(24, 96) : rng_range(0, 1) ? rng_range(16, 200) : rng_range(1, 16);
    const size_t csel = rng_range(0, 5); /* K >= 64 (mostly), past one K block, or below 64 (packed) */
    const size_t cin_g = csel < 4 ? rng_range(64, 80) : csel == 4 ? rng_range(250, 270) : rng_range(1, 63);
    size_t h = rng_range(12, 24), w = rng_range(12, 24);
    if (i % 4 == 0) { /* N a multiple of 16 */
      h = 14;
      w = 16 * rng_range(1, 2);
    }
    const size_t batch = rng_range(1, 2);
    if ((double)batch * g * cout_g * cin_g * h * w > 4e6) {
      i--;
      continue;
    }
    conv_case c = make_case(batch, g * cin_g, g * cout_g, g, h, w, 1, 1, 1, 1, 0, (int)rng_range(0, 1),
                            rng_range(0, 1) == 0, CNN_ACT_NONE);
    c.d.act = random_act();
    c.inplace = c.with_res && rng_range(0, 2) == 0;
    run_conv_case(&c, pool2);
  }
  printf("conv pointwise (B in place): %d cases\n", ncases);
}

static void test_conv_direct(cnn_threadpool* pool2, int ncases) {
  conv_case c;
  c = make_case(1, 3, 13, 1, 45, 223, 3, 3, 2, 1, 1, 1, 0, CNN_ACT_RELU); /* the SqueezeNet stem, cut short */
  c.d.pad_top = c.d.pad_left = 0;
  c.d.pad_bottom = c.d.pad_right = 0;
  run_conv_case(&c, pool2);
  c = make_case(2, 3, 6, 1, 23, 65, 3, 3, 2, 1, 1, 1, 1, CNN_ACT_CLIP); /* MobileNet stem */
  c.d.pad_top = c.d.pad_left = 0; /* asymmetric (TF-style) */
  run_conv_case(&c, pool2);
  c = make_case(1, 3, 9, 1, 31, 57, 7, 7, 2, 1, 3, 0, 1, CNN_ACT_NONE); /* ResNet stem */
  c.inplace = 1;
  run_conv_case(&c, pool2);
  c = make_case(2, 1, 17, 1, 20, 33, 3, 3, 1, 1, 1, 1, 0, CNN_ACT_RELU); /* ConvNet conv1 */
  run_conv_case(&c, pool2);
  c = make_case(1, 4, 5, 1, 12, 50, 5, 5, 1, 1, 2, 1, 1, CNN_ACT_SILU);
  c.d.pad_right = 0;
  run_conv_case(&c, pool2);
  c = make_case(1, 2, 3, 1, 17, 26, 1, 1, 2, 1, 0, 1, 0, CNN_ACT_HARDSWISH);
  run_conv_case(&c, pool2);
  c = make_case(1, 3, 8, 1, 19, 41, 3, 3, 3, 1, 1, 0, 1, CNN_ACT_TANH);
  c.d.stride_w = 2;
  run_conv_case(&c, pool2);
  c = make_case(1, 3, 4, 1, 5, 3, 5, 5, 1, 1, 4, 1, 1, CNN_ACT_SIGMOID); /* padding larger than the input */
  run_conv_case(&c, pool2);
  c = make_case(1, 2, 7, 1, 9, 1, 1, 7, 1, 1, 0, 1, 0, CNN_ACT_LEAKY); /* 1x7 on a 1-wide input */
  c.d.pad_left = 4;
  c.d.pad_right = 2;
  run_conv_case(&c, pool2);
  int done = 0, tries = 0;
  while (done < ncases && tries < 100 * ncases) {
    tries++;
    static const size_t ks[][2] = {{1, 1}, {3, 3}, {5, 5}, {7, 7}, {1, 3}, {3, 1}, {2, 2}};
    const size_t kk = rng_range(0, 6);
    memset(&c, 0, sizeof(c));
    cnn_conv2d_desc* d = &c.d;
    d->kernel_h = ks[kk][0];
    d->kernel_w = ks[kk][1];
    d->stride_h = rng_range(1, 3);
    d->stride_w = rng_range(1, 2);
    d->dilation_h = d->dilation_w = 1;
    d->pad_top = rng_range(0, 3);
    d->pad_left = rng_range(0, 3);
    d->pad_bottom = rng_range(0, 3);
    d->pad_right = rng_range(0, 3);
    d->groups = 1;
    d->in_channels = rng_range(1, 4);
    d->out_channels = rng_range(1, 19);
    c.batch = rng_range(1, 2);
    c.h = rng_range(1, 30);
    c.w = rng_range(1, 70);
    c.with_bias = (int)rng_range(0, 1);
    c.with_res = (int)rng_range(0, 2) == 0;
    c.inplace = c.with_res && rng_range(0, 2) == 0;
    d->act = random_act();
    size_t oh, ow;
    if (!cnn_conv2d_out_size(d, c.h, c.w, &oh, &ow)) continue;
    const double macs = (double)c.batch * d->out_channels * oh * ow * d->in_channels * d->kernel_h * d->kernel_w;
    if (macs > 4e5) continue;
    run_conv_case(&c, pool2);
    done++;
  }
  printf("conv direct: %d random cases\n", done);
}

/* Direct kernel with the 2x2 max-pool fused (cnn_conv2d_plan_fuse_maxpool2): the pooled output must be
 * bit-identical (memcmp) to the same plan unfused followed by the scalar pooling kernel (every ISA's pooling kernel
 * gives its bits), for every ISA, 1 and 2 threads. Random Cin 1..4, Cout 1..21 (the channel blocks of 4 and a
 * partial one), kernels 1x1..7x7, strides 1..2 (stride_h 3 too), paddings, odd and even sizes (an odd last output
 * row / column is dropped), widths giving every tail of the 16- / 8- (AVX2) and 16- / 4- (NEON) column tiles,
 * batch 1..3, clamp activations (pooled in registers) and others (pooled from a scratch); a quarter of the cases
 * put NaN and +-inf into the input, so that windows mix NaN with numbers or hold only NaN (the pool skips a NaN; an
 * all-NaN window gives -inf, which a ReLU-first order would turn into 0). */
static void test_conv_direct_pool(cnn_threadpool* pool2, int ncases) {
  int isas[4];
  const int nisa = isa_list(isas);
  int done = 0, tries = 0, nan_cases = 0;
  while (done < ncases && tries < 100 * ncases) {
    tries++;
    static const size_t ks[][2] = {{1, 1}, {3, 3}, {5, 5}, {7, 7}, {1, 3}, {3, 1}, {2, 2}};
    const size_t kk = done < 8 ? 1 : rng_range(0, 6); /* the ConvNet shape (3x3) first */
    cnn_conv2d_desc d;
    memset(&d, 0, sizeof(d));
    d.kernel_h = ks[kk][0];
    d.kernel_w = ks[kk][1];
    d.stride_h = rng_range(1, 4) == 4 ? 3 : rng_range(1, 2);
    d.stride_w = rng_range(1, 2);
    d.dilation_h = d.dilation_w = 1;
    d.pad_top = rng_range(0, 3);
    d.pad_left = rng_range(0, 3);
    d.pad_bottom = rng_range(0, 3);
    d.pad_right = rng_range(0, 3);
    d.groups = 1;
    d.in_channels = rng_range(1, 4);
    d.out_channels = rng_range(1, 21);
    d.act = random_act();
    if (rng_range(0, 1)) d.act.type = rng_range(0, 1) ? CNN_ACT_RELU : CNN_ACT_NONE; /* the in-register pool */
    const size_t batch = rng_range(1, 3), h = rng_range(2, 40), w = rng_range(2, 80);
    size_t oh, ow;
    if (!cnn_conv2d_out_size(&d, h, w, &oh, &ow) || oh < 2 || ow < 2) continue;
    if ((double)batch * d.out_channels * oh * ow * d.in_channels * d.kernel_h * d.kernel_w > 6e5) continue;
    const size_t in_n = batch * d.in_channels * h * w, out_n = batch * d.out_channels * oh * ow;
    const size_t pn = batch * d.out_channels * (oh / 2) * (ow / 2);
    const int with_nan = rng_range(0, 3) == 0;
    float* in = frand(in_n);
    if (with_nan) {
      nan_cases++;
      const size_t nbad = 1 + in_n / 8;
      for (size_t i = 0; i < nbad; i++) {
        const size_t at = rng_range(0, in_n - 1), kind = rng_range(0, 3);
        in[at] = kind < 2 ? NAN : kind == 2 ? INFINITY : -INFINITY;
      }
      if (rng_range(0, 1)) /* a block of NaN: whole pooling windows of NaN */
        for (size_t i = 0; i < cnn_min_sz(in_n, 3 * w); i++) in[i] = NAN;
    }
    float* wt = frand(d.out_channels * d.in_channels * d.kernel_h * d.kernel_w);
    float* bias = rng_range(0, 1) ? frand(d.out_channels) : NULL;
    float* full = falloc(out_n);
    float* want = falloc(pn);
    float* got = falloc(pn);
    cnn_pool2d_desc pd;
    memset(&pd, 0, sizeof(pd));
    pd.kernel_h = pd.kernel_w = pd.stride_h = pd.stride_w = 2;
    pd.dilation_h = pd.dilation_w = 1;
    for (int ii = 0; ii < nisa; ii++) {
      int st;
      cnn_conv2d_weights* cw = cnn_conv2d_weights_create(&d, wt, bias, isas[ii], CNN_CONV_ALGO_DIRECT, &st);
      CHECK(cw && cnn_conv2d_weights_algo(cw) == CNN_CONV_ALGO_DIRECT, "direct pool: create");
      if (!cw) continue;
      for (size_t nthreads = 1; nthreads <= 2; nthreads++) {
        cnn_conv2d_plan plan, fused;
        CHECK(cnn_conv2d_plan_init(&plan, cw, batch, h, w, nthreads) == CNN_OK, "direct pool: plan");
        fused = plan;
        CHECK(cnn_conv2d_plan_fuse_maxpool2(&fused) == CNN_OK && fused.maxpool2, "direct pool: fuse");
        void* ws = falloc(plan.workspace_bytes / sizeof(float) + 1);
        void* wsf = falloc(fused.workspace_bytes / sizeof(float) + 1);
        cnn_conv2d_run(&plan, in, full, NULL, ws, pool2);
        cnn_f32_pool2d__scalar(&pd, batch * d.out_channels, oh, ow, oh / 2, ow / 2, full, want);
        for (size_t i = 0; i < pn; i++) got[i] = 1234.5f; /* every pooled output must be written */
        cnn_conv2d_run(&fused, in, got, NULL, wsf, pool2);
        const int same = memcmp(got, want, pn * sizeof(float)) == 0;
        CHECK(same, "direct pool isa=%s threads=%zu: fused != conv + pool", cnn_isa_name(isas[ii]), nthreads);
        if (!same) {
          size_t i = 0;
          while (i < pn && memcmp(got + i, want + i, sizeof(float)) == 0) i++;
          printf("  first difference at %zu: got %g want %g; batch %zu cin %zu cout %zu %zux%zu k %zux%zu s %zu,%zu "
                 "pads %zu %zu %zu %zu act %s nan %d\n",
                 i, got[i], want[i], batch, d.in_channels, d.out_channels, h, w, d.kernel_h, d.kernel_w, d.stride_h,
                 d.stride_w, d.pad_top, d.pad_left, d.pad_bottom, d.pad_right, act_name(d.act.type), with_nan);
        }
        cnn_aligned_free(ws);
        cnn_aligned_free(wsf);
      }
      cnn_conv2d_weights_destroy(cw);
    }
    float* fr[] = {in, wt, bias, full, want, got};
    for (size_t i = 0; i < sizeof(fr) / sizeof(fr[0]); i++) cnn_aligned_free(fr[i]);
    done++;
  }
  CHECK(done == ncases && nan_cases > 0, "direct pool: %d cases (%d with NaN / inf)", done, nan_cases);
  printf("conv direct + fused 2x2 max-pool: %d random cases (%d with NaN / inf inputs)\n", done, nan_cases);
}

static void test_conv_checks(void) {
  cnn_conv2d_desc d;
  memset(&d, 0, sizeof(d));
  d.in_channels = 4;
  d.out_channels = 6;
  d.groups = 2;
  d.kernel_h = d.kernel_w = 3;
  d.stride_h = d.stride_w = 1;
  d.dilation_h = d.dilation_w = 1;
  CHECK(cnn_conv2d_desc_check(&d) == CNN_OK, "valid desc");
  cnn_conv2d_desc e;
#define REJECT(field, value)                                                            \
  do {                                                                                  \
    e = d;                                                                              \
    e.field = value;                                                                    \
    CHECK(cnn_conv2d_desc_check(&e) != CNN_OK, "desc with " #field " = " #value " must be rejected"); \
  } while (0)
  REJECT(in_channels, 0);
  REJECT(out_channels, 0);
  REJECT(groups, 0);
  REJECT(groups, 3);  /* does not divide 4 */
  REJECT(groups, 4);  /* does not divide 6 */
  REJECT(kernel_h, 0);
  REJECT(kernel_w, 0);
  REJECT(stride_h, 0);
  REJECT(stride_w, 0);
  REJECT(dilation_h, 0);
  REJECT(dilation_w, 0);
  REJECT(kernel_h, SIZE_MAX);
  REJECT(kernel_w, (size_t)1 << 62); /* kh*kw*sizeof(float) overflows */
  REJECT(dilation_h, SIZE_MAX / 2);
  REJECT(pad_top, SIZE_MAX - 1);
  REJECT(act.type, 99);
  e = d;
  e.in_channels = e.out_channels = e.groups = 1;
  e.kernel_h = e.kernel_w = (size_t)1 << 33;
  CHECK(cnn_conv2d_desc_check(&e) != CNN_OK, "kh*kw = 2^66 overflows");
  e.kernel_h = e.kernel_w = (size_t)1 << 20;
  e.in_channels = e.out_channels = e.groups = (size_t)1 << 24;
  CHECK(cnn_conv2d_desc_check(&e) != CNN_OK, "Cout*Cin_g*kh*kw = 2^64 overflows");
  int st = 0;
  CHECK(cnn_conv2d_weights_create(&e, (const float*)&d, NULL, -1, CNN_CONV_ALGO_AUTO, &st) == NULL &&
            st == CNN_ERR_INVALID,
        "create rejects a bad desc");
  size_t oh, ow;
  CHECK(cnn_conv2d_out_size(&d, 2, 5, &oh, &ow) == 0 && oh == 0 && ow == 0, "3x3 does not fit in 2x5");
  CHECK(cnn_conv2d_out_size(&d, 3, 5, &oh, &ow) == 1 && oh == 1 && ow == 3, "out size 3x5 -> 1x3");
  CHECK(cnn_conv2d_out_size(&d, SIZE_MAX, 5, &oh, &ow) == 0, "absurd input size");
  float wts[6 * 2 * 9];
  memset(wts, 0, sizeof(wts));
  cnn_conv2d_weights* cw = cnn_conv2d_weights_create(&d, wts, NULL, -1, CNN_CONV_ALGO_AUTO, &st);
  CHECK(cw && st == CNN_OK && cnn_conv2d_weights_algo(cw) == CNN_CONV_ALGO_GEMM, "create gemm");
  cnn_conv2d_plan p;
  CHECK(cnn_conv2d_plan_init(&p, cw, 1, 2, 5, 1) == CNN_ERR_INVALID, "plan rejects a kernel that does not fit");
  CHECK(cnn_conv2d_plan_init(&p, cw, 0, 8, 8, 1) == CNN_ERR_INVALID, "plan rejects batch 0");
  CHECK(cnn_conv2d_plan_init(&p, cw, (size_t)1 << 40, (size_t)1 << 20, 8, 1) == CNN_ERR_INVALID,
        "plan rejects overflowing tensor sizes");
  CHECK(cnn_conv2d_plan_init(&p, cw, 1, 8, 8, 2) == CNN_OK && p.workspace_bytes > 0, "plan ok");
  CHECK(cnn_conv2d_weights_create(&d, wts, NULL, -1, CNN_CONV_ALGO_WINOGRAD, &st) == NULL &&
            st == CNN_ERR_UNSUPPORTED,
        "winograd unsupported here");
  CHECK(cnn_conv2d_weights_create(&d, wts, NULL, -1, 77, &st) == NULL && st == CNN_ERR_INVALID, "unknown algo");
  cnn_conv2d_weights_destroy(cw);
}

/* cnn_aligned_alloc: alignment of every size class (heap below 2 MiB; a 2 MiB-aligned mapping from 2 MiB unless
 * CNNRT_HUGEPAGES=0 or a sanitizer build), every byte writable (SANITIZE=1 checks the heap blocks' bounds), free. */
static void test_alloc(void) {
  static const size_t sizes[] = {0, 1, 63, 64, 65, 4096, 100000, (2u << 20) - 1, 2u << 20, (2u << 20) + 1, 5u << 20};
  for (int mode = 0; mode < 2; mode++) {
    if (mode) setenv("CNNRT_HUGEPAGES", "0", 1);
    void* keep[sizeof(sizes) / sizeof(sizes[0])];
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
      unsigned char* p = (unsigned char*)cnn_aligned_alloc(sizes[i]);
      keep[i] = p;
      CHECK(p != NULL, "alloc %zu returned NULL", sizes[i]);
      if (!p) continue;
      CHECK(((uintptr_t)p & (CNN_ALIGN - 1)) == 0, "alloc %zu not %d-aligned: %p", sizes[i], CNN_ALIGN, (void*)p);
#if defined(__linux__) && !defined(__SANITIZE_ADDRESS__)
      if (!mode && sizes[i] >= (2u << 20))
        CHECK(((uintptr_t)p & ((2u << 20) - 1)) == 0, "alloc %zu not 2 MiB-aligned: %p", sizes[i], (void*)p);
#endif
      memset(p, 0xA5, sizes[i]);
      CHECK(sizes[i] == 0 || (p[0] == 0xA5 && p[sizes[i] - 1] == 0xA5), "alloc %zu not writable", sizes[i]);
    }
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) cnn_aligned_free(keep[i]);
  }
  unsetenv("CNNRT_HUGEPAGES");
  cnn_aligned_free(NULL);
  CHECK(cnn_aligned_alloc((size_t)1 << 60) == NULL, "a 2^60-byte allocation must fail");
}

int main(void) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  test_alloc();
  rng_seed(20240601);
  cnn_threadpool* pool1 = cnn_threadpool_create(1);
  cnn_threadpool* pool2 = cnn_threadpool_create(2);
  test_ukernels();
  test_gemv_ukernels();
  test_gemv2_ukernels();
  test_ukernel_ldb();
#if defined(__x86_64__)
  test_ukernel_avx512();
#endif
#if defined(__aarch64__)
  test_ukernel_neon();
#endif
  test_sgemm(pool1, pool2);
  test_fc(pool1, pool2);
  test_conv_checks();
  test_conv_regressions(pool2);
  test_conv_random(pool2, 200);
  test_conv_stride2(pool2, 80);
  test_conv_pointwise(pool2, 60);
  test_conv_direct(pool2, 60);
  test_conv_direct_pool(pool2, 80);
  cnn_threadpool_destroy(pool1);
  cnn_threadpool_destroy(pool2);
  return test_summary("test_gemm_conv");
}
