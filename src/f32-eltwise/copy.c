/* Data movement: strided N-d copy, fill, gather. Memory-bound, so one portable version. */
#include <string.h>

#include "cnnrt/eltwise.h"

#define COPY_TILE 32 /* transpose tile edge */

/* 2-D block: y[i*ys0 + j*ys1] = x[i*xs0 + j*xs1], tiled when neither side is contiguous along the same dim. */
static void copy_2d(size_t n0, size_t n1, const float* x, ptrdiff_t xs0, ptrdiff_t xs1, float* y, ptrdiff_t ys0,
                    ptrdiff_t ys1) {
  for (size_t i0 = 0; i0 < n0; i0 += COPY_TILE) {
    const size_t i1 = cnn_min_sz(n0, i0 + COPY_TILE);
    for (size_t j0 = 0; j0 < n1; j0 += COPY_TILE) {
      const size_t j1 = cnn_min_sz(n1, j0 + COPY_TILE);
      for (size_t i = i0; i < i1; i++) {
        const float* xr = x + (ptrdiff_t)i * xs0;
        float* yr = y + (ptrdiff_t)i * ys0;
        for (size_t j = j0; j < j1; j++) yr[(ptrdiff_t)j * ys1] = xr[(ptrdiff_t)j * xs1];
      }
    }
  }
}

/* One innermost run of n elements. */
static inline void copy_run(size_t n, const float* x, ptrdiff_t xs, float* y, ptrdiff_t ys) {
  if (xs == 1 && ys == 1) {
    memmove(y, x, n * sizeof(float));
  } else if (ys == 1 && xs == -1) {
    for (size_t i = 0; i < n; i++) y[i] = x[-(ptrdiff_t)i];
  } else {
    for (size_t i = 0; i < n; i++) y[(ptrdiff_t)i * ys] = x[(ptrdiff_t)i * xs];
  }
}

/* Size-1 dims are dropped and neighbours that are contiguous for both x and y merged; then:
 *  - innermost unit stride on both sides: memcpy per run;
 *  - innermost unit stride on y only and some outer dim with unit stride on x (a transpose): 32x32 tiles over
 *    those two dims;
 *  - anything else: element loop over the innermost dim. */
void cnn_copy_strided(size_t ndim, const size_t* shape, const float* x, const ptrdiff_t* x_strides, float* y,
                      const ptrdiff_t* y_strides) {
  if (ndim > CNN_MAX_DIMS) return;
  size_t sh[CNN_MAX_DIMS];
  ptrdiff_t xs[CNN_MAX_DIMS], ys[CNN_MAX_DIMS];
  size_t nd = 0;
  for (size_t d = 0; d < ndim; d++) {
    if (shape[d] == 0) return;
    if (shape[d] == 1) continue;
    if (nd > 0 && x_strides[d] * (ptrdiff_t)shape[d] == xs[nd - 1] && y_strides[d] * (ptrdiff_t)shape[d] == ys[nd - 1]) {
      sh[nd - 1] *= shape[d];
      xs[nd - 1] = x_strides[d];
      ys[nd - 1] = y_strides[d];
      continue;
    }
    sh[nd] = shape[d];
    xs[nd] = x_strides[d];
    ys[nd] = y_strides[d];
    nd++;
  }
  if (nd == 0) {
    y[0] = x[0];
    return;
  }
  /* transpose: the y-contiguous innermost dim is strided in x, and an outer dim t is x-contiguous */
  size_t t = nd;
  if (nd >= 2 && ys[nd - 1] == 1 && xs[nd - 1] != 1 && sh[nd - 1] >= 4)
    for (size_t d = 0; d + 1 < nd; d++)
      if ((xs[d] == 1 || xs[d] == -1) && sh[d] >= 4) t = d;
  /* odometer over the dims other than the innermost (and t) */
  size_t idx[CNN_MAX_DIMS] = {0};
  ptrdiff_t xo = 0, yo = 0;
  const size_t inner = sh[nd - 1];
  for (;;) {
    if (t < nd)
      copy_2d(sh[t], inner, x + xo, xs[t], xs[nd - 1], y + yo, ys[t], ys[nd - 1]);
    else
      copy_run(inner, x + xo, xs[nd - 1], y + yo, ys[nd - 1]);
    size_t d = nd - 1;
    for (;;) {
      if (d == 0) return;
      d--;
      if (d == t) continue;
      xo += xs[d];
      yo += ys[d];
      if (++idx[d] < sh[d]) break;
      xo -= (ptrdiff_t)sh[d] * xs[d];
      yo -= (ptrdiff_t)sh[d] * ys[d];
      idx[d] = 0;
    }
  }
}

void cnn_fill(float* y, size_t n, float value) {
  if (n == 0) return;
  uint32_t bits;
  memcpy(&bits, &value, sizeof(bits));
  if (bits == 0) {
    memset(y, 0, n * sizeof(float));
    return;
  }
  for (size_t i = 0; i < n; i++) y[i] = value;
}

void cnn_gather(size_t outer, size_t axis_in, size_t inner, const int64_t* idx, size_t nidx, const float* x,
                float* y) {
  if (inner == 0) return;
  for (size_t o = 0; o < outer; o++)
    for (size_t i = 0; i < nidx; i++)
      memcpy(y + (o * nidx + i) * inner, x + (o * axis_in + (size_t)idx[i]) * inner, inner * sizeof(float));
}
