#include "server/core/faiss_index.h"

#include <omp.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <exception>
#include <limits>
#include <thread>

#include <faiss/Index.h>
#include <faiss/IndexFlat.h>
#include <faiss/IndexHNSW.h>
#include <faiss/IndexIVF.h>
#include <faiss/IndexIVFFastScan.h>
#include <faiss/IndexIVFFlat.h>
#include <faiss/IndexIVFPQ.h>
#include <faiss/IndexIVFPQFastScan.h>
#include <faiss/IndexPQ.h>
#include <faiss/IndexPQFastScan.h>
#include <faiss/IVFlib.h>
#include <faiss/IndexRefine.h>
#include <faiss/impl/AuxIndexStructures.h>
#include <faiss/impl/DistanceComputer.h>
#include <faiss/impl/FaissException.h>
#include <faiss/index_factory.h>
#include <faiss/index_io.h>
#include <faiss/invlists/InvertedLists.h>
#include <faiss/invlists/OnDiskInvertedLists.h>
#include <faiss/utils/Heap.h>
#include <faiss/utils/utils.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "server/core/vectors_file.h"

extern "C" {
// Fortran BLAS, as faiss itself declares it (no header needed).
int sgemm_(const char* transa, const char* transb, const int* m, const int* n, const int* k,
           const float* alpha, const float* a, const int* lda, const float* b, const int* ldb,
           const float* beta, float* c, const int* ldc);
// OpenBLAS's thread control and kernel name; weak so that another BLAS still links.
void openblas_set_num_threads(int num_threads) __attribute__((weak));
int openblas_get_num_threads() __attribute__((weak));
char* openblas_get_corename() __attribute__((weak));
}

namespace timbre {
namespace {

using faiss_idx = faiss::Index::idx_t;
using KeepSmallest = faiss::CMax<float, faiss_idx>;  // heap of the k smallest scores (L2)
using KeepLargest = faiss::CMin<float, faiss_idx>;   // heap of the k largest (inner product)

// Queries per coarse-step block: bounds the [block, nlist] score buffer.
constexpr int64_t kCoarseBlock = 256;

// ---- Cancellation of faiss's own loops -------------------------------------------------------

// The BuildControl of the build step running faiss code on this thread, if any.
thread_local const BuildControl* current_build_control = nullptr;

// faiss consults one process-wide InterruptCallback from its long loops (k-means iterations,
// exhaustive-search blocks, IVF and HNSW search). timbre's asks the calling thread's BuildControl,
// so threads without one (every search) are never interrupted.
class BuildControlInterrupt final : public faiss::InterruptCallback {
 public:
  bool want_interrupt() override { return IsCancelled(current_build_control); }
};

// Installed once per process, during static initialisation, before any thread can be running
// faiss code that reads the callback. Cost for searches: faiss's IVF search takes the callback's
// mutex once per query to ask it.
[[maybe_unused]] const bool kBuildControlInterruptInstalled = [] {
  faiss::InterruptCallback::instance.reset(new BuildControlInterrupt);
  return true;
}();

// Sets the calling thread's BuildControl for the faiss calls in its scope.
class ScopedBuildControl {
 public:
  explicit ScopedBuildControl(const BuildControl* control)
      : previous_(current_build_control) {
    current_build_control = control;
  }
  ~ScopedBuildControl() { current_build_control = previous_; }
  ScopedBuildControl(const ScopedBuildControl&) = delete;
  ScopedBuildControl& operator=(const ScopedBuildControl&) = delete;

