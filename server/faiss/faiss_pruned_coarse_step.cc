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
using coarse_kernels::kCodeMax;
using coarse_kernels::Kernels;
using coarse_kernels::kGroupTile;
using coarse_kernels::kQueryOffset;
using coarse_kernels::kRowTile;
using coarse_kernels::QueryCode;
using coarse_kernels::QueryTerms;

// Queries per block: bounds the [block, nlist] buffer of products (kept in the core's cache).
constexpr int kBlockRows = 64;
// The float just above `x` (>= 0): an upper end of a norm computed in double.
float RoundUp(double x) {
  return std::nextafter(static_cast<float>(x), std::numeric_limits<float>::infinity());
}

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
  step->blocks_ = 2 * ((nlist + 2 * kBlock - 1) / (2 * kBlock));  // the kernels take two at once
  step->metric_ = metric;
  const bool vnni = kernel != Kernel::kPortable && coarse_kernels::CpuHasVnni();
  step->kernel_ = !vnni                                                    ? Kernel::kPortable
                  : kernel == Kernel::kBest && coarse_kernels::CpuHasAmx() ? Kernel::kBest
                                                                           : Kernel::kAvx512Vnni;
  step->slack_ = static_cast<float>(4.0 * (dim + 16) * std::ldexp(1.0, -24));

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
  step->code_sums_.resize(nlist);
  step->scale_.resize(nlist);
  step->code_norm_.resize(nlist);
  step->error_norm_.resize(nlist);
  step->base_.resize(nlist);
  std::vector<double> centered(dim);
  for (int c = 0; c < nlist; ++c) {
    const float* centroid = centroids + static_cast<size_t>(c) * dim;
    double largest = 0.0, centered_norm = 0.0, norm = 0.0, dot_mean = 0.0;
    for (int j = 0; j < dim; ++j) {
      centered[j] = static_cast<double>(centroid[j]) - step->mean_[j];
      largest = std::max(largest, std::fabs(centered[j]));
      centered_norm += centered[j] * centered[j];
      norm += static_cast<double>(centroid[j]) * centroid[j];
      dot_mean += static_cast<double>(step->mean_[j]) * centered[j];
    }
    const float scale = coarse_kernels::CodeScale(largest);
    double code_norm = 0.0, error_norm = 0.0;
    int32_t sum = 0;
    int8_t* block =
        step->codes_.data() + static_cast<size_t>(c / kBlock) * step->groups_ * kBlock * 4;
    for (int j = 0; j < dim; ++j) {
      const double code = std::clamp(std::nearbyint(centered[j] / scale),
                                     static_cast<double>(-kCodeMax), static_cast<double>(kCodeMax));
      const double value = code * scale;
      code_norm += value * value;
      error_norm += (centered[j] - value) * (centered[j] - value);
      sum += static_cast<int32_t>(code);
      block[(static_cast<size_t>(j / 4) * kBlock + c % kBlock) * 4 + j % 4] =
          static_cast<int8_t>(code);
    }
    step->code_sums_[c] = sum;
    step->scale_[c] = scale;
    step->code_norm_[c] = RoundUp(std::sqrt(code_norm));
    step->error_norm_[c] = RoundUp(std::sqrt(error_norm));
    // L2: the bound of ||q - c||^2 = ||q'||^2 + ||c'||^2 - 2 <q', c'>; inner product: of
    // -<q, c> = -<q', c'> - <mean, c'> - <q, mean>. The query's terms are added per query.
    const double exact_part = metric == Metric::kL2 ? centered_norm : -dot_mean;
    step->base_[c] =
        static_cast<float>(exact_part - step->slack_ * (2.0 * centered_norm + norm + mean_norm));
  }
  return step;
}

int64_t PrunedCoarseStep::memory_bytes() const {
  return static_cast<int64_t>(codes_.size()) +
         static_cast<int64_t>(sizeof(float)) *
             static_cast<int64_t>(mean_.size() + code_sums_.size() + scale_.size() +
                                  code_norm_.size() + error_norm_.size() + base_.size());
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
    // Float norms: their rounding is within the margin, and so is the rounding of the error's
    // terms, covered by slack * ||q'||.
    const float norm = faiss::fvec_norm_L2sqr(query, dim_);
    const float root = std::sqrt(code.centered_norm) * (1.0f + slack_);
    const float exact_part = metric_ == Metric::kL2
                                 ? code.centered_norm
                                 : -faiss::fvec_inner_product(query, mean_.data(), dim_);
    terms[r] = {metric_ == Metric::kL2 ? 2.0f : 1.0f, code.scale,
                exact_part - slack_ * (2.0f * code.centered_norm + norm), root,
                std::sqrt(code.error_norm) * (1.0f + slack_) + slack_ * root};
  }
  // products[r, c] = <b + offset, a_c>; the bounds take the offset out.
  kernels.products(scratch.coded.data(), rows, codes_.data(), groups_, blocks_,
                   scratch.products.data(), stride);
  const CentroidTerms centroids = {code_sums_.data(), base_.data(), scale_.data(),
                                   error_norm_.data(), code_norm_.data()};
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
  constexpr float kDone = std::numeric_limits<float>::infinity();
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
