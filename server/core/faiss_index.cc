#include "server/core/faiss_index.h"

#include <omp.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstring>
#include <exception>
#include <limits>

#include <faiss/Index.h>
#include <faiss/IndexFlat.h>
#include <faiss/IndexHNSW.h>
#include <faiss/IndexIVF.h>
#include <faiss/IndexIVFFlat.h>
#include <faiss/IndexIVFPQ.h>
#include <faiss/IndexIVFPQFastScan.h>
#include <faiss/IndexPQ.h>
#include <faiss/IndexPQFastScan.h>
#include <faiss/IVFlib.h>
#include <faiss/IndexRefine.h>
#include <faiss/impl/FaissException.h>
#include <faiss/index_factory.h>
#include <faiss/index_io.h>
#include <faiss/invlists/InvertedLists.h>
#include <faiss/invlists/OnDiskInvertedLists.h>
#include <faiss/utils/Heap.h>
#include <faiss/utils/utils.h>

#include "absl/strings/str_cat.h"

extern "C" {
// Fortran BLAS, as faiss itself declares it (no header needed).
int sgemm_(const char* transa, const char* transb, const int* m, const int* n, const int* k,
           const float* alpha, const float* a, const int* lda, const float* b, const int* ldb,
           const float* beta, float* c, const int* ldc);
// OpenBLAS's thread control and kernel name; weak so that another BLAS still links.
void openblas_set_num_threads(int num_threads) __attribute__((weak));
char* openblas_get_corename() __attribute__((weak));
}

