// FaissIndexProbe: reads a faiss index file once in a child process before the server reads it,
// so that a corrupt or hostile file cannot crash or exhaust the server.
//
// faiss's reader is not hardened: on a corrupt file it can read out of bounds, abort, allocate
// whatever a size field claims, or leak what it had read before it throws. The probe forks; the
// child reads the file with faiss as the server will, with its address space bounded, and exits
// 0 if faiss read it, 1 if faiss threw. The parent waits at most a time limit and turns every
// other outcome (a signal, the limit, a child that cannot start) into an INVALID_ARGUMENT or
// UNAVAILABLE status naming the file. Only a file the probe read is then read in the process.
//
// Part of the faiss adapter: only this file's .cc calls faiss's reader in the child.
// Thread-safe: free function; fork() copies only the calling thread, and the child calls nothing
// but faiss's reader and _exit.
#ifndef TIMBRE_SERVER_FAISS_FAISS_INDEX_PROBE_H_
#define TIMBRE_SERVER_FAISS_FAISS_INDEX_PROBE_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"

namespace timbre {

struct IndexProbeOptions {
  // Longest the child may take to read the file; it is killed then. Default 10 minutes (a
  // 600 MB RVC index reads in a few seconds).
  absl::Duration timeout = absl::Minutes(10);
  // Memory the child may allocate beyond the server's own address space, in bytes, on top of
  // `memory_per_file_byte` times the file's size. Default 1 GiB.
  int64_t memory_base_bytes = int64_t{1} << 30;
  // Default 4: an index in memory takes about its file's size; faiss's reader copies buffers.
  int64_t memory_per_file_byte = 4;
  // Read as the server will: memory-mapping the inverted lists of an IVF index (faiss's
  // IO_FLAG_MMAP), so the child checks exactly the read the server then makes. Default false.
  bool mmap = false;
};

// Reads the regular file `path` with faiss in a child process. OK if faiss read it.
// Errors: INVALID_ARGUMENT naming the file if faiss threw (with its reason: "not a readable faiss
// index"), the child died of a signal (a crash in faiss's reader) or ran out of its memory
// limit, or did not finish within the timeout; UNAVAILABLE if no child could be started.
absl::Status ProbeFaissIndexFile(const std::string& path, const IndexProbeOptions& options = {});

}  // namespace timbre

#endif  // TIMBRE_SERVER_FAISS_FAISS_INDEX_PROBE_H_
