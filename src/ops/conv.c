/* 2-D convolution operator (see include/cnnrt/conv.h): descriptor checks, algorithm choice, weight packing, plans
 * and the parallel run of each algorithm.
 *
 * GEMM (implicit GEMM), per image n and group g:  C[Cout_g, OH*OW] = A[Cout_g, K] x B[K, OH*OW],  K = Cin_g*KH*KW.
 *   A = the weights, packed once at create into MR-row panels per K block (layout below); B = the input seen as an
 *   im2col matrix, packed per task straight from the input into the thread's workspace slice (1x1 stride 1 pad 0:
 *   B is the input itself, packed as a plain matrix). Bias (per row), residual and RELU/CLIP run in the micro-kernel
 *   epilogue, any other activation on each finished tile. Tasks: (n*G + g, M block) x (N block), sized by
 *   cnn_gemm_tiling_init so that 2+ threads get work at batch 1 (N = OH*OW is split first when it is the larger).
 * DEPTHWISE: tasks over (image, input plane[, multiplier chunk]): small planes 8 channels at a time in the vector
 *   lanes (AVX2); planes whose zero-padded copy would exceed 32 KB straight from the input rows (AVX2 no-copy
 *   kernel); the others on a padded copy of each plane; without a workspace, the edge-masking direct kernel.
 * REFERENCE: cnn_conv2d_ref on the unpacked weights (single-threaded).
 * DIRECT (groups 1, Cin <= 4: the 3-channel stems): tasks (n, band of output rows); each pads its band's input
 *   rows into the depthwise padded-copy layout and runs cnn_f32_directconv (4 output channels x 24 columns in
 *   registers). A fused 2x2 max-pool runs in the kernel's registers (clamp activations: 6 output channels x 16
 *   columns of two rows per tile) or from a per-thread scratch of the band's outputs (others). An explicit DIRECT
 *   request on a shape it does not take is served by GEMM.
 * WINOGRAD is not implemented here (CNN_ERR_UNSUPPORTED). */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cnnrt/conv.h"
#include "cnnrt/eltwise.h"
#include "cnnrt/gemm.h"
#include "cnnrt/hardware.h"
#include "cnnrt/winograd.h"

/* Everything indexed with ptrdiff_t (signed offsets into the input) must stay below this. */
#define CNN_MAX_ELEMS ((size_t)PTRDIFF_MAX / 8)

/* a*b into *r; returns 0 on overflow (or when the product exceeds CNN_MAX_ELEMS) */
static int mul_ok(size_t a, size_t b, size_t* r) {
  if (a != 0 && b > CNN_MAX_ELEMS / a) return 0;
  *r = a * b;
  return 1;
}

int cnn_conv2d_desc_check(const cnn_conv2d_desc* d) {
  if (!d) return CNN_ERR_INVALID;
  if (!d->in_channels || !d->out_channels || !d->groups || !d->kernel_h || !d->kernel_w || !d->stride_h ||
      !d->stride_w || !d->dilation_h || !d->dilation_w)
    return CNN_ERR_INVALID;
  if (d->in_channels % d->groups || d->out_channels % d->groups) return CNN_ERR_INVALID;
  if (d->act.type < CNN_ACT_NONE || d->act.type > CNN_ACT_TANH) return CNN_ERR_INVALID;
  size_t khw, k, wn, t;
  if (!mul_ok(d->kernel_h, d->kernel_w, &khw) || !mul_ok(d->in_channels / d->groups, khw, &k) ||
      !mul_ok(d->out_channels, k, &wn))
    return CNN_ERR_INVALID;
  /* effective kernel extents and padded sizes must be representable */
  if (!mul_ok(d->dilation_h, d->kernel_h - 1, &t) || !mul_ok(d->dilation_w, d->kernel_w - 1, &t))
    return CNN_ERR_INVALID;
  if (d->stride_h > CNN_MAX_ELEMS || d->stride_w > CNN_MAX_ELEMS || d->pad_top > CNN_MAX_ELEMS ||
      d->pad_bottom > CNN_MAX_ELEMS || d->pad_left > CNN_MAX_ELEMS || d->pad_right > CNN_MAX_ELEMS)
    return CNN_ERR_INVALID;
  return CNN_OK;
}

/* output size along one axis; 0 when the (dilated) kernel does not fit in the padded input */
static size_t out_dim(size_t in, size_t pa, size_t pb, size_t k, size_t dil, size_t s) {
  const size_t padded = in + pa + pb; /* each term < CNN_MAX_ELEMS: no overflow */
  const size_t ext = dil * (k - 1) + 1;
  if (in == 0 || padded < ext) return 0;
  return (padded - ext) / s + 1;
}

int cnn_conv2d_out_size(const cnn_conv2d_desc* d, size_t h, size_t w, size_t* oh, size_t* ow) {
  *oh = *ow = 0;
  if (cnn_conv2d_desc_check(d) != CNN_OK || h > CNN_MAX_ELEMS || w > CNN_MAX_ELEMS) return 0;
  const size_t y = out_dim(h, d->pad_top, d->pad_bottom, d->kernel_h, d->dilation_h, d->stride_h);
  const size_t x = out_dim(w, d->pad_left, d->pad_right, d->kernel_w, d->dilation_w, d->stride_w);
  if (y == 0 || x == 0) return 0;
  *oh = y;
  *ow = x;
  return 1;
}

/* ------------------------------------------------------------------------------------------------------------ */
/* Reference */

static double act_ref(const cnn_act* a, double x) {
  switch (a->type) {
    case CNN_ACT_RELU: return x > 0 ? x : 0;
    case CNN_ACT_CLIP: x = x < a->a ? a->a : x; return x > a->b ? a->b : x;
    case CNN_ACT_LEAKY: return x >= 0 ? x : a->a * x;
    case CNN_ACT_SIGMOID: return 1.0 / (1.0 + exp(-x));
    case CNN_ACT_HARDSIGMOID: { double v = a->a * x + a->b; v = v < 0 ? 0 : v; return v > 1 ? 1 : v; }
    case CNN_ACT_HARDSWISH: { double v = x / 6.0 + 0.5; v = v < 0 ? 0 : v; return x * (v > 1 ? 1 : v); }
    case CNN_ACT_SILU: return x / (1.0 + exp(-x));
    case CNN_ACT_TANH: return tanh(x);
    default: return x;
  }
}

void cnn_conv2d_ref(const cnn_conv2d_desc* d, size_t batch, size_t h, size_t w, const float* in, const float* weights,
                    const float* bias, const float* residual, float* out) {
  size_t oh, ow;
  if (!cnn_conv2d_out_size(d, h, w, &oh, &ow)) return;
  const size_t G = d->groups, cin_g = d->in_channels / G, cout_g = d->out_channels / G;
  const size_t kh = d->kernel_h, kw = d->kernel_w;
  for (size_t n = 0; n < batch; n++)
    for (size_t co = 0; co < d->out_channels; co++) {
      const size_t g = co / cout_g;
      for (size_t oy = 0; oy < oh; oy++)
        for (size_t ox = 0; ox < ow; ox++) {
          double s = bias ? bias[co] : 0.0;
          for (size_t c = 0; c < cin_g; c++) {
            const size_t ci = g * cin_g + c;
            for (size_t ky = 0; ky < kh; ky++) {
              const ptrdiff_t iy = (ptrdiff_t)(oy * d->stride_h + ky * d->dilation_h) - (ptrdiff_t)d->pad_top;
              if (iy < 0 || iy >= (ptrdiff_t)h) continue;
              for (size_t kx = 0; kx < kw; kx++) {
                const ptrdiff_t ix = (ptrdiff_t)(ox * d->stride_w + kx * d->dilation_w) - (ptrdiff_t)d->pad_left;
                if (ix < 0 || ix >= (ptrdiff_t)w) continue;
                s += (double)in[((n * d->in_channels + ci) * h + (size_t)iy) * w + (size_t)ix] *
                     (double)weights[((co * cin_g + c) * kh + ky) * kw + kx];
              }
            }
          }
          const size_t o = ((n * d->out_channels + co) * oh + oy) * ow + ox;
          if (residual) s += residual[o];
          out[o] = (float)act_ref(&d->act, s);
        }
    }
}

/* ------------------------------------------------------------------------------------------------------------ */
/* Weights */

