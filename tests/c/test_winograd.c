/* Tests of the Winograd F(m,3) convolution (m = 2, 4, 6): transform matrices, scalar vs AVX2 / NEON transform
 * kernels, the operator vs the naive reference (cnn_conv2d_ref, double sums) on randomized shapes, the conv API
 * dispatch (AUTO, forced, CNNRT_WINOGRAD=0, small outputs) and the accuracy guard (fallback to smaller tiles, then
 * GEMM).
 *
 * Tolerance (derived before looking at results; never tuned to pass):
 *   Winograd computes y(i,j) = sum_c A^T[ (G w_c G^T) .* (B^T x_c B) ] A, i.e. every product w_c[k,l]*x_c[r,s] of the
 *   T x T input tile reaches output (i,j) through the paths p, q with weight
 *       A^T[i,p] G[p,k] B^T[p,r] * A^T[j,q] G[q,l] B^T[q,s]
 *   (the exact weights sum to 1 for r = i+k, s = j+l, and to 0 otherwise: the cross terms cancel only in exact
 *   arithmetic). Each path value is formed by at most n = Cin + 4T + 8 roundings (input transform: 2 passes of <= T
 *   products and sums; filter transform: 1 (computed in double); the product; Cin-1 GEMM additions; output
 *   transform: 2 passes of <= T products and sums; bias; residual), so by Higham's bound for sums of products
 *   (Accuracy and Stability of Numerical Algorithms, sec. 3.1/4.2) in any order:
 *       |computed - exact| <= gamma_n * S_T,
 *       S_T(i,j) = sum_c sum_{k,l,r,s} a(i,k,r) a(j,l,s) |w_c[k,l]| |x_c[r,s]| + |bias| + |residual|,
 *       a(i,k,r) = sum_p |A^T[i,p]| |G[p,k]| |B^T[p,r]|,   gamma_n = n u / (1 - n u), u = 2^-24.
 *   S_T is the "sum of |products|" of the direct convolution magnified by the tile-dependent factors a(.)a(.)
 *   (max a = 2 for F(2,3), 10.7 for F(4,3), 14.3 for F(6,3)), computed per output by this test from the matrices.
 *   The reference rounds once more (u*|exact| <= u*S_T, covered by the +8). Clamps are 1-Lipschitz; other
 *   activations: tol = 1.5*max(1,|a|)*tol + 16u(1+|want|) as in test_gemm_conv.c.
 *   Scalar vs AVX2 (both float, same bound each): 2*gamma_n*S_T. Transform kernels alone: 2*gamma_{2T+2}*|B^T||d||B|
 *   (input) and 2*gamma_{2T+4}*(|A^T||M||A| + |bias| + |residual|) (output).
 *   Each case also reports the worst ratio |err|/tol seen (typically << 1). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cnnrt/common.h"
#include "cnnrt/conv.h"
#include "cnnrt/gemm.h"
#include "cnnrt/hardware.h"
#include "cnnrt/threadpool.h"
#include "cnnrt/winograd.h"
#include "test_util.h"

static float* falloc(size_t n) {
  float* p = (float*)cnn_aligned_alloc((n ? n : 1) * sizeof(float));
  if (!p) {
    fprintf(stderr, "out of memory\n");
    exit(2);
  }
  return p;
}

static double g_worst[7]; /* worst ratio per tile m */

/* ============================================================================================================ */
/* matrices: A^T[(G g) .* (B^T d)] is the 1-D correlation, exactly (in double) */

static void test_matrices(void) {
  for (int m = 2; m <= 6; m += 2) {
    const cnn_wino_tx* tx = cnn_wino_tx_get(m);
    CHECK(tx && tx->m == m && tx->T == m + 2, "tx_get(%d)", m);
    if (!tx) continue;
    const int T = tx->T;
    double worst = 0;
    for (int rep = 0; rep < 20; rep++) {
      double g[3], d[8], gg[8], bd[8];
      for (int k = 0; k < 3; k++) g[k] = rng_f();
      for (int r = 0; r < T; r++) d[r] = rng_f();
      for (int p = 0; p < T; p++) {
        gg[p] = 0;
        bd[p] = 0;
        for (int k = 0; k < 3; k++) gg[p] += tx->g[p * 3 + k] * g[k];
        for (int r = 0; r < T; r++) bd[p] += tx->bt[p * T + r] * d[r];
      }
      for (int i = 0; i < m; i++) {
        double y = 0, want = g[0] * d[i] + g[1] * d[i + 1] + g[2] * d[i + 2];
        for (int p = 0; p < T; p++) y += tx->at[i * T + p] * gg[p] * bd[p];
        if (fabs(y - want) > worst) worst = fabs(y - want);
      }
    }
    CHECK(worst < 1e-12, "F(%d,3) matrices: 1-D identity error %g", m, worst);
  }
  CHECK(cnn_wino_tx_get(3) == NULL && cnn_wino_tx_get(8) == NULL, "tx_get rejects other tiles");
}

/* ============================================================================================================ */
/* transform kernels: AVX2 / NEON vs scalar */

