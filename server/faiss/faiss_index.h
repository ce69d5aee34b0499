// FaissIndex: the one adapter between timbre and faiss.
//
// Only the adapter's files (faiss_index.cc, faiss_index_probe.cc, faiss_index_search.cc,
// faiss_kmeans.cc, faiss_pruned_coarse_step.cc, faiss_sq8_scan.cc, faiss_call.cc, faiss_best_k.h
// and faiss_list_id.h) include faiss headers and catch faiss::FaissException; everything above
// sees this class, FaissKmeans, absl::Status and the types of search_types.h.
//
// A FaissIndex is immutable once created: Search() and StoredVector() are const, never touch
// shared faiss state, and take per-call knobs as arguments, so one index serves any number of
// concurrent callers.
//
// Search on IVF indexes with a flat coarse quantizer (every RVC index) runs its own exact coarse
// step, followed by faiss's IndexIVF::search_preassigned on the chosen lists: by default the
// pruned one of faiss_pruned_coarse_step.h (lower bounds from 8-bit codes of the centroids
// computed at load, exact distances only for the few centroids the bounds cannot exclude; the same
// lists as scoring every centroid), otherwise one sgemm against every centroid with their norms
// computed once at load, split across threads by centroid range. Both are used for any batch
// size (faiss switches to BLAS only from 20 queries up). IVF FastScan indexes (which
// have no search_preassigned) and IVF indexes with another coarse quantizer (e.g. HNSW) go
// through faiss's own search; other indexes through faiss's Index::search.
//
// IVF indexes behind a PCA ("PCA128,IVF1436,Flat,RFlat") take the same paths in the reduced
// space: the queries are projected once per call, then the coarse step and the scan run on the
// projections.
//
// The lists of IVF indexes with 8-bit scalar codes ("PCA128,IVF1436,SQ8,RFlat") are scanned by
// timbre's Sq8Scan (faiss_sq8_scan.h: weights per query and list, one multiply-add per code byte)
// instead of faiss's, which decodes every code for every query. The lists of IVF-Flat indexes
// (RVC's "IVF3333,Flat") are scanned by timbre's PrunedListScan (faiss_pruned_list_scan.h: 8-bit
// codes of every vector bound its distance, exact distances only where the bounds cannot decide;
// faiss's result) unless IndexLoadOptions::prune_list_scan is false. A search with
// SearchParams::unpruned uses none of these three (every centroid scored, faiss's scan).
//
// Refined indexes ("...,RFlat", "...,Refine(...)") are re-ranked here rather than by faiss's
// IndexRefine::search, which takes no per-call knobs: the base index is searched (by the paths
// above) for k * k_factor candidates, which are re-scored by the refine index and the best k kept.
//
// A search given more than one thread on the paths with timbre's own coarse step splits its
// queries: each thread takes a share through the coarse step, the scan and the re-ranking.
//
// Thread-safe.
#ifndef TIMBRE_SERVER_FAISS_FAISS_INDEX_H_
#define TIMBRE_SERVER_FAISS_FAISS_INDEX_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "server/faiss/build_control.h"
#include "server/faiss/search_types.h"

namespace faiss {
struct Index;
struct IndexIVF;
struct IndexPreTransform;
struct IndexRefine;
}  // namespace faiss