namespace timbre {
namespace {

using faiss_idx = faiss::Index::idx_t;

// Queries per coarse-step block: bounds the [block, nlist] score buffer.
constexpr int64_t kCoarseBlock = 256;

std::string DescribeIndex(const faiss::Index* index) {
  if (auto* refine = dynamic_cast<const faiss::IndexRefine*>(index)) {
    const bool flat = dynamic_cast<const faiss::IndexFlat*>(refine->refine_index) != nullptr;
    return absl::StrCat(DescribeIndex(refine->base_index), flat ? ",RFlat" : ",Refine");
  }
  if (auto* ivf = dynamic_cast<const faiss::IndexIVF*>(index)) {
    std::string coarse = absl::StrCat("IVF", ivf->nlist);
    if (auto* hnsw = dynamic_cast<const faiss::IndexHNSW*>(ivf->quantizer)) {
      absl::StrAppend(&coarse, "_HNSW", hnsw->hnsw.nb_neighbors(1) / 2);
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
    return absl::StrCat("HNSW", hnsw->hnsw.nb_neighbors(1) / 2);
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

// Runs `fn`, turning faiss's and the standard library's exceptions into a status with `context`.
template <typename Fn>
absl::Status CatchFaiss(absl::string_view context, absl::StatusCode code, Fn&& fn) {
  try {
    fn();
    return absl::OkStatus();
  } catch (const faiss::FaissException& e) {
    return absl::Status(code, absl::StrCat(context, ": ", e.msg));
  } catch (const std::bad_alloc&) {
    return absl::Status(code, absl::StrCat(context, ": out of memory (corrupt sizes?)"));
  } catch (const std::exception& e) {
    return absl::Status(code, absl::StrCat(context, ": ", e.what()));
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

FaissIndex::FaissIndex(std::unique_ptr<faiss::Index> index) : index_(std::move(index)) {}

FaissIndex::~FaissIndex() = default;

absl::StatusOr<std::unique_ptr<FaissIndex>> FaissIndex::Load(const std::string& path,
                                                             const LoadOptions& options) {
  struct stat info;
  if (stat(path.c_str(), &info) != 0) {
    return absl::NotFoundError(absl::StrCat("index file '", path, "': ", std::strerror(errno)));
  }
  std::unique_ptr<faiss::Index> raw;
  absl::Status read = CatchFaiss(absl::StrCat("index file '", path, "' is not a readable faiss index"),
                                 absl::StatusCode::kInvalidArgument,
                                 [&] {
                                   raw.reset(faiss::read_index(
                                       path.c_str(), options.mmap ? faiss::IO_FLAG_MMAP : 0));
                                 });
  if (!read.ok()) return read;
  std::unique_ptr<FaissIndex> index(new FaissIndex(std::move(raw)));
  absl::Status prepared = index->Prepare();
  if (!prepared.ok()) {
    return absl::Status(prepared.code(), absl::StrCat("index file '", path, "': ", prepared.message()));
  }
  return index;
}

absl::StatusOr<std::unique_ptr<FaissIndex>> FaissIndex::Train(const TrainOptions& options,
                                                              const float* vectors,
                                                              int64_t count, int dim) {
  std::unique_ptr<faiss::Index> raw;
  const faiss::MetricType metric =
      options.metric == Metric::kL2 ? faiss::METRIC_L2 : faiss::METRIC_INNER_PRODUCT;
  absl::Status built = CatchFaiss(
      absl::StrCat("training '", options.description, "' on ", count, " vectors of dim ", dim),
      absl::StatusCode::kInvalidArgument, [&] {
        raw.reset(faiss::index_factory(dim, options.description.c_str(), metric));
        if (auto* ivf = faiss::ivflib::try_extract_index_ivf(raw.get())) ivf->nprobe = options.nprobe;
        raw->train(count, vectors);
        for (int64_t start = 0; start < count; start += options.add_batch) {
          raw->add(std::min(options.add_batch, count - start), vectors + start * dim);
        }
      });
  if (!built.ok()) return built;
  std::unique_ptr<FaissIndex> index(new FaissIndex(std::move(raw)));
  absl::Status prepared = index->Prepare();
  if (!prepared.ok()) return prepared;
  return index;
}

absl::Status FaissIndex::Write(const std::string& path) const {
  return CatchFaiss(absl::StrCat("writing index file '", path, "'"), absl::StatusCode::kInternal,
                    [&] { faiss::write_index(index_.get(), path.c_str()); });
}

absl::Status FaissIndex::Prepare() {
  dim_ = index_->d;
  size_ = index_->ntotal;
  metric_ = index_->metric_type == faiss::METRIC_INNER_PRODUCT ? Metric::kInnerProduct
                                                                : Metric::kL2;
  if (index_->metric_type != faiss::METRIC_L2 &&
      index_->metric_type != faiss::METRIC_INNER_PRODUCT) {
    return absl::InvalidArgumentError("only L2 and inner-product indexes are supported");
  }
  description_ = DescribeIndex(index_.get());
  if (size_ == 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the index (", description_, ") holds no vectors; an RVC trained_*.index file has none, "
        "serve the added_*.index file"));
  }
  faiss::IndexIVF* ivf = dynamic_cast<faiss::IndexIVF*>(index_.get());
  if (ivf != nullptr) {
    nprobe_ = static_cast<int>(ivf->nprobe);
    nlist_ = static_cast<int>(ivf->nlist);
    if (auto* mapped = dynamic_cast<faiss::OnDiskInvertedLists*>(ivf->invlists)) {
      absl::Status within = CheckMappedLists(*mapped);
      if (!within.ok()) return within;
      mapped_bytes_ = static_cast<int64_t>(mapped->totsize);
    }
    auto* flat = dynamic_cast<const faiss::IndexFlat*>(ivf->quantizer);
    if (flat != nullptr && flat->metric_type == ivf->metric_type &&
        flat->ntotal == static_cast<faiss_idx>(ivf->nlist)) {
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

  // The id -> stored vector table, without copying where the index keeps raw floats.
  stored_.assign(size_, nullptr);
  auto claim = [&](faiss_idx id, const float* vector) -> absl::Status {
    if (id < 0 || id >= size_ || stored_[id] != nullptr) {
      return absl::InvalidArgumentError(absl::StrCat(
          "the index has id ", id, "; only indexes with ids 0..", size_ - 1, " are supported"));
    }
    stored_[id] = vector;
    return absl::OkStatus();
  };
  const faiss::Index* exact = index_.get();
  if (auto* refine = dynamic_cast<const faiss::IndexRefine*>(exact)) exact = refine->refine_index;
  auto* ivf_flat = dynamic_cast<const faiss::IndexIVFFlat*>(exact);
  const bool array_lists =
      ivf_flat != nullptr &&
      (dynamic_cast<const faiss::ArrayInvertedLists*>(ivf_flat->invlists) != nullptr ||
       dynamic_cast<const faiss::OnDiskInvertedLists*>(ivf_flat->invlists) != nullptr);
  if (auto* flat = dynamic_cast<const faiss::IndexFlat*>(exact)) {
    for (faiss_idx id = 0; id < size_; ++id) stored_[id] = flat->get_xb() + id * dim_;
  } else if (array_lists) {
    for (size_t list = 0; list < ivf_flat->nlist; ++list) {
      const size_t n = ivf_flat->invlists->list_size(list);
      const faiss_idx* ids = ivf_flat->invlists->get_ids(list);
      const uint8_t* codes = ivf_flat->invlists->get_codes(list);
      for (size_t j = 0; j < n; ++j) {
        absl::Status claimed =
            claim(ids[j], reinterpret_cast<const float*>(codes + j * ivf_flat->code_size));
        if (!claimed.ok()) return claimed;
      }
    }
  } else {
    // Other structures: reconstruct every vector once (approximate for compressed codes).
    materialized_.resize(static_cast<size_t>(size_) * dim_);
    absl::Status reconstructed = CatchFaiss(
        absl::StrCat("index (", description_, ") cannot return its stored vectors"),
        absl::StatusCode::kInvalidArgument, [&] {
          if (ivf != nullptr) ivf->make_direct_map(true);
          index_->reconstruct_n(0, size_, materialized_.data());
        });
    if (!reconstructed.ok()) return reconstructed;
    for (faiss_idx id = 0; id < size_; ++id) stored_[id] = materialized_.data() + id * dim_;
  }
  for (faiss_idx id = 0; id < size_; ++id) {
    if (stored_[id] == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat("the index lacks id ", id, "; only indexes with ids 0..", size_ - 1,
                       " are supported"));
    }
  }
  memory_bytes_ = EstimateBytes(index_.get()) +
                  static_cast<int64_t>(stored_.size() * sizeof(float*) +
                                       materialized_.size() * sizeof(float) +
                                       centroid_norms_.size() * sizeof(float));
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
      float* out_scores = coarse_scores + (start + r) * nprobe;
      int64_t* out_lists = coarse_lists + (start + r) * nprobe;
      if (l2) {
        // ||q - c||^2 = ||q||^2 + ||c||^2 - 2<q, c>; keep the nprobe smallest.
        const float* q = block + static_cast<int64_t>(r) * dim_;
        float query_norm = 0.0f;
        for (int j = 0; j < dim_; ++j) query_norm += q[j] * q[j];
        faiss::heap_heapify<faiss::CMax<float, faiss_idx>>(nprobe, out_scores, out_lists);
        for (int c = 0; c < nlist_; ++c) {
          const float distance = query_norm + centroid_norms_[c] - 2.0f * row[c];
          if (distance < out_scores[0]) {
            faiss::heap_replace_top<faiss::CMax<float, faiss_idx>>(nprobe, out_scores,
                                                                    out_lists, distance, c);
          }
        }
        faiss::heap_reorder<faiss::CMax<float, faiss_idx>>(nprobe, out_scores, out_lists);
      } else {
        faiss::heap_heapify<faiss::CMin<float, faiss_idx>>(nprobe, out_scores, out_lists);
        for (int c = 0; c < nlist_; ++c) {
          if (row[c] > out_scores[0]) {
            faiss::heap_replace_top<faiss::CMin<float, faiss_idx>>(nprobe, out_scores,
                                                                    out_lists, row[c], c);
          }
        }
        faiss::heap_reorder<faiss::CMin<float, faiss_idx>>(nprobe, out_scores, out_lists);
      }
    }
  }
}

absl::Status FaissIndex::Search(const float* queries, int64_t count, const SearchParams& params,
                                int threads, float* scores, int64_t* ids) const {
  static_assert(sizeof(faiss_idx) == sizeof(int64_t), "faiss ids are 64-bit");
  ScopedOmpThreads omp_threads(std::max(1, threads));
  const int nprobe = params.nprobe > 0 ? params.nprobe : std::max(1, nprobe_);
  return CatchFaiss("search", absl::StatusCode::kInternal, [&] {
    if (centroids_ != nullptr) {
      std::vector<float> coarse_scores(static_cast<size_t>(count) * nprobe);
      std::vector<int64_t> coarse_lists(static_cast<size_t>(count) * nprobe);
      AssignLists(queries, count, nprobe, threads, coarse_scores.data(), coarse_lists.data());
      faiss::SearchParametersIVF ivf_params;
      ivf_params.nprobe = nprobe;
      // Single-threaded scan of the chosen lists; the coarse step above used `threads`.
      omp_set_num_threads(1);
      static_cast<const faiss::IndexIVF*>(index_.get())
          ->search_preassigned(count, queries, params.k, coarse_lists.data(),
                               coarse_scores.data(), scores, ids, false, &ivf_params);
      return;
    }
    if (nlist_ > 0 && dynamic_cast<const faiss::IndexIVF*>(index_.get()) != nullptr) {
      faiss::SearchParametersIVF ivf_params;
      ivf_params.nprobe = nprobe;
      index_->search(count, queries, params.k, scores, ids, &ivf_params);
      return;
    }
    index_->search(count, queries, params.k, scores, ids);
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