struct cnn_conv2d_weights {
  cnn_conv2d_desc d;
  int algo, isa;
  const cnn_gemm_config* cfg;  /* GEMM */
  size_t cin_g, cout_g, K, kcb; /* K = cin_g*kh*kw; kcb: K block */
  size_t mpad;                  /* cout_g rounded up to mr */
  /* GEMM: group g, K block starting at pc, row panel r at packed + g*mpad*K + pc*mpad + r*mr*kc (kc = that block's
   *       depth), i.e. each K block holds mpad/mr panels of kc x mr.
   * DEPTHWISE: [Cout][kh*kw]. REFERENCE: the weights as given, [Cout][cin_g][kh][kw]. */
  float* packed;
  float* bias; /* Cout floats or NULL (a copy) */
  cnn_conv_pack_b_fn pack_b;
  cnn_dwconv_fn dw;
  cnn_dwconv_pad_fn dwpad;
  cnn_directconv_fn direct; /* DIRECT: packed is [ceil(Cout/CB)][K][CB] (see cnn_directconv_params) */
  float* wref;              /* DIRECT: the weights as given, for plans whose rows are too wide for the padded copy */
  float* packed8; /* DEPTHWISE, multiplier 1, AVX2, >= 8 channels: [C/8][kh*kw][8] for cnn_f32_dwconv_c8__avx2 */
  cnn_dwconv_padded_fn dwp; /* depthwise on a padded plane copy (the shapes cnn_dwconv_padded_geometry takes) */
  cnn_dwconv_rows_fn dwrows; /* depthwise straight from the input planes (AVX2; the shapes cnn_dwconv_rows_ok takes),
                                used instead of dwpad + dwp where it applies, or NULL */
  cnn_gemm_act_fn act_fn; /* activation the clamp cannot express, or NULL */
  float act_min, act_max;
  size_t bytes;
  cnn_wino_weights* wino; /* Winograd transform (src/ops/winograd.c), kept next to the GEMM packing, or NULL */
  double wino_err;        /* its probe error (-1: no probe) */
};

/* CNNRT_DW_ROWS=0 turns the depthwise no-copy kernel off (A/B comparisons) */
static int dw_rows_env(void) {
  const char* e = getenv("CNNRT_DW_ROWS");
  return !(e && e[0] == '0');
}

/* The direct kernel's shapes: groups 1, few input channels, the padded-copy layout (dilation 1, stride_w 1 or 2,
 * kh*kw <= 64). */
static int direct_eligible(const cnn_conv2d_desc* d) {
  return d->groups == 1 && d->in_channels <= CNN_DIRECT_MAX_CIN && d->dilation_h == 1 && d->dilation_w == 1 &&
         (d->stride_w == 1 || d->stride_w == 2) && d->kernel_h * d->kernel_w <= 64;
}
/* AUTO's choice: every eligible shape (faster than im2col GEMM on every stem measured, and than the depthwise path on
 * ConvNet's 1->64 layer); CNNRT_DIRECT=0 turns it off (A/B comparisons) */
static int direct_auto(const cnn_conv2d_desc* d) {
  const char* e = getenv("CNNRT_DIRECT");
  return direct_eligible(d) && !(e && e[0] == '0');
}

static int set_status(int* status, int s) {
  if (status) *status = s;
  return s;
}

cnn_conv2d_weights* cnn_conv2d_weights_create(const cnn_conv2d_desc* d, const float* w, const float* bias, int isa,
                                              int algo, int* status) {
  int s = cnn_conv2d_desc_check(d);
  if (s != CNN_OK || !w) {
    set_status(status, CNN_ERR_INVALID);
    return NULL;
  }
  if (isa < 0) isa = cnn_hw_active_isa();
  const cnn_gemm_config* cfg = cnn_gemm_config_get(isa);
  if (!cfg) {
    set_status(status, CNN_ERR_UNSUPPORTED);
    return NULL;
  }
  const size_t G = d->groups, cin_g = d->in_channels / G, cout_g = d->out_channels / G;
  const int dw_shape = G == d->in_channels; /* one input channel per group: depthwise, multiplier cout_g */
  int wino_m = 0;                            /* > 0: AUTO tries Winograd from this tile; < 0: requested */
  switch (algo) {
    case CNN_CONV_ALGO_AUTO_SMALL:
    case CNN_CONV_ALGO_AUTO:
      wino_m = !cnn_wino_auto_enabled()               ? 0
               : algo == CNN_CONV_ALGO_AUTO_SMALL ? cnn_wino_auto_tile_small(d)
                                                  : cnn_wino_auto_tile(d);
      algo = direct_auto(d) ? CNN_CONV_ALGO_DIRECT : dw_shape ? CNN_CONV_ALGO_DEPTHWISE : CNN_CONV_ALGO_GEMM;
      if (algo == CNN_CONV_ALGO_DIRECT) wino_m = 0;
      break;
    case CNN_CONV_ALGO_DIRECT: /* shapes the direct kernel does not take: the implicit GEMM */
      algo = direct_eligible(d) ? CNN_CONV_ALGO_DIRECT : CNN_CONV_ALGO_GEMM;
      break;
    case CNN_CONV_ALGO_GEMM: algo = CNN_CONV_ALGO_GEMM; break;
    case CNN_CONV_ALGO_DEPTHWISE:
      if (!dw_shape) {
        set_status(status, CNN_ERR_UNSUPPORTED);
        return NULL;
      }
      break;
    case CNN_CONV_ALGO_REFERENCE: break;
    case CNN_CONV_ALGO_WINOGRAD: /* packed for GEMM as well: the fallback when the accuracy probe fails */
    case CNN_CONV_ALGO_WINOGRAD_F2:
    case CNN_CONV_ALGO_WINOGRAD_F4:
    case CNN_CONV_ALGO_WINOGRAD_F6:
      if (!cnn_wino_eligible(d)) {
        set_status(status, CNN_ERR_UNSUPPORTED);
        return NULL;
      }
      wino_m = algo != CNN_CONV_ALGO_WINOGRAD ? -2 * (algo - CNN_CONV_ALGO_WINOGRAD_F2 + 1)
               : cnn_wino_auto_tile(d)        ? -cnn_wino_auto_tile(d)
                                              : -4;
      algo = CNN_CONV_ALGO_GEMM;
      break;
    default: set_status(status, CNN_ERR_INVALID); return NULL;
  }

  cnn_conv2d_weights* cw = (cnn_conv2d_weights*)calloc(1, sizeof(*cw));
  if (!cw) {
    set_status(status, CNN_ERR_NOMEM);
    return NULL;
  }
  cw->d = *d;
  cw->algo = algo;
  cw->isa = cfg->isa;
  cw->cfg = cfg;
  cw->cin_g = cin_g;
  cw->cout_g = cout_g;
  cw->K = cin_g * d->kernel_h * d->kernel_w; /* checked by desc_check */
  cw->kcb = cnn_gemm_kc_block(cfg, cw->K);
  cw->mpad = cnn_round_up(cout_g, cfg->mr);
  cw->act_min = -INFINITY;
  cw->act_max = INFINITY;
  if (!cnn_gemm_fold_act(&d->act, &cw->act_min, &cw->act_max)) {
    const cnn_eltwise_config* ec = cnn_eltwise_config_get(cw->isa);
    if (!ec) ec = cnn_eltwise_config_get(CNN_ISA_SCALAR);
    cw->act_fn = ec ? ec->act : NULL;
    if (!cw->act_fn) {
      cnn_conv2d_weights_destroy(cw);
      set_status(status, CNN_ERR_UNSUPPORTED);
      return NULL;
    }
  }
  const size_t wn = d->out_channels * cw->K; /* checked by desc_check */
  size_t nfloats = wn;
  if (algo == CNN_CONV_ALGO_GEMM && (!mul_ok(G * cw->mpad, cw->K, &nfloats) || nfloats > CNN_MAX_ELEMS / 4)) {
    cnn_conv2d_weights_destroy(cw);
    set_status(status, CNN_ERR_INVALID);
    return NULL;
  }
  if (algo == CNN_CONV_ALGO_DIRECT) nfloats = cnn_round_up(d->out_channels, CNN_DIRECT_CB) * cw->K; /* Cin <= 4 */
  cw->packed = (float*)cnn_aligned_alloc(nfloats * sizeof(float));
  cw->bias = bias ? (float*)cnn_aligned_alloc(d->out_channels * sizeof(float)) : NULL;
  if (!cw->packed || (bias && !cw->bias)) {
    cnn_conv2d_weights_destroy(cw);
    set_status(status, CNN_ERR_NOMEM);
    return NULL;
  }
  if (bias) memcpy(cw->bias, bias, d->out_channels * sizeof(float));
  cw->bytes = sizeof(*cw) + nfloats * sizeof(float) + (bias ? d->out_channels * sizeof(float) : 0);

  if (algo == CNN_CONV_ALGO_GEMM) {
    const size_t K = cw->K;
    for (size_t g = 0; g < G; g++)
      for (size_t pc = 0; pc < K; pc += cw->kcb) {
        const size_t kc = cnn_min_sz(cw->kcb, K - pc);
        cnn_gemm_pack_a(cfg->mr, cout_g, kc, w + g * cout_g * K + pc, K, 1, cw->packed + g * cw->mpad * K + pc * cw->mpad);
      }
    cw->pack_b = cnn_conv_pack_b_im2col__scalar;
#if defined(__x86_64__) && !defined(CNNRT_NO_AVX2)
    if (cnn_isa_is_avx2(cw->isa)) cw->pack_b = cnn_conv_pack_b_im2col__avx2;
#endif
  } else if (algo == CNN_CONV_ALGO_DIRECT) {
    const size_t K = cw->K, CB = CNN_DIRECT_CB, C = d->out_channels;
    for (size_t co = 0; co < cnn_round_up(C, CB); co++)
      for (size_t k = 0; k < K; k++) cw->packed[((co / CB) * K + k) * CB + co % CB] = co < C ? w[co * K + k] : 0.0f;
    cw->wref = (float*)cnn_aligned_alloc(wn * sizeof(float));
    if (!cw->wref) {
      cnn_conv2d_weights_destroy(cw);
      set_status(status, CNN_ERR_NOMEM);
      return NULL;
    }
    memcpy(cw->wref, w, wn * sizeof(float));
    cw->bytes += wn * sizeof(float);
    cw->direct = cnn_f32_directconv__scalar;
    cw->dwpad = cnn_dwconv_pad_plane;
#if defined(__x86_64__) && !defined(CNNRT_NO_AVX2)
    if (cnn_isa_is_avx2(cw->isa)) {
      cw->direct = cnn_f32_directconv__avx2;
      cw->dwpad = cnn_dwconv_pad_plane__avx2;
    }
#ifndef CNNRT_NO_AVX512
    if (cw->isa == CNN_ISA_AVX512) cw->direct = cnn_f32_directconv__avx512;
#endif
#endif
#if defined(__aarch64__) && !defined(CNNRT_NO_NEON)
    if (cw->isa == CNN_ISA_NEON) cw->direct = cnn_f32_directconv__neon;
#endif
  } else {
    memcpy(cw->packed, w, wn * sizeof(float)); /* depthwise: [Cout][kh*kw] is the given layout (cin_g == 1) */
    cw->dw = cnn_f32_dwconv__scalar;
    cw->dwp = cnn_f32_dwconv_padded__scalar;
    cw->dwpad = cnn_dwconv_pad_plane;
#if defined(__x86_64__) && !defined(CNNRT_NO_AVX2)
    if (cnn_isa_is_avx2(cw->isa)) {
      cw->dw = cnn_f32_dwconv__avx2;
      cw->dwp = cnn_f32_dwconv_padded__avx2;
      cw->dwpad = cnn_dwconv_pad_plane__avx2;
      if (dw_rows_env()) cw->dwrows = cnn_f32_dwconv_rows__avx2;
      const size_t C = d->out_channels, khw = d->kernel_h * d->kernel_w;
      if (cout_g == 1 && C >= 8 && khw <= 64) {
        cw->packed8 = (float*)cnn_aligned_alloc(C / 8 * khw * 8 * sizeof(float));
        if (cw->packed8) {
          for (size_t g8 = 0; g8 < C / 8; g8++)
            for (size_t t = 0; t < khw; t++)
              for (size_t c = 0; c < 8; c++) cw->packed8[(g8 * khw + t) * 8 + c] = w[(g8 * 8 + c) * khw + t];
          cw->bytes += C / 8 * khw * 8 * sizeof(float);
        }
      }
    }
#endif
#if defined(__aarch64__) && !defined(CNNRT_NO_NEON)
    if (cw->isa == CNN_ISA_NEON) {
      cw->dw = cnn_f32_dwconv__neon;
      cw->dwp = cnn_f32_dwconv_padded__neon;
    }
#endif
  }
  cw->wino_err = -1.0;
  if (wino_m != 0) {
    cw->wino = cnn_wino_select(d, w, bias, cw->isa, wino_m < 0 ? -wino_m : wino_m, wino_m < 0, &cw->wino_err);
    if (cw->wino) cw->bytes += cnn_wino_weights_bytes(cw->wino);
  }
  set_status(status, CNN_OK);
  return cw;
}