static void kernels_vs_scalar(const char* isa, cnn_wino_in_fn input_fn, cnn_wino_out_fn output_fn) {
  for (int m = 2; m <= 6; m += 2) {
    const cnn_wino_tx* tx = cnn_wino_tx_get(m);
    const int T = tx->T;
    const size_t L = CNN_WINO_LANES, ps = 24; /* position stride > 8: lanes only */
    float d[8][8][8]; /* [lane][row][8 readable columns] */
    const float* rows[64];
    float v0[64 * 24], v1[64 * 24], y0[8][6][8], y1[8][6][8], res[8][6][8];
    ptrdiff_t offs[48]; /* row i of lane l: (l*6 + i)*8 in y0 / y1 / res */
    int ncols[8];
    double worst_in = 0, worst_out = 0;
    for (int rep = 0; rep < 50; rep++) {
      const float scale = rep % 5 == 0 ? 1000.0f : 1.0f;
      for (size_t l = 0; l < L; l++)
        for (int r = 0; r < 8; r++) {
          for (int s = 0; s < 8; s++) d[l][r][s] = rng_f() * scale;
          rows[r * L + l] = d[l][r];
        }
      for (size_t e = 0; e < sizeof(v0) / sizeof(float); e++) v0[e] = v1[e] = 7.0f; /* sentinel */
      cnn_wino_input__scalar(tx, rows, v0, ps);
      input_fn(tx, rows, v1, ps);
      for (int p = 0; p < T; p++)
        for (int q = 0; q < T; q++)
          for (size_t l = 0; l < L; l++) {
            double mag = 0; /* |B^T| |d| |B| */
            for (int r = 0; r < T; r++)
              for (int s = 0; s < T; s++)
                mag += fabs(tx->bt[p * T + r]) * fabs(d[l][r][s]) * fabs(tx->bt[q * T + s]);
            const size_t o = (size_t)(p * T + q) * ps + l;
            const double tol = 2 * gamma_n(2 * T + 2) * mag, err = fabs((double)v0[o] - v1[o]);
            const double r = err == 0 ? 0 : (tol > 0 ? err / tol : INFINITY);
            if (r > worst_in) worst_in = r;
          }
      int untouched = 1;
      for (int p = 0; p < T * T; p++)
        for (size_t l = L; l < ps; l++) untouched &= v0[p * ps + l] == 7.0f && v1[p * ps + l] == 7.0f;
      CHECK(untouched, "F(%d,3) input transform wrote past its 8 lanes", m);
      /* output transform, with bias, a clamp, partial tiles (ncols < m, rows skipped) and a residual */
      const float bias = rng_f(), lo = rep % 2 ? -0.5f * scale : -INFINITY, hi = rep % 3 ? INFINITY : 0.7f * scale;
      const int with_res = rep % 4 != 0;
      for (size_t l = 0; l < L; l++) {
        ncols[l] = rep % 3 == 1 ? (int)rng_range(0, (size_t)m) : m;
        const int nrows = rep % 3 == 1 ? (int)rng_range(0, (size_t)m) : m;
        for (int i = 0; i < 6; i++)
          for (int j = 0; j < 8; j++) {
            y0[l][i][j] = y1[l][i][j] = 7.0f;
            res[l][i][j] = rng_f() * scale;
          }
        for (int i = 0; i < m; i++) offs[i * L + l] = i < nrows ? (ptrdiff_t)((l * 6 + (size_t)i) * 8) : -1;
      }
      cnn_wino_output__scalar(tx, v0, ps, bias, lo, hi, &y0[0][0][0], with_res ? &res[0][0][0] : NULL, offs, ncols);
      output_fn(tx, v0, ps, bias, lo, hi, &y1[0][0][0], with_res ? &res[0][0][0] : NULL, offs, ncols);
      int sentinel_ok = 1;
      for (size_t l = 0; l < L; l++)
        for (int i = 0; i < 6; i++)
          for (int j = 0; j < 8; j++) {
            const int written = i < m && offs[i * L + l] >= 0 && j < ncols[l];
            if (!written) {
              sentinel_ok &= y0[l][i][j] == 7.0f && y1[l][i][j] == 7.0f;
              continue;
            }
            double mag = fabs(bias) + (with_res ? fabs(res[l][i][j]) : 0);
            for (int p = 0; p < T; p++)
              for (int q = 0; q < T; q++)
                mag += fabs(tx->at[i * T + p]) * fabs(v0[(p * T + q) * ps + l]) * fabs(tx->at[j * T + q]);
            const double tol = 2 * gamma_n(2 * T + 4) * mag, err = fabs((double)y0[l][i][j] - y1[l][i][j]);
            const double r = err == 0 ? 0 : (tol > 0 ? err / tol : INFINITY);
            if (r > worst_out) worst_out = r;
          }
      CHECK(sentinel_ok, "F(%d,3) output transform wrote outside its rows / columns", m);
    }
    CHECK(worst_in <= 1, "F(%d,3) input transform %s vs scalar: ratio %g", m, isa, worst_in);
    CHECK(worst_out <= 1, "F(%d,3) output transform %s vs scalar: ratio %g", m, isa, worst_out);
    printf("kernels F(%d,3): %s vs scalar worst ratio input %.3g output %.3g\n", m, isa, worst_in, worst_out);
  }
}

/* fused output transform + 2x2 max-pool vs the reference (the same ISA's output transform, then the pool rule):
 * bit for bit, with partial tiles, NaN and infinities in M (max skips NaN in the pooling kernels' order) */
static void outpool_vs_ref(const char* isa, cnn_wino_out_fn out_fn, cnn_wino_outpool_fn pool_fn) {
  int same = 1, cases = 0;
  for (int m = 2; m <= 6; m += 2) {
    const cnn_wino_tx* tx = cnn_wino_tx_get(m);
    const size_t L = CNN_WINO_LANES, ps = 24;
    float mp[64 * 24], y0[8][3][4], y1[8][3][4];
    ptrdiff_t offs[24];
    int pcols[8];
    for (int rep = 0; rep < 40; rep++, cases++) {
      for (size_t e = 0; e < sizeof(mp) / sizeof(float); e++) {
        mp[e] = rng_f() * (rep % 3 == 0 ? 1000.0f : 1.0f);
        if (rep % 5 == 4 && rng_range(0, 20) == 0) mp[e] = rng_range(0, 1) ? NAN : (rng_range(0, 1) ? INFINITY : -INFINITY);
      }
      for (size_t l = 0; l < L; l++) {
        const int prow = rep % 2 ? (int)rng_range(0, (size_t)m / 2) : m / 2;
        pcols[l] = rep % 2 ? (int)rng_range(0, (size_t)m / 2) : m / 2;
        for (int r = 0; r < m / 2; r++) offs[r * L + l] = r < prow ? (ptrdiff_t)((l * 3 + (size_t)r) * 4) : -1;
      }
      for (size_t e = 0; e < 8 * 3 * 4; e++) (&y0[0][0][0])[e] = (&y1[0][0][0])[e] = 7.0f;
      const float bias = rng_f(), lo = rep % 2 ? -0.5f : -INFINITY, hi = rep % 3 ? INFINITY : 0.7f;
      cnn_wino_output_pool_ref(out_fn, tx, mp, ps, bias, lo, hi, &y0[0][0][0], offs, pcols);
      pool_fn(tx, mp, ps, bias, lo, hi, &y1[0][0][0], offs, pcols);
      same &= memcmp(y0, y1, sizeof(y0)) == 0; /* NaN bits included; unwritten entries keep the sentinel */
    }
  }
  CHECK(same, "%s fused output+pool differs from output then pool", isa);
  printf("output+pool %s: %d cases bit-exact vs output then pool: %s\n", isa, cases, same ? "yes" : "NO");
}

