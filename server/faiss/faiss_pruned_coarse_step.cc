#include "server/faiss/faiss_pruned_coarse_step.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <utility>

#include <faiss/utils/distances.h>

#include "absl/strings/str_cat.h"
#include "server/faiss/faiss_best_k.h"
#include "server/faiss/faiss_coarse_kernels.h"

namespace timbre {
namespace {

using coarse_kernels::CentroidTerms;
using coarse_kernels::kBlock;
using coarse_kernels::Kernels;
using coarse_kernels::kGroupTile;
using coarse_kernels::kQueryOffset;
using coarse_kernels::kRowTile;
using coarse_kernels::QueryCode;
using coarse_kernels::QueryTerms;

// Queries per block: bounds the [block, nlist] buffer of products (kept in the core's cache).
constexpr int kBlockRows = 64;

}  // namespace

// Per-thread buffers of AssignBlock, reused from call to call.
struct PrunedCoarseStep::Scratch {
  std::vector<uint8_t> coded;
  std::vector<int32_t> products;
  std::vector<float> bounds;
  std::vector<int> below;
  std::vector<std::pair<float, int>> candidates;
  std::vector<std::pair<int64_t, float>> scored;
  std::vector<QueryTerms> terms;
  std::vector<float> best_keys;
  std::vector<int64_t> best_ids;
  std::vector<float> seed_bounds;
  std::vector<int64_t> seed_ids;
};

absl::StatusOr<std::unique_ptr<PrunedCoarseStep>> PrunedCoarseStep::Create(const float* centroids,
                                                                           int nlist, int dim,
                                                                           Metric metric,
                                                                           Kernel kernel) {
  if (nlist < 1 || dim < 1 || dim > kMaxDim) {
    return absl::InvalidArgumentError(absl::StrCat("a pruned coarse step needs nlist >= 1 (is ",
                                                   nlist, ") and a dim in 1..", kMaxDim, " (is ",
                                                   dim, ")"));
  }
  for (int64_t i = 0; i < static_cast<int64_t>(nlist) * dim; ++i) {
    if (!std::isfinite(centroids[i])) {
      return absl::InvalidArgumentError(
          absl::StrCat("coarse centroid ", i / dim, " has a value that is not finite"));
    }
  }
  std::unique_ptr<PrunedCoarseStep> step(new PrunedCoarseStep());
  step->centroids_ = centroids;
  step->nlist_ = nlist;
  step->dim_ = dim;
  step->groups_ = kGroupTile * ((dim + 4 * kGroupTile - 1) / (4 * kGroupTile));
  step->blocks_ = (nlist + kBlock - 1) / kBlock;
  step->metric_ = metric;
  const bool vnni = kernel != Kernel::kPortable && coarse_kernels::CpuHasVnni();
  step->kernel_ = !vnni                                                    ? Kernel::kPortable
                  : kernel == Kernel::kBest && coarse_kernels::CpuHasAmx() ? Kernel::kBest
                                                                           : Kernel::kAvx512Vnni;
  step->slack_ = coarse_kernels::BoundSlack(dim);

  std::vector<double> mean(dim, 0.0);
  for (int c = 0; c < nlist; ++c) {
    for (int j = 0; j < dim; ++j) mean[j] += centroids[static_cast<size_t>(c) * dim + j];
  }
  step->mean_.resize(dim);
  double mean_norm = 0.0;
  for (int j = 0; j < dim; ++j) {
    step->mean_[j] = static_cast<float>(mean[j] / nlist);
    mean_norm += static_cast<double>(step->mean_[j]) * step->mean_[j];
  }

  step->codes_.assign(static_cast<size_t>(step->blocks_) * step->groups_ * kBlock * 4, 0);
  step->terms_.Reset(nlist);
  for (int c = 0; c < nlist; ++c) {
    int8_t* block =
        step->codes_.data() + static_cast<size_t>(c / kBlock) * step->groups_ * kBlock * 4;
    step->terms_.Set(c, coarse_kernels::CodeVector(
                            centroids + static_cast<size_t>(c) * dim, step->mean_.data(), mean_norm,
                            dim, metric == Metric::kL2, step->slack_, block, c % kBlock));
  }
  return step;
}

int64_t PrunedCoarseStep::memory_bytes() const {
  return static_cast<int64_t>(codes_.size() + mean_.size() * sizeof(float)) + terms_.memory_bytes();
}

float PrunedCoarseStep::ExactKey(const float* query, int list) const {
  const float* centroid = centroids_ + static_cast<int64_t>(list) * dim_;
  return metric_ == Metric::kL2 ? faiss::fvec_L2sqr(query, centroid, dim_)
                                : -faiss::fvec_inner_product(query, centroid, dim_);
}

void PrunedCoarseStep::Assign(const float* queries, int64_t count, int nprobe, int threads,
                              float* scores, int64_t* lists) const {
  const int64_t chunks = std::max<int64_t>(1, std::min<int64_t>(threads, count));
#pragma omp parallel for num_threads(static_cast<int>(chunks)) if (chunks > 1)
  for (int64_t chunk = 0; chunk < chunks; ++chunk) {
    const int64_t begin = count * chunk / chunks;
    const int64_t end = count * (chunk + 1) / chunks;
    for (int64_t start = begin; start < end; start += kBlockRows) {
      const int rows = static_cast<int>(std::min<int64_t>(kBlockRows, end - start));
      AssignBlock(queries + start * dim_, rows, nprobe, scores + start * nprobe,
                  lists + start * nprobe);
    }
  }
}

void PrunedCoarseStep::AssignBlock(const float* queries, int rows, int nprobe, float* scores,
                                   int64_t* lists) const {
  const Kernels& kernels = kernel_ == Kernel::kPortable     ? coarse_kernels::kPortableKernels
                           : kernel_ == Kernel::kAvx512Vnni ? coarse_kernels::kVnniKernels
                                                            : coarse_kernels::kAmxKernels;
  thread_local Scratch scratch;
  const size_t query_bytes = static_cast<size_t>(groups_) * 4;
  const int stride = blocks_ * kBlock;
  const int tiled_rows = kRowTile * ((rows + kRowTile - 1) / kRowTile);
  scratch.coded.assign(tiled_rows * query_bytes, kQueryOffset);
  scratch.products.resize(static_cast<size_t>(tiled_rows) * stride);
  scratch.bounds.resize(nlist_);
  scratch.below.resize(nlist_);
  std::vector<QueryTerms>& terms = scratch.terms;
  terms.resize(rows);
  for (int r = 0; r < rows; ++r) {
    const float* query = queries + static_cast<size_t>(r) * dim_;
    QueryCode code;
    kernels.code_query(query, mean_.data(), dim_, scratch.coded.data() + r * query_bytes, &code);
    terms[r] = coarse_kernels::TermsOf(
        code, faiss::fvec_norm_L2sqr(query, dim_),
        metric_ == Metric::kL2 ? 0.0f : faiss::fvec_inner_product(query, mean_.data(), dim_),
        metric_ == Metric::kL2, slack_);
  }
  // products[r, c] = <b + offset, a_c>; the bounds take the offset out.
  kernels.products(scratch.coded.data(), rows, codes_.data(), groups_, blocks_,
                   scratch.products.data(), stride);
  const CentroidTerms centroids = terms_.From(0);
  for (int r = 0; r < rows; ++r) {
    const float smallest = kernels.bounds(nlist_, terms[r], centroids,
                                          scratch.products.data() + static_cast<size_t>(r) * stride,
                                          scratch.bounds.data());
    SelectQuery(queries + static_cast<size_t>(r) * dim_, smallest, nprobe, kernels.below, scratch,
                scores + static_cast<size_t>(r) * nprobe, lists + static_cast<size_t>(r) * nprobe);
  }
}

void PrunedCoarseStep::SelectQuery(const float* query, float smallest, int nprobe, BelowFn below,
                                   Scratch& scratch, float* scores, int64_t* lists) const {
  // A centroid scored is marked with a bound no threshold admits (also an infinite one).
  constexpr float kDone = std::numeric_limits<float>::quiet_NaN();
  float* bounds = scratch.bounds.data();
  int* ids = scratch.below.data();
  // Exact keys (L2 distance, or minus the inner product) of the centroids scored.
  std::vector<std::pair<int64_t, float>>& scored = scratch.scored;
  scored.clear();
  // The nprobe best exact keys so far; its worst is the threshold a bound must not exceed.
  scratch.best_keys.resize(nprobe);
  scratch.best_ids.resize(nprobe);
  BestK<KeepSmallest> best(nprobe, scratch.best_keys.data(), scratch.best_ids.data());
  auto score = [&](int list) {
    const float key = ExactKey(query, list);
    scored.emplace_back(list, key);
    best.Offer(key, list);
    bounds[list] = kDone;
  };
  // Seeds: the nprobe smallest bounds (for nprobe 1, the first centroid with the smallest).
  if (nprobe == 1) {
    below(bounds, nlist_, smallest, ids);
    score(ids[0]);
  } else {
    scratch.seed_bounds.resize(nprobe);
    scratch.seed_ids.resize(nprobe);
    BestK<KeepSmallest> seeds(nprobe, scratch.seed_bounds.data(), scratch.seed_ids.data());
    for (int c = 0; c < nlist_; ++c) seeds.Offer(bounds[c], c);
    for (int i = 0; i < nprobe; ++i) score(static_cast<int>(scratch.seed_ids[i]));
  }
  // Then every other centroid whose bound does not exceed the threshold, smallest bounds first.
  std::vector<std::pair<float, int>>& candidates = scratch.candidates;
  candidates.clear();
  const int count = below(bounds, nlist_, best.Worst(), ids);
  for (int i = 0; i < count; ++i) candidates.emplace_back(bounds[ids[i]], ids[i]);
  std::sort(candidates.begin(), candidates.end());
  for (const auto& [bound, list] : candidates) {
    if (bound > best.Worst()) break;
    score(list);
  }
  // The scored centroids offered in list order, as the full coarse step offers every centroid.
  std::sort(scored.begin(), scored.end());
  SelectNearest(metric_, nprobe, scores, lists, [&](auto& nearest) {
    for (const auto& [list, key] : scored) {
      nearest.Offer(metric_ == Metric::kL2 ? key : -key, list);
    }
  });
}

}  // namespace timbre