void cnn_conv2d_weights_destroy(cnn_conv2d_weights* w) {
  if (!w) return;
  cnn_wino_weights_destroy(w->wino);
  cnn_aligned_free(w->packed);
  cnn_aligned_free(w->packed8);
  cnn_aligned_free(w->wref);
  cnn_aligned_free(w->bias);
  free(w);
}

int cnn_conv2d_weights_algo(const cnn_conv2d_weights* w) {
  return w ? (w->wino ? CNN_CONV_ALGO_WINOGRAD : w->algo) : -1;
}
int cnn_conv2d_weights_tile(const cnn_conv2d_weights* w) { return w ? cnn_wino_tile(w->wino) : 0; }
double cnn_conv2d_weights_probe_error(const cnn_conv2d_weights* w) { return w ? w->wino_err : -1.0; }
size_t cnn_conv2d_weights_bytes(const cnn_conv2d_weights* w) { return w ? w->bytes : 0; }

/* ------------------------------------------------------------------------------------------------------------ */
/* Plans */

static int is_pointwise(const cnn_conv2d_desc* d) {
  return d->kernel_h == 1 && d->kernel_w == 1 && d->stride_h == 1 && d->stride_w == 1 && d->pad_top == 0 &&
         d->pad_left == 0 && d->pad_bottom == 0 && d->pad_right == 0;
}

/* GEMM per-thread slice in floats: a B block (kcb x nt_max) and the k table (3*kcb ptrdiff_t), each aligned.
 * nt_max is the widest task of any tiling, so the slice does not depend on the run's thread count. */
static size_t gemm_slice_floats(const cnn_conv2d_weights* w, size_t N, size_t* b_floats) {
  const size_t al = CNN_ALIGN / sizeof(float);
  const cnn_gemm_config* cfg = w->cfg;
  const size_t ntm = cnn_round_up(cnn_min_sz(N, cnn_max_sz(cfg->nc, cfg->nr)), cfg->nr);
  const size_t bf = cnn_round_up(ntm * w->kcb, al);
  const size_t tf = cnn_round_up(3 * w->kcb * sizeof(ptrdiff_t) / sizeof(float), al);
  if (b_floats) *b_floats = bf;
  return bf + tf;
}

/* Planes whose padded copy would not fit in L1 (the 112-wide layers: 55-58 KB) run the no-copy kernel, which reads
 * the input rows directly (1 thread: 32ch 3x3 s1 112x112 0.84x, 96ch 3x3 s2 112->56 0.76-0.92x the packer + padded
 * kernel); smaller ones keep the padded copy, which then stays in L1 (144ch 3x3 s1 56x56: the no-copy kernel was
 * 1.01-1.05x). */
#define CNN_DW_ROWS_MIN_PAD_BYTES 32768

/* Small planes take the 8-channels-in-lanes depthwise kernel (wider ones the padded-plane kernel, which vectorizes
 * along the row). */
#define CNN_DW_C8_MAX_OW 32
static int dw_c8_ok(const cnn_conv2d_weights* w, size_t in_h, size_t in_w, size_t oh, size_t ow, cnn_dwconv_c8_params* cp,
                    size_t* xf, size_t* yf) {
  return w->packed8 && ow <= CNN_DW_C8_MAX_OW && cnn_dwconv_c8_geometry(&w->d, in_h, in_w, oh, ow, cp, xf, yf);
}

/* Small outputs (N = OH*OW <= 256, one image and group): with several threads the B matrix is packed once into a
 * shared block (K x round_up(N, nr), tasks over K blocks) and then read by every M task, instead of each M task
 * packing (im2col) its own copy: at batch 1 the 7x7 / 14x14 layers split M across the threads, and the copies cost
 * as much as the extra parallelism gains (strided layers most). Returns the shared block's floats, or 0. */
static size_t gemm_shared_b_floats(const cnn_conv2d_weights* w, size_t batch, size_t N) {
  if (w->algo != CNN_CONV_ALGO_GEMM || batch * w->d.groups != 1 || N > 256) return 0;
  const size_t npad = cnn_round_up(N, w->cfg->nr);
  if (w->K > ((size_t)1 << 22) / npad) return 0;
  return cnn_round_up(w->K * npad, CNN_ALIGN / sizeof(float));
}

/* DIRECT: tasks are (image, band of R output rows); each pads the (R-1)*sh + kh input rows of its band, every input
 * channel, into its workspace slice (the depthwise packer's layout, for oh = R), then runs the kernel on them. R: the
 * band's padded rows fill about 32 KB (L1), fewer when that leaves under 4 tasks per thread. Returns 0 when the
 * rows are too wide for the padded layout (the plan then runs the reference). */
#define CNN_DIRECT_BAND_BYTES 32768
static int direct_band(const cnn_conv2d_weights* w, size_t batch, size_t in_h, size_t in_w, size_t oh, size_t ow,
                       size_t nthreads, int even, size_t* rows, cnn_dwconv_padded_params* pp, size_t* slice) {
  const cnn_conv2d_desc* d = &w->d;
  size_t fl;
  if (!cnn_dwconv_padded_geometry(d, in_h, in_w, 1, ow, pp, &fl)) return 0;
  const size_t row_floats = d->in_channels * d->stride_w * pp->pw;
  const size_t rows_in = CNN_DIRECT_BAND_BYTES / sizeof(float) / row_floats;
  size_t r = rows_in > d->kernel_h ? (rows_in - d->kernel_h) / d->stride_h + 1 : 1;
  r = cnn_min_sz(r, oh);
  while (r > 1 && nthreads > 1 && batch * cnn_div_up(oh, r) < 4 * nthreads) r = cnn_div_up(r, 2);
  if (even) r = cnn_min_sz(cnn_max_sz(r / 2 * 2, 2), oh / 2 * 2); /* fused 2x2 pool: bands of whole row pairs */
  if (!cnn_dwconv_padded_geometry(d, in_h, in_w, r, ow, pp, &fl)) return 0;
  *rows = r;
  *slice = cnn_round_up(d->in_channels * fl, CNN_ALIGN / sizeof(float));
  return 1;
}

