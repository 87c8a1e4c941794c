/* Packing of GEMM operands into micro-kernel panels (see include/cnnrt/gemm.h).
 *   A (m x kc, strides rs/cs) -> ceil(m/mr) panels, panel p holds rows [p*mr, p*mr+mr): packed[k*mr + i].
 *   B (kc x n, strides rs/cs) -> ceil(n/nr) panels, panel p holds cols [p*nr, p*nr+nr): packed[k*nr + j].
 * Rows / columns past the matrix edge are written as zeros, so micro-kernels never need edge cases in their sums.
 * The common layouts (unit column stride for B, unit stride along k for A) take loops the compiler vectorizes;
 * any other stride falls back to a plain gather. */
#include <string.h>

#include "cnnrt/gemm.h"

void cnn_gemm_pack_a(size_t mr, size_t m, size_t kc, const float* a, size_t rs, size_t cs, float* packed) {
  for (size_t p0 = 0; p0 < m; p0 += mr) {
    const size_t mv = cnn_min_sz(mr, m - p0);
    const float* ap = a + p0 * rs;
    if (cs == 1) {
      /* rows contiguous along k: read each row once, write with stride mr */
      for (size_t i = 0; i < mv; i++) {
        const float* row = ap + i * rs;
        for (size_t k = 0; k < kc; k++) packed[k * mr + i] = row[k];
      }
    } else if (rs == 1) {
      /* columns contiguous along m (transposed A): mv consecutive floats per k */
      for (size_t k = 0; k < kc; k++) {
        const float* col = ap + k * cs;
        for (size_t i = 0; i < mv; i++) packed[k * mr + i] = col[i];
      }
    } else {
      for (size_t k = 0; k < kc; k++)
        for (size_t i = 0; i < mv; i++) packed[k * mr + i] = ap[i * rs + k * cs];
    }
    if (mv < mr)
      for (size_t k = 0; k < kc; k++)
        for (size_t i = mv; i < mr; i++) packed[k * mr + i] = 0.0f;
    packed += mr * kc;
  }
}

void cnn_gemm_pack_b(size_t nr, size_t kc, size_t n, const float* b, size_t rs, size_t cs, float* packed) {
  if (cs == 1 && nr == 16) {
    /* Rows contiguous (row-major B, NCHW activations of a 1x1 convolution): blocks of 16 rows outer, panels
     * inner, so the source is read as 16 sequential streams (prefetcher friendly) and each panel receives 1 KiB
     * contiguous; a fixed-size 64-byte copy the compiler turns into vector moves. (Row-outer order would write
     * with a stride of kc*64 bytes, a multiple of 4 KiB: every write in the same L1 set.) */
    const size_t full = n / 16, tail = n % 16;
    for (size_t k0 = 0; k0 < kc; k0 += 16) {
      const size_t k1 = cnn_min_sz(kc, k0 + 16);
      for (size_t p = 0; p < full; p++) {
        float* dst = packed + p * 16 * kc;
        const float* src = b + p * 16;
        for (size_t k = k0; k < k1; k++) memcpy(dst + k * 16, src + k * rs, 16 * sizeof(float));
      }
      if (tail) {
        float* dst = packed + full * 16 * kc;
        const float* src = b + full * 16;
        for (size_t k = k0; k < k1; k++) {
          for (size_t j = 0; j < tail; j++) dst[k * 16 + j] = src[k * rs + j];
          for (size_t j = tail; j < 16; j++) dst[k * 16 + j] = 0.0f;
        }
      }
    }
    return;
  }
  for (size_t p0 = 0; p0 < n; p0 += nr) {
    const size_t nv = cnn_min_sz(nr, n - p0);
    const float* bp = b + p0 * cs;
    if (cs == 1) {
      for (size_t k = 0; k < kc; k++) {
        float* dst = packed + k * nr;
        const float* src = bp + k * rs;
        for (size_t j = 0; j < nv; j++) dst[j] = src[j];
        for (size_t j = nv; j < nr; j++) dst[j] = 0.0f;
      }
    } else if (rs == 1) {
      /* columns contiguous along k (transposed B): read each column once, write with stride nr */
      for (size_t j = 0; j < nv; j++) {
        const float* col = bp + j * cs;
        for (size_t k = 0; k < kc; k++) packed[k * nr + j] = col[k];
      }
      if (nv < nr)
        for (size_t k = 0; k < kc; k++)
          for (size_t j = nv; j < nr; j++) packed[k * nr + j] = 0.0f;
    } else {
      for (size_t k = 0; k < kc; k++) {
        float* dst = packed + k * nr;
        for (size_t j = 0; j < nv; j++) dst[j] = bp[k * rs + j * cs];
        for (size_t j = nv; j < nr; j++) dst[j] = 0.0f;
      }
    }
    packed += nr * kc;
  }
}
