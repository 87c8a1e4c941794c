#include <stdlib.h>

#include "cnnrt/common.h"

void* cnn_aligned_alloc(size_t bytes) {
  void* p = NULL;
  if (bytes == 0) bytes = CNN_ALIGN;
  if (bytes > (size_t)1 << 48) return NULL;
  if (posix_memalign(&p, CNN_ALIGN, cnn_round_up(bytes, CNN_ALIGN)) != 0) return NULL;
  return p;
}

void cnn_aligned_free(void* p) { free(p); }
