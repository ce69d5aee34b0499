// FaissIndexProbe: loads a faiss index file once in a process of its own before the server
// loads it, so that a corrupt or hostile file cannot crash or exhaust the server.
//
// faiss is not hardened against corrupt files: its reader can read out of bounds, abort,
// allocate whatever a size field claims, or leak what it had read before it throws, and an index
// it read can still crash when used (a product quantizer whose tables do not match its codes
// crashes when it decodes them). The probe starts the program timbre-index-probe
// (index_probe_main.cc) with posix_spawn; it runs the whole FaissIndex::Load the server will run
// (the read, the checks, the stored vectors), with its address space bounded, and exits 0 if it
// loaded or with the load's error. The caller waits at most a time limit and turns every other
// outcome (a signal, the limit, a program that cannot start) into an INVALID_ARGUMENT or
// UNAVAILABLE status naming the file. Only a file the probe loaded is then loaded in the process.
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
// kLoadFailed: the load's error is on standard output, its code on the first line. (Not 1:
// that is how a sanitizer build's probe exits after a report.)
enum class IndexProbeExit : int { kLoaded = 0, kUsage = 2, kLoadFailed = 3 };
// The longest error the probe passes back.
inline constexpr size_t kMaxIndexProbeReasonBytes = 1024;

struct IndexProbeOptions {
  // Longest the child may take to read the file; it is killed then. Default 10 minutes (a
  // 600 MB RVC index reads in a few seconds).
  absl::Duration timeout = absl::Minutes(10);
  // Memory the probe may allocate beyond what it maps at start, in bytes, on top of
  // `memory_per_file_byte` times the file's size. Default 1 GiB.
  int64_t memory_base_bytes = int64_t{1} << 30;
  // Default 4: an index in memory takes about its file's size; faiss's reader copies buffers.
  int64_t memory_per_file_byte = 4;
  // Load as the server will: memory-mapping the inverted lists of an IVF index (faiss's
  // IO_FLAG_MMAP) and with the same sidecar of stored vectors (IndexLoadOptions). Default false
  // and none.
  bool mmap = false;
  std::string vectors_path;
  // The timbre-index-probe program. Default empty: the one next to the running executable if
  // there is one, else the one of the build tree this library was built in.
  std::string program;
};

// Loads the regular file `path` with FaissIndex::Load in a probe process. OK if it loaded.
// Errors: NOT_FOUND for a missing file; the load's own error (code and message) if it failed
// cleanly ("not a readable faiss index" when faiss threw); INVALID_ARGUMENT naming the file if
// it is not regular, the probe died of a signal (a crash in faiss) or ran out of its memory
// limit, or did not finish within the timeout; UNAVAILABLE, naming the program, if the probe
// program is missing or cannot start.
absl::Status ProbeFaissIndexFile(const std::string& path, const IndexProbeOptions& options = {});

}  // namespace timbre

#endif  // TIMBRE_SERVER_FAISS_FAISS_INDEX_PROBE_H_
