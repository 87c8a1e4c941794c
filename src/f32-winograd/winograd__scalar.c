/* Winograd F(m,3) transform matrices (m = 2, 4, 6; interpolation points 0, +-1, +-2, +-1/2 and infinity, as in
 * Lavin & Gray 2016 / wincnn) and the portable input / output transform kernels (the reference for the AVX2 ones).
 * Each kernel transforms 8 tiles, one per lane, using only the non-zero matrix entries. */
#include <math.h>
#include <pthread.h>
#include <stddef.h>

#include "cnnrt/winograd.h"

static const double bt2[16] = {1, 0, -1, 0, 0, 1, 1, 0, 0, -1, 1, 0, 0, 1, 0, -1};
static const double g2[12] = {1, 0, 0, .5, .5, .5, .5, -.5, .5, 0, 0, 1};
static const double at2[8] = {1, 1, 1, 0, 0, 1, -1, -1};

static const double bt4[36] = {4, 0, -5, 0, 1, 0,  0, -4, -4, 1, 1, 0, 0, 4, -4, -1, 1, 0,
                               0, -2, -1, 2, 1, 0, 0, 2, -1, -2, 1, 0, 0, 4, 0, -5, 0, 1};
static const double g4[18] = {1.0 / 4,  0,        0,        -1.0 / 6, -1.0 / 6, -1.0 / 6,
                              -1.0 / 6, 1.0 / 6,  -1.0 / 6, 1.0 / 24, 1.0 / 12, 1.0 / 6,
                              1.0 / 24, -1.0 / 12, 1.0 / 6, 0,        0,        1};
static const double at4[24] = {1, 1, 1, 1, 1, 0, 0, 1, -1, 2, -2, 0, 0, 1, 1, 4, 4, 0, 0, 1, -1, 8, -8, 1};

static const double bt6[64] = {
    1, 0,    -21.0 / 4, 0,         21.0 / 4,  0,         -1, 0, /**/
    0, 1,    1,         -17.0 / 4, -17.0 / 4, 1,         1,  0, /**/
    0, -1,   1,         17.0 / 4,  -17.0 / 4, -1,        1,  0, /**/
    0, 0.5,  0.25,      -2.5,      -1.25,     2,         1,  0, /**/
    0, -0.5, 0.25,      2.5,       -1.25,     -2,        1,  0, /**/
    0, 2,    4,         -2.5,      -5,        0.5,       1,  0, /**/
    0, -2,   4,         2.5,       -5,        -0.5,      1,  0, /**/
    0, -1,   0,         21.0 / 4,  0,         -21.0 / 4, 0,  1};
static const double g6[24] = {1,          0,          0,         -2.0 / 9,   -2.0 / 9,   -2.0 / 9,
                              -2.0 / 9,   2.0 / 9,    -2.0 / 9,  1.0 / 90,   1.0 / 45,   2.0 / 45,
                              1.0 / 90,   -1.0 / 45,  2.0 / 45,  32.0 / 45,  16.0 / 45,  8.0 / 45,
                              32.0 / 45,  -16.0 / 45, 8.0 / 45,  0,          0,          1};
static const double at6[48] = {1, 1, 1,  1,  1,   1,        1,         0, /**/
                               0, 1, -1, 2,  -2,  0.5,      -0.5,      0, /**/
                               0, 1, 1,  4,  4,   0.25,     0.25,      0, /**/
                               0, 1, -1, 8,  -8,  0.125,    -0.125,    0, /**/
                               0, 1, 1,  16, 16,  0.0625,   0.0625,    0, /**/
                               0, 1, -1, 32, -32, 0.03125,  -0.03125,  1};

static void sparse_rows(const double* mat, int rows, int cols, cnn_wino_row* out) {
  for (int i = 0; i < rows; i++) {
    int n = 0;
    for (int j = 0; j < cols; j++)
      if (mat[i * cols + j] != 0) {
        out[i].idx[n] = j;
        out[i].coef[n] = (float)mat[i * cols + j]; /* B^T and A^T entries are dyadic: exact in float */
        n++;
      }
    out[i].nnz = n;
  }
}

static cnn_wino_tx make_tx(int m, const double* bt, const double* g, const double* at) {
  cnn_wino_tx t;
  t.m = m;
  t.T = m + 2;
  t.bt = bt;
  t.g = g;
  t.at = at;
  sparse_rows(bt, t.T, t.T, t.btr);
  sparse_rows(at, m, t.T, t.atr);
  return t;
}

static cnn_wino_tx g_tx[3];
static pthread_once_t g_tx_once = PTHREAD_ONCE_INIT;
static void init_tx(void) {
  g_tx[0] = make_tx(2, bt2, g2, at2);
  g_tx[1] = make_tx(4, bt4, g4, at4);
  g_tx[2] = make_tx(6, bt6, g6, at6);
}

const cnn_wino_tx* cnn_wino_tx_get(int m) {
  pthread_once(&g_tx_once, init_tx);
  cnn_wino_tx* tx = g_tx;
  switch (m) {
    case 2: return &tx[0];
    case 4: return &tx[1];
    case 6: return &tx[2];
    default: return NULL;
  }
}