 private:
  const BuildControl* previous_;
};

// faiss's reason without its "Error in <function> at <file>:<line>: " prefixes (nested when
// faiss rethrows an exception from a worker thread).
absl::string_view FaissReason(absl::string_view message) {
  while (absl::StartsWith(message, "Error in ")) {
    const size_t at = message.find(" at ");
    if (at == absl::string_view::npos) break;
    const size_t colon = message.find(": ", at);
    if (colon == absl::string_view::npos) break;
    message.remove_prefix(colon + 2);
  }
  return message;
}

// ---- Structure ---------------------------------------------------------------------------------

// M of an HNSW graph: level 0 has 2 * M neighbours, the levels above M.
int HnswM(const faiss::IndexHNSW& index) { return index.hnsw.nb_neighbors(1); }

std::string DescribeIndex(const faiss::Index* index) {
  if (auto* refine = dynamic_cast<const faiss::IndexRefine*>(index)) {
    const bool flat = dynamic_cast<const faiss::IndexFlat*>(refine->refine_index) != nullptr;
    return absl::StrCat(DescribeIndex(refine->base_index), flat ? ",RFlat" : ",Refine");
  }
  if (auto* ivf = dynamic_cast<const faiss::IndexIVF*>(index)) {
    std::string coarse = absl::StrCat("IVF", ivf->nlist);
    if (auto* hnsw = dynamic_cast<const faiss::IndexHNSW*>(ivf->quantizer)) {
      absl::StrAppend(&coarse, "_HNSW", HnswM(*hnsw));
    }
    if (dynamic_cast<const faiss::IndexIVFFlat*>(index)) return coarse + ",Flat";
    if (auto* fs = dynamic_cast<const faiss::IndexIVFPQFastScan*>(index)) {
      return absl::StrCat(coarse, ",PQ", fs->pq.M, "x", fs->pq.nbits, "fs");
    }
    if (auto* pq = dynamic_cast<const faiss::IndexIVFPQ*>(index)) {
      return absl::StrCat(coarse, ",PQ", pq->pq.M, "x", pq->pq.nbits);
    }
    return coarse + ",(other)";
  }
  if (dynamic_cast<const faiss::IndexFlat*>(index)) return "Flat";
  if (auto* hnsw = dynamic_cast<const faiss::IndexHNSW*>(index)) {
    return absl::StrCat("HNSW", HnswM(*hnsw));
  }
  if (auto* fs = dynamic_cast<const faiss::IndexPQFastScan*>(index)) {
    return absl::StrCat("PQ", fs->pq.M, "x", fs->pq.nbits, "fs");
  }
  if (auto* pq = dynamic_cast<const faiss::IndexPQ*>(index)) {
    return absl::StrCat("PQ", pq->pq.M, "x", pq->pq.nbits);
  }
  return "(unknown)";
}

int64_t EstimateBytes(const faiss::Index* index) {
  if (auto* refine = dynamic_cast<const faiss::IndexRefine*>(index)) {
    return EstimateBytes(refine->base_index) + EstimateBytes(refine->refine_index);
  }
  if (auto* ivf = dynamic_cast<const faiss::IndexIVF*>(index)) {
    int64_t bytes = EstimateBytes(ivf->quantizer);
    // Memory-mapped lists live in the page cache, not the heap (see mapped_bytes()).
    if (dynamic_cast<const faiss::OnDiskInvertedLists*>(ivf->invlists) != nullptr) return bytes;
    for (size_t list = 0; list < ivf->nlist; ++list) {
      bytes += static_cast<int64_t>(ivf->invlists->list_size(list)) *
               static_cast<int64_t>(ivf->code_size + sizeof(faiss_idx));
    }
    return bytes;
  }
  if (auto* flat = dynamic_cast<const faiss::IndexFlat*>(index)) {
    return static_cast<int64_t>(flat->codes.size());
  }
  return index->ntotal * static_cast<int64_t>(index->d * sizeof(float));
}

// True if `index` keeps the added vectors as raw floats, so that reconstruction is exact.
bool HoldsRawVectors(const faiss::Index* index) {
  if (dynamic_cast<const faiss::IndexFlat*>(index) != nullptr ||
      dynamic_cast<const faiss::IndexIVFFlat*>(index) != nullptr) {
    return true;
  }
  auto* hnsw = dynamic_cast<const faiss::IndexHNSW*>(index);
  return hnsw != nullptr && dynamic_cast<const faiss::IndexFlat*>(hnsw->storage) != nullptr;
}

// ---- Selecting the best k ----------------------------------------------------------------------

// The `k` best of the scores offered, kept in faiss's heap over [k] scores and ids. C is
// KeepSmallest or KeepLargest. Finish() sorts them best first, missing ids (-1) last.
template <class C>
class BestK {
 public:
  BestK(int64_t k, float* scores, int64_t* ids) : k_(k), scores_(scores), ids_(ids) {
    faiss::heap_heapify<C>(k_, scores_, ids_);
  }
  void Offer(float score, int64_t id) {
    if (C::cmp(scores_[0], score)) faiss::heap_replace_top<C>(k_, scores_, ids_, score, id);
  }
  void Finish() { faiss::heap_reorder<C>(k_, scores_, ids_); }