static void test_kernels(void) {
#if defined(__x86_64__) && !defined(CNNRT_NO_AVX2)
  if (!cnn_hw_isa_supported(CNN_ISA_AVX2)) {
    printf("kernels: AVX2 not supported, skipped\n");
    return;
  }
  kernels_vs_scalar("avx2", cnn_wino_input__avx2, cnn_wino_output__avx2);
  outpool_vs_ref("avx2", cnn_wino_output__avx2, cnn_wino_output_pool__avx2);
#elif defined(__aarch64__)
  if (!cnn_hw_isa_supported(CNN_ISA_NEON)) {
    printf("kernels: NEON not supported, skipped\n");
    return;
  }
  kernels_vs_scalar("neon", cnn_wino_input__neon, cnn_wino_output__neon);
#else
  printf("kernels: no AVX2 / NEON build, skipped\n");
#endif
}

/* ============================================================================================================ */
/* the operator vs the reference */

typedef struct {
  cnn_conv2d_desc d;
  size_t batch, H, W, oh, ow;
  float *x, *w, *bias, *res, *want, *S;
} conv_case;

static void case_free(conv_case* c) {
  cnn_aligned_free(c->x);
  cnn_aligned_free(c->w);
  cnn_aligned_free(c->bias);
  cnn_aligned_free(c->res);
  cnn_aligned_free(c->want);
  cnn_aligned_free(c->S);
  memset(c, 0, sizeof(*c));
}

/* S_T per output for tile m (see the top of the file) */
static void bound_tile(const conv_case* c, int m, float* S) {
  const cnn_wino_tx* tx = cnn_wino_tx_get(m);
  const int T = tx->T;
  double a[6][3][8];
  for (int i = 0; i < m; i++)
    for (int k = 0; k < 3; k++)
      for (int r = 0; r < T; r++) {
        double s = 0;
        for (int p = 0; p < T; p++) s += fabs(tx->at[i * T + p]) * fabs(tx->g[p * 3 + k]) * fabs(tx->bt[p * T + r]);
        a[i][k][r] = s;
      }
  const size_t cin = c->d.in_channels, cout = c->d.out_channels, H = c->H, W = c->W, oh = c->oh, ow = c->ow;
  const size_t th = (oh + m - 1) / m, tw = (ow + m - 1) / m;
  double* acc = (double*)calloc(cout * 36, sizeof(double));
  for (size_t n = 0; n < c->batch; n++)
    for (size_t ty = 0; ty < th; ty++)
      for (size_t tx_ = 0; tx_ < tw; tx_++) {
        memset(acc, 0, cout * 36 * sizeof(double));
        const ptrdiff_t y0 = (ptrdiff_t)(ty * m) - (ptrdiff_t)c->d.pad_top;
        const ptrdiff_t x0 = (ptrdiff_t)(tx_ * m) - (ptrdiff_t)c->d.pad_left;
        for (size_t ci = 0; ci < cin; ci++) {
          double X[8][8];
          for (int r = 0; r < T; r++)
            for (int s = 0; s < T; s++) {
              const ptrdiff_t iy = y0 + r, ix = x0 + s;
              X[r][s] = (iy >= 0 && iy < (ptrdiff_t)H && ix >= 0 && ix < (ptrdiff_t)W)
                            ? fabs(c->x[((n * cin + ci) * H + iy) * W + ix])
                            : 0.0;
            }
          /* XA[r][l][j] = sum_s a(j,l,s) X[r][s] */
          double XA[8][3][6];
          for (int r = 0; r < T; r++)
            for (int l = 0; l < 3; l++)
              for (int j = 0; j < m; j++) {
                double s = 0;
                for (int ss = 0; ss < T; ss++) s += a[j][l][ss] * X[r][ss];
                XA[r][l][j] = s;
              }
          for (size_t co = 0; co < cout; co++) {
            const float* wk = c->w + (co * cin + ci) * 9;
            double* A = acc + co * 36;
            for (int k = 0; k < 3; k++)
              for (int r = 0; r < T; r++) {
                double R[6];
                for (int j = 0; j < m; j++)
                  R[j] = fabs(wk[k * 3]) * XA[r][0][j] + fabs(wk[k * 3 + 1]) * XA[r][1][j] +
                         fabs(wk[k * 3 + 2]) * XA[r][2][j];
                for (int i = 0; i < m; i++) {
                  const double ai = a[i][k][r];
                  if (ai == 0) continue;
                  for (int j = 0; j < m; j++) A[i * 6 + j] += ai * R[j];
                }
              }
          }
        }
        for (size_t co = 0; co < cout; co++)
          for (int i = 0; i < m; i++)
            for (int j = 0; j < m; j++) {
              const size_t oy = ty * m + i, ox = tx_ * m + j;
              if (oy >= oh || ox >= ow) continue;
              const size_t o = ((n * cout + co) * oh + oy) * ow + ox;
              double s = acc[co * 36 + i * 6 + j];
              if (c->bias) s += fabs(c->bias[co]);
              if (c->res) s += fabs(c->res[o]);
              S[o] = (float)s;
            }
      }
  free(acc);
}

