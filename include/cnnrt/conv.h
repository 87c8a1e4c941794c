/* 2-D convolution, NCHW, float32: prepare (choose the algorithm, pack weights once) then run.
 *   out[n, co, oy, ox] = act( bias[co] + sum_{ci in group, ky, kx} in[n, ci, oy*sh - pt + ky*dh, ox*sw - pl + kx*dw]
 *                              * w[co, ci - g*Cin/G, ky, kx]  + residual[n, co, oy, ox] )
 * with out-of-range input positions reading as 0. OH = (H + pt + pb - dh*(KH-1) - 1)/sh + 1 (same for W). */
#ifndef CNNRT_CONV_H
#define CNNRT_CONV_H

#include "cnnrt/common.h"
#include "cnnrt/threadpool.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cnn_conv2d_desc {
  size_t in_channels, out_channels, groups;
  size_t kernel_h, kernel_w;
  size_t stride_h, stride_w;
  size_t dilation_h, dilation_w;
  size_t pad_top, pad_left, pad_bottom, pad_right;
  cnn_act act; /* fused activation, applied after bias and residual */
} cnn_conv2d_desc;

typedef enum {
  CNN_CONV_ALGO_AUTO = 0,      /* chosen from the shape */
  CNN_CONV_ALGO_GEMM = 1,      /* implicit GEMM: B panels packed straight from the input (1x1 stride 1: no copy) */
  CNN_CONV_ALGO_DEPTHWISE = 2, /* groups == in_channels, one (or a few) output channels per input channel */
  CNN_CONV_ALGO_DIRECT = 3,    /* direct kernel (few input channels) */
  CNN_CONV_ALGO_REFERENCE = 4, /* naive loops (scalar), the oracle */
  CNN_CONV_ALGO_WINOGRAD = 5,  /* Winograd F(m,3) (3x3 stride 1), forced: every plan runs it */
  CNN_CONV_ALGO_AUTO_SMALL = 6, /* AUTO for layers whose outputs are small (e.g. 7x7, 8x8 at batch 1): Winograd is
                                   tried from F(2,3), whose 2x2 tiles still give enough GEMM columns there */
  CNN_CONV_ALGO_WINOGRAD_F2 = 7, /* WINOGRAD from this tile (F(2,3), F(4,3), F(6,3)) instead of the default one: */
  CNN_CONV_ALGO_WINOGRAD_F4 = 8, /* the load-time tuner (cnnrt/tune.py) times the tiles; the accuracy guard still */
  CNN_CONV_ALGO_WINOGRAD_F6 = 9, /* falls back to a smaller tile, then GEMM, over budget (see the tile attribute) */
} cnn_conv_algo;

/* 0 if the descriptor is valid (non-zero sizes and strides, groups dividing both channel counts, ...). */
int cnn_conv2d_desc_check(const cnn_conv2d_desc* d);
/* Output size for an input of h x w; returns 1, or 0 (and *oh = *ow = 0) when the kernel does not fit (or the
 * descriptor is invalid, or a size overflows). */
int cnn_conv2d_out_size(const cnn_conv2d_desc* d, size_t h, size_t w, size_t* oh, size_t* ow);

typedef struct cnn_conv2d_weights cnn_conv2d_weights;
/* Pack weights [Cout, Cin/groups, KH, KW] and bias [Cout] (or NULL) once. isa < 0: active ISA. algo: see
 * cnn_conv_algo (AUTO picks). *status (if not NULL) gets CNN_OK or an error. The weights object owns its memory. */
cnn_conv2d_weights* cnn_conv2d_weights_create(const cnn_conv2d_desc* d, const float* w, const float* bias, int isa,
                                              int algo, int* status);