 private:
  int64_t k_;
  float* scores_;
  int64_t* ids_;
};

// Calls offer_all(best) with a BestK that keeps the nearest by `metric`, then sorts the result.
template <typename OfferAll>
void SelectNearest(Metric metric, int64_t k, float* scores, int64_t* ids, OfferAll&& offer_all) {
  if (metric == Metric::kL2) {
    BestK<KeepSmallest> best(k, scores, ids);
    offer_all(best);
    best.Finish();
  } else {
    BestK<KeepLargest> best(k, scores, ids);
    offer_all(best);
    best.Finish();
  }
}

// Restores the calling thread's OpenMP thread count on scope exit.
class ScopedOmpThreads {
 public:
  explicit ScopedOmpThreads(int threads) : saved_(omp_get_max_threads()) {
    omp_set_num_threads(threads);
  }
  ~ScopedOmpThreads() { omp_set_num_threads(saved_); }

 private:
  int saved_;
};

// A mapped file's lists must lie inside it: faiss does not check, and touching a page past the
// end of a truncated file would kill the process (SIGBUS). Also turns off faiss's prefetch
// threads, which faiss::IndexIVF::search would otherwise start on every call.
absl::Status CheckMappedLists(faiss::OnDiskInvertedLists& lists) {
  const size_t entry_bytes = lists.code_size + sizeof(faiss_idx);
  for (size_t list = 0; list < lists.nlist; ++list) {
    const faiss::OnDiskOneList& extent = lists.lists[list];
    if (extent.offset + extent.size * entry_bytes > lists.totsize) {
      return absl::InvalidArgumentError(absl::StrCat(
          "the file is truncated: inverted list ", list, " ends at byte ",
          extent.offset + extent.size * entry_bytes, " of a ", lists.totsize, "-byte file"));
    }
  }
  lists.prefetch_nthread = 0;
  return absl::OkStatus();
}

}  // namespace

namespace {

// Build steps (those with a BuildControl) let BLAS use every core, as RVC's training in Python
// does: k-means spends its time in sgemm. Searches keep the single-threaded BLAS that
// UseSingleThreadedBlas() sets. OpenBLAS's thread count is process-wide, so searches running
// during a build may use more BLAS threads too; builds and searches compete for the cores anyway.
class ScopedBuildBlasThreads {
 public:
  explicit ScopedBuildBlasThreads(bool build)
      : saved_(build && openblas_get_num_threads != nullptr && openblas_set_num_threads != nullptr
                   ? openblas_get_num_threads()
                   : 0) {
    if (saved_ > 0) {
      openblas_set_num_threads(std::max(1, static_cast<int>(std::thread::hardware_concurrency())));
    }
  }
  ~ScopedBuildBlasThreads() {
    if (saved_ > 0) openblas_set_num_threads(saved_);
  }

