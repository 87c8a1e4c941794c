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
};
#endif

#if defined(__aarch64__) && !defined(CNNRT_NO_NEON)
/* NEON (aarch64) 8x12: 24 accumulator registers of 32. Not tuned on hardware yet (developed under qemu): kc = 256
 * keeps the B micro-panel (kc x 12 floats, 12 KiB) in a 32 KiB L1d; mc = 128 (A block 128 KiB) fits the smallest
 * common L2 (256 KiB+); nc = 768 = 64 panels of 12. */
static const cnn_gemm_config g_neon = {
    .isa = CNN_ISA_NEON, .mr = 8, .nr = 12, .kc = 256, .mc = 128, .nc = 768,
    .ukernel = cnn_f32_gemm_ukernel_8x12__neon,
};
#endif

/* isa < 0: the active ISA. An ISA the CPU lacks gives NULL; a supported ISA without a kernel of its own gets the
 * portable scalar kernel. */
const cnn_gemm_config* cnn_gemm_config_get(int isa) {
  if (isa < 0) isa = cnn_hw_active_isa();
  if (!cnn_hw_isa_supported(isa)) return NULL;
#if defined(__x86_64__) && !defined(CNNRT_NO_AVX2)
  if (isa == CNN_ISA_AVX2) return &g_avx2;
#endif
#if defined(__aarch64__) && !defined(CNNRT_NO_NEON)
  if (isa == CNN_ISA_NEON) return &g_neon;
#endif
  return &g_scalar;
}