void cnn_conv2d_weights_destroy(cnn_conv2d_weights* w);
int cnn_conv2d_weights_algo(const cnn_conv2d_weights* w);
size_t cnn_conv2d_weights_bytes(const cnn_conv2d_weights* w);
/* Winograd (CNN_CONV_ALGO_WINOGRAD; 3x3, stride 1, dilation 1, groups 1): AUTO picks it for layers with >= 16 input
 * and output channels unless the environment variable CNNRT_WINOGRAD=0; an explicit WINOGRAD request always tries it.
 * Tile F(4,3) (the fastest measured; CNNRT_WINOGRAD_TILE=2|4|6 overrides). An accuracy probe at create time (the
 * layer on a deterministic input vs the implicit GEMM) keeps the first tile, from that one down to F(2,3), whose
 * relative error max|wino - gemm| / max|gemm| is within budget (1e-3) and whose intermediates cannot overflow, else
 * GEMM (then cnn_conv2d_weights_algo says GEMM). The weights keep the GEMM packing too: with AUTO, plans with fewer
 * than 16 tiles in the batch (e.g. 8 x 8 outputs at batch 1) run GEMM (plan.algo tells). tile: m of the chosen
 * F(m,3), 0 when not Winograd. probe_error: the measured error of the chosen tile (or of the last tile tried when
 * all failed; INFINITY for an overflow), -1 when no probe ran. */
int cnn_conv2d_weights_tile(const cnn_conv2d_weights* w);
double cnn_conv2d_weights_probe_error(const cnn_conv2d_weights* w);

/* Per-shape plan: a plain struct the caller keeps (no allocation); workspace_bytes is what run needs. */
typedef struct cnn_conv2d_plan {
  const cnn_conv2d_weights* w;
  size_t batch, in_h, in_w, out_h, out_w;
  size_t nthreads;
  size_t workspace_bytes;
  int algo; /* algorithm this plan runs: CNN_CONV_ALGO_WINOGRAD, or 0 (the weights' algorithm) */
  int maxpool2; /* 1: the run writes MaxPool(2x2, stride 2, floor) of the output (cnn_conv2d_plan_fuse_maxpool2) */
  const struct cnn_conv2d_weights* dw; /* fused depthwise conv (cnn_conv2d_plan_fuse_dw), or NULL */
  size_t dw_oh, dw_ow;                 /* its output size */
  size_t dw_rows, dw_cg;               /* output rows per band, channels per group (tasks: bands x groups) */
} cnn_conv2d_plan;
/* Returns CNN_OK, or CNN_ERR_INVALID (batch or input size 0, kernel larger than the padded input, sizes whose
 * products overflow). The workspace holds nthreads per-thread slices: run with a pool of at most nthreads threads
 * (a larger pool is not used: the run then executes on the calling thread). */
int cnn_conv2d_plan_init(cnn_conv2d_plan* p, const cnn_conv2d_weights* w, size_t batch, size_t in_h, size_t in_w,
                         size_t nthreads);
/* in: [batch, Cin, H, W]; out: [batch, Cout, OH, OW]; residual: like out, or NULL, and may be out itself (in-place
 * add; in must not overlap out); workspace: workspace_bytes, CNN_ALIGN-aligned. Never allocates. */
/* Fuse a following MaxPool (kernel 2x2, stride 2, no padding, floor) into the plan: the run then writes the pooled
 * tensor (out_h/2 x out_w/2 per channel) and takes no residual. CNN_OK when this plan's algorithm can (Winograd with
 * an even tile and a clamp-type activation, and out_h, out_w >= 2), else CNN_ERR_UNSUPPORTED and the plan is
 * unchanged. */
int cnn_conv2d_plan_fuse_maxpool2(cnn_conv2d_plan* p);
void cnn_conv2d_run(const cnn_conv2d_plan* p, const float* in, float* out, const float* residual, void* workspace,
                    cnn_threadpool* pool);
/* Expand 1x1 + depthwise (the inverted-residual block of MobileNetV2 / EfficientNet) as one run: the plan of the
 * 1x1 convolution pw (GEMM weights, 1x1, stride 1, no padding, groups 1, Cin <= one K block) takes the following
 * depthwise convolution dw (DEPTHWISE weights, multiplier 1, Cin = pw's Cout, kernel <= 7x7, stride 1 or 2,
 * dilation 1, padding at most (k-1)/2 per side); the run then writes dw's output ([batch, C, dw_oh, dw_ow]) and
 * the expanded tensor never exists in full: each task computes a band of its rows for a group of channels (the
 * GEMM on a packed band of the input, with pw's bias and activation) into its workspace slice, sized to stay in
 * L2, and runs the depthwise kernel on that band (its top padding shifted to the band). Rows where bands meet are
 * computed by both (k - stride rows per band). No residual. cnn_conv2d_expand_dw_ok: the shapes it takes; the plan
 * function returns CNN_ERR_UNSUPPORTED otherwise (plan unchanged). */