 private:
  const int saved_;  // 0: left alone
};

}  // namespace

absl::Status CallFaiss(absl::string_view context, absl::StatusCode code,
                       const BuildControl* control, absl::FunctionRef<void()> call) {
  ScopedBuildControl scoped_control(control);
  ScopedBuildBlasThreads blas_threads(control != nullptr);
  try {
    call();
    return absl::OkStatus();
  } catch (const faiss::FaissException& e) {
    if (absl::StrContains(e.msg, "computation interrupted")) return BuildCancelledError();
    return absl::Status(code, absl::StrCat(context, ": ", FaissReason(e.msg)));
  } catch (const std::bad_alloc&) {
    return absl::Status(code, absl::StrCat(context, ": out of memory (corrupt sizes?)"));
  } catch (const std::exception& e) {
    return absl::Status(code, absl::StrCat(context, ": ", e.what()));
  }
}

FaissIndex::FaissIndex(std::unique_ptr<faiss::Index> index) : index_(std::move(index)) {}

FaissIndex::~FaissIndex() = default;

absl::StatusOr<std::unique_ptr<FaissIndex>> FaissIndex::Load(const std::string& path,
                                                             const IndexLoadOptions& options) {
  struct stat info;
  if (stat(path.c_str(), &info) != 0) {
    return absl::NotFoundError(absl::StrCat("index file '", path, "': ", std::strerror(errno)));
  }
  std::unique_ptr<faiss::Index> raw;
  absl::Status read = CallFaiss(absl::StrCat("index file '", path, "' is not a readable faiss index"),
                                absl::StatusCode::kInvalidArgument, nullptr, [&] {
                                  raw.reset(faiss::read_index(
                                      path.c_str(), options.mmap ? faiss::IO_FLAG_MMAP : 0));
                                });
  if (!read.ok()) return read;
  std::unique_ptr<FaissIndex> index(new FaissIndex(std::move(raw)));
  absl::Status prepared = index->Prepare(options.vectors_path);
  if (!prepared.ok()) {
    return absl::Status(prepared.code(), absl::StrCat("index file '", path, "': ", prepared.message()));
  }
  return index;
}

absl::StatusOr<std::unique_ptr<FaissIndex>> FaissIndex::Train(const TrainOptions& options,
                                                              const float* vectors,
                                                              int64_t count, int dim,
                                                              BuildControl* control) {
  const std::string context =
      absl::StrCat("training '", options.description, "' on ", count, " vectors of dim ", dim);
  if (dim < 1 || count < 1 || vectors == nullptr || options.nprobe < 1 ||
      options.add_batch < 1 || options.k_factor < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        context, ": needs dim >= 1, vectors >= 1, nprobe >= 1 (is ", options.nprobe,
        "), add_batch >= 1 (is ", options.add_batch, ") and k_factor >= 0 (is ",
        options.k_factor, ")"));
  }
  std::unique_ptr<faiss::Index> raw;
  const faiss::MetricType metric =
      options.metric == Metric::kL2 ? faiss::METRIC_L2 : faiss::METRIC_INNER_PRODUCT;
  absl::Status made = CallFaiss(context, absl::StatusCode::kInvalidArgument, nullptr, [&] {
    raw.reset(faiss::index_factory(dim, options.description.c_str(), metric));
  });
  if (!made.ok()) return made;
  auto* refine = dynamic_cast<faiss::IndexRefine*>(raw.get());
  if (refine != nullptr && options.k_factor > 0) refine->k_factor = options.k_factor;
  if (auto* ivf = faiss::ivflib::try_extract_index_ivf(refine ? refine->base_index : raw.get())) {
    ivf->nprobe = options.nprobe;
  }

  if (IsCancelled(control)) return BuildCancelledError();
  ReportProgress(control, 0.0,
                 absl::StrCat("training ", options.description, " on ", count, " vectors"));
  absl::Status trained = CallFaiss(context, absl::StatusCode::kInvalidArgument, control,
                                   [&] { raw->train(count, vectors); });
  if (!trained.ok()) return trained;
  for (int64_t start = 0; start < count; start += options.add_batch) {
    if (IsCancelled(control)) return BuildCancelledError();
    const int64_t batch = std::min(options.add_batch, count - start);
    absl::Status added = CallFaiss(context, absl::StatusCode::kInvalidArgument, control,
                                   [&] { raw->add(batch, vectors + start * dim); });
    if (!added.ok()) return added;
    ReportProgress(control, static_cast<double>(start + batch) / count,
                   absl::StrCat("added ", start + batch, " of ", count, " vectors"));
  }
  std::unique_ptr<FaissIndex> index(new FaissIndex(std::move(raw)));
  absl::Status prepared = index->Prepare(/*vectors_path=*/"");
  if (!prepared.ok()) return prepared;
  return index;
}