namespace timbre {

class PrunedCoarseStep;
class PrunedListScan;
class Sq8Scan;

// How an index is trained from vectors.
struct TrainOptions {
  std::string description;   // faiss index_factory string, e.g. "IVF512,Flat"
  Metric metric = Metric::kL2;
  int nprobe = 1;            // stored in the index (IVF only), >= 1
  int64_t add_batch = 8192;  // vectors added per faiss add() call, as RVC does; >= 1
  int k_factor = 0;          // stored in a refined index; 0 leaves faiss's default (1); >= 0
};

// How an index file is read.
struct IndexLoadOptions {
  // Optional sidecar file of the exact stored vectors: raw little-endian float32, size() * dim()
  // values in id order, no header (vectors_file.h). When set, StoredVector() returns its rows
  // instead of the index's own (possibly compressed or normalised) vectors.
  // Empty (the default) = no sidecar.
  std::string vectors_path;
  // Memory-map the inverted lists of an IVF index (faiss's IO_FLAG_MMAP) instead of reading them
  // into the heap: loading reads only the coarse centroids and the list sizes, and the lists are
  // paged in from the file as searches touch them. Other index types are read as usual.
  // The file must not be modified or truncated while the index lives (replace it by rename).
  // Default false.
  bool mmap = false;
  // Use the pruned exact coarse step (IVF indexes with a flat coarse quantizer;
  // faiss_pruned_coarse_step.h: 8-bit codes of the centroids bound every distance, exact
  // distances only where the bounds cannot decide). False scores every centroid instead (one
  // sgemm). Either way the lists searched are the nearest ones. Default true.
  bool prune_coarse_step = true;
  // Scan the lists of an IVF-Flat index with flat coarse quantizer with timbre's pruned exact
  // scan (faiss_pruned_list_scan.h: 8-bit codes of the vectors, a quarter of their bytes more
  // memory, bound every distance; exact distances only where the bounds cannot decide). False
  // lets faiss read every vector of the lists. Either way the result is faiss's. Not with `mmap`
  // (mapped lists are meant to stay out of the heap). Default true.
  bool prune_list_scan = true;
  // Read the file once in a child process before reading it here (faiss_index_probe.h), so that
  // a corrupt file on which faiss's reader would crash, hang or exhaust memory fails this load
  // and not the process. Costs one more read of the file and a process start. Default true.
  bool probe_in_child = true;
};

class FaissIndex {
 public:
  // Reads a faiss index file and, if `options.vectors_path` is set, its sidecar of exact vectors.
  // Errors: NOT_FOUND if either file is missing; INVALID_ARGUMENT (with faiss's reason) for a path
  // that is not a regular file, a corrupt, truncated or non-faiss file (one that crashes faiss's
  // reader included, with `probe_in_child`), an index without vectors (an RVC trained_ file) or one
  // whose ids are not 0..n-1; INVALID_ARGUMENT naming the sidecar, the expected and the actual
  // bytes when its size is not size() * dim() * 4, or naming the row of a NaN or infinite value;
  // INVALID_ARGUMENT naming a coarse centroid that is not finite (with `prune_coarse_step`);
  // INTERNAL if the sidecar cannot be read.
  static absl::StatusOr<std::unique_ptr<FaissIndex>> Load(const std::string& path,
                                                          const IndexLoadOptions& options = {});

  // Trains an index of `options.description` on `vectors` ([count, dim]) and adds them all, in
  // batches of `options.add_batch`; ids are the rows' positions.
  // `control` (may be null) hears Progress (0, "training ...") before faiss's train, then after
  // each add batch the fraction of vectors added; cancellation is checked before training and
  // between add batches, and faiss's own long loops (k-means inside train) stop too.
  // Errors: INVALID_ARGUMENT for bad options or a bad factory string (with faiss's message) or
  // too few vectors to train; CANCELLED (BuildCancelledError()) when `control` was cancelled.
  static absl::StatusOr<std::unique_ptr<FaissIndex>> Train(const TrainOptions& options,
                                                           const float* vectors, int64_t count,
                                                           int dim,
                                                           BuildControl* control = nullptr);

  // Checks that `description` is an index_factory string faiss accepts for `dim` and `metric`,
  // without training anything. Errors: INVALID_ARGUMENT with faiss's reason.
  static absl::Status CheckDescription(const std::string& description, int dim, Metric metric);

  ~FaissIndex();
  FaissIndex(const FaissIndex&) = delete;
  FaissIndex& operator=(const FaissIndex&) = delete;

  // Writes the index to `path` (faiss's format). Errors: INTERNAL with the OS reason.
  absl::Status Write(const std::string& path) const;