int cnn_conv2d_expand_dw_ok(const struct cnn_conv2d_weights* pw, const struct cnn_conv2d_weights* dw, size_t in_h,
                            size_t in_w);
int cnn_conv2d_plan_fuse_dw(cnn_conv2d_plan* p, const struct cnn_conv2d_weights* dw);
/* Tests: the byte budget of a band of expanded rows for plans fused from now on (0: the default, 160 KiB). */
void cnn_conv2d_set_expand_dw_band_bytes(size_t bytes);

/* Naive reference (the oracle): same semantics, weights unpacked. Sums in double; the fused activation is computed
 * in double with libm. residual may equal out. */
void cnn_conv2d_ref(const cnn_conv2d_desc* d, size_t batch, size_t h, size_t w, const float* in, const float* weights,
                    const float* bias, const float* residual, float* out);

/* ---- Kernels behind cnn_conv2d_run (internal; declared here so that they can be tested one by one). ---- */

/* Implicit im2col for one image and group: the matrix B[k, p] with k = (ci, ky, kx) (kx fastest) and p = oy*ow + ox
 * holds in[ci, oy*sh - pt + ky*dh, ox*sw - pl + kx*dw] (0 outside the h x w plane). */
typedef struct cnn_conv_im2col {
  size_t h, w;         /* input plane */
  size_t ow;           /* output width (columns of B are output pixels in row-major order) */
  size_t kh, kw, sh, sw, dh, dw, pt, pl;
} cnn_conv_im2col;
/* Pack rows [k0, k0+kc) x columns [n0, n0+n) of B into ceil(n/nr) panels of kc x nr (cnn_gemm_pack_b's layout,
 * zero-padded past n). in: the group's first input channel plane. ktab: scratch of 3*kc ptrdiff_t. nr <= 32. */
typedef void (*cnn_conv_pack_b_fn)(const cnn_conv_im2col* g, const float* in, size_t k0, size_t kc, size_t n0,
                                   size_t n, size_t nr, float* packed, ptrdiff_t* ktab);
void cnn_conv_pack_b_im2col__scalar(const cnn_conv_im2col* g, const float* in, size_t k0, size_t kc, size_t n0,
                                    size_t n, size_t nr, float* packed, ptrdiff_t* ktab);
#if defined(__x86_64__)
void cnn_conv_pack_b_im2col__avx2(const cnn_conv_im2col* g, const float* in, size_t k0, size_t kc, size_t n0,
                                  size_t n, size_t nr, float* packed, ptrdiff_t* ktab);
#endif

/* Depthwise: one output plane from one input plane and its kh x kw filter.
 *   out[oy, ox] = act(clamp(bias + sum in[oy*sh - pt + ky*dh, ox*sw - pl + kx*dw] * w[ky*kw + kx] + residual[oy, ox]))
 * ox_lo/ox_hi: output columns in [ox_lo, ox_hi) never read horizontal padding (computed by
 * cnn_dwconv_params_init). act_fn (or NULL) runs once on the whole output after the last row (on rows of 56 / 112
 * floats, the activation kernel costs 0.93 / 0.66 ns per element against 0.49 on a plane: SiLU, data in L2); so do
 * the padded-plane and direct kernels' (the direct one per output channel). */
typedef struct cnn_dwconv_params {
  size_t h, w, oh, ow;
  size_t kh, kw, sh, sw, dh, dw, pt, pl;
  size_t ox_lo, ox_hi;
  float min, max;
  void (*act_fn)(const cnn_act* act, const float* x, float* y, size_t n);
  const cnn_act* act;
} cnn_dwconv_params;
void cnn_dwconv_params_init(cnn_dwconv_params* p, const cnn_conv2d_desc* d, size_t h, size_t w, size_t oh, size_t ow);
typedef void (*cnn_dwconv_fn)(const cnn_dwconv_params* p, const float* in, const float* w, float bias,
                              const float* residual, float* out);
void cnn_f32_dwconv__scalar(const cnn_dwconv_params* p, const float* in, const float* w, float bias,
                            const float* residual, float* out);
#if defined(__x86_64__)
void cnn_f32_dwconv__avx2(const cnn_dwconv_params* p, const float* in, const float* w, float bias,
                          const float* residual, float* out);
#endif
#if defined(__aarch64__)
void cnn_f32_dwconv__neon(const cnn_dwconv_params* p, const float* in, const float* w, float bias,
                          const float* residual, float* out);