int cnn_conv2d_plan_init(cnn_conv2d_plan* p, const cnn_conv2d_weights* w, size_t batch, size_t in_h, size_t in_w,
                         size_t nthreads) {
  if (!p || !w) return CNN_ERR_INVALID;
  memset(p, 0, sizeof(*p));
  if (batch == 0) return CNN_ERR_INVALID;
  size_t oh, ow;
  if (!cnn_conv2d_out_size(&w->d, in_h, in_w, &oh, &ow)) return CNN_ERR_INVALID;
  size_t t;
  /* every tensor must be addressable with signed offsets */
  if (!mul_ok(in_h, in_w, &t) || !mul_ok(t, w->d.in_channels, &t) || !mul_ok(t, batch, &t)) return CNN_ERR_INVALID;
  if (!mul_ok(oh, ow, &t) || !mul_ok(t, w->d.out_channels, &t) || !mul_ok(t, batch, &t)) return CNN_ERR_INVALID;
  if (nthreads == 0) nthreads = 1;
  size_t ws = 0;
  if (w->algo == CNN_CONV_ALGO_GEMM) {
    const size_t slice = gemm_slice_floats(w, oh * ow, NULL);
    if (!mul_ok(slice, nthreads, &ws)) return CNN_ERR_INVALID;
    if (nthreads > 1) ws += gemm_shared_b_floats(w, batch, oh * ow); /* < 2^22 + slack floats */
    if (!mul_ok(ws, sizeof(float), &ws)) return CNN_ERR_INVALID;
  } else if (w->algo == CNN_CONV_ALGO_DEPTHWISE) {
    cnn_dwconv_padded_params pp;
    size_t fl;
    if (cnn_dwconv_padded_geometry(&w->d, in_h, in_w, oh, ow, &pp, &fl)) {
      size_t slice = cnn_round_up(fl, CNN_ALIGN / sizeof(float));
      cnn_dwconv_c8_params cp;
      size_t xf, yf;
      if (dw_c8_ok(w, in_h, in_w, oh, ow, &cp, &xf, &yf)) slice = cnn_max_sz(slice, cnn_round_up(xf + yf, CNN_ALIGN / sizeof(float)));
      slice = cnn_max_sz(slice, cnn_round_up(in_w, CNN_ALIGN / sizeof(float))); /* the no-copy kernel's zero row */
      if (!mul_ok(slice, nthreads, &ws) || !mul_ok(ws, sizeof(float), &ws)) return CNN_ERR_INVALID;
    }
  } else if (w->algo == CNN_CONV_ALGO_DIRECT) {
    size_t rows, slice;
    cnn_dwconv_padded_params pp;
    if (direct_band(w, batch, in_h, in_w, oh, ow, nthreads, 0, &rows, &pp, &slice)) {
      if (!mul_ok(slice, nthreads, &ws) || !mul_ok(ws, sizeof(float), &ws)) return CNN_ERR_INVALID;
    } else {
      p->algo = CNN_CONV_ALGO_REFERENCE;
    }
  }
  if (w->wino && cnn_wino_use(w->wino, batch, oh, ow)) {
    ws = cnn_wino_workspace_size(w->wino, batch, in_h, in_w, oh, ow, nthreads);
    if (ws == 0) return CNN_ERR_INVALID;
    p->algo = CNN_CONV_ALGO_WINOGRAD;
  }
  p->w = w;
  p->batch = batch;
  p->in_h = in_h;
  p->in_w = in_w;
  p->out_h = oh;
  p->out_w = ow;
  p->nthreads = nthreads;
  p->workspace_bytes = ws;
  return CNN_OK;
}

/* ------------------------------------------------------------------------------------------------------------ */
/* Runs */

typedef struct {
  const cnn_conv2d_weights* w;
  const float* in;
  float* out;
  const float* res;
  int res_in_c, pointwise;
  size_t H, W, N; /* N = OH*OW */
  cnn_conv_im2col geom;
  cnn_conv_pack_b_fn pack_b;
  cnn_gemm_tiling t;
  float* ws;
  size_t slice, b_floats;
  float* bshared; /* packed B of the whole problem (K blocks of npad columns), or NULL: each task packs its own */
  size_t npad;
} gemm_ctx;

static void gemm_shared_pack_task(void* vctx, size_t tid, size_t kb) {
  const gemm_ctx* x = (const gemm_ctx*)vctx;
  const cnn_conv2d_weights* w = x->w;
  const size_t pc = kb * w->kcb, kc = cnn_min_sz(w->kcb, w->K - pc), HW = x->H * x->W;
  float* dst = x->bshared + pc * x->npad;
  if (x->pointwise)
    cnn_gemm_pack_b(w->cfg->nr, kc, x->N, x->in + pc * HW, HW, 1, dst);
  else
    x->pack_b(&x->geom, x->in, pc, kc, 0, x->N, w->cfg->nr, dst, (ptrdiff_t*)(x->ws + tid * x->slice + x->b_floats));
}

static void gemm_task(void* vctx, size_t tid, size_t i, size_t j) {
  const gemm_ctx* x = (const gemm_ctx*)vctx;
  const cnn_conv2d_weights* w = x->w;
  const cnn_gemm_config* cfg = w->cfg;
  const size_t G = w->d.groups, K = w->K, N = x->N, HW = x->H * x->W;
  const size_t bg = i / x->t.m_tasks, mb = i % x->t.m_tasks;
  const size_t n = bg / G, g = bg % G;
  const size_t m0 = mb * x->t.mt, m1 = cnn_min_sz(w->cout_g, m0 + x->t.mt);
  const size_t n0 = j * x->t.nt, n1 = cnn_min_sz(N, n0 + x->t.nt);
  const float* in_g = x->in + (n * w->d.in_channels + g * w->cin_g) * HW;
  const size_t co0 = g * w->cout_g;
  float* out_g = x->out + (n * w->d.out_channels + co0) * N;
  const float* res_g = x->res ? x->res + (n * w->d.out_channels + co0) * N : NULL;
  const float* a_g = w->packed + g * w->mpad * K;
  float* bpk = x->ws + tid * x->slice;
  ptrdiff_t* ktab = (ptrdiff_t*)(bpk + x->b_floats);

  cnn_gemm_epilogue e;
  e.res_ld = N;
  e.min = w->act_min;
  e.max = w->act_max;
  const int has_clamp = e.min != -INFINITY || e.max != INFINITY;
  for (size_t pc = 0; pc < K; pc += w->kcb) {
    const size_t kc = cnn_min_sz(w->kcb, K - pc);
    const int last = pc + kc >= K;
    const float* bsrc = bpk;
    /* 1x1 stride 1, few output channels, large planes: the micro-kernel reads the full panels of B straight from
     * the input planes (row stride HW), and only a partial last panel is packed (its rows would be read past their
     * end). With few A panels per B panel, packing B costs more than it saves (measured in ResNet-50 /
     * MobileNetV2 at 1 thread: 256->64 at 56x56 9% faster, 128-row layers at 28x28 / 56x56 4-5%, the 24..96-channel
     * projections 5-14%); with many rows (M >= 256) a panel read from kc scattered rows is slower than a packed
     * one, and so it is at 7x7 (160 rows: 12-15% slower; rows of 49 floats straddle lines), for 16 rows, and for
     * K < 64 (MobileNetV2's expansions, K = 16..32: 3-14% slower; their packed B block is small and cheap).
     * A task of one row panel (M <= mr: MobileNetV2's 32->16 at 112x112 with AVX-512's 16 rows) reads each B
     * panel once, so packing it is only extra traffic: direct whatever K (that layer 0.222 -> 0.208 ms in the
     * model, one session, run-time switch alternating, 12 rounds). */
    const size_t mt = m1 - m0;
    const int direct = !x->bshared && x->pointwise && cfg->ukernel_ldb && N >= 196 &&
                       ((K >= 64 && mt >= 24 && mt <= (N >= 784 ? 192 : 96)) || mt <= cfg->mr);
    const size_t nfull = direct ? (n1 - n0) / cfg->nr * cfg->nr : 0;
    if (x->bshared) /* panel n0/nr of this K block */
      bsrc = x->bshared + pc * x->npad + n0 * kc;
    else if (direct) {
      if (n0 + nfull < n1) cnn_gemm_pack_b(cfg->nr, kc, n1 - n0 - nfull, in_g + pc * HW + n0 + nfull, HW, 1, bpk);
    } else if (x->pointwise)
      cnn_gemm_pack_b(cfg->nr, kc, n1 - n0, in_g + pc * HW + n0, HW, 1, bpk);
    else
      x->pack_b(&x->geom, in_g, pc, kc, n0, n1 - n0, cfg->nr, bpk, ktab);
    for (size_t ic = m0; ic < m1; ic += cfg->mc) {
      const size_t mc = cnn_min_sz(cfg->mc, m1 - ic);
      e.bias_row = w->bias ? w->bias + co0 + ic : NULL;
      e.bias_col = NULL;
      e.residual = res_g ? res_g + ic * N + n0 : NULL;
      const int has_epi = e.bias_row || e.residual || has_clamp;
      /* the A block the next call reads (next rows of this K block, else the first rows of the next K block) is
       * prefetched while this one computes: weights are read from memory once per run, and at 7x7 / 14x14 an A
       * block serves only 4 / 13 B panels, too little compute to hide its first read (measured 3-5% there) */
      const float* pf = NULL;
      size_t pf_floats = 0;
      if (ic + mc < m1) {
        pf = a_g + pc * w->mpad + (ic + mc) * kc;
        pf_floats = cnn_round_up(cnn_min_sz(cfg->mc, m1 - ic - mc), cfg->mr) * kc;
      } else if (!last) {
        const size_t kc2 = cnn_min_sz(w->kcb, K - pc - kc);
        pf = a_g + (pc + kc) * w->mpad + m0 * kc2;
        pf_floats = cnn_round_up(cnn_min_sz(cfg->mc, m1 - m0), cfg->mr) * kc2;
      }
      if (direct) {
        if (nfull)
          cnn_gemm_macro_kernel_ldb(cfg, mc, nfull, kc, a_g + pc * w->mpad + ic * kc, in_g + pc * HW + n0, HW,
                                    out_g + ic * N + n0, N, pc > 0 || x->res_in_c, last, has_epi ? &e : NULL,
                                    w->act_fn, &w->d.act, pf, pf_floats * sizeof(float));
        if (n0 + nfull < n1) {
          cnn_gemm_epilogue et = e;
          if (et.residual) et.residual += nfull;
          cnn_gemm_macro_kernel_pf(cfg, mc, n1 - n0 - nfull, kc, a_g + pc * w->mpad + ic * kc, bpk,
                                   out_g + ic * N + n0 + nfull, N, pc > 0 || x->res_in_c, last,
                                   has_epi ? &et : NULL, w->act_fn, &w->d.act, NULL, 0);
        }
        continue;
      }
      cnn_gemm_macro_kernel_pf(cfg, mc, n1 - n0, kc, a_g + pc * w->mpad + ic * kc, bsrc, out_g + ic * N + n0, N,
                               pc > 0 || x->res_in_c, last, has_epi ? &e : NULL, w->act_fn, &w->d.act, pf,
                               pf_floats * sizeof(float));
    }
  }
}

