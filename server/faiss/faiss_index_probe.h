// FaissIndexProbe: reads a faiss index file once in a process of its own before the server
// reads it, so that a corrupt or hostile file cannot crash or exhaust the server.
//
// faiss's reader is not hardened: on a corrupt file it can read out of bounds, abort, allocate
// whatever a size field claims, or leak what it had read before it throws. The probe starts the
// program timbre-index-probe (index_probe_main.cc) with posix_spawn; it reads the file with faiss
// as the server will, with its address space bounded, and exits 0 if faiss read it, 1 if faiss
// threw. The caller waits at most a time limit and turns every other outcome (a signal, the
// limit, a program that cannot start) into an INVALID_ARGUMENT or UNAVAILABLE status naming the
// file. Only a file the probe read is then read in the process.
//
// A new program rather than a fork of the server: fork() runs every pthread_atfork handler of
// the multi-threaded server, and OpenBLAS's handler joins its worker threads, which deadlocks
// when a worker is about to sleep after a multi-threaded build step (seen: a load after a build
// hung for ever). posix_spawn runs no handlers and copies no state.
//
// Part of the faiss adapter. Thread-safe: free function.
#ifndef TIMBRE_SERVER_FAISS_FAISS_INDEX_PROBE_H_
#define TIMBRE_SERVER_FAISS_FAISS_INDEX_PROBE_H_

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"

namespace timbre {

// How timbre-index-probe exits.
enum class IndexProbeExit : int { kReadOk = 0, kFaissThrew = 1, kUsage = 2 };
// The longest reason the probe passes back.
inline constexpr size_t kMaxIndexProbeReasonBytes = 512;

struct IndexProbeOptions {
  // Longest the child may take to read the file; it is killed then. Default 10 minutes (a
  // 600 MB RVC index reads in a few seconds).
  absl::Duration timeout = absl::Minutes(10);
  // Memory the probe may allocate beyond what it maps at start, in bytes, on top of
  // `memory_per_file_byte` times the file's size. Default 1 GiB.
  int64_t memory_base_bytes = int64_t{1} << 30;
  // Default 4: an index in memory takes about its file's size; faiss's reader copies buffers.
  int64_t memory_per_file_byte = 4;
  // Read as the server will: memory-mapping the inverted lists of an IVF index (faiss's
  // IO_FLAG_MMAP), so the probe checks exactly the read the server then makes. Default false.
  bool mmap = false;
  // The timbre-index-probe program. Default empty: the one next to the running executable if
  // there is one, else the one of the build tree this library was built in.
  std::string program;
};

// Reads the regular file `path` with faiss in a probe process. OK if faiss read it.
// Errors: NOT_FOUND for a missing file; INVALID_ARGUMENT naming the file if it is not regular,
// if faiss threw (with its reason: "not a readable faiss index"), the probe died of a signal (a
// crash in faiss's reader) or ran out of its memory limit, or did not finish within the
// timeout; UNAVAILABLE, naming the program, if the probe program is missing or cannot start.
absl::Status ProbeFaissIndexFile(const std::string& path, const IndexProbeOptions& options = {});

}  // namespace timbre

#endif  // TIMBRE_SERVER_FAISS_FAISS_INDEX_PROBE_H_
