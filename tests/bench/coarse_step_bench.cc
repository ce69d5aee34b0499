// Times FaissIndex's coarse step and whole search on one index, one thread, in one run, with
// every centroid scored by one sgemm and faiss's scan of the lists (`full`), with the pruned exact
// coarse step (`pruned`), and with that and the pruned exact scan of IVF-Flat lists (`scan`).
//   coarse_step_bench INDEX QUERIES.npy [nprobe=N] [mmap] [full|pruned|scan ...]
// (nprobe defaults to the stored one; `mmap` maps the inverted lists; the steps default to
// `full pruned scan`.) Prints, per step, the median microseconds of CPU
// time of the calling thread per call of 16 queries and per query in calls of 256, for the coarse
// step alone and for the search (k 8). CPU time rather than wall time: on a shared machine it
// measures the work and not the waits for a core.
#include <time.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "server/faiss/faiss_call.h"
#include "server/faiss/faiss_index.h"
#include "server/io/npy_file.h"

namespace {

// CPU time of the calling thread, in microseconds.
double ThreadMicros() {
  timespec now;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now);
  return now.tv_sec * 1e6 + now.tv_nsec / 1e3;
}

// Median microseconds per call of `batch` queries over the first `calls` windows of `queries`.
template <typename Call>
double MedianMicros(const std::vector<float>& queries, int dim, int batch, int calls, Call&& call) {
  const int64_t rows = static_cast<int64_t>(queries.size()) / dim;
  std::vector<double> micros;
  for (int i = 0; i < calls + 5; ++i) {
    const int64_t start = (static_cast<int64_t>(i) * batch) % (rows - batch);
    const double begin = ThreadMicros();
    call(queries.data() + start * dim, batch);
    const double elapsed = ThreadMicros() - begin;
    if (i >= 5) micros.push_back(elapsed);
  }
  std::nth_element(micros.begin(), micros.begin() + micros.size() / 2, micros.end());
  return micros[micros.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s INDEX QUERIES.npy [nprobe=N] [mmap] [pruned|full ...]\n",
                 argv[0]);
    return 2;
  }
  timbre::UseSingleThreadedBlas();
  auto array = timbre::ReadNpy(argv[2]);
  if (!array.ok() || array->descr != "<f4" || array->shape.size() != 2) {
    std::fprintf(stderr, "%s: want a float32 [rows, dim] .npy file\n", argv[2]);
    return 2;
  }
  const int dim = static_cast<int>(array->shape[1]);
  std::vector<float> queries(array->data.size() / sizeof(float));
  std::memcpy(queries.data(), array->data.data(), array->data.size());
  int nprobe = 0;
  bool mmap = false;
  std::vector<std::string> steps;
  for (int i = 3; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg.rfind("nprobe=", 0) == 0) {
      nprobe = std::atoi(arg.c_str() + 7);
      continue;
    }
    if (arg == "mmap") {
      mmap = true;
      continue;
    }
    if (arg != "full" && arg != "pruned" && arg != "scan") {
      std::fprintf(stderr, "unknown argument %s\n", arg.c_str());
      return 2;
    }
    steps.push_back(arg);
  }
  if (steps.empty()) steps = {"full", "pruned", "scan"};
  std::printf(
      "step nprobe coarse16_us coarse256_us_per_query search16_us search256_us_per_query "
      "memory_mb\n");
  for (const std::string& step : steps) {
    timbre::IndexLoadOptions options;
    options.prune_coarse_step = step != "full";
    options.prune_list_scan = step == "scan";
    options.mmap = mmap;
    auto index = timbre::FaissIndex::Load(argv[1], options);
    if (!index.ok()) {
      std::fprintf(stderr, "%s\n", index.status().ToString().c_str());
      return 1;
    }
    const timbre::FaissIndex& ix = **index;
    if (ix.dim() != dim) {
      std::fprintf(stderr, "queries have dim %d, the index %d\n", dim, ix.dim());
      return 2;
    }
    const int probes = nprobe > 0 ? nprobe : std::max(1, ix.nprobe());
    std::vector<int64_t> lists(256 * probes);
    std::vector<float> scores(256 * 8);
    std::vector<int64_t> ids(256 * 8);
    auto coarse = [&](const float* q, int n) {
      (void)ix.CoarseLists(q, n, probes, 1, lists.data());
    };
    timbre::SearchParams params;
    params.k = 8;
    params.nprobe = probes;
    auto search = [&](const float* q, int n) {
      (void)ix.Search(q, n, params, 1, scores.data(), ids.data());
    };
    std::printf("%s %d %.1f %.2f %.1f %.2f %.1f\n", step.c_str(), probes,
                MedianMicros(queries, dim, 16, 400, coarse),
                MedianMicros(queries, dim, 256, 40, coarse) / 256,
                MedianMicros(queries, dim, 16, 400, search),
                MedianMicros(queries, dim, 256, 40, search) / 256, ix.memory_bytes() / 1e6);
  }
  return 0;
}