static double worst_ratio(const float* got, const float* want, const float* S, size_t n, size_t nterms,
                          const cnn_act* act, double factor, size_t* where) {
  return worst_gamma_ratio(got, want, S, n, factor * gamma_n(nterms), act, where);
}

static void make_case(conv_case* c, size_t batch, size_t cin, size_t cout, size_t H, size_t W, size_t pt, size_t pl,
                      size_t pb, size_t pr, int with_bias, int with_res, cnn_act act, float scale) {
  memset(c, 0, sizeof(*c));
  c->d.in_channels = cin;
  c->d.out_channels = cout;
  c->d.groups = 1;
  c->d.kernel_h = c->d.kernel_w = 3;
  c->d.stride_h = c->d.stride_w = 1;
  c->d.dilation_h = c->d.dilation_w = 1;
  c->d.pad_top = pt;
  c->d.pad_left = pl;
  c->d.pad_bottom = pb;
  c->d.pad_right = pr;
  c->d.act = act;
  c->batch = batch;
  c->H = H;
  c->W = W;
  if (!cnn_conv2d_out_size(&c->d, H, W, &c->oh, &c->ow)) return;
  const size_t nx = batch * cin * H * W, nw = cout * cin * 9, ny = batch * cout * c->oh * c->ow;
  c->x = falloc(nx);
  c->w = falloc(nw);
  for (size_t i = 0; i < nx; i++) c->x[i] = rng_f() * scale;
  for (size_t i = 0; i < nw; i++) c->w[i] = rng_f();
  if (with_bias) {
    c->bias = falloc(cout);
    for (size_t i = 0; i < cout; i++) c->bias[i] = rng_f() * scale;
  }
  if (with_res) {
    c->res = falloc(ny);
    for (size_t i = 0; i < ny; i++) c->res[i] = rng_f() * scale;
  }
  c->want = falloc(ny);
  c->S = falloc(ny);
  cnn_conv2d_ref(&c->d, batch, H, W, c->x, c->w, c->bias, c->res, c->want);
}

static size_t nterms_of(const conv_case* c, int m) { return c->d.in_channels + 4 * (size_t)(m + 2) + 8; }

/* run the Winograd op (tile m, isa) on case c; in_place: residual copied into out first. Returns output (caller
 * frees) or NULL if the weights could not be created. */
static float* run_wino(const conv_case* c, int m, int isa, int in_place, cnn_threadpool* pool) {
  cnn_wino_weights* ww = cnn_wino_weights_create(&c->d, c->w, c->bias, isa, m);
  if (!ww) return NULL;
  const size_t ny = c->batch * c->d.out_channels * c->oh * c->ow, nth = cnn_threadpool_size(pool);
  const size_t wsb = cnn_wino_workspace_size(ww, c->batch, c->H, c->W, c->oh, c->ow, nth);
  float* ws = falloc(wsb / sizeof(float) + 1);
  float* y = falloc(ny);
  for (size_t i = 0; i < ny; i++) y[i] = NAN;
  const float* res = c->res;
  if (c->res && in_place) {
    memcpy(y, c->res, ny * sizeof(float));
    res = y;
  }
  cnn_wino_run(ww, c->batch, c->H, c->W, c->oh, c->ow, c->x, y, res, ws, pool, nth);
  cnn_aligned_free(ws);
  cnn_wino_weights_destroy(ww);
  return y;
}

static void test_op_random(cnn_threadpool* pool2) {
  int isas[CNN_ISA_COUNT], nisa = 0;
  for (int isa = 0; isa < CNN_ISA_COUNT; isa++)
    if (cnn_hw_isa_supported(isa)) isas[nisa++] = isa;
  int cases = 0;
  for (int m = 2; m <= 6; m += 2)
    for (int rep = 0; rep < 24; rep++) {
      size_t cin = rng_range(1, 30), cout = rng_range(1, 30);
      if (cin % 8 == 0) cin++;
      if (cout % 8 == 0) cout++;
      if (rep == 0) { /* two K blocks (kc = 256) */
        cin = 261;
        cout = 7;
      }
      const size_t H = 2 * rng_range(0, 9) + 1, W = 2 * rng_range(0, 10) + 1;
      const size_t pt = rng_range(0, 2), pl = rng_range(0, 2), pb = rng_range(0, 2), pr = rng_range(0, 2);
      const size_t batch = rng_range(1, 3);
      const int with_bias = rng_range(0, 1), with_res = rng_range(0, 2); /* 2: in place */
      const cnn_act act = rep % 3 == 0 ? random_act() : (cnn_act){(int32_t)rng_range(0, 2), -0.5f, 0.75f};
      const float scale = rep % 4 == 3 ? 1000.0f : 1.0f;
      conv_case c;
      make_case(&c, batch, cin, cout, H, W, pt, pl, pb, pr, with_bias, with_res != 0, act, scale);
      if (!c.want) { /* kernel does not fit the padded input */
        case_free(&c);
        continue;
      }
      cases++;
      bound_tile(&c, m, c.S);
      const size_t ny = batch * cout * c.oh * c.ow;
      float* ys[CNN_ISA_COUNT] = {0};
      for (int ii = 0; ii < nisa; ii++) {
        cnn_threadpool* pool = (rep + ii) % 2 ? pool2 : NULL;
        float* y = run_wino(&c, m, isas[ii], with_res == 2, pool);
        CHECK(y != NULL, "F(%d,3) weights create failed", m);
        if (!y) continue;
        size_t wi;
        const double r = worst_ratio(y, c.want, c.S, ny, nterms_of(&c, m), &c.d.act, 1.0, &wi);
        if (r > g_worst[m]) g_worst[m] = r;
        CHECK(r <= 1, "F(%d,3) %s n%zu %zux%zu %zux%zu pad %zu,%zu,%zu,%zu bias%d res%d act%d x%g: ratio %g at %zu "
              "(got %g want %g S %g)", m, cnn_isa_name(isas[ii]), batch, cin, cout, H, W, pt, pl, pb, pr, with_bias,
              with_res, (int)act.type, (double)scale, r, wi, (double)y[wi], (double)c.want[wi], (double)c.S[wi]);
        ys[ii] = y;
      }
      /* scalar vs the other ISAs: each within gamma*S of exact (pre-activation; activations are monotone
         Lipschitz functions computed by different kernels, so compare clamp-only cases) */
      if (act_is_clamp(&c.d.act))
        for (int ii = 1; ii < nisa; ii++)
          if (ys[0] && ys[ii]) {
            const double r = worst_ratio(ys[ii], ys[0], c.S, ny, nterms_of(&c, m), NULL, 2.0, NULL);
            CHECK(r <= 1, "F(%d,3) %s vs scalar: ratio %g", m, cnn_isa_name(isas[ii]), r);
          }
      for (int ii = 0; ii < nisa; ii++) cnn_aligned_free(ys[ii]);
      case_free(&c);
    }
  printf("op vs reference: %d cases x %d ISAs; worst ratio F(2,3) %.3g F(4,3) %.3g F(6,3) %.3g\n", cases, nisa,
         g_worst[2], g_worst[4], g_worst[6]);
}

