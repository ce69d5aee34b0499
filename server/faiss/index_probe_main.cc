// timbre-index-probe: loads one faiss index file as the server would and says whether it could.
//
//   timbre-index-probe PATH MMAP EXTRA_BYTES [VECTORS_PATH]
//
// Run by ProbeFaissIndexFile (faiss_index_probe.h) in a process of its own, never by hand. It
// caps its own address space at what it uses at start plus EXTRA_BYTES (none if 0), runs
// FaissIndex::Load on PATH (memory-mapping an IVF index's lists when MMAP is 1; with the sidecar
// of stored vectors VECTORS_PATH if given), and exits with one of the codes of
// faiss_index_probe.h; when the load fails, its status code and message go to standard output.
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "server/faiss/faiss_index.h"
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

int Usage(const char* problem) {
  std::fprintf(stderr, "timbre-index-probe: %s\nusage: timbre-index-probe PATH MMAP(0|1) "
                       "EXTRA_BYTES [VECTORS_PATH]\n", problem);
  return static_cast<int>(timbre::IndexProbeExit::kUsage);
}

}  // namespace

int main(int argc, char** argv) {
  using timbre::IndexProbeExit;
  if (argc != 4 && argc != 5) return Usage("wrong number of arguments");
  if (std::strcmp(argv[2], "0") != 0 && std::strcmp(argv[2], "1") != 0) {
    return Usage("MMAP must be 0 or 1");
  }
  int64_t extra = -1;
  if (!absl::SimpleAtoi(argv[3], &extra) || extra < 0) {
    return Usage("EXTRA_BYTES must be a count of bytes");
  }
  if (const int64_t current = AddressSpaceBytes(); extra > 0 && current > 0) {
    const rlim_t cap = static_cast<rlim_t>(current + extra);
    const rlimit limit{cap, cap};
    setrlimit(RLIMIT_AS, &limit);
  }
  timbre::IndexLoadOptions options;
  options.mmap = argv[2][0] == '1';
  options.probe_in_child = false;  // this is the probe
  // The pruned coarse step and list scan are timbre's own, built and checked by the caller's load;
  // the probe is for faiss's reader.
  options.prune_coarse_step = false;
  options.prune_list_scan = false;
  if (argc == 5) options.vectors_path = argv[4];
  const auto index = timbre::FaissIndex::Load(argv[1], options);
  if (index.ok()) _exit(static_cast<int>(IndexProbeExit::kLoaded));
  std::string report = absl::StrCat(static_cast<int>(index.status().code()), "\n",
                                    index.status().message());
  report.resize(std::min(report.size(), timbre::kMaxIndexProbeReasonBytes));
  if (write(STDOUT_FILENO, report.data(), report.size()) < 0) {
    // The caller reports the exit code alone.
  }
  _exit(static_cast<int>(IndexProbeExit::kLoadFailed));  // what faiss leaked dies unchecked
}
