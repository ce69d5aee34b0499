#include "server/io/process_memory.h"

#include <malloc.h>

namespace timbre {

bool KeepLargeBlocksInTheirOwnMappings() {
  return mallopt(M_MMAP_THRESHOLD, static_cast<int>(kLargeBlockBytes)) == 1;
}

}  // namespace timbre