  int dim() const { return dim_; }
  int64_t size() const { return size_; }
  Metric metric() const { return metric_; }
  // index_factory-style description of the structure, e.g. "IVF3333,Flat" or
  // "IVF1024,PQ384x4fs,RFlat".
  const std::string& description() const { return description_; }
  // nprobe stored in the index (in the base of a refined one); 0 for non-IVF indexes.
  int nprobe() const { return nprobe_; }
  // Inverted lists (of the base of a refined index); 0 for non-IVF indexes.
  int nlist() const { return nlist_; }
  // k_factor stored in a refined index (rounded to an integer, at least 1); 0 otherwise.
  int k_factor() const;

  // Changes the stored nprobe (IVF indexes) and k_factor (refined indexes); 0 leaves a value as
  // it is. For a build measuring one trained index at several settings.
  // REQUIRES: the index is not shared yet (no concurrent Search). Errors: INVALID_ARGUMENT for
  // a negative value or an nprobe above nlist().
  absl::Status SetSearchDefaults(int nprobe, int k_factor);
  // True if StoredVector() returns the vectors exactly as they were added (Flat, IVF-Flat,
  // HNSW-Flat, refined with a flat refine index) or as a loaded sidecar holds them; false when it
  // returns reconstructions of compressed codes.
  bool stores_exact_vectors() const { return stores_exact_vectors_; }
  // Approximate heap bytes: stored codes and ids, centroids, and timbre's lookup tables.
  // Memory-mapped inverted lists are not included (see mapped_bytes()).
  int64_t memory_bytes() const { return memory_bytes_; }
  // Bytes of the index file mapped for its inverted lists (IndexLoadOptions::mmap); 0 otherwise. These
  // are file-backed pages: resident only as far as searches touched them, and reclaimable by the
  // kernel.
  int64_t mapped_bytes() const { return mapped_bytes_; }
  // How unevenly an IVF index spreads its vectors over its lists: faiss's imbalance factor,
  // nlist * sum(size^2) / total^2, 1 for lists of equal size and up to nlist when one list holds
  // everything; a query scanning nprobe lists reads about imbalance * nprobe * size / nlist
  // vectors. 0 for indexes without inverted lists.
  double list_imbalance() const { return list_imbalance_; }

  // Searches `count` queries ([count, dim]) for their `params.k` nearest stored vectors, writing
  // [count, k] scores (squared L2 or inner product) and ids, nearest first, kNoNeighbour (with
  // the worst possible score) where missing. Scores of a refined index are the refine index's
  // (exact for RFlat). `threads` (>= 1) is how many threads the search may use: with timbre's
  // own coarse step each takes a share of the queries (the same results as on one thread on the
  // pruned paths; up to float rounding on the unpruned sgemm).
  // REQUIRES: params.k >= 1; 0 <= params.nprobe <= nlist().
  // Errors: INVALID_ARGUMENT for params.k_factor < 0, or for a params.nprobe other than 0 and
  // nprobe() on an IVF FastScan index (faiss cannot change its nprobe per call); INTERNAL if
  // faiss fails.
  absl::Status Search(const float* queries, int64_t count, const SearchParams& params, int threads,
                      float* scores, int64_t* ids) const;

  // The lists a search with `nprobe` (0 = the stored nprobe) scans for each of `count` queries
  // ([count, dim]): [count, nprobe] list ids into `lists`, nearest first (ties: the smaller id
  // first for L2, as faiss orders them). `threads` (>= 1) as for Search.
  // Errors: FAILED_PRECONDITION for an index without a flat coarse quantizer; INVALID_ARGUMENT
  // for an nprobe outside 0..nlist(); INTERNAL if faiss fails.
  absl::Status CoarseLists(const float* queries, int64_t count, int nprobe, int threads,
                           int64_t* lists) const;
  // True if searches use the pruned exact coarse step (IndexLoadOptions::prune_coarse_step).
  bool pruned_coarse_step() const { return pruned_coarse_step_ != nullptr; }
  // True if the lists are scanned by timbre's Sq8Scan (IVF with 8-bit scalar codes and a flat
  // coarse quantizer) rather than by faiss.
  bool sq8_scan() const { return sq8_scan_ != nullptr; }
  // True if the lists are scanned by timbre's PrunedListScan (IndexLoadOptions::prune_list_scan).
  bool pruned_list_scan() const { return pruned_list_scan_ != nullptr; }

