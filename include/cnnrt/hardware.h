/* CPU feature detection and ISA selection. */
#ifndef CNNRT_HARDWARE_H
#define CNNRT_HARDWARE_H

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
  CNN_ISA_SCALAR = 0, /* portable C, always built: the fallback and the test oracle */
  CNN_ISA_AVX2 = 1,   /* x86-64 with AVX2 + FMA (+ OS support for YMM state) */
  CNN_ISA_NEON = 2,   /* aarch64 Advanced SIMD */
  CNN_ISA_AVX512 = 3, /* x86-64 with AVX-512F + AVX2 + FMA (+ OS support for ZMM / opmask state): the GEMM micro-kernels
                       * are AVX-512 (16x16); every other kernel is the AVX2 one */
  CNN_ISA_COUNT = 4,
} cnn_isa;

/* 1 if `isa` runs the AVX2 kernels (AVX2 itself, and AVX-512, which adds wider GEMM micro-kernels on top). */
static inline int cnn_isa_is_avx2(int isa) { return isa == CNN_ISA_AVX2 || isa == CNN_ISA_AVX512; }

/* Best ISA this CPU supports and this build contains (detected once, cpuid + xgetbv on x86-64). */
int cnn_hw_best_isa(void);
/* 1 if the CPU supports `isa` and the build contains it (on an AVX-512 CPU both avx512 and avx2 are supported). */
int cnn_hw_isa_supported(int isa);
/* Active ISA: the best one, lowered by the environment variable CNNRT_ISA (scalar|avx2|avx512|neon) when set
 * (a request above what the CPU supports falls back to the best supported). */
int cnn_hw_active_isa(void);
/* Force the active ISA (tests). Returns 0, or -1 if unsupported (active ISA unchanged). */
int cnn_hw_set_active_isa(int isa);
const char* cnn_isa_name(int isa);
/* Number of online CPUs (>= 1). */
int cnn_hw_num_cpus(void);
/* Measured FMA throughput of one core in GFLOP/s (best of short runs for about `seconds`); 0 if unknown. */
double cnn_hw_measure_fma_peak(double seconds);

#ifdef __cplusplus
}
#endif
#endif