/* ============================================================================================================ */
/* threads: with fewer tile blocks than 2 per thread the output channels are split and the run has two phases (input
 * transforms into shared panels, then GEMM + output transform per chunk). Every output is still computed by one
 * thread in the same order, so the result must equal the 1-thread run bit for bit. */

static void test_threads_bit_exact(cnn_threadpool* pool2) {
  int cases = 0, same = 1;
  for (int m = 2; m <= 6; m += 2)
    for (int rep = 0; rep < 6; rep++) {
      const size_t cin = rng_range(8, 70), cout = rng_range(24, 90), H = rng_range(5, 30), W = rng_range(5, 30);
      conv_case c;
      make_case(&c, rng_range(1, 2), cin, cout, H, W, 1, 1, 1, 1, 1, rep % 2, (cnn_act){CNN_ACT_RELU, 0, 0}, 1.0f);
      if (!c.want) {
        case_free(&c);
        continue;
      }
      float* y1 = run_wino(&c, m, -1, 0, NULL);
      float* y2 = run_wino(&c, m, -1, 0, pool2);
      const size_t ny = c.batch * cout * c.oh * c.ow;
      if (y1 && y2) {
        cases++;
        same &= memcmp(y1, y2, ny * sizeof(float)) == 0;
      }
      cnn_aligned_free(y1);
      cnn_aligned_free(y2);
      case_free(&c);
    }
  CHECK(same, "Winograd with 2 threads differs from 1 thread");
  printf("threads: %d cases, 2 threads == 1 thread bit for bit: %s\n", cases, same ? "yes" : "NO");
}

/* ============================================================================================================ */
/* fused 2x2 max-pool (cnn_wino_run_pool): each pooled value is the max of 4 outputs, each within gamma*S of its
 * exact value, so the pooled value is within gamma * max(S over the window) of the exact max (max is 1-Lipschitz in
 * the max norm). Sizes odd and even (floor pooling drops the last row/column), clamp-type activations only (others
 * do not commute with max and are refused: cnn_wino_can_pool). */

static void test_pool_random(cnn_threadpool* pool2) {
  int isas[CNN_ISA_COUNT], nisa = 0;
  for (int isa = 0; isa < CNN_ISA_COUNT; isa++)
    if (cnn_hw_isa_supported(isa)) isas[nisa++] = isa;
  int cases = 0;
  double worst = 0;
  for (int m = 2; m <= 6; m += 2)
    for (int rep = 0; rep < 16; rep++) {
      size_t cin = rng_range(1, 24), cout = rng_range(1, 24);
      if (cout % 8 == 0) cout++;
      const size_t H = rng_range(2, 21), W = rng_range(2, 23);
      const size_t pt = rng_range(0, 1), pl = rng_range(0, 1), pb = rng_range(0, 2), pr = rng_range(0, 1);
      const size_t batch = rng_range(1, 3);
      const cnn_act act = (cnn_act){(int32_t)rng_range(0, 2), -0.5f, 0.75f}; /* none, relu, clip */
      conv_case c;
      make_case(&c, batch, cin, cout, H, W, pt, pl, pb, pr, (int)rng_range(0, 1), 0, act, rep % 4 == 3 ? 100.0f : 1.0f);
      if (!c.want || c.oh < 2 || c.ow < 2) {
        case_free(&c);
        continue;
      }
      cases++;
      bound_tile(&c, m, c.S);
      const size_t ph = c.oh / 2, pw = c.ow / 2, np = batch * cout * ph * pw;
      float* want = falloc(np);
      float* S = falloc(np);
      for (size_t nc = 0; nc < batch * cout; nc++)
        for (size_t y = 0; y < ph; y++)
          for (size_t x = 0; x < pw; x++) {
            float v = -INFINITY, b = 0;
            for (size_t dy = 0; dy < 2; dy++)
              for (size_t dx = 0; dx < 2; dx++) {
                const size_t o = (nc * c.oh + 2 * y + dy) * c.ow + 2 * x + dx;
                if (c.want[o] > v) v = c.want[o];
                if (c.S[o] > b) b = c.S[o];
              }
            want[(nc * ph + y) * pw + x] = v;
            S[(nc * ph + y) * pw + x] = b;
          }
      for (int ii = 0; ii < nisa; ii++) {
        cnn_wino_weights* ww = cnn_wino_weights_create(&c.d, c.w, c.bias, isas[ii], m);
        CHECK(ww != NULL, "F(%d,3) weights", m);
        if (!ww) continue;
        CHECK(cnn_wino_can_pool(ww), "F(%d,3) act %d: pool fusion refused", m, (int)act.type);
        cnn_threadpool* pool = (rep + ii) % 2 ? pool2 : NULL;
        const size_t nth = cnn_threadpool_size(pool);
        float* ws = falloc(cnn_wino_workspace_size(ww, batch, H, W, c.oh, c.ow, nth) / sizeof(float) + 1);
        float* y = falloc(np + 16);
        for (size_t i = 0; i < np + 16; i++) y[i] = NAN;
        cnn_wino_run_pool(ww, batch, H, W, c.oh, c.ow, c.x, y, NULL, ws, pool, nth, 1);
        size_t wi;
        const double r = worst_ratio(y, want, S, np, nterms_of(&c, m), &c.d.act, 1.0, &wi);
        if (r > worst) worst = r;
        CHECK(r <= 1, "pooled F(%d,3) %s n%zu %zux%zu %zux%zu pad %zu,%zu,%zu,%zu act%d: ratio %g at %zu (got %g want %g)",
              m, cnn_isa_name(isas[ii]), batch, cin, cout, H, W, pt, pl, pb, pr, (int)act.type, r, wi, (double)y[wi],
              (double)want[wi]);
        int tail_ok = 1; /* nothing written past the pooled tensor */
        for (size_t i = np; i < np + 16; i++) tail_ok &= isnan(y[i]);
        CHECK(tail_ok, "pooled F(%d,3): wrote past the pooled output", m);
        cnn_aligned_free(ws);
        cnn_aligned_free(y);
        cnn_wino_weights_destroy(ww);
      }
      cnn_aligned_free(want);
      cnn_aligned_free(S);
      case_free(&c);
    }
  /* activations that are not clamps do not commute with max: refused */
  {
    conv_case c;
    make_case(&c, 1, 4, 4, 8, 8, 1, 1, 1, 1, 0, 0, (cnn_act){CNN_ACT_SIGMOID, 0, 0}, 1.0f);
    cnn_wino_weights* ww = cnn_wino_weights_create(&c.d, c.w, NULL, -1, 4);
    CHECK(ww && !cnn_wino_can_pool(ww), "sigmoid: pool fusion must be refused");
    cnn_wino_weights_destroy(ww);
    case_free(&c);
  }
  printf("fused 2x2 max-pool vs reference conv + pool: %d cases x %d ISAs; worst ratio %.3g\n", cases, nisa, worst);
}

