#include "server/faiss/faiss_pruned_coarse_step.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <tuple>
#include <utility>

#include <faiss/VectorTransform.h>
#include <faiss/utils/distances.h>

#include "absl/strings/str_cat.h"
#include "server/faiss/faiss_best_k.h"
#include "server/faiss/faiss_blas.h"
#include "server/faiss/faiss_call.h"

namespace timbre {
namespace {

// Queries per block: bounds the [block, nlist] buffer of bounds.
constexpr int kBlockRows = 256;

// An orthonormal basis of `dims` rows of `dim` values: the rows of `candidates` ([rows, dim],
// e.g. principal directions, possibly degenerate) orthonormalised in double precision (modified
// Gram-Schmidt), completed with unit vectors where they fall short.
std::vector<float> Orthonormalise(const std::vector<float>& candidates, int rows, int dim,
                                  int dims) {
  std::vector<std::vector<double>> basis;
  auto try_add = [&](std::vector<double> v) {
    for (const std::vector<double>& b : basis) {
      double dot = 0.0;
      for (int j = 0; j < dim; ++j) dot += v[j] * b[j];
      for (int j = 0; j < dim; ++j) v[j] -= dot * b[j];
    }
    double norm = 0.0;
    for (double x : v) norm += x * x;
    norm = std::sqrt(norm);
    if (!(norm > 1e-3)) return;  // degenerate, NaN included
    for (double& x : v) x /= norm;
    basis.push_back(std::move(v));
  };
  for (int r = 0; r < rows && static_cast<int>(basis.size()) < dims; ++r) {
    try_add(std::vector<double>(candidates.begin() + static_cast<int64_t>(r) * dim,
                                candidates.begin() + static_cast<int64_t>(r + 1) * dim));
  }
  for (int j = 0; j < dim && static_cast<int>(basis.size()) < dims; ++j) {
    std::vector<double> unit(dim, 0.0);
    unit[j] = 1.0;
    try_add(std::move(unit));
  }
  std::vector<float> out;
  out.reserve(static_cast<size_t>(dims) * dim);
  for (const std::vector<double>& b : basis) out.insert(out.end(), b.begin(), b.end());
  return out;
}

// projected[r, j] = <rows[r], basis[j]> for `count` rows of `dim` values and `dims` basis rows.
void Project(const float* rows, int count, int dim, const float* basis, int dims,
             float* projected) {
  const float one = 1.0f, zero = 0.0f;
  sgemm_("T", "N", &dims, &count, &dim, &one, basis, &dim, rows, &dim, &zero, projected, &dims);
}

double SquaredNorm(const float* x, int n) {
  double sum = 0.0;
  for (int j = 0; j < n; ++j) sum += static_cast<double>(x[j]) * x[j];
  return sum;
}

// Lower and upper ends of sqrt(squared) when `squared` may be off by `error`.
std::pair<float, float> RootBracket(double squared, double error) {
  return {static_cast<float>(std::sqrt(std::max(0.0, squared - error))),
          static_cast<float>(std::sqrt(std::max(0.0, squared + error)))};
}

// An AVX2 clone of a function next to the default one, chosen when the program loads. Not under
// ThreadSanitizer: the loader runs the clone's chooser before TSan's runtime is up, and the
// instrumented chooser crashes.
#if defined(__SANITIZE_THREAD__)
#define TIMBRE_AVX2_CLONE
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define TIMBRE_AVX2_CLONE
#endif
#endif
#ifndef TIMBRE_AVX2_CLONE
#define TIMBRE_AVX2_CLONE __attribute__((target_clones("avx2", "default")))
#endif

// bounds[c] = scale * (gap_c^2 - 2 products[c]) + base[c] + query_constant, where gap_c is the
// least possible |r_q - r_c| given the residual brackets. `bounds` may be `products`.
TIMBRE_AVX2_CLONE void ComputeBounds(
    int nlist, float scale, float query_constant, float residual_lo, float residual_hi,
    const float* products, const float* base, const float* centroid_lo,
    const float* centroid_hi, float* bounds) {
  for (int c = 0; c < nlist; ++c) {
    const float below = residual_lo - centroid_hi[c];
    const float above = centroid_lo[c] - residual_hi;
    float gap = below > above ? below : above;
    gap = gap > 0.0f ? gap : 0.0f;
    bounds[c] = scale * (gap * gap - 2.0f * products[c]) + base[c] + query_constant;
  }
}

}  // namespace

absl::StatusOr<std::unique_ptr<PrunedCoarseStep>> PrunedCoarseStep::Create(
    const float* centroids, int nlist, int dim, Metric metric, int dims) {
  if (nlist < 1 || dim < 2 || (dims < 1 && dims != kChooseDims)) {
    return absl::InvalidArgumentError(absl::StrCat("a pruned coarse step needs nlist >= 1 (is ",
                                                   nlist, "), dim >= 2 (is ", dim,
                                                   ") and dims >= 1 (is ", dims, ")"));
  }
  std::unique_ptr<PrunedCoarseStep> step(new PrunedCoarseStep());
  step->centroids_ = centroids;
  step->nlist_ = nlist;
  step->dim_ = dim;
  const bool choose = dims == kChooseDims;
  step->dims_ = std::max(1, std::min(choose ? kLargestChosenDims : dims, dim / 2));
  step->metric_ = metric;
  const int principal = std::min(step->dims_, nlist);
  std::vector<float> directions;
  std::vector<float> variances;  // per principal direction, largest first
  absl::Status trained =
      CallFaiss("principal directions of the coarse centroids", absl::StatusCode::kInternal,
                nullptr, [&] {
                  faiss::PCAMatrix pca(dim, principal);
                  pca.train(nlist, centroids);
                  step->mean_ = pca.mean;
                  directions = pca.A;
                  variances = pca.eigenvalues;
                });
  if (!trained.ok()) return trained;
  if (choose) {
    double total = 0.0;
    for (float v : variances) total += std::max(0.0f, v);
    for (int candidate : kChosenDims) {
      if (candidate >= step->dims_) break;
      double kept = 0.0;
      for (int i = 0; i < candidate && i < static_cast<int>(variances.size()); ++i) {
        kept += std::max(0.0f, variances[i]);
      }
      if (kept >= kChosenVariance * total) {
        step->dims_ = candidate;
        break;
      }
    }
  }
  step->slack_ = static_cast<float>(4.0 * (dim + step->dims_ + 16) * std::ldexp(1.0, -24));
  step->basis_ = Orthonormalise(directions, principal, dim, step->dims_);

  const int p = step->dims_;
  std::vector<float> centered(static_cast<size_t>(nlist) * dim);
  for (int c = 0; c < nlist; ++c) {
    for (int j = 0; j < dim; ++j) {
      centered[static_cast<size_t>(c) * dim + j] =
          centroids[static_cast<size_t>(c) * dim + j] - step->mean_[j];
    }
  }
  step->projected_.resize(static_cast<size_t>(nlist) * p);
  Project(centered.data(), nlist, dim, step->basis_.data(), p, step->projected_.data());
  step->base_.resize(nlist);
  step->residual_lo_.resize(nlist);
  step->residual_hi_.resize(nlist);
  const double scale = metric == Metric::kL2 ? 1.0 : 0.5;
  for (int c = 0; c < nlist; ++c) {
    const double centered_norm = SquaredNorm(centered.data() + static_cast<size_t>(c) * dim, dim);
    const double projected_norm =
        SquaredNorm(step->projected_.data() + static_cast<size_t>(c) * p, p);
    const double norm = SquaredNorm(centroids + static_cast<size_t>(c) * dim, dim);
    std::tie(step->residual_lo_[c], step->residual_hi_[c]) =
        RootBracket(centered_norm - projected_norm, step->slack_ * centered_norm);
    // L2: the bound of ||q - c||^2; inner product: of -<q, c> = (||q - c||^2 - ||q||^2 - ||c||^2) / 2.
    step->base_[c] = static_cast<float>(scale * projected_norm -
                                        (metric == Metric::kL2 ? 0.0 : 0.5 * norm) -
                                        step->slack_ * (2.0 * centered_norm + norm));
  }
  return step;
}

int64_t PrunedCoarseStep::memory_bytes() const {
  return static_cast<int64_t>(sizeof(float)) *
         static_cast<int64_t>(mean_.size() + basis_.size() + projected_.size() + base_.size() +
                              residual_lo_.size() + residual_hi_.size());
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
  const int p = dims_;
  std::vector<float> centered(static_cast<size_t>(rows) * dim_);
  for (int r = 0; r < rows; ++r) {
    for (int j = 0; j < dim_; ++j) {
      centered[static_cast<size_t>(r) * dim_ + j] =
          queries[static_cast<size_t>(r) * dim_ + j] - mean_[j];
    }
  }
  std::vector<float> projected(static_cast<size_t>(rows) * p);
  Project(centered.data(), rows, dim_, basis_.data(), p, projected.data());
  // bounds[r, c] = <P(q_r - mean), P(c - mean)>, then the bound itself, in place.
  std::vector<float> bounds(static_cast<size_t>(rows) * nlist_);
  const float one = 1.0f, zero = 0.0f;
  sgemm_("T", "N", &nlist_, &rows, &p, &one, projected_.data(), &p, projected.data(), &p, &zero,
         bounds.data(), &nlist_);
  const double scale = metric_ == Metric::kL2 ? 1.0 : 0.5;
  for (int r = 0; r < rows; ++r) {
    const float* query = queries + static_cast<size_t>(r) * dim_;
    // Float norms (faiss's SIMD ones): their rounding is within the margin.
    const double centered_norm =
        faiss::fvec_norm_L2sqr(centered.data() + static_cast<size_t>(r) * dim_, dim_);
    const double projected_norm =
        faiss::fvec_norm_L2sqr(projected.data() + static_cast<size_t>(r) * p, p);
    const double norm = faiss::fvec_norm_L2sqr(query, dim_);
    const auto [residual_lo, residual_hi] =
        RootBracket(centered_norm - projected_norm, slack_ * centered_norm);
    const float query_constant = static_cast<float>(
        scale * projected_norm - (metric_ == Metric::kL2 ? 0.0 : 0.5 * norm) -
        slack_ * (2.0 * centered_norm + norm));
    float* row = bounds.data() + static_cast<size_t>(r) * nlist_;
    ComputeBounds(nlist_, static_cast<float>(scale), query_constant, residual_lo, residual_hi,
                  row, base_.data(), residual_lo_.data(), residual_hi_.data(), row);
    SelectQuery(query, row, nprobe, scores + static_cast<size_t>(r) * nprobe,
                lists + static_cast<size_t>(r) * nprobe);
  }
}

void PrunedCoarseStep::SelectQuery(const float* query, float* bounds, int nprobe,
                                   float* scores, int64_t* lists) const {
  constexpr float kDone = std::numeric_limits<float>::infinity();
  // Exact keys (L2 distance, or minus the inner product) of the centroids scored.
  std::vector<std::pair<int64_t, float>> scored;
  // The nprobe best exact keys so far; its worst is the threshold a bound must not exceed.
  std::vector<float> best_keys(nprobe);
  std::vector<int64_t> best_ids(nprobe);
  BestK<KeepSmallest> best(nprobe, best_keys.data(), best_ids.data());
  auto score = [&](int list) {
    const float key = ExactKey(query, list);
    scored.emplace_back(list, key);
    best.Offer(key, list);
    bounds[list] = kDone;
  };
  {
    // The nprobe smallest bounds first.
    std::vector<float> seed_bounds(nprobe);
    std::vector<int64_t> seed_ids(nprobe);
    BestK<KeepSmallest> seeds(nprobe, seed_bounds.data(), seed_ids.data());
    for (int c = 0; c < nlist_; ++c) seeds.Offer(bounds[c], c);
    for (int i = 0; i < nprobe; ++i) score(static_cast<int>(seed_ids[i]));
  }
  // Then every centroid whose bound does not exceed the threshold, smallest bounds first.
  std::vector<std::pair<float, int>> candidates;
  for (int c = 0; c < nlist_; ++c) {
    if (bounds[c] <= best.Worst()) candidates.emplace_back(bounds[c], c);
  }
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
