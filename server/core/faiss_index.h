// FaissIndex: the one adapter between timbre and faiss.
//
// Only faiss_index.cc includes faiss headers and catches faiss::FaissException; everything above
// sees this class, absl::Status and the types of search_types.h.
//
// A FaissIndex is immutable once created: Search() and StoredVector() are const, never touch
// shared faiss state, and take per-call knobs as arguments, so one index serves any number of
// concurrent callers.
//
// Search on IVF indexes with a flat coarse quantizer (every RVC index) runs its own coarse step:
// one sgemm against the centroids with their norms computed once at load, optionally split across
// threads by centroid range, followed by faiss's IndexIVF::search_preassigned on the chosen lists.
// This is what faiss does when it uses BLAS, minus per-call norm computation, and it is used for
// any batch size (faiss switches to BLAS only from 20 queries up). Other indexes are searched
// through faiss's own Index::search.
//
// Thread-safe.
#ifndef TIMBRE_SERVER_CORE_FAISS_INDEX_H_
#define TIMBRE_SERVER_CORE_FAISS_INDEX_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "server/core/search_types.h"

namespace faiss {
struct Index;
}  // namespace faiss

namespace timbre {

// How an index is trained from vectors.
struct TrainOptions {
  std::string description;  // faiss index_factory string, e.g. "IVF512,Flat"
  Metric metric = Metric::kL2;
  int nprobe = 1;           // stored in the index (IVF only)
  int64_t add_batch = 8192; // vectors added per faiss add() call, as RVC does
};

// How an index file is read.
struct LoadOptions {
  // Not used yet: reserved for a file of exact stored vectors next to the index.
  std::string vectors_path;
  // Memory-map the inverted lists of an IVF index (faiss's IO_FLAG_MMAP) instead of reading them
  // into the heap: loading reads only the coarse centroids and the list sizes, and the lists are
  // paged in from the file as searches touch them. Other index types are read as usual.
  // The file must not be modified or truncated while the index lives (replace it by rename).
  // Default false.
  bool mmap = false;
};

class FaissIndex {
 public:
  // Reads a faiss index file. Errors: NOT_FOUND if the file is missing; INVALID_ARGUMENT (with
  // faiss's reason) for a corrupt, truncated or non-faiss file, an index without vectors (an RVC
  // trained_ file) or one whose ids are not 0..n-1.
  static absl::StatusOr<std::unique_ptr<FaissIndex>> Load(const std::string& path,
                                                          const LoadOptions& options = {});

  // Trains an index of `options.description` on `vectors` ([count, dim]) and adds them all.
  // Errors: INVALID_ARGUMENT for a bad factory string or too few vectors to train.
  static absl::StatusOr<std::unique_ptr<FaissIndex>> Train(const TrainOptions& options,
                                                           const float* vectors, int64_t count,
                                                           int dim);

  ~FaissIndex();
  FaissIndex(const FaissIndex&) = delete;
  FaissIndex& operator=(const FaissIndex&) = delete;

  // Writes the index to `path` (faiss's format). Errors: INTERNAL with the OS reason.
  absl::Status Write(const std::string& path) const;

  int dim() const { return dim_; }
  int64_t size() const { return size_; }
  Metric metric() const { return metric_; }
  // index_factory-style description of the structure, e.g. "IVF3333,Flat".
  const std::string& description() const { return description_; }
  // nprobe stored in the index; 0 for non-IVF indexes.
  int nprobe() const { return nprobe_; }
  // Inverted lists; 0 for non-IVF indexes.
  int nlist() const { return nlist_; }
  // Approximate heap bytes: stored codes and ids, centroids, and timbre's lookup tables.
  // Memory-mapped inverted lists are not included (see mapped_bytes()).
  int64_t memory_bytes() const { return memory_bytes_; }
  // Bytes of the index file mapped for its inverted lists (LoadOptions::mmap); 0 otherwise. These
  // are file-backed pages: resident only as far as searches touched them, and reclaimable by the
  // kernel.
  int64_t mapped_bytes() const { return mapped_bytes_; }

  // Searches `count` queries ([count, dim]) for their `params.k` nearest stored vectors, writing
  // [count, k] scores (squared L2 or inner product) and ids (kNoNeighbour where missing).
  // `threads` (>= 1) is how many threads the coarse step may use.
  // REQUIRES: params.k >= 1; 0 <= params.nprobe <= nlist().
  // Errors: INTERNAL if faiss fails.
  absl::Status Search(const float* queries, int64_t count, const SearchParams& params, int threads,
                      float* scores, int64_t* ids) const;

  // The stored vector with this id (dim() values), exact for Flat, IVF-Flat and refined indexes.
  // REQUIRES: 0 <= id < size().
  const float* StoredVector(int64_t id) const { return stored_[id]; }

 private:
  explicit FaissIndex(std::unique_ptr<faiss::Index> index);
  absl::Status Prepare();
  void AssignLists(const float* queries, int64_t count, int nprobe, int threads,
                   float* coarse_scores, int64_t* coarse_lists) const;

  std::unique_ptr<faiss::Index> index_;
  int dim_ = 0;
  int64_t size_ = 0;
  Metric metric_ = Metric::kL2;
  std::string description_;
  int nprobe_ = 0;
  int nlist_ = 0;
  int64_t memory_bytes_ = 0;
  int64_t mapped_bytes_ = 0;
  // Set for IVF indexes with a flat coarse quantizer: the centroids and their squared norms.
  const float* centroids_ = nullptr;
  std::vector<float> centroid_norms_;
  // id -> stored vector, pointing into the index's own storage or into materialized_.
  std::vector<const float*> stored_;
  std::vector<float> materialized_;
};

// faiss's version and compile options and the BLAS kernels in use, e.g.
// "faiss 1.7.3 (OPTIMIZE AVX2), OpenBLAS kernels SkylakeX".
std::string FaissBuildInfo();

// Process-wide BLAS set-up: makes BLAS calls single-threaded so that the callers' own threads are
// the only parallelism (gRPC threads x search threads <= cores). Call once at start-up.
void UseSingleThreadedBlas();

}  // namespace timbre

#endif  // TIMBRE_SERVER_CORE_FAISS_INDEX_H_
