/* CPU feature detection (once) and the active-ISA switch. */
#include "cnnrt/hardware.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#if defined(__x86_64__) || defined(_M_X64)
#define CNN_ARCH_X86_64 1
#include <cpuid.h>
#elif defined(__aarch64__)
#define CNN_ARCH_AARCH64 1
#endif

static int g_best = -1;
static int g_active = -1;

#ifdef CNN_ARCH_X86_64
static int x86_has_avx2_fma(void) {
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
  const int fma = (c >> 12) & 1, osxsave = (c >> 27) & 1, avx = (c >> 28) & 1;
  if (!(fma && osxsave && avx)) return 0;
  /* XCR0: the OS must save XMM (bit 1) and YMM (bit 2) state. */
  unsigned lo, hi;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  (void)hi;
  if ((lo & 6u) != 6u) return 0;
  if (__get_cpuid_max(0, NULL) < 7) return 0;
  __cpuid_count(7, 0, a, b, c, d);
  return (b >> 5) & 1; /* AVX2 */
}

/* AVX-512F, with the OS saving opmask (XCR0 bit 5) and the upper ZMM state (bits 6, 7). */
static int x86_has_avx512f(void) {
  if (!x86_has_avx2_fma()) return 0;
  unsigned a, b, c, d;
  __cpuid_count(7, 0, a, b, c, d);
  if (!((b >> 16) & 1)) return 0;
  unsigned lo, hi;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  (void)hi;
  return (lo & 0xE6u) == 0xE6u;
}
#endif

static int detect_best(void) {
#if defined(CNN_ARCH_X86_64) && !defined(CNNRT_NO_AVX2)
#ifndef CNNRT_NO_AVX512
  if (x86_has_avx512f()) return CNN_ISA_AVX512;
#endif
  if (x86_has_avx2_fma()) return CNN_ISA_AVX2;
#elif defined(CNN_ARCH_AARCH64) && !defined(CNNRT_NO_NEON)
  return CNN_ISA_NEON;
#endif
  return CNN_ISA_SCALAR;
}

int cnn_hw_best_isa(void) {
  if (g_best < 0) g_best = detect_best();
  return g_best;
}

int cnn_hw_isa_supported(int isa) {
  if (isa == CNN_ISA_SCALAR) return 1;
  const int best = cnn_hw_best_isa();
  if (isa == CNN_ISA_AVX2 && best == CNN_ISA_AVX512) return 1;
  return isa > 0 && isa < CNN_ISA_COUNT && isa == best;
}

static int parse_isa(const char* s) {
  if (!s) return -1;
  if (!strcmp(s, "scalar")) return CNN_ISA_SCALAR;
  if (!strcmp(s, "avx2")) return CNN_ISA_AVX2;
  if (!strcmp(s, "avx512")) return CNN_ISA_AVX512;
  if (!strcmp(s, "neon")) return CNN_ISA_NEON;
  return -1;
}

int cnn_hw_active_isa(void) {
  if (g_active < 0) {
    int isa = cnn_hw_best_isa();
    int want = parse_isa(getenv("CNNRT_ISA"));
    if (want >= 0 && cnn_hw_isa_supported(want)) isa = want;
    g_active = isa;
  }
  return g_active;
}

int cnn_hw_set_active_isa(int isa) {
  if (!cnn_hw_isa_supported(isa)) return -1;
  g_active = isa;
  return 0;
}

const char* cnn_isa_name(int isa) {
  switch (isa) {
    case CNN_ISA_SCALAR: return "scalar";
    case CNN_ISA_AVX2: return "avx2";
    case CNN_ISA_NEON: return "neon";
    case CNN_ISA_AVX512: return "avx512";
    default: return "unknown";
  }
}

int cnn_hw_num_cpus(void) {
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  return n > 0 ? (int)n : 1;
}