absl::Status FaissIndex::Write(const std::string& path) const {
  return CallFaiss(absl::StrCat("writing index file '", path, "'"), absl::StatusCode::kInternal,
                   nullptr, [&] { faiss::write_index(index_.get(), path.c_str()); });
}

int FaissIndex::k_factor() const {
  if (refine_ == nullptr) return 0;
  return std::max(1, static_cast<int>(std::lround(refine_->k_factor)));
}

absl::Status FaissIndex::SetSearchDefaults(int nprobe, int k_factor) {
  if (nprobe < 0 || k_factor < 0 || (nprobe > 0 && nprobe > nlist_)) {
    return absl::InvalidArgumentError(absl::StrCat("search defaults nprobe ", nprobe, ", k_factor ",
                                                   k_factor, " do not fit ", description_));
  }
  if (nprobe > 0) {
    // ivf_ points into index_, which this object owns and nobody else sees yet.
    const_cast<faiss::IndexIVF*>(ivf_)->nprobe = nprobe;
    nprobe_ = nprobe;
  }
  if (k_factor > 0 && refine_ != nullptr) {
    dynamic_cast<faiss::IndexRefine*>(index_.get())->k_factor = static_cast<float>(k_factor);
  }
  return absl::OkStatus();
}

absl::Status FaissIndex::Prepare(const std::string& vectors_path) {
  if (index_->metric_type != faiss::METRIC_L2 &&
      index_->metric_type != faiss::METRIC_INNER_PRODUCT) {
    return absl::InvalidArgumentError("only L2 and inner-product indexes are supported");
  }
  FindStructure();
  if (size_ == 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the index (", description_, ") holds no vectors; an RVC trained_*.index file has none, "
        "serve the added_*.index file"));
  }
  if (ivf_ != nullptr) {
    // ivf_ points into index_, which this object owns and nobody else sees yet. Mapped lists are
    // checked before anything reads them.
    if (auto* mapped = dynamic_cast<faiss::OnDiskInvertedLists*>(
            const_cast<faiss::IndexIVF*>(ivf_)->invlists)) {
      absl::Status within = CheckMappedLists(*mapped);
      if (!within.ok()) return within;
      mapped_bytes_ = static_cast<int64_t>(mapped->totsize);
    }
    absl::Status ids = CheckIvfIds();
    if (!ids.ok()) return ids;
  }
  if (!vectors_path.empty()) {
    absl::StatusOr<std::vector<float>> sidecar = ReadVectorsFile(vectors_path, size_, dim_);
    if (!sidecar.ok()) return sidecar.status();
    owned_vectors_ = *std::move(sidecar);
  }
  absl::Status mapped = MapStoredVectors(!vectors_path.empty());
  if (!mapped.ok()) return mapped;
  memory_bytes_ = EstimateBytes(index_.get()) +
                  static_cast<int64_t>(stored_.size() * sizeof(float*) +
                                       owned_vectors_.size() * sizeof(float) +
                                       centroid_norms_.size() * sizeof(float));
  return absl::OkStatus();
}

