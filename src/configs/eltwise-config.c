/* Per-ISA tables of element-wise / pooling kernels. */
#include "cnnrt/eltwise.h"
#include "cnnrt/hardware.h"

static const cnn_eltwise_config g_scalar = {
    CNN_ISA_SCALAR,
    cnn_f32_act__scalar,
    cnn_f32_binary__scalar,
    cnn_f32_pool2d__scalar,
    cnn_f32_global_pool__scalar,
    cnn_f32_channel_affine__scalar,
    cnn_f32_softmax__scalar,
};

#if defined(__x86_64__) || defined(_M_X64)
#define CNN_HAVE_AVX2_KERNELS 1
static const cnn_eltwise_config g_avx2 = {
    CNN_ISA_AVX2,
    cnn_f32_act__avx2,
    cnn_f32_binary__avx2,
    cnn_f32_pool2d__avx2,
    cnn_f32_global_pool__avx2,
    cnn_f32_channel_affine__avx2,
    cnn_f32_softmax__avx2,
};
/* AVX-512 CPUs run the AVX2 element-wise kernels, but for sigmoid / silu (16 lanes, the same bits) */
static const cnn_eltwise_config g_avx512 = {
    CNN_ISA_AVX512,
    cnn_f32_act__avx512,
    cnn_f32_binary__avx2,
    cnn_f32_pool2d__avx2,
    cnn_f32_global_pool__avx2,
    cnn_f32_channel_affine__avx2,
    cnn_f32_softmax__avx2,
};
#endif

#if defined(__aarch64__) && !defined(CNNRT_NO_NEON)
#define CNN_HAVE_NEON_KERNELS 1
static const cnn_eltwise_config g_neon = {
    CNN_ISA_NEON,
    cnn_f32_act__neon,
    cnn_f32_binary__neon,
    cnn_f32_pool2d__neon,
    cnn_f32_global_pool__neon,
    cnn_f32_channel_affine__neon,
    cnn_f32_softmax__neon,
};
#endif

/* isa < 0: the active ISA. NULL when the CPU (or the build) does not support `isa`. */
const cnn_eltwise_config* cnn_eltwise_config_get(int isa) {
  if (isa < 0) isa = cnn_hw_active_isa();
  if (!cnn_hw_isa_supported(isa)) return NULL;
  switch (isa) {
#ifdef CNN_HAVE_AVX2_KERNELS
    case CNN_ISA_AVX2: return &g_avx2;
    case CNN_ISA_AVX512: return &g_avx512;
#endif
#ifdef CNN_HAVE_NEON_KERNELS
    case CNN_ISA_NEON: return &g_neon;
#endif
    case CNN_ISA_SCALAR: return &g_scalar;
    default: return NULL;
  }
}