typedef struct {
  const cnn_conv2d_weights* w;
  const float* in;
  float* out;
  const float* res;
  size_t HW, OHW;
  cnn_dwconv_params prm;
  cnn_dwconv_fn fn;
} dw_ctx;

/* Padded-plane depthwise: unit u = ((n * Cin + ci) * mch + mc) covers output channels [mc*mcz, ..) of input channel
 * ci's multiplier group; a task runs units [i*upt, (i+1)*upt), padding each input plane once. */
typedef struct {
  const cnn_conv2d_weights* w;
  const float* in;
  float* out;
  const float* res;
  size_t H, W, HW, OHW;
  size_t mcz, mch, upt, units;
  cnn_dwconv_padded_params prm;
  cnn_dwconv_padded_fn fn;
  float* ws;
  size_t slice;
  cnn_dwconv_params rprm; /* the no-copy kernel's parameters (dwr_task) */
} dwp_ctx;

static void dwp_task(void* vctx, size_t tid, size_t i) {
  const dwp_ctx* x = (const dwp_ctx*)vctx;
  const cnn_conv2d_weights* w = x->w;
  const size_t Cin = w->d.in_channels, C = w->d.out_channels, cm = w->cout_g;
  const size_t khw = w->d.kernel_h * w->d.kernel_w;
  float* pad = x->ws + tid * x->slice;
  size_t padded = (size_t)-1;
  const size_t u1 = cnn_min_sz(x->units, (i + 1) * x->upt);
  for (size_t u = i * x->upt; u < u1; u++) {
    const size_t plane = u / x->mch, mc = u % x->mch; /* plane = n * Cin + ci */
    const size_t n = plane / Cin, ci = plane % Cin;
    if (plane != padded) {
      w->dwpad(&x->prm, x->in + plane * x->HW, x->H, x->W, pad);
      padded = plane;
    }
    const size_t m1 = cnn_min_sz(cm, (mc + 1) * x->mcz);
    for (size_t m = mc * x->mcz; m < m1; m++) {
      const size_t co = ci * cm + m;
      const size_t o = (n * C + co) * x->OHW;
      x->fn(&x->prm, pad, w->packed + co * khw, w->bias ? w->bias[co] : 0.0f, x->res ? x->res + o : NULL,
            x->out + o);
    }
  }
}

/* No-copy depthwise: the units of dwp_task, each output plane straight from its input plane (the workspace slice
 * holds the zero row). */
static void dwr_task(void* vctx, size_t tid, size_t i) {
  const dwp_ctx* x = (const dwp_ctx*)vctx;
  const cnn_conv2d_weights* w = x->w;
  const size_t Cin = w->d.in_channels, C = w->d.out_channels, cm = w->cout_g;
  const size_t khw = w->d.kernel_h * w->d.kernel_w;
  float* zrow = x->ws + tid * x->slice;
  const size_t u1 = cnn_min_sz(x->units, (i + 1) * x->upt);
  for (size_t u = i * x->upt; u < u1; u++) {
    const size_t plane = u / x->mch, mc = u % x->mch; /* plane = n * Cin + ci */
    const size_t n = plane / Cin, ci = plane % Cin;
    const size_t m1 = cnn_min_sz(cm, (mc + 1) * x->mcz);
    for (size_t m = mc * x->mcz; m < m1; m++) {
      const size_t co = ci * cm + m;
      const size_t o = (n * C + co) * x->OHW;
      w->dwrows(&x->rprm, x->in + plane * x->HW, w->packed + co * khw, w->bias ? w->bias[co] : 0.0f,
                x->res ? x->res + o : NULL, x->out + o, zrow);
    }
  }
}

#if defined(__x86_64__) && !defined(CNNRT_NO_AVX2) /* cnn_f32_dwconv_c8__avx2 exists only there */
/* 8-channel depthwise: task i = (n, group of 8 channels), groups per task: upt; a partial last group goes through
 * the padded-plane kernel one channel at a time. */
typedef struct {
  dwp_ctx pp; /* the padded-plane context (for partial groups) */
  cnn_dwconv_c8_params cp;
  size_t groups, xf;
} dwc8_ctx;

static void dwc8_task(void* vctx, size_t tid, size_t i) {
  const dwc8_ctx* x = (const dwc8_ctx*)vctx;
  const dwp_ctx* pp = &x->pp;
  const cnn_conv2d_weights* w = pp->w;
  const size_t C = w->d.out_channels, khw = w->d.kernel_h * w->d.kernel_w;
  float* buf = pp->ws + tid * pp->slice;
  const size_t u1 = cnn_min_sz(pp->units, (i + 1) * pp->upt);
  for (size_t u = i * pp->upt; u < u1; u++) {
    const size_t n = u / x->groups, c0 = (u % x->groups) * 8;
    if (c0 + 8 <= C) {
      const size_t o = (n * C + c0) * pp->OHW;
      cnn_f32_dwconv_c8__avx2(&x->cp, pp->in + (n * C + c0) * pp->HW, w->packed8 + c0 * khw, w->bias ? w->bias + c0 : NULL,
                              pp->res ? pp->res + o : NULL, pp->out + o, buf, buf + x->xf);
    } else {
      for (size_t c = c0; c < C; c++) {
        const size_t o = (n * C + c) * pp->OHW;
        w->dwpad(&pp->prm, pp->in + (n * C + c) * pp->HW, pp->H, pp->W, buf);
        pp->fn(&pp->prm, buf, w->packed + c * khw, w->bias ? w->bias[c] : 0.0f, pp->res ? pp->res + o : NULL,
               pp->out + o);
      }
    }
  }
}
#endif

typedef struct {
  const cnn_conv2d_weights* w;
  const float* in;
  float* out;
  const float* res;
  size_t H, W, OH, OW, rows, bands, slice;
  cnn_dwconv_padded_params pp; /* geometry of one band (rows output rows) */
  cnn_directconv_params dp;
  float* ws;
  float* scr; /* fused 2x2 max-pool: per-thread band outputs (Cout x rows x OW floats each), else NULL */
} direct_ctx;