void FaissIndex::FindStructure() {
  dim_ = index_->d;
  size_ = index_->ntotal;
  metric_ = index_->metric_type == faiss::METRIC_INNER_PRODUCT ? Metric::kInnerProduct
                                                                : Metric::kL2;
  description_ = DescribeIndex(index_.get());
  refine_ = dynamic_cast<const faiss::IndexRefine*>(index_.get());
  ivf_ = dynamic_cast<const faiss::IndexIVF*>(refine_ != nullptr ? refine_->base_index
                                                                  : index_.get());
  if (ivf_ == nullptr) return;
  nprobe_ = static_cast<int>(ivf_->nprobe);
  nlist_ = static_cast<int>(ivf_->nlist);
  fixed_nprobe_ = dynamic_cast<const faiss::IndexIVFFastScan*>(ivf_) != nullptr;
  auto* flat = dynamic_cast<const faiss::IndexFlat*>(ivf_->quantizer);
  if (!fixed_nprobe_ && flat != nullptr && flat->metric_type == ivf_->metric_type &&
      flat->ntotal == static_cast<faiss_idx>(ivf_->nlist)) {
    centroids_ = flat->get_xb();
    centroid_norms_.resize(nlist_);
    for (int c = 0; c < nlist_; ++c) {
      const float* centroid = centroids_ + static_cast<int64_t>(c) * dim_;
      float norm = 0.0f;
      for (int j = 0; j < dim_; ++j) norm += centroid[j] * centroid[j];
      centroid_norms_[c] = norm;
    }
  }
}

absl::Status FaissIndex::CheckIvfIds() const {
  std::vector<bool> seen(size_, false);
  for (size_t list = 0; list < ivf_->nlist; ++list) {
    faiss::InvertedLists::ScopedIds ids(ivf_->invlists, list);
    const size_t n = ivf_->invlists->list_size(list);
    for (size_t j = 0; j < n; ++j) {
      const faiss_idx id = ids[j];
      if (id < 0 || id >= size_ || seen[id]) {
        return absl::InvalidArgumentError(absl::StrCat(
            "the index has id ", id, "; only indexes with ids 0..", size_ - 1, " are supported"));
      }
      seen[id] = true;
    }
  }
  const auto missing = std::find(seen.begin(), seen.end(), false);
  if (missing != seen.end()) {
    return absl::InvalidArgumentError(
        absl::StrCat("the index lacks id ", missing - seen.begin(), "; only indexes with ids 0..",
                     size_ - 1, " are supported"));
  }
  return absl::OkStatus();
}

absl::Status FaissIndex::MapStoredVectors(bool have_sidecar) {
  stored_.resize(size_);
  if (have_sidecar) {
    for (faiss_idx id = 0; id < size_; ++id) stored_[id] = owned_vectors_.data() + id * dim_;
    stores_exact_vectors_ = true;
    return absl::OkStatus();
  }
  // Without copying where the index keeps raw floats.
  const faiss::Index* exact = refine_ != nullptr ? refine_->refine_index : index_.get();
  stores_exact_vectors_ = HoldsRawVectors(exact);
  auto* ivf_flat = dynamic_cast<const faiss::IndexIVFFlat*>(exact);
  const bool array_lists =
      ivf_flat == ivf_ && ivf_flat != nullptr &&
      (dynamic_cast<const faiss::ArrayInvertedLists*>(ivf_flat->invlists) != nullptr ||
       dynamic_cast<const faiss::OnDiskInvertedLists*>(ivf_flat->invlists) != nullptr);
  if (auto* flat = dynamic_cast<const faiss::IndexFlat*>(exact)) {
    for (faiss_idx id = 0; id < size_; ++id) stored_[id] = flat->get_xb() + id * dim_;
  } else if (array_lists) {
    // Ids were checked to be 0..size-1 by CheckIvfIds.
    for (size_t list = 0; list < ivf_flat->nlist; ++list) {
      const size_t n = ivf_flat->invlists->list_size(list);
      const faiss_idx* ids = ivf_flat->invlists->get_ids(list);
      const uint8_t* codes = ivf_flat->invlists->get_codes(list);
      for (size_t j = 0; j < n; ++j) {
        stored_[ids[j]] = reinterpret_cast<const float*>(codes + j * ivf_flat->code_size);
      }
    }
  } else {
    // Other structures: reconstruct every vector once (approximate for compressed codes).
    owned_vectors_.resize(static_cast<size_t>(size_) * dim_);
    absl::Status reconstructed = CallFaiss(
        absl::StrCat("index (", description_, ") cannot return its stored vectors"),
        absl::StatusCode::kInvalidArgument, nullptr,
        [&] { exact->reconstruct_n(0, size_, owned_vectors_.data()); });
    if (!reconstructed.ok()) return reconstructed;
    for (faiss_idx id = 0; id < size_; ++id) stored_[id] = owned_vectors_.data() + id * dim_;
  }
  return absl::OkStatus();
}