#endif

/* Depthwise on a zero-padded copy of the input plane (dilation 1, stride_w 1 or 2, kh*kw <= 64): the packer
 * (cnn_dwconv_pad_plane) writes ph rows of pw floats where row r, column c holds in[r - pt, c - pl] (0 outside);
 * with stride_w 2 the columns are de-interleaved into an even plane (logical column 2j at j) and an odd plane
 * (2j+1 at plane + j). Output (oy, ox) tap (ky, kx) then reads pad[(oy*sh + ky)*pw + ox + kx] (stride 1) or
 * pad[(kx & 1)*plane + (oy*sh + ky)*pw + ox + (kx >> 1)] (stride 2), for every ox < round_up(ow, 8): no edge code. */
typedef struct cnn_dwconv_padded_params {
  size_t oh, ow, kh, kw, sh, sw;
  size_t pw, ph, pt, pl, plane;
  float min, max;
  void (*act_fn)(const cnn_act* act, const float* x, float* y, size_t n);
  const cnn_act* act;
} cnn_dwconv_padded_params;
/* Fills *p (min/max = -inf/+inf, no act_fn) and *floats (size of the padded copy) for this shape; returns 0 when the
 * shape is not supported (then use cnn_dwconv_fn). */
int cnn_dwconv_padded_geometry(const cnn_conv2d_desc* d, size_t h, size_t w, size_t oh, size_t ow,
                               cnn_dwconv_padded_params* p, size_t* floats);
typedef void (*cnn_dwconv_pad_fn)(const cnn_dwconv_padded_params* p, const float* in, size_t h, size_t w, float* pad);
void cnn_dwconv_pad_plane(const cnn_dwconv_padded_params* p, const float* in, size_t h, size_t w, float* pad);
#if defined(__x86_64__)
void cnn_dwconv_pad_plane__avx2(const cnn_dwconv_padded_params* p, const float* in, size_t h, size_t w, float* pad);
#endif
typedef void (*cnn_dwconv_padded_fn)(const cnn_dwconv_padded_params* p, const float* pad, const float* w, float bias,
                                     const float* residual, float* out);
void cnn_f32_dwconv_padded__scalar(const cnn_dwconv_padded_params* p, const float* pad, const float* w, float bias,
                                   const float* residual, float* out);
#if defined(__x86_64__)
void cnn_f32_dwconv_padded__avx2(const cnn_dwconv_padded_params* p, const float* pad, const float* w, float bias,
                                 const float* residual, float* out);
#endif
#if defined(__aarch64__)
void cnn_f32_dwconv_padded__neon(const cnn_dwconv_padded_params* p, const float* pad, const float* w, float bias,
                                 const float* residual, float* out);
#endif

/* Depthwise straight from the input plane, without a padded copy (AVX2): same parameters and result as
 * cnn_f32_dwconv__scalar (the oracle) for the shapes cnn_dwconv_rows_ok accepts (dilation 1, stride_w 1 or 2,
 * stride_h <= 2, kw <= 8, kh*kw <= 64, rows narrower than 2^30). zrow: scratch of round_up(w, 8) floats (the kernel
 * zeroes it; rows above and below the input read it). */
int cnn_dwconv_rows_ok(const cnn_conv2d_desc* d, size_t h, size_t w);
typedef void (*cnn_dwconv_rows_fn)(const cnn_dwconv_params* p, const float* in, const float* w, float bias,
                                   const float* residual, float* out, float* zrow);
#if defined(__x86_64__)
void cnn_f32_dwconv_rows__avx2(const cnn_dwconv_params* p, const float* in, const float* w, float bias,
                               const float* residual, float* out, float* zrow);
#endif

/* Depthwise, 8 channels at a time with the channels in the vector lanes (multiplier 1, dilation 1, kh*kw <= 64):
 * in/out/residual point at the first of 8 consecutive channel planes (h*w resp. oh*ow floats apart); w8: the 8
 * filters interleaved, [kh*kw][8], 32-byte aligned; bias: 8 floats or NULL. xbuf (ph*pwc*8 floats) and ybuf
 * (oh*ow*8 floats) are 32-byte aligned scratch. */