/* task i = (image n, band b): pad the band's input rows of every channel, then all output channels of the band */
static void direct_task(void* vctx, size_t tid, size_t i) {
  const direct_ctx* x = (const direct_ctx*)vctx;
  const cnn_conv2d_weights* w = x->w;
  const cnn_conv2d_desc* d = &w->d;
  const size_t n = i / x->bands, b = i % x->bands;
  const size_t oy0 = b * x->rows, r = cnn_min_sz(x->rows, x->OH - oy0);
  float* pad = x->ws + tid * x->slice;
  cnn_dwconv_padded_params bp = x->pp;
  bp.ph = (r - 1) * d->stride_h + d->kernel_h;
  /* padded row j of the band holds input row iy0 + j */
  const ptrdiff_t iy0 = (ptrdiff_t)(oy0 * d->stride_h) - (ptrdiff_t)d->pad_top;
  size_t skip = 0, h = x->H;
  if (iy0 < 0) {
    bp.pt = (size_t)-iy0;
  } else {
    bp.pt = 0;
    skip = cnn_min_sz((size_t)iy0, x->H);
    h = x->H - skip;
  }
  const size_t HW = x->H * x->W;
  for (size_t ci = 0; ci < d->in_channels; ci++) {
    const float* src = x->in + (n * d->in_channels + ci) * HW;
    w->dwpad(&bp, h ? src + skip * x->W : src, h, x->W, pad + ci * x->dp.cstride);
  }
  cnn_directconv_params dp = x->dp;
  dp.oh = r;
  if (dp.pool) { /* 2x2 max-pool in the kernel's registers: the band's pooled rows straight into the output */
    const size_t PH = x->OH / 2, PW = x->OW / 2;
    w->direct(&dp, pad, w->packed, w->bias, NULL, x->out + n * d->out_channels * PH * PW + oy0 / 2 * PW);
    return;
  }
  if (x->scr) { /* the band's outputs (after bias and activation) into L1/L2, then 2x2 maxima to the pooled planes */
    const size_t OW = x->OW, PH = x->OH / 2, PW = OW / 2, C = d->out_channels, band = x->rows * OW;
    float* s = x->scr + tid * C * band;
    w->direct(&dp, pad, w->packed, w->bias, NULL, s);
    for (size_t c = 0; c < C; c++)
      for (size_t pr = 0; pr < r / 2; pr++) {
        const float* a = s + c * band + 2 * pr * OW;
        const float* b = a + OW;
        float* o = x->out + ((n * C + c) * PH + oy0 / 2 + pr) * PW;
        for (size_t q = 0; q < PW; q++) { /* the pooling kernels' order and NaN rule (a NaN is skipped) */
          float mx = -INFINITY;
          mx = a[2 * q] > mx ? a[2 * q] : mx;
          mx = a[2 * q + 1] > mx ? a[2 * q + 1] : mx;
          mx = b[2 * q] > mx ? b[2 * q] : mx;
          o[q] = b[2 * q + 1] > mx ? b[2 * q + 1] : mx;
        }
      }
    return;
  }
  const size_t o = n * d->out_channels * x->OH * x->OW + oy0 * x->OW;
  w->direct(&dp, pad, w->packed, w->bias, x->res ? x->res + o : NULL, x->out + o);
}

static void dw_task(void* vctx, size_t tid, size_t n, size_t co) {
  const dw_ctx* x = (const dw_ctx*)vctx;
  const cnn_dwconv_fn fn = x->fn;
  const cnn_conv2d_weights* w = x->w;
  const size_t C = w->d.out_channels, ci = co / w->cout_g; /* cout_g: channel multiplier */
  const size_t khw = w->d.kernel_h * w->d.kernel_w;
  const size_t o = (n * C + co) * x->OHW;
  fn(&x->prm, x->in + (n * w->d.in_channels + ci) * x->HW, w->packed + co * khw, w->bias ? w->bias[co] : 0.0f,
        x->res ? x->res + o : NULL, x->out + o);
}

int cnn_conv2d_plan_fuse_maxpool2(cnn_conv2d_plan* p) {
  if (!p || !p->w || p->out_h < 2 || p->out_w < 2 || p->maxpool2) return CNN_ERR_UNSUPPORTED;
  const cnn_conv2d_weights* w = p->w;
  if (p->algo == CNN_CONV_ALGO_WINOGRAD) {
    if (!cnn_wino_can_pool(w->wino)) return CNN_ERR_UNSUPPORTED;
    p->maxpool2 = 1;
    return CNN_OK;
  }
  if (p->algo == 0 && w->algo == CNN_CONV_ALGO_DIRECT) {
    /* bands of even rows; a clamp-type activation: the kernel pools in registers (cnn_directconv_params.pool);
     * another one (the pool reads activated outputs): each thread's band outputs go to a scratch after its padded
     * slice, then the 2x2 maxima to the output */
    size_t rows, slice, ws, scr = 0;
    cnn_dwconv_padded_params pp;
    if (!direct_band(w, p->batch, p->in_h, p->in_w, p->out_h, p->out_w, p->nthreads, 1, &rows, &pp, &slice))
      return CNN_ERR_UNSUPPORTED;
    if ((w->act_fn && !mul_ok(w->d.out_channels * rows, p->out_w, &scr)) || !mul_ok(slice + scr, p->nthreads, &ws) ||
        !mul_ok(ws, sizeof(float), &ws))
      return CNN_ERR_UNSUPPORTED;
    p->workspace_bytes = ws;
    p->maxpool2 = 1;
    return CNN_OK;
  }
  return CNN_ERR_UNSUPPORTED;
}

/* ------------------------------------------------------------------------------------------------------------ */
/* Expand 1x1 + depthwise, fused (see include/cnnrt/conv.h) */

/* the band of expanded rows a task holds: cg channels x rows x W floats, at most this many bytes (with the packed
 * input band, about half of a 512 KiB L2) */