  // The stored vector with this id (dim() values); see stores_exact_vectors().
  // REQUIRES: 0 <= id < size().
  const StoredFloat* StoredVector(int64_t id) const { return stored_[id]; }

 private:
  explicit FaissIndex(std::unique_ptr<faiss::Index> index);
  absl::Status Prepare(const IndexLoadOptions& options);
  absl::Status CheckShapes() const;
  void FindStructure();
  absl::Status MapStoredVectors(bool have_sidecar);
  absl::Status CheckIvfIds() const;
  const float* Project(const float* queries, int64_t count, std::unique_ptr<float[]>* owned) const;
  // Search's work for `count` queries on `threads` threads: SearchBase for `candidates` per
  // query, then for a refined index the re-ranking to params.k.
  void SearchRows(const float* queries, int64_t count, const SearchParams& params,
                  int64_t candidates, int nprobe, int threads, float* scores, int64_t* ids) const;
  void SearchBase(const float* queries, int64_t count, int64_t k, int nprobe, int threads,
                  bool unpruned, float* scores, int64_t* ids) const;
  void Rerank(const float* queries, int64_t count, int k, int64_t candidates,
              const int64_t* candidate_ids, float* scores, int64_t* ids) const;
  void AssignLists(const float* queries, int64_t count, int nprobe, int threads, bool unpruned,
                   float* coarse_scores, int64_t* coarse_lists) const;
  void ScoreEveryList(const float* queries, int64_t count, int nprobe, int threads,
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
  double list_imbalance_ = 0.0;
  // The refined index, if index_ is one; its base is searched, its refine index re-scores.
  const faiss::IndexRefine* refine_ = nullptr;
  // The transform in front of the IVF index (a PCA), if any: queries are projected before the
  // coarse step and the scan.
  const faiss::IndexPreTransform* pretransform_ = nullptr;
  // The IVF index searched (index_, the base of refine_ or the index behind pretransform_), if any.
  const faiss::IndexIVF* ivf_ = nullptr;
  // Dimension of the IVF index's centroids and lists: dim_, or the PCA's output.
  int ivf_dim_ = 0;
  // True for IVF FastScan: faiss searches it only with its stored nprobe.
  bool fixed_nprobe_ = false;
  // Set for IVF indexes with a flat coarse quantizer and search_preassigned: the centroids and
  // their squared norms.
  const float* centroids_ = nullptr;
  std::vector<float> centroid_norms_;
  // The pruned coarse step over centroids_, unless turned off.
  std::unique_ptr<PrunedCoarseStep> pruned_coarse_step_;
  // timbre's scan of 8-bit scalar codes, for IVF indexes with a flat coarse quantizer that have
  // them; otherwise faiss's search_preassigned scans the lists.
  std::unique_ptr<Sq8Scan> sq8_scan_;
  // timbre's pruned scan of IVF-Flat lists, unless turned off; see sq8_scan_.
  std::unique_ptr<PrunedListScan> pruned_list_scan_;
  // id -> stored vector, pointing into the index's own storage or into owned_vectors_.
  std::vector<const float*> stored_;  // read through StoredFloat: may be unaligned
  // Vectors read from the sidecar file or reconstructed from compressed codes.
  std::vector<float> owned_vectors_;
  bool stores_exact_vectors_ = false;
};

}  // namespace timbre

#endif  // TIMBRE_SERVER_FAISS_FAISS_INDEX_H_