/* ============================================================================================================ */
/* conv API: dispatch, AUTO, env var, small outputs */

/* run through cnn_conv2d_* with algo; returns output; *algo_out / *plan_algo / *tile get what was chosen */
static float* run_api(const conv_case* c, int algo, cnn_threadpool* pool, int* algo_out, int* plan_algo, int* tile,
                      double* perr) {
  int st;
  cnn_conv2d_weights* w = cnn_conv2d_weights_create(&c->d, c->w, c->bias, -1, algo, &st);
  if (!w) return NULL;
  *algo_out = cnn_conv2d_weights_algo(w);
  *tile = cnn_conv2d_weights_tile(w);
  *perr = cnn_conv2d_weights_probe_error(w);
  cnn_conv2d_plan p;
  if (cnn_conv2d_plan_init(&p, w, c->batch, c->H, c->W, cnn_threadpool_size(pool)) != CNN_OK) {
    cnn_conv2d_weights_destroy(w);
    return NULL;
  }
  *plan_algo = p.algo;
  const size_t ny = c->batch * c->d.out_channels * c->oh * c->ow;
  float* ws = falloc(p.workspace_bytes / sizeof(float) + 1);
  float* y = falloc(ny);
  cnn_conv2d_run(&p, c->x, y, c->res, ws, pool);
  cnn_aligned_free(ws);
  cnn_conv2d_weights_destroy(w);
  return y;
}

static void check_api(const char* what, const conv_case* c, int algo, cnn_threadpool* pool, int want_algo,
                      int want_plan_wino, int want_tile) {
  int a = -1, pa = -1, tile = -1;
  double perr = -2;
  float* y = run_api(c, algo, pool, &a, &pa, &tile, &perr);
  CHECK(y != NULL, "%s: create/plan failed", what);
  if (!y) return;
  CHECK(a == want_algo, "%s: algo %d, want %d", what, a, want_algo);
  CHECK((pa == CNN_CONV_ALGO_WINOGRAD) == want_plan_wino, "%s: plan algo %d", what, pa);
  CHECK(tile == want_tile, "%s: tile %d, want %d", what, tile, want_tile);
  if (want_algo == CNN_CONV_ALGO_WINOGRAD)
    CHECK(perr >= 0 && perr <= cnn_wino_budget(tile), "%s: probe error %g", what, perr);
  /* correctness with the bound of the tile actually used (GEMM: the direct bound is smaller than F(2,3)'s) */
  float* S = falloc(c->batch * c->d.out_channels * c->oh * c->ow);
  const int m = pa == CNN_CONV_ALGO_WINOGRAD ? tile : 2;
  bound_tile(c, m, S);
  const double r = worst_ratio(y, c->want, S, c->batch * c->d.out_channels * c->oh * c->ow, nterms_of(c, m),
                               &c->d.act, 1.0, NULL);
  CHECK(r <= 1, "%s: ratio %g", what, r);
  printf("api %-40s algo %d plan %d tile %d probe error %.3g ratio %.3g\n", what, a, pa, tile, perr, r);
  cnn_aligned_free(S);
  cnn_aligned_free(y);
}