typedef struct cnn_dwconv_c8_params {
  size_t h, w, oh, ow, kh, kw, sh, sw, pt, pl;
  size_t pwc, ph; /* transposed buffer: ph rows of pwc pixels (pixel (r, c) holds in[r - pt, c - pl], 0 outside) */
  size_t ostride; /* floats between the output (and residual) planes: oh*ow unless the caller writes a band of rows */
  float min, max;
  void (*act_fn)(const cnn_act* act, const float* x, float* y, size_t n);
  const cnn_act* act;
} cnn_dwconv_c8_params;
/* Fills *p (no clamp, no act_fn), *xfloats and *yfloats (each a multiple of 16); returns 0 when the shape is not
 * supported. */
int cnn_dwconv_c8_geometry(const cnn_conv2d_desc* d, size_t h, size_t w, size_t oh, size_t ow, cnn_dwconv_c8_params* p,
                           size_t* xfloats, size_t* yfloats);
#if defined(__x86_64__)
void cnn_f32_dwconv_c8__avx2(const cnn_dwconv_c8_params* p, const float* in, const float* w8, const float* bias,
                             const float* residual, float* out, float* xbuf, float* ybuf);
#endif

/* Direct convolution for few input channels (CNN_CONV_ALGO_DIRECT: groups 1, Cin <= CNN_DIRECT_MAX_CIN, dilation 1,
 * stride_w 1 or 2, kh*kw <= 64), output channels CNN_DIRECT_CB at a time in registers times a row segment of output
 * pixels. It reads each input channel's zero-padded copy in the layout of cnn_dwconv_padded_params (built by the
 * depthwise packer; stride 2 de-interleaved into an even and an odd plane): channel ci's copy starts at
 * pad + ci*cstride, its row r (logical padded row) at + r*pw, phase plane 1 at + plane. Output row oy (< oh) reads
 * padded rows oy*sh .. oy*sh + kh - 1, and columns up to round_up(ow, 8) + (kw-1)/sw (all readable).
 *   out[co*ostride + oy*ow + ox] = act(clamp(bias[co] + sum_{ci,ky,kx} w[co][ci][ky][kx] * tap + residual[...]))
 * wpk: the weights packed [ceil(cout/CB)][cin][kh][kw][CB] (zero-padded channels); bias: cout floats or NULL.
 * pool = 1 (residual NULL, act_fn NULL): out gets the 2x2 stride-2 max-pool (floor) of those outputs instead, pooled
 * row i (< oh/2) of channel co at out + co*ostride + i*(ow/2), each element clamped first, the four taken in the
 * pooling kernels' order (row 2i: column 2j, 2j+1; row 2i+1: 2j, 2j+1) with their rule m = v > m ? v : m from
 * m = -inf (a NaN is skipped): bit-identical to the unpooled outputs pooled by cnn_f32_pool2d (max, 2x2, stride 2). */
#define CNN_DIRECT_MAX_CIN 4
#define CNN_DIRECT_CB 4
typedef struct cnn_directconv_params {
  size_t cin, cout, oh, ow, kh, kw, sh, sw;
  size_t pw, plane, cstride; /* padded row, phase plane and per-channel copy sizes in floats */
  size_t ostride;            /* floats between output (and residual) channel planes */
  float min, max;
  void (*act_fn)(const cnn_act* act, const float* x, float* y, size_t n);
  const cnn_act* act;
  int pool; /* 1: write the 2x2 max-pooled rows (see above) */
} cnn_directconv_params;
typedef void (*cnn_directconv_fn)(const cnn_directconv_params* p, const float* pad, const float* wpk,
                                  const float* bias, const float* residual, float* out);
void cnn_f32_directconv__scalar(const cnn_directconv_params* p, const float* pad, const float* wpk, const float* bias,
                                const float* residual, float* out);
#if defined(__x86_64__)
void cnn_f32_directconv__avx2(const cnn_directconv_params* p, const float* pad, const float* wpk, const float* bias,
                              const float* residual, float* out);
/* avx512 ISA: the plain path on 16-lane vectors (the same packed weights and padded input), pool -> the AVX2 one */
void cnn_f32_directconv__avx512(const cnn_directconv_params* p, const float* pad, const float* wpk, const float* bias,
                                const float* residual, float* out);
#endif
#if defined(__aarch64__)
void cnn_f32_directconv__neon(const cnn_directconv_params* p, const float* pad, const float* wpk, const float* bias,
                              const float* residual, float* out);
#endif

#ifdef __cplusplus
}
#endif
#endif