void FaissIndex::AssignLists(const float* queries, int64_t count, int nprobe, int threads,
                             float* coarse_scores, int64_t* coarse_lists) const {
  const bool l2 = metric_ == Metric::kL2;
  const int block_rows = static_cast<int>(std::min<int64_t>(count, kCoarseBlock));
  std::vector<float> products(static_cast<size_t>(block_rows) * nlist_);
  const int shards = std::max(1, std::min(threads, nlist_ / 64 + 1));
  for (int64_t start = 0; start < count; start += kCoarseBlock) {
    const int rows = static_cast<int>(std::min<int64_t>(kCoarseBlock, count - start));
    const float* block = queries + start * dim_;
    // products[r, c] = <query r, centroid c>, computed by centroid range per shard.
#pragma omp parallel for num_threads(shards) if (shards > 1)
    for (int shard = 0; shard < shards; ++shard) {
      const int begin = static_cast<int>(static_cast<int64_t>(nlist_) * shard / shards);
      const int end = static_cast<int>(static_cast<int64_t>(nlist_) * (shard + 1) / shards);
      const int m = end - begin;
      const float one = 1.0f, zero = 0.0f;
      sgemm_("T", "N", &m, &rows, &dim_, &one, centroids_ + static_cast<int64_t>(begin) * dim_,
             &dim_, block, &dim_, &zero, products.data() + begin, &nlist_);
    }
    for (int r = 0; r < rows; ++r) {
      const float* row = products.data() + static_cast<int64_t>(r) * nlist_;
      // L2: ||q - c||^2 = ||q||^2 + ||c||^2 - 2<q, c>; inner product: <q, c>.
      float query_norm = 0.0f;
      if (l2) {
        const float* q = block + static_cast<int64_t>(r) * dim_;
        for (int j = 0; j < dim_; ++j) query_norm += q[j] * q[j];
      }
      SelectNearest(metric_, nprobe, coarse_scores + (start + r) * nprobe,
                    coarse_lists + (start + r) * nprobe, [&](auto& best) {
                      for (int c = 0; c < nlist_; ++c) {
                        best.Offer(l2 ? query_norm + centroid_norms_[c] - 2.0f * row[c] : row[c],
                                   c);
                      }
                    });
    }
  }
}

void FaissIndex::SearchBase(const float* queries, int64_t count, int64_t k, int nprobe,
                            int threads, float* scores, int64_t* ids) const {
  const faiss::Index* base = refine_ != nullptr ? refine_->base_index : index_.get();
  if (centroids_ != nullptr) {
    std::vector<float> coarse_scores(static_cast<size_t>(count) * nprobe);
    std::vector<int64_t> coarse_lists(static_cast<size_t>(count) * nprobe);
    AssignLists(queries, count, nprobe, threads, coarse_scores.data(), coarse_lists.data());
    faiss::SearchParametersIVF ivf_params;
    ivf_params.nprobe = nprobe;
    // Single-threaded scan of the chosen lists; the coarse step above used `threads`.
    omp_set_num_threads(1);
    ivf_->search_preassigned(count, queries, k, coarse_lists.data(), coarse_scores.data(), scores,
                             ids, false, &ivf_params);
    return;
  }
  if (ivf_ != nullptr && !fixed_nprobe_) {
    faiss::SearchParametersIVF ivf_params;
    ivf_params.nprobe = nprobe;
    base->search(count, queries, k, scores, ids, &ivf_params);
    return;
  }
  // Non-IVF indexes, and IVF FastScan with its stored nprobe (Search checked the call's).
  base->search(count, queries, k, scores, ids);
}

