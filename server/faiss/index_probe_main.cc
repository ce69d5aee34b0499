// timbre-index-probe: reads one faiss index file with faiss and says whether faiss could.
//
//   timbre-index-probe PATH MMAP EXTRA_BYTES
//
// Run by ProbeFaissIndexFile (faiss_index_probe.h) in a process of its own, never by hand. It
// caps its own address space at what it uses at start plus EXTRA_BYTES (none if 0), reads PATH
// (memory-mapping an IVF index's lists when MMAP is 1), and exits with one of the codes of
// faiss_index_probe.h; when faiss throws, its reason goes to standard output.
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <memory>

#include <faiss/Index.h>
#include <faiss/index_io.h>
#include "server/faiss/faiss_index_probe.h"

namespace {

// The process's current address-space size in bytes (first field of /proc/self/statm, in
// pages), or -1 if unknown.
int64_t AddressSpaceBytes() {
  FILE* statm = std::fopen("/proc/self/statm", "r");
  if (statm == nullptr) return -1;
  long long pages = -1;
  if (std::fscanf(statm, "%lld", &pages) != 1) pages = -1;
  std::fclose(statm);
  return pages < 0 ? -1 : pages * sysconf(_SC_PAGESIZE);
}

// The non-negative integer `text`, or -1.
int64_t ParseCount(const char* text) {
  errno = 0;
  char* end = nullptr;
  const long long value = std::strtoll(text, &end, 10);
  if (errno != 0 || end == text || *end != '\0' || value < 0) return -1;
  return value;
}

}  // namespace

int main(int argc, char** argv) {
  using timbre::IndexProbeExit;
  if (argc != 4 || (std::strcmp(argv[2], "0") != 0 && std::strcmp(argv[2], "1") != 0)) {
    std::fprintf(stderr, "usage: timbre-index-probe PATH MMAP(0|1) EXTRA_BYTES\n");
    return static_cast<int>(IndexProbeExit::kUsage);
  }
  const bool mmap = argv[2][0] == '1';
  const int64_t extra = ParseCount(argv[3]);
  if (extra < 0) {
    std::fprintf(stderr, "timbre-index-probe: EXTRA_BYTES must be a count of bytes\n");
    return static_cast<int>(IndexProbeExit::kUsage);
  }
  if (const int64_t current = AddressSpaceBytes(); extra > 0 && current > 0) {
    const rlim_t cap = static_cast<rlim_t>(current + extra);
    const rlimit limit{cap, cap};
    setrlimit(RLIMIT_AS, &limit);
  }
  int code = static_cast<int>(IndexProbeExit::kReadOk);
  try {
    std::unique_ptr<faiss::Index> index(faiss::read_index(argv[1], mmap ? faiss::IO_FLAG_MMAP : 0));
  } catch (const std::exception& e) {
    const size_t length = std::min(std::strlen(e.what()), timbre::kMaxIndexProbeReasonBytes);
    if (write(STDOUT_FILENO, e.what(), length) < 0) {
      // The caller reports the exit code alone.
    }
    code = static_cast<int>(IndexProbeExit::kFaissThrew);
  }
  _exit(code);  // what faiss leaked on a corrupt file dies with the process, unchecked
}
