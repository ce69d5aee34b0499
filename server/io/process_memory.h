// The allocator policy of a long-running timbre process.
//
// glibc raises its mmap threshold to the size of every large block freed (up to 32 MB): after the
// first build job frees its multi-megabyte row matrices, the next build's matrices come from the
// heap arenas instead of fresh mappings, and an arena keeps that memory for the rest of the
// process wherever a long-lived block landed above it (the soak measured RSS stepping up at the
// second build and never coming down). A fixed threshold keeps large blocks in mappings of their
// own, returned to the system when freed.
#ifndef TIMBRE_SERVER_IO_PROCESS_MEMORY_H_
#define TIMBRE_SERVER_IO_PROCESS_MEMORY_H_

#include <cstddef>

namespace timbre {

// Blocks of at least this many bytes get mappings of their own.
inline constexpr size_t kLargeBlockBytes = size_t{1} << 20;

// Fixes glibc's mmap threshold at kLargeBlockBytes (which also stops its dynamic adjustment).
// Call once at the start of the process, before its threads. Returns false if glibc refused.
bool KeepLargeBlocksInTheirOwnMappings();

}  // namespace timbre

#endif  // TIMBRE_SERVER_IO_PROCESS_MEMORY_H_