#define L CNN_WINO_LANES

void cnn_wino_input__scalar(const cnn_wino_tx* tx, const float* const* rows, float* v, size_t pstride) {
  const int T = tx->T;
  float w[CNN_WINO_TMAX * CNN_WINO_TMAX][L];
  /* w[p][s] = sum_r BT[p][r] d[r][s] */
  for (int p = 0; p < T; p++) {
    const cnn_wino_row* row = &tx->btr[p];
    for (int s = 0; s < T; s++) {
      float acc[L] = {0};
      for (int k = 0; k < row->nnz; k++) {
        const float c = row->coef[k];
        const float* const* src = rows + row->idx[k] * L;
        for (int l = 0; l < L; l++) acc[l] += c * src[l][s];
      }
      for (int l = 0; l < L; l++) w[p * T + s][l] = acc[l];
    }
  }
  /* V[p][q] = sum_s w[p][s] BT[q][s] */
  for (int p = 0; p < T; p++)
    for (int q = 0; q < T; q++) {
      const cnn_wino_row* row = &tx->btr[q];
      float acc[L] = {0};
      for (int k = 0; k < row->nnz; k++) {
        const float c = row->coef[k];
        const float* src = w[p * T + row->idx[k]];
        for (int l = 0; l < L; l++) acc[l] += c * src[l];
      }
      float* dst = v + (size_t)(p * T + q) * pstride;
      for (int l = 0; l < L; l++) dst[l] = acc[l];
    }
}

void cnn_wino_output__scalar(const cnn_wino_tx* tx, const float* mp, size_t pstride, float bias, float lo, float hi,
                             float* out, const float* res, const ptrdiff_t* offs, const int* ncols) {
  const int T = tx->T, m = tx->m;
  float z[CNN_WINO_TMAX * CNN_WINO_TMAX][L];
  /* z[i][q] = sum_p AT[i][p] M[p][q] */
  for (int i = 0; i < m; i++) {
    const cnn_wino_row* row = &tx->atr[i];
    for (int q = 0; q < T; q++) {
      float acc[L] = {0};
      for (int k = 0; k < row->nnz; k++) {
        const float c = row->coef[k];
        const float* src = mp + (size_t)(row->idx[k] * T + q) * pstride;
        for (int l = 0; l < L; l++) acc[l] += c * src[l];
      }
      for (int l = 0; l < L; l++) z[i * T + q][l] = acc[l];
    }
  }
  /* y[i][j] = sum_q z[i][q] AT[j][q] + bias; then + residual, clamp, store */
  for (int i = 0; i < m; i++) {
    float y[CNN_WINO_TMAX][L];
    for (int j = 0; j < m; j++) {
      const cnn_wino_row* row = &tx->atr[j];
      for (int l = 0; l < L; l++) y[j][l] = bias;
      for (int k = 0; k < row->nnz; k++) {
        const float c = row->coef[k];
        const float* src = z[i * T + row->idx[k]];
        for (int l = 0; l < L; l++) y[j][l] += c * src[l];
      }
    }
    for (int l = 0; l < L; l++) {
      const ptrdiff_t of = offs[i * L + l];
      if (of < 0) continue;
      float* o = out + of;
      const float* r = res ? res + of : NULL;
      for (int j = 0; j < ncols[l]; j++) {
        float t = y[j][l];
        if (r) t += r[j];
        t = t < lo ? lo : t;
        o[j] = t > hi ? hi : t;
      }
    }
  }
}

void cnn_wino_output_pool_ref(cnn_wino_out_fn out_fn, const cnn_wino_tx* tx, const float* mp, size_t pstride,
                              float bias, float lo, float hi, float* out, const ptrdiff_t* offs, const int* pcols) {
  const int m = tx->m;
  float t[CNN_WINO_TMAX * L * 8]; /* row i of lane l's tile at t + (i*L + l)*8 */
  ptrdiff_t to[CNN_WINO_TMAX * L];
  int full[L];
  for (int e = 0; e < m * L; e++) to[e] = (ptrdiff_t)e * 8;
  for (int l = 0; l < L; l++) full[l] = m;
  out_fn(tx, mp, pstride, bias, lo, hi, t, NULL, to, full);
  for (int r = 0; r < m / 2; r++)
    for (int l = 0; l < L; l++) {
      const ptrdiff_t of = offs[r * L + l];
      if (of < 0) continue;
      const float* r0 = t + ((2 * r) * L + l) * 8;
      const float* r1 = t + ((2 * r + 1) * L + l) * 8;
      for (int q = 0; q < pcols[l]; q++) {
        const float v[4] = {r0[2 * q], r0[2 * q + 1], r1[2 * q], r1[2 * q + 1]};
        float mx = -INFINITY;
        for (int k = 0; k < 4; k++) mx = v[k] > mx ? v[k] : mx; /* skips NaN, as the pooling kernels */
        out[of + q] = mx;
      }
    }
}