static void test_api(cnn_threadpool* pool2) {
  conv_case c;
  const cnn_act relu = {CNN_ACT_RELU, 0, 0};
  make_case(&c, 2, 24, 20, 17, 15, 1, 1, 1, 1, 1, 1, relu, 1.0f);
  check_api("AUTO 24->20 17x15", &c, CNN_CONV_ALGO_AUTO, pool2, CNN_CONV_ALGO_WINOGRAD, 1, 4);
  check_api("forced WINOGRAD 24->20 17x15", &c, CNN_CONV_ALGO_WINOGRAD, NULL, CNN_CONV_ALGO_WINOGRAD, 1, 4);
  setenv("CNNRT_WINOGRAD_TILE", "6", 1);
  check_api("CNNRT_WINOGRAD_TILE=6 24->20 17x15", &c, CNN_CONV_ALGO_AUTO, pool2, CNN_CONV_ALGO_WINOGRAD, 1, 6);
  setenv("CNNRT_WINOGRAD_TILE", "2", 1);
  check_api("CNNRT_WINOGRAD_TILE=2 24->20 17x15", &c, CNN_CONV_ALGO_WINOGRAD, pool2, CNN_CONV_ALGO_WINOGRAD, 1, 2);
  /* an explicit tile wins over CNNRT_WINOGRAD_TILE (the tuner's candidates) */
  check_api("WINOGRAD_F6 24->20 17x15", &c, CNN_CONV_ALGO_WINOGRAD_F6, pool2, CNN_CONV_ALGO_WINOGRAD, 1, 6);
  unsetenv("CNNRT_WINOGRAD_TILE");
  check_api("WINOGRAD_F2 24->20 17x15", &c, CNN_CONV_ALGO_WINOGRAD_F2, NULL, CNN_CONV_ALGO_WINOGRAD, 1, 2);
  check_api("WINOGRAD_F4 24->20 17x15", &c, CNN_CONV_ALGO_WINOGRAD_F4, pool2, CNN_CONV_ALGO_WINOGRAD, 1, 4);
  check_api("WINOGRAD_F6 24->20 17x15", &c, CNN_CONV_ALGO_WINOGRAD_F6, NULL, CNN_CONV_ALGO_WINOGRAD, 1, 6);
  check_api("GEMM 24->20", &c, CNN_CONV_ALGO_GEMM, NULL, CNN_CONV_ALGO_GEMM, 0, 0);
  setenv("CNNRT_WINOGRAD", "0", 1);
  check_api("AUTO with CNNRT_WINOGRAD=0", &c, CNN_CONV_ALGO_AUTO, NULL, CNN_CONV_ALGO_GEMM, 0, 0);
  unsetenv("CNNRT_WINOGRAD");
  case_free(&c);
  /* few channels: AUTO takes the direct kernel (Cin <= 4), not Winograd; forced still works */
  make_case(&c, 1, 3, 20, 13, 13, 1, 1, 1, 1, 0, 0, relu, 1.0f);
  check_api("AUTO 3->20 (few channels)", &c, CNN_CONV_ALGO_AUTO, NULL, CNN_CONV_ALGO_DIRECT, 0, 0);
  check_api("forced WINOGRAD 3->20", &c, CNN_CONV_ALGO_WINOGRAD, NULL, CNN_CONV_ALGO_WINOGRAD, 1, 4);
  case_free(&c);
  /* small output (7x7, batch 2: 8 tiles of F(4,3)): AUTO weights are Winograd, but the plan runs GEMM; at batch 5
     (20 tiles) it runs Winograd */
  make_case(&c, 2, 32, 32, 7, 7, 1, 1, 1, 1, 1, 0, relu, 1.0f);
  check_api("AUTO 32->32 7x7 n2 (small output)", &c, CNN_CONV_ALGO_AUTO, pool2, CNN_CONV_ALGO_WINOGRAD, 0, 4);
  check_api("forced WINOGRAD 32->32 7x7 n2", &c, CNN_CONV_ALGO_WINOGRAD, pool2, CNN_CONV_ALGO_WINOGRAD, 1, 4);
  case_free(&c);
  make_case(&c, 5, 32, 32, 7, 7, 1, 1, 1, 1, 1, 2, relu, 1.0f);
  check_api("AUTO 32->32 7x7 n5", &c, CNN_CONV_ALGO_AUTO, pool2, CNN_CONV_ALGO_WINOGRAD, 1, 4);
  case_free(&c);
  /* not eligible: stride 2 */
  make_case(&c, 1, 16, 16, 9, 9, 1, 1, 1, 1, 0, 0, relu, 1.0f);
  c.d.stride_h = 2;
  int st = 0;
  cnn_conv2d_weights* w = cnn_conv2d_weights_create(&c.d, c.w, NULL, -1, CNN_CONV_ALGO_WINOGRAD, &st);
  CHECK(w == NULL && st == CNN_ERR_UNSUPPORTED, "WINOGRAD on stride 2: status %d", st);
  cnn_conv2d_weights_destroy(w);
  w = cnn_conv2d_weights_create(&c.d, c.w, NULL, -1, CNN_CONV_ALGO_WINOGRAD_F2, &st);
  CHECK(w == NULL && st == CNN_ERR_UNSUPPORTED, "WINOGRAD_F2 on stride 2: status %d", st);
  cnn_conv2d_weights_destroy(w);
  w = cnn_conv2d_weights_create(&c.d, c.w, NULL, -1, CNN_CONV_ALGO_AUTO, &st);
  CHECK(w && cnn_conv2d_weights_algo(w) == CNN_CONV_ALGO_GEMM && cnn_conv2d_weights_tile(w) == 0 &&
            cnn_conv2d_weights_probe_error(w) == -1.0,
        "AUTO on stride 2 is GEMM without a probe");
  cnn_conv2d_weights_destroy(w);
  case_free(&c);
}

/* ============================================================================================================ */
/* accuracy guard */

