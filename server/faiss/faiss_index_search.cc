// FaissIndex's search: the coarse step, the scan of the chosen lists and the re-ranking of
// refined indexes (faiss_index.h).
#include <omp.h>

#include <algorithm>
#include <memory>
#include <vector>

#include <faiss/Index.h>
#include <faiss/IndexIVF.h>
#include <faiss/IndexPreTransform.h>
#include <faiss/IndexRefine.h>
#include <faiss/impl/DistanceComputer.h>
#include <faiss/utils/Heap.h>

#include "absl/strings/str_cat.h"
#include "server/faiss/faiss_best_k.h"
#include "server/faiss/faiss_blas.h"
#include "server/faiss/faiss_call.h"
#include "server/faiss/faiss_index.h"
#include "server/faiss/faiss_pruned_coarse_step.h"
#include "server/faiss/faiss_pruned_list_scan.h"
#include "server/faiss/faiss_sq8_scan.h"

namespace timbre {
namespace {

using faiss_idx = faiss::Index::idx_t;

// Queries per coarse-step block: bounds the [block, nlist] score buffer.
constexpr int64_t kCoarseBlock = 256;

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

}  // namespace

void FaissIndex::AssignLists(const float* queries, int64_t count, int nprobe, int threads,
                             bool unpruned, float* coarse_scores, int64_t* coarse_lists) const {
  if (pruned_coarse_step_ != nullptr && !unpruned) {
    pruned_coarse_step_->Assign(queries, count, nprobe, threads, coarse_scores, coarse_lists);
  } else {
    ScoreEveryList(queries, count, nprobe, threads, coarse_scores, coarse_lists);
  }
}

void FaissIndex::ScoreEveryList(const float* queries, int64_t count, int nprobe, int threads,
                                float* coarse_scores, int64_t* coarse_lists) const {
  const bool l2 = metric_ == Metric::kL2;
  const int dim = ivf_dim_;
  const int block_rows = static_cast<int>(std::min<int64_t>(count, kCoarseBlock));
  std::vector<float> products(static_cast<size_t>(block_rows) * nlist_);
  const int shards = std::max(1, std::min(threads, nlist_ / 64 + 1));
  for (int64_t start = 0; start < count; start += kCoarseBlock) {
    const int rows = static_cast<int>(std::min<int64_t>(kCoarseBlock, count - start));
    const float* block = queries + start * dim;
    // products[r, c] = <query r, centroid c>, computed by centroid range per shard.
#pragma omp parallel for num_threads(shards) if (shards > 1)
    for (int shard = 0; shard < shards; ++shard) {
      const int begin = static_cast<int>(static_cast<int64_t>(nlist_) * shard / shards);
      const int end = static_cast<int>(static_cast<int64_t>(nlist_) * (shard + 1) / shards);
      const int m = end - begin;
      const float one = 1.0f, zero = 0.0f;
      sgemm_("T", "N", &m, &rows, &dim, &one, centroids_ + static_cast<int64_t>(begin) * dim, &dim,
             block, &dim, &zero, products.data() + begin, &nlist_);
    }
    for (int r = 0; r < rows; ++r) {
      const float* row = products.data() + static_cast<int64_t>(r) * nlist_;
      // L2: ||q - c||^2 = ||q||^2 + ||c||^2 - 2<q, c>; inner product: <q, c>.
      float query_norm = 0.0f;
      if (l2) {
        const float* q = block + static_cast<int64_t>(r) * dim;
        for (int j = 0; j < dim; ++j) query_norm += q[j] * q[j];
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

const float* FaissIndex::Project(const float* queries, int64_t count,
                                 std::unique_ptr<float[]>* owned) const {
  if (pretransform_ == nullptr) return queries;
  // apply_chain returns a new[] array, or its input for an empty chain.
  const float* projected = pretransform_->apply_chain(count, queries);
  if (projected != queries) owned->reset(const_cast<float*>(projected));
  return projected;
}

void FaissIndex::SearchBase(const float* queries, int64_t count, int64_t k, int nprobe, int threads,
                            bool unpruned, float* scores, int64_t* ids) const {
  const faiss::Index* base = refine_ != nullptr ? refine_->base_index : index_.get();
  std::unique_ptr<float[]> projected;
  if (ivf_ != nullptr) {
    // From here on in the IVF index's own space (the same as base's without a transform).
    queries = Project(queries, count, &projected);
    base = ivf_;
  }
  if (centroids_ != nullptr) {
    std::vector<float> coarse_scores(static_cast<size_t>(count) * nprobe);
    std::vector<int64_t> coarse_lists(static_cast<size_t>(count) * nprobe);
    AssignLists(queries, count, nprobe, threads, unpruned, coarse_scores.data(),
                coarse_lists.data());
    if (sq8_scan_ != nullptr && !unpruned) {
      sq8_scan_->Search(queries, count, k, nprobe, coarse_lists.data(), coarse_scores.data(),
                        scores, ids);
      return;
    }
    if (pruned_list_scan_ != nullptr && !unpruned) {
      pruned_list_scan_->Search(queries, count, k, nprobe, coarse_lists.data(), scores, ids);
      return;
    }
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

absl::Status FaissIndex::CoarseLists(const float* queries, int64_t count, int nprobe,
                                     int threads, int64_t* lists) const {
  if (centroids_ == nullptr) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the index (", description_, ") has no flat coarse quantizer to assign lists with"));
  }
  if (nprobe < 0 || nprobe > nlist_) {
    return absl::InvalidArgumentError(
        absl::StrCat("nprobe is ", nprobe, "; it must be in 0..", nlist_, " (0 = the stored ",
                     nprobe_, ")"));
  }
  const int probes = nprobe > 0 ? nprobe : std::max(1, nprobe_);
  std::vector<float> scores(static_cast<size_t>(count) * probes);
  ScopedOmpThreads omp_threads(std::max(1, threads));
  return CallFaiss("coarse step", absl::StatusCode::kInternal, nullptr, [&] {
    std::unique_ptr<float[]> projected;
    AssignLists(Project(queries, count, &projected), count, probes, std::max(1, threads),
                /*unpruned=*/false, scores.data(), lists);
  });
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
  // Candidates per query: k, or for a refined index as faiss's IndexRefine counts them, at least
  // k and at most all vectors.
  int64_t candidates = params.k;
  if (refine_ != nullptr) {
    const int64_t wanted = params.k_factor > 0 ? int64_t{params.k} * params.k_factor
                                               : static_cast<int64_t>(params.k * refine_->k_factor);
    candidates = std::max<int64_t>(params.k, std::min(wanted, size_));
  }
  // Queries are searched independently. With timbre's own coarse step, each thread takes a share
  // of them through the whole search (coarse step, scan, re-ranking); faiss's own searches split
  // their queries across the OpenMP threads themselves.
  const int shares = centroids_ != nullptr
                         ? static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(threads, count)))
                         : 1;
  if (shares == 1) {
    // No parallel region of one thread: regions opened inside one would be nested, and libgomp
    // starts fresh threads for nested teams.
    return CallFaiss("search", absl::StatusCode::kInternal, nullptr, [&] {
      SearchRows(queries, count, params, candidates, nprobe, threads, scores, ids);
    });
  }
  std::vector<absl::Status> statuses(shares);
#pragma omp parallel for num_threads(shares)
  for (int share = 0; share < shares; ++share) {
    const int64_t begin = count * share / shares;
    const int64_t rows = count * (share + 1) / shares - begin;
    statuses[share] = CallFaiss("search", absl::StatusCode::kInternal, nullptr, [&] {
      SearchRows(queries + begin * dim_, rows, params, candidates, nprobe, 1,
                 scores + begin * params.k, ids + begin * params.k);
    });
  }
  for (absl::Status& status : statuses) {
    if (!status.ok()) return status;
  }
  return absl::OkStatus();
}

void FaissIndex::SearchRows(const float* queries, int64_t count, const SearchParams& params,
                            int64_t candidates, int nprobe, int threads, float* scores,
                            int64_t* ids) const {
  if (refine_ == nullptr) {
    SearchBase(queries, count, params.k, nprobe, threads, params.unpruned, scores, ids);
    return;
  }
  std::vector<float> candidate_scores(static_cast<size_t>(count) * candidates);
  std::vector<int64_t> candidate_ids(static_cast<size_t>(count) * candidates);
  SearchBase(queries, count, candidates, nprobe, threads, params.unpruned, candidate_scores.data(),
             candidate_ids.data());
  Rerank(queries, count, params.k, candidates, candidate_ids.data(), scores, ids);
}

}  // namespace timbre