void FaissIndex::Rerank(const float* queries, int64_t count, int k, int64_t candidates,
                        const int64_t* candidate_ids, float* scores, int64_t* ids) const {
  std::unique_ptr<faiss::DistanceComputer> distance(refine_->refine_index->get_distance_computer());
  for (int64_t q = 0; q < count; ++q) {
    distance->set_query(queries + q * dim_);
    const int64_t* row = candidate_ids + q * candidates;
    SelectNearest(metric_, k, scores + q * k, ids + q * k, [&](auto& best) {
      for (int64_t j = 0; j < candidates; ++j) {
        if (row[j] >= 0) best.Offer((*distance)(row[j]), row[j]);
      }
    });
  }
}

absl::Status FaissIndex::Search(const float* queries, int64_t count, const SearchParams& params,
                                int threads, float* scores, int64_t* ids) const {
  static_assert(sizeof(faiss_idx) == sizeof(int64_t), "faiss ids are 64-bit");
  if (params.k_factor < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "k_factor is ", params.k_factor, "; it must be >= 0 (0 = the index's stored k_factor)"));
  }
  if (fixed_nprobe_ && params.nprobe != 0 && params.nprobe != nprobe_) {
    return absl::InvalidArgumentError(absl::StrCat(
        "nprobe is ", params.nprobe, ", but the IVF FastScan index (", description_,
        ") can only be searched with its stored nprobe ", nprobe_,
        "; ask for 0 (the stored value) or rebuild the index with the nprobe wanted"));
  }
  ScopedOmpThreads omp_threads(std::max(1, threads));
  const int nprobe = params.nprobe > 0 ? params.nprobe : std::max(1, nprobe_);
  if (refine_ == nullptr) {
    return CallFaiss("search", absl::StatusCode::kInternal, nullptr, [&] {
      SearchBase(queries, count, params.k, nprobe, threads, scores, ids);
    });
  }
  // Candidates per query as faiss's IndexRefine counts them, at least k and at most all vectors.
  const int64_t wanted = params.k_factor > 0
                             ? int64_t{params.k} * params.k_factor
                             : static_cast<int64_t>(params.k * refine_->k_factor);
  const int64_t candidates = std::max<int64_t>(params.k, std::min(wanted, size_));
  std::vector<float> candidate_scores(static_cast<size_t>(count) * candidates);
  std::vector<int64_t> candidate_ids(static_cast<size_t>(count) * candidates);
  return CallFaiss("search", absl::StatusCode::kInternal, nullptr, [&] {
    SearchBase(queries, count, candidates, nprobe, threads, candidate_scores.data(),
               candidate_ids.data());
    Rerank(queries, count, params.k, candidates, candidate_ids.data(), scores, ids);
  });
}

absl::Status FaissIndex::CheckDescription(const std::string& description, int dim,
                                          Metric metric) {
  return CallFaiss(absl::StrCat("index_factory string '", description, "' for dim ", dim),
                   absl::StatusCode::kInvalidArgument, /*control=*/nullptr, [&] {
                      std::unique_ptr<faiss::Index> index(faiss::index_factory(
                          dim, description.c_str(),
                          metric == Metric::kL2 ? faiss::METRIC_L2 : faiss::METRIC_INNER_PRODUCT));
                    });
}

std::string FaissBuildInfo() {
  std::string info = absl::StrCat("faiss ", FAISS_VERSION_MAJOR, ".", FAISS_VERSION_MINOR, ".",
                                  FAISS_VERSION_PATCH, " (", faiss::get_compile_options(), ")");
  if (openblas_get_corename != nullptr) {
    absl::StrAppend(&info, ", OpenBLAS kernels ", openblas_get_corename());
  }
  return info;
}

void UseSingleThreadedBlas() {
  if (openblas_set_num_threads != nullptr) openblas_set_num_threads(1);
}

}  // namespace timbre
