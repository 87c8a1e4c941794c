/* Per-ISA SGEMM blocking parameters and micro-kernels (the only place these numbers live).
 *
 * AVX2 (tuned on a 2-core AMD EPYC Zen 3, 32 KiB L1d / 512 KiB L2 per core, 32 MiB L3):
 *   kc = 256: the B micro-panel (kc x 16 floats, 16 KiB) stays in L1 while the A panels stream through it;
 *   mc = 144: the A block (mc x kc, 144 KiB) stays in L2;
 *   nc = 512: widest task; the packed B block (kc x nc) is written by the packer and read back right away, so it
 *             should stay in L2/L3 rather than go to memory. Swept 256..4096 (and kc 192..384, mc 72..216) with
 *             tests/c/bench_conv.c: 512-1024 best for the conv shapes, differences between neighbours within the
 *             noise of this shared machine. */
#include "cnnrt/gemm.h"
#include "cnnrt/hardware.h"

static const cnn_gemm_config g_scalar = {
    .isa = CNN_ISA_SCALAR, .mr = 6, .nr = 16, .kc = 256, .mc = 96, .nc = 2048,
    .ukernel = cnn_f32_gemm_ukernel_6x16__scalar,
    .gemv = cnn_f32_gemm_ukernel_1x16__scalar,
    .gemv2 = cnn_f32_gemm_ukernel_1x32__scalar,
    .ukernel_ldb = cnn_f32_gemm_ukernel_6x16_ldb__scalar,
};

#if defined(__x86_64__) && !defined(CNNRT_NO_AVX2)
/* -D overrides exist only for tuning sweeps (tests/c/bench_conv.c); the defaults are the tuned values. */
#ifndef CNN_AVX2_KC
#define CNN_AVX2_KC 256
#endif
#ifndef CNN_AVX2_MC
#define CNN_AVX2_MC 144
#endif
#ifndef CNN_AVX2_NC
#define CNN_AVX2_NC 512
#endif
static const cnn_gemm_config g_avx2 = {
    .isa = CNN_ISA_AVX2, .mr = 6, .nr = 16, .kc = CNN_AVX2_KC, .mc = CNN_AVX2_MC, .nc = CNN_AVX2_NC,
    .ukernel = cnn_f32_gemm_ukernel_6x16__avx2,
    .gemv = cnn_f32_gemm_ukernel_1x16__avx2,
    .gemv2 = cnn_f32_gemm_ukernel_1x32__avx2,
    .ukernel_ldb = cnn_f32_gemm_ukernel_6x16_ldb__avx2,
    .ukernel_pf = cnn_f32_gemm_ukernel_6x16_pf__avx2,
};
#ifndef CNNRT_NO_AVX512
/* AVX-512F 16x16 (tuned on a 2-core AMD EPYC Zen 4, 32 KiB L1d / 1 MiB L2 per core): the AVX2 blocking, kc = 256
 * (B micro-panel 16 KiB in L1), mc = 144 (9 row panels, A block 144 KiB in L2), nc = 512. M = 1 (GEMV) keeps the
 * AVX2 kernels: they are bound by reading W. */
static const cnn_gemm_config g_avx512 = {
    .isa = CNN_ISA_AVX512, .mr = 16, .nr = 16, .kc = CNN_AVX2_KC, .mc = CNN_AVX2_MC, .nc = CNN_AVX2_NC,
    .ukernel = cnn_f32_gemm_ukernel_16x16__avx512,
    .gemv = cnn_f32_gemm_ukernel_1x16__avx2,
    .gemv2 = cnn_f32_gemm_ukernel_1x32__avx2,
    .ukernel_ldb = cnn_f32_gemm_ukernel_16x16_ldb__avx512,
    .ukernel_pf = cnn_f32_gemm_ukernel_16x16_pf__avx512,
    .ukernel_wide = cnn_f32_gemm_ukernel_16x16_wide__avx512,
};
#endif
#endif

#if defined(__aarch64__) && !defined(CNNRT_NO_NEON)
/* NEON (aarch64) 6x16: 24 accumulator registers of 32; the AVX2 tile, so the 16-column fast paths of the packers
 * and the Winograd code (which assumes 16-column B panels) apply. (An 8x12 kernel passed every sgemm / fc / conv
 * test too, but src/ops/winograd.c hard-codes 16.) Not tuned on hardware (developed under qemu): kc = 256 keeps the
 * B micro-panel (16 KiB) in a 32 KiB+ L1d, mc = 96 (A block 96 KiB) and nc = 1024 fit a 256 KiB+ L2 with room for
 * the packed B block's working set. */
static const cnn_gemm_config g_neon = {
    .isa = CNN_ISA_NEON, .mr = 6, .nr = 16, .kc = 256, .mc = 96, .nc = 1024,
    .ukernel = cnn_f32_gemm_ukernel_6x16__neon,
    .gemv = cnn_f32_gemm_ukernel_1x16__neon,
    .gemv2 = cnn_f32_gemm_ukernel_1x32__neon,
};
#endif

/* isa < 0: the active ISA. An ISA the CPU lacks gives NULL; a supported ISA without a kernel of its own gets the
 * portable scalar kernel. */
const cnn_gemm_config* cnn_gemm_config_get(int isa) {
  if (isa < 0) isa = cnn_hw_active_isa();
  if (!cnn_hw_isa_supported(isa)) return NULL;
#if defined(__x86_64__) && !defined(CNNRT_NO_AVX2)
  if (isa == CNN_ISA_AVX2) return &g_avx2;
#ifndef CNNRT_NO_AVX512
  if (isa == CNN_ISA_AVX512) return &g_avx512;
#endif
#endif
#if defined(__aarch64__) && !defined(CNNRT_NO_NEON)
  if (isa == CNN_ISA_NEON) return &g_neon;
#endif
  return &g_scalar;
}