#define EXPAND_DW_BAND_BYTES ((size_t)160 << 10)
static size_t g_expand_dw_band_bytes = 0; /* tests: another budget (many small bands) */
void cnn_conv2d_set_expand_dw_band_bytes(size_t bytes) { g_expand_dw_band_bytes = bytes; }
#define EXPAND_DW_CG 24 /* channels per group: 4 GEMM row panels of 6 (AVX2); rounded up to a multiple of the ISA's mr
                         * (the group's A panels start at a panel boundary): 32 with AVX-512's 16 */

int cnn_conv2d_expand_dw_ok(const cnn_conv2d_weights* pw, const cnn_conv2d_weights* dw, size_t in_h, size_t in_w) {
  if (!pw || !dw || in_h == 0 || in_w == 0) return 0;
  const cnn_conv2d_desc* a = &pw->d;
  const cnn_conv2d_desc* b = &dw->d;
  if (pw->algo != CNN_CONV_ALGO_GEMM || pw->wino || !is_pointwise(a) || a->groups != 1 || pw->kcb != pw->K ||
      pw->cfg != dw->cfg)
    return 0;
  if (dw->algo != CNN_CONV_ALGO_DEPTHWISE || b->groups != b->in_channels || b->out_channels != b->in_channels ||
      b->in_channels != a->out_channels || !dw->dw)
    return 0;
  if (b->kernel_h > 7 || b->kernel_w > 7 || b->dilation_h != 1 || b->dilation_w != 1 || b->stride_h > 2 ||
      b->stride_w > 2 || 2 * b->pad_top > b->kernel_h - 1 || 2 * b->pad_bottom > b->kernel_h - 1 ||
      2 * b->pad_left > b->kernel_w - 1 || 2 * b->pad_right > b->kernel_w - 1)
    return 0;
  size_t oh, ow;
  return cnn_conv2d_out_size(b, in_h, in_w, &oh, &ow) && in_w < ((size_t)1 << 24);
}

typedef struct {
  size_t rows_in, n_max, slice; /* input rows per band (max), its columns, per-thread floats */
  int c8;                       /* the depthwise runs 8 channels at a time (cnn_f32_dwconv_c8__avx2) */
} expand_dw_geo;

static void expand_dw_geometry(const cnn_conv2d_plan* p, const cnn_conv2d_weights* dw, expand_dw_geo* g) {
  const cnn_conv2d_desc* b = &dw->d;
  const size_t al = CNN_ALIGN / sizeof(float), W = p->in_w, K = p->w->K;
  const size_t ri = (p->dw_rows - 1) * b->stride_h + b->kernel_h;
  g->rows_in = cnn_min_sz(ri, p->in_h);
  g->n_max = g->rows_in * W;
  g->slice = cnn_round_up(K * cnn_round_up(g->n_max, 16), al) + cnn_round_up(p->dw_cg * g->n_max, al) +
             cnn_round_up(cnn_round_up(W, 8), al);
  /* the 8-channel kernel's buffers for a band of dw_rows output rows (their size depends on the output rows only) */
  cnn_dwconv_c8_params cp;
  size_t xf, yf;
  g->c8 = dw->packed8 && p->dw_ow <= CNN_DW_C8_MAX_OW &&
          cnn_dwconv_c8_geometry(b, g->rows_in, W, p->dw_rows, p->dw_ow, &cp, &xf, &yf);
  if (g->c8) g->slice += xf + yf;
}

int cnn_conv2d_plan_fuse_dw(cnn_conv2d_plan* p, const cnn_conv2d_weights* dw) {
  if (!p || !p->w || p->maxpool2 || p->dw || p->algo != 0 || !cnn_conv2d_expand_dw_ok(p->w, dw, p->in_h, p->in_w))
    return CNN_ERR_UNSUPPORTED;
  size_t oh, ow;
  if (!cnn_conv2d_out_size(&dw->d, p->in_h, p->in_w, &oh, &ow)) return CNN_ERR_UNSUPPORTED;
  const size_t C = dw->d.in_channels, kh = dw->d.kernel_h, sh = dw->d.stride_h, W = p->in_w;
  const size_t cg = cnn_min_sz(C, cnn_round_up(EXPAND_DW_CG, p->w->cfg->mr));
  /* input rows per band within the byte budget, at least one output row's window and one stride more */
  const size_t budget = g_expand_dw_band_bytes ? g_expand_dw_band_bytes : EXPAND_DW_BAND_BYTES;
  const size_t ri = cnn_max_sz(budget / sizeof(float) / (cg * W), kh + sh);
  cnn_conv2d_plan q = *p;
  q.dw = dw;
  q.dw_oh = oh;
  q.dw_ow = ow;
  q.dw_cg = cg;
  q.dw_rows = cnn_min_sz((ri - kh) / sh + 1, oh);
  expand_dw_geo g;
  expand_dw_geometry(&q, dw, &g);
  size_t ws;
  if (!mul_ok(g.slice, q.nthreads, &ws) || !mul_ok(ws, sizeof(float), &ws)) return CNN_ERR_UNSUPPORTED;
  q.workspace_bytes = ws;
  *p = q;
  return CNN_OK;
}

typedef struct {
  const cnn_conv2d_plan* p;
  const float* in;
  float* out;
  float* ws;
  expand_dw_geo g;
  size_t bands, groups, gpt; /* gpt: groups per task */
} expand_dw_ctx;

/* task (image n and band b, chunk j of gpt channel groups): the band's input rows packed once, then per group its
 * expanded rows and their depthwise outputs */
static void expand_dw_task(void* vctx, size_t tid, size_t i, size_t j) {
  const expand_dw_ctx* x = (const expand_dw_ctx*)vctx;
  const cnn_conv2d_plan* p = x->p;
  const cnn_conv2d_weights* pw = p->w;
  const cnn_conv2d_weights* dw = p->dw;
  const cnn_gemm_config* cfg = pw->cfg;
  const cnn_conv2d_desc* b = &dw->d;
  const size_t al = CNN_ALIGN / sizeof(float);
  const size_t H = p->in_h, W = p->in_w, HW = H * W, K = pw->K, C = b->in_channels, OH = p->dw_oh, OW = p->dw_ow;
  const size_t n = i / x->bands, band = i % x->bands;
  const size_t oy0 = band * p->dw_rows, oy1 = cnn_min_sz(OH, oy0 + p->dw_rows);
  /* input rows [r0, r1) of the band: the windows of output rows [oy0, oy1), clipped to the image (the padding
   * bounds of cnn_conv2d_expand_dw_ok keep every window's rows partly inside, so r0 < r1) */
  const ptrdiff_t top = (ptrdiff_t)(oy0 * b->stride_h) - (ptrdiff_t)b->pad_top;
  const size_t r0 = top > 0 ? (size_t)top : 0;
  const size_t r1 = cnn_min_sz(H, (size_t)(top + (ptrdiff_t)((oy1 - oy0 - 1) * b->stride_h + b->kernel_h)));
  const size_t N = (r1 - r0) * W;
  float* bpk = x->ws + tid * x->g.slice;
  float* ebuf = bpk + cnn_round_up(K * cnn_round_up(x->g.n_max, 16), al);
  float* zrow = ebuf + cnn_round_up(p->dw_cg * x->g.n_max, al);
  cnn_gemm_pack_b(cfg->nr, K, N, x->in + n * K * HW + r0 * W, HW, 1, bpk);
  /* the depthwise on the band: a plane of r1 - r0 rows whose top padding is what row r0 leaves of oy0's window */
  cnn_conv2d_desc db = *b;
  db.pad_top = (size_t)((ptrdiff_t)r0 - top);
  cnn_dwconv_params prm;
  cnn_dwconv_params_init(&prm, &db, r1 - r0, W, oy1 - oy0, OW);
  prm.min = dw->act_min;
  prm.max = dw->act_max;
  prm.act_fn = dw->act_fn;
  prm.act = &b->act;
  const int rows = dw->dwrows && cnn_dwconv_rows_ok(&db, r1 - r0, W);
#if defined(__x86_64__) && !defined(CNNRT_NO_AVX2)
  cnn_dwconv_c8_params cp;
  size_t xf = 0, yf = 0;
  const int c8 = x->g.c8 && cnn_dwconv_c8_geometry(&db, r1 - r0, W, oy1 - oy0, OW, &cp, &xf, &yf);
  float* c8buf = zrow + cnn_round_up(cnn_round_up(W, 8), al);
  if (c8) {
    cp.ostride = OH * OW;
    cp.min = dw->act_min;
    cp.max = dw->act_max;
    cp.act_fn = dw->act_fn;
    cp.act = &b->act;
  }
#endif
  const size_t g1 = cnn_min_sz(x->groups, (j + 1) * x->gpt);
  for (size_t gi = j * x->gpt; gi < g1; gi++) {
    const size_t c0 = gi * p->dw_cg, c1 = cnn_min_sz(C, c0 + p->dw_cg);
    /* expanded rows of channels [c0, c1): pw's GEMM (one K block) on the packed band, bias and activation fused */
    cnn_gemm_epilogue e;
    e.bias_row = pw->bias ? pw->bias + c0 : NULL;
    e.bias_col = NULL;
    e.residual = NULL;
    e.res_ld = 0;
    e.min = pw->act_min;
    e.max = pw->act_max;
    const int has_epi = e.bias_row || e.min != -INFINITY || e.max != INFINITY;
    cnn_gemm_macro_kernel(cfg, c1 - c0, N, K, pw->packed + c0 * K, bpk, ebuf, N, 0, 1, has_epi ? &e : NULL, pw->act_fn,
                          &pw->d.act);
    const size_t khw = b->kernel_h * b->kernel_w;
    size_t c = c0;
#if defined(__x86_64__) && !defined(CNNRT_NO_AVX2)
    if (c8) /* 8 channels in the lanes (the kernel the depthwise plan picks for narrow rows) */
      for (; c + 8 <= c1; c += 8)
        cnn_f32_dwconv_c8__avx2(&cp, ebuf + (c - c0) * N, dw->packed8 + c * khw, dw->bias ? dw->bias + c : NULL, NULL,
                                x->out + (n * C + c) * OH * OW + oy0 * OW, c8buf, c8buf + xf);
#endif
    for (; c < c1; c++) {
      float* o = x->out + (n * C + c) * OH * OW + oy0 * OW;
      const float bias = dw->bias ? dw->bias[c] : 0.0f;
      if (rows)
        dw->dwrows(&prm, ebuf + (c - c0) * N, dw->packed + c * khw, bias, NULL, o, zrow);
      else
        dw->dw(&prm, ebuf + (c - c0) * N, dw->packed + c * khw, bias, NULL, o);
    }
  }
}

static void expand_dw_run(const cnn_conv2d_plan* p, const float* in, float* out, void* workspace,
                          cnn_threadpool* pool) {
  if (cnn_threadpool_size(pool) > p->nthreads) pool = NULL; /* the workspace has p->nthreads slices */
  expand_dw_ctx x;
  x.p = p;
  x.in = in;
  x.out = out;
  x.ws = (float*)workspace;
  expand_dw_geometry(p, p->dw, &x.g);
  x.bands = cnn_div_up(p->dw_oh, p->dw_rows);
  x.groups = cnn_div_up(p->dw->d.in_channels, p->dw_cg);
  /* all groups of a band in one task (the band packed once), unless that leaves fewer than 4 tasks per thread */
  const size_t nt = cnn_threadpool_size(pool) ? cnn_threadpool_size(pool) : 1, bt = p->batch * x.bands;
  x.gpt = bt >= 4 * nt ? x.groups : cnn_max_sz(1, x.groups / cnn_div_up(4 * nt, bt));
  cnn_parallelize_2d(pool, expand_dw_task, &x, bt, cnn_div_up(x.groups, x.gpt));
}

void cnn_conv2d_run(const cnn_conv2d_plan* p, const float* in, float* out, const float* residual, void* workspace,
                    cnn_threadpool* pool) {
  const cnn_conv2d_weights* w = p->w;
  const cnn_conv2d_desc* d = &w->d;
  if (p->dw) {
    expand_dw_run(p, in, out, workspace, pool);
    return;
  }
  /* the workspace holds p->nthreads slices: a larger pool would index past it, so it runs inline */
  if (p->algo == CNN_CONV_ALGO_WINOGRAD) {
    cnn_wino_run_pool(w->wino, p->batch, p->in_h, p->in_w, p->out_h, p->out_w, in, out, residual, workspace, pool,
                      p->nthreads, p->maxpool2);
    return;
  }
  size_t nthreads = cnn_threadpool_size(pool);
  if (nthreads > p->nthreads) {
    pool = NULL;
    nthreads = 1;
  }
  if (p->algo == CNN_CONV_ALGO_REFERENCE && w->wref) { /* DIRECT with rows too wide for the padded copy */
    cnn_conv2d_ref(d, p->batch, p->in_h, p->in_w, in, w->wref, w->bias, residual, out);
    return;
  }
  switch (w->algo) {
    case CNN_CONV_ALGO_DIRECT: {
      direct_ctx x;
      size_t fl;
      direct_band(w, p->batch, p->in_h, p->in_w, p->out_h, p->out_w, p->nthreads, p->maxpool2, &x.rows, &x.pp,
                  &x.slice);
      cnn_dwconv_padded_geometry(d, p->in_h, p->in_w, x.rows, p->out_w, &x.pp, &fl);
      x.w = w;
      x.in = in;
      x.out = out;
      x.res = residual;
      x.H = p->in_h;
      x.W = p->in_w;
      x.OH = p->out_h;
      x.OW = p->out_w;
      x.bands = cnn_div_up(p->out_h, x.rows);
      x.ws = (float*)workspace;
      x.dp.cin = d->in_channels;
      x.dp.cout = d->out_channels;
      x.dp.ow = p->out_w;
      x.dp.kh = d->kernel_h;
      x.dp.kw = d->kernel_w;
      x.dp.sh = d->stride_h;
      x.dp.sw = d->stride_w;
      x.dp.pw = x.pp.pw;
      x.dp.plane = x.pp.plane;
      x.dp.cstride = fl;
      x.dp.ostride = p->out_h * p->out_w;
      x.scr = NULL;
      x.dp.pool = 0;
      if (p->maxpool2 && !w->act_fn) { /* pooled in the kernel (the clamp comes before the pool) */
        x.dp.pool = 1;
        x.dp.ostride = (p->out_h / 2) * (p->out_w / 2);
        x.res = NULL;
      } else if (p->maxpool2) { /* after the threads' padded slices (cnn_conv2d_plan_fuse_maxpool2 sized the workspace) */
        x.scr = x.ws + p->nthreads * x.slice;
        x.dp.ostride = x.rows * p->out_w;
        x.res = NULL;
      }
      x.dp.min = w->act_min;
      x.dp.max = w->act_max;
      x.dp.act_fn = w->act_fn;
      x.dp.act = &d->act;
      cnn_parallelize_1d(pool, direct_task, &x, p->batch * x.bands);
      return;
    }
    case CNN_CONV_ALGO_REFERENCE:
      cnn_conv2d_ref(d, p->batch, p->in_h, p->in_w, in, w->packed, w->bias, residual, out);
      return;
    case CNN_CONV_ALGO_DEPTHWISE: {
      if (p->workspace_bytes && workspace) {
        dwp_ctx x;
        size_t fl;
        if (cnn_dwconv_padded_geometry(d, p->in_h, p->in_w, p->out_h, p->out_w, &x.prm, &fl)) {
          x.w = w;
          x.in = in;
          x.out = out;
          x.res = residual;
          x.H = p->in_h;
          x.W = p->in_w;
          x.HW = p->in_h * p->in_w;
          x.OHW = p->out_h * p->out_w;
          x.prm.min = w->act_min;
          x.prm.max = w->act_max;
          x.prm.act_fn = w->act_fn;
          x.prm.act = &d->act;
          x.fn = w->dwp;
          x.ws = (float*)workspace;
          x.slice = cnn_round_up(fl, CNN_ALIGN / sizeof(float));
          {
            cnn_dwconv_c8_params cp;
            size_t xf, yf; /* same slice as cnn_conv2d_plan_init */
            if (dw_c8_ok(w, p->in_h, p->in_w, p->out_h, p->out_w, &cp, &xf, &yf))
              x.slice = cnn_max_sz(x.slice, cnn_round_up(xf + yf, CNN_ALIGN / sizeof(float)));
            x.slice = cnn_max_sz(x.slice, cnn_round_up(p->in_w, CNN_ALIGN / sizeof(float)));
          }
          const size_t planes = p->batch * d->in_channels, cm = w->cout_g;
          /* split the multiplier only when there are too few planes to keep every thread busy */
          size_t mch = 1;
          if (nthreads > 1 && planes < 4 * nthreads) mch = cnn_min_sz(cm, cnn_div_up(4 * nthreads, planes));
          x.mcz = cnn_div_up(cm, mch);
          x.mch = cnn_div_up(cm, x.mcz);
          x.units = planes * x.mch;
          /* tasks of at least ~8K outputs (the per-task cost stays small), yet ~4+ per thread when possible */
          const size_t unit_out = cnn_max_sz(x.mcz * x.OHW, 1);
          size_t upt = cnn_max_sz(1, 8192 / unit_out);
          if (nthreads > 1) upt = cnn_min_sz(upt, cnn_max_sz(1, x.units / (4 * nthreads)));
          x.upt = upt;
#if defined(__x86_64__) && !defined(CNNRT_NO_AVX2)
          dwc8_ctx c8;
          size_t yf;
          if (cnn_isa_is_avx2(w->isa) && dw_c8_ok(w, p->in_h, p->in_w, p->out_h, p->out_w, &c8.cp, &c8.xf, &yf)) {
            c8.pp = x;
            c8.cp.min = w->act_min;
            c8.cp.max = w->act_max;
            c8.cp.act_fn = w->act_fn;
            c8.cp.act = &d->act;
            c8.groups = cnn_div_up(d->out_channels, 8);
            c8.pp.units = p->batch * c8.groups;
            size_t gpt = cnn_max_sz(1, 8192 / cnn_max_sz(8 * x.OHW, 1));
            if (nthreads > 1) gpt = cnn_min_sz(gpt, cnn_max_sz(1, c8.pp.units / (4 * nthreads)));
            c8.pp.upt = gpt;
            cnn_parallelize_1d(pool, dwc8_task, &c8, cnn_div_up(c8.pp.units, gpt));
            return;
          }
#endif
          if (w->dwrows && fl * sizeof(float) > CNN_DW_ROWS_MIN_PAD_BYTES && cnn_dwconv_rows_ok(d, p->in_h, p->in_w)) {
            cnn_dwconv_params_init(&x.rprm, d, p->in_h, p->in_w, p->out_h, p->out_w);
            x.rprm.min = w->act_min;
            x.rprm.max = w->act_max;
            x.rprm.act_fn = w->act_fn;
            x.rprm.act = &d->act;
            cnn_parallelize_1d(pool, dwr_task, &x, cnn_div_up(x.units, upt));
            return;
          }
          cnn_parallelize_1d(pool, dwp_task, &x, cnn_div_up(x.units, upt));
          return;
        }
      }
      dw_ctx x;
      x.w = w;
      x.in = in;
      x.out = out;
      x.res = residual;
      x.HW = p->in_h * p->in_w;
      x.OHW = p->out_h * p->out_w;
      cnn_dwconv_params_init(&x.prm, d, p->in_h, p->in_w, p->out_h, p->out_w);
      /* the AVX2 kernel computes column indices in 32-bit lanes: absurdly wide rows take the scalar one */
      const size_t lim = (size_t)1 << 30;
      const int narrow = p->in_w + d->pad_left < lim && p->out_w * d->stride_w + (d->kernel_w - 1) * d->dilation_w < lim;
      x.prm.min = w->act_min;
      x.prm.max = w->act_max;
      x.prm.act_fn = w->act_fn;
      x.prm.act = &d->act;
      x.fn = narrow ? w->dw : cnn_f32_dwconv__scalar;
      cnn_parallelize_2d(pool, dw_task, &x, p->batch, d->out_channels);
      return;
    }
    default: {
      gemm_ctx x;
      x.w = w;
      x.in = in;
      x.out = out;
      x.res = residual;
      x.res_in_c = 0;
      if (residual == out) { /* in-place residual add: the first K block accumulates onto it */
        x.res = NULL;
        x.res_in_c = 1;
      }
      x.pointwise = is_pointwise(d);
      x.H = p->in_h;
      x.W = p->in_w;
      x.N = p->out_h * p->out_w;
      x.geom.h = p->in_h;
      x.geom.w = p->in_w;
      x.geom.ow = p->out_w;
      x.geom.kh = d->kernel_h;
      x.geom.kw = d->kernel_w;
      x.geom.sh = d->stride_h;
      x.geom.sw = d->stride_w;
      x.geom.dh = d->dilation_h;
      x.geom.dw = d->dilation_w;
      x.geom.pt = d->pad_top;
      x.geom.pl = d->pad_left;
      /* the AVX2 packer forms gather indices (up to 16*stride) in 32-bit lanes */
      x.pack_b = d->stride_w < ((size_t)1 << 26) ? w->pack_b : cnn_conv_pack_b_im2col__scalar;
      x.ws = (float*)workspace;
      x.slice = gemm_slice_floats(w, x.N, &x.b_floats);
      x.bshared = NULL;
      x.npad = cnn_round_up(x.N, w->cfg->nr);
      if (nthreads > 1 && p->nthreads > 1 && gemm_shared_b_floats(w, p->batch, x.N)) {
        x.bshared = x.ws + p->nthreads * x.slice; /* after the per-thread slices (see cnn_conv2d_plan_init) */
        cnn_parallelize_1d(pool, gemm_shared_pack_task, &x, cnn_div_up(w->K, w->kcb));
      }
      cnn_gemm_tiling_init(w->cfg, w->cout_g, x.N, p->batch * d->groups, nthreads, &x.t);
      cnn_parallelize_2d(pool, gemm_task, &x, p->batch * d->groups * x.t.m_tasks, x.t.n_tasks);
      return;
    }
  }
}