static void test_guard(void) {
  setenv("CNNRT_WINOGRAD_TILE", "6", 1); /* the fallback chain starts at F(6,3) */
  conv_case c;
  const cnn_act none = {CNN_ACT_NONE, 0, 0};
  make_case(&c, 1, 20, 18, 14, 14, 1, 1, 1, 1, 1, 0, none, 1.0f);
  /* probe errors of each tile on this layer */
  double e[7] = {0};
  for (int m = 2; m <= 6; m += 2) {
    cnn_wino_weights* ww = cnn_wino_weights_create(&c.d, c.w, c.bias, -1, m);
    e[m] = ww ? cnn_wino_probe(ww, &c.d, c.w, c.bias) : INFINITY;
    cnn_wino_weights_destroy(ww);
    CHECK(e[m] > 0 && e[m] < 1e-4, "F(%d,3) probe error %g on a random layer", m, e[m]);
  }
  printf("guard: probe errors on a random 20->18 layer: F(2,3) %.3g F(4,3) %.3g F(6,3) %.3g (budget %g)\n", e[2], e[4],
         e[6], cnn_wino_budget(6));
  /* a budget between F(6,3)'s and a smaller tile's error selects that smaller tile */
  const int small = e[4] < e[6] ? 4 : (e[2] < e[6] ? 2 : 0);
  if (small) {
    cnn_wino_set_budget_override(e[small] * 1.0001 > e[6] ? e[6] * 0.9999 : (e[small] + e[6]) * 0.5);
    int a = -1, pa = -1, tile = -1;
    double perr = -1;
    float* y = run_api(&c, CNN_CONV_ALGO_WINOGRAD, NULL, &a, &pa, &tile, &perr);
    CHECK(y && a == CNN_CONV_ALGO_WINOGRAD && tile < 6 && tile > 0 && perr <= cnn_wino_budget(tile),
          "budget between errors: tile %d error %g", tile, perr);
    cnn_aligned_free(y);
    /* an explicit F(6,3) request is guarded the same way (never runs the tile over budget) */
    unsetenv("CNNRT_WINOGRAD_TILE");
    int tile6 = -1;
    y = run_api(&c, CNN_CONV_ALGO_WINOGRAD_F6, NULL, &a, &pa, &tile6, &perr);
    CHECK(y && a == CNN_CONV_ALGO_WINOGRAD && tile6 == tile && perr <= cnn_wino_budget(tile6),
          "WINOGRAD_F6 over budget: tile %d (WINOGRAD from 6: %d) error %g", tile6, tile, perr);
    cnn_aligned_free(y);
    setenv("CNNRT_WINOGRAD_TILE", "6", 1);
  }
  /* a zero budget: every tile fails, the layer falls back to GEMM and reports the last error tried */
  cnn_wino_set_budget_override(0.0);
  check_api("guard: budget 0 -> GEMM", &c, CNN_CONV_ALGO_WINOGRAD, NULL, CNN_CONV_ALGO_GEMM, 0, 0);
  {
    int st;
    cnn_conv2d_weights* w = cnn_conv2d_weights_create(&c.d, c.w, c.bias, -1, CNN_CONV_ALGO_AUTO, &st);
    CHECK(w && cnn_conv2d_weights_algo(w) == CNN_CONV_ALGO_GEMM && cnn_conv2d_weights_probe_error(w) == e[2],
          "budget 0: AUTO falls back, probe error %g (F(2,3) %g)", w ? cnn_conv2d_weights_probe_error(w) : -1, e[2]);
    cnn_conv2d_weights_destroy(w);
  }
  cnn_wino_set_budget_override(-1.0);
  case_free(&c);

  /* pathological filter: weights ~1e36 (finite, and the direct sums stay finite: |sum| <= 9*Cin*1e36 < FLT_MAX),
     but the transformed products overflow (|V| up to ~150x the inputs for F(6,3)) -> Inf/NaN. The random probe
     input may not hit the overflow (it did not for F(4,3) here before the headroom check was added), so the guard
     also bounds the intermediates: every tile fails -> GEMM, and the result is still right */
  make_case(&c, 1, 16, 8, 12, 12, 1, 1, 1, 1, 0, 0, none, 1.0f);
  for (size_t i = 0; i < 16 * 8 * 9; i++) c.w[i] = (i % 2 ? 1.0f : -1.0f) * 2.0e36f;
  cnn_conv2d_ref(&c.d, c.batch, c.H, c.W, c.x, c.w, c.bias, c.res, c.want);
  {
    cnn_wino_weights* ww = cnn_wino_weights_create(&c.d, c.w, NULL, -1, 6);
    const double e6 = cnn_wino_probe(ww, &c.d, c.w, NULL);
    cnn_wino_weights_destroy(ww);
    int a = -1, pa = -1, tile = -1;
    double perr = -1;
    float* y = run_api(&c, CNN_CONV_ALGO_WINOGRAD, NULL, &a, &pa, &tile, &perr);
    printf("guard: pathological 2e36 filter: F(6,3) probe error %g -> algo %d tile %d probe error %g\n", e6, a, tile,
           perr);
    CHECK(!(e6 <= cnn_wino_budget(6)), "pathological filter: F(6,3) probe error %g within budget", e6);
    CHECK(y && tile == 0 && a == CNN_CONV_ALGO_GEMM && isinf(perr), "pathological filter: algo %d tile %d err %g", a,
          tile, perr);
    if (y) {
      float* S = falloc(c.d.out_channels * c.oh * c.ow);
      const int m = tile ? tile : 2;
      bound_tile(&c, m, S);
      size_t wi;
      const double r = worst_ratio(y, c.want, S, c.d.out_channels * c.oh * c.ow, nterms_of(&c, m), NULL, 1.0, &wi);
      CHECK(r <= 1, "pathological filter: fallback result ratio %g at %zu (got %g want %g S %g)", r, wi,
            (double)y[wi], (double)c.want[wi], (double)S[wi]);
      cnn_aligned_free(S);
    }
    cnn_aligned_free(y);
  }
  case_free(&c);
  unsetenv("CNNRT_WINOGRAD_TILE");
}

int main(void) {
  rng_seed(20261128);
  cnn_threadpool* pool2 = cnn_threadpool_create(2);
  test_matrices();
  test_kernels();
  test_op_random(pool2);
  test_pool_random(pool2);
  test_threads_bit_exact(pool2);
  test_api(pool2);
  test_guard();
  cnn_threadpool_destroy(pool2);
  return test_summary("test_winograd");
}
