/* Aligned allocation. Buffers of 2 MiB and more (the arena, Winograd U matrices, big weight panels) are mapped
 * fresh and 2 MiB-aligned with MADV_HUGEPAGE where the system has transparent huge pages in "madvise" mode: each
 * run streams them, and with 4 KiB pages that is a TLB miss every 4 KiB and a hardware prefetcher that stops at
 * every page boundary. CNNRT_HUGEPAGES=0 turns this off. Every block carries a 64-byte header in front of the
 * pointer returned: how it was obtained (heap or mapping), its base and its length, which cnn_aligned_free reads.
 * Only the whole 2 MiB pages inside the buffer are advised, so its resident size does not grow; the mapping's
 * unused head and tail are address space only. Measured in one process, sessions with and without
 * (benchmarks/ab_env.py ... CNNRT_HUGEPAGES 0 1, both orders): ResNet-50 1 thread 2.5-4% faster, 2 threads
 * 2.7-7%, ResNet-18 2-3%; MobileNetV2 (its weights are mostly < 2 MiB) within the noise. */
#include <stdint.h>
#include <stdlib.h>
#if defined(__linux__)
#include <sys/mman.h>
#endif

#include "cnnrt/common.h"

#define HUGE_BYTES ((size_t)2 << 20)

/* AddressSanitizer checks heap blocks, not mappings: sanitizer builds keep every buffer on the heap */
#if defined(__SANITIZE_ADDRESS__)
#define CNN_NO_HUGE 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CNN_NO_HUGE 1
#endif
#endif
#define HDR 64 /* = CNN_ALIGN: the pointer returned stays aligned */

enum { KIND_HEAP = 0x68656170, KIND_MAP = 0x6d617070 };

typedef struct {
  void* base;
  size_t len;
  uint32_t kind;
} hdr_t;

/* The block at p (HDR bytes after its header) came from `base` (len bytes) by `kind`. */
static void* put_hdr(char* p, void* base, size_t len, uint32_t kind) {
  hdr_t* h = (hdr_t*)(p - HDR);
  h->base = base;
  h->len = len;
  h->kind = kind;
  return p;
}

static int want_huge(void) {
  const char* e = getenv("CNNRT_HUGEPAGES");
  return !(e && e[0] == '0' && e[1] == 0);
}

void* cnn_aligned_alloc(size_t bytes) {
  if (bytes == 0) bytes = CNN_ALIGN;
  if (bytes > (size_t)1 << 48) return NULL;
  bytes = cnn_round_up(bytes, CNN_ALIGN);
#if defined(__linux__) && defined(MADV_HUGEPAGE) && !defined(CNN_NO_HUGE)
  if (bytes >= HUGE_BYTES && want_huge()) {
    const size_t len = bytes + HUGE_BYTES + HDR;
    void* base = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (base != MAP_FAILED) {
      char* p = (char*)cnn_round_up((uintptr_t)base + HDR, HUGE_BYTES);
      (void)madvise(p, bytes / HUGE_BYTES * HUGE_BYTES, MADV_HUGEPAGE); /* advice only: failure is harmless */
      return put_hdr(p, base, len, KIND_MAP);
    }
  }
#endif
  void* base = NULL;
  if (posix_memalign(&base, CNN_ALIGN, bytes + HDR) != 0) return NULL;
  return put_hdr((char*)base + HDR, base, bytes + HDR, KIND_HEAP);
}

void cnn_aligned_free(void* ptr) {
  if (!ptr) return;
  const hdr_t* h = (const hdr_t*)((char*)ptr - HDR);
#if defined(__linux__)
  if (h->kind == KIND_MAP) {
    (void)munmap(h->base, h->len);
    return;
  }
#endif
  free(h->base);
}
