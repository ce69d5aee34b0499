// PrunedCoarseStep: the exact coarse step of an IVF index with a flat coarse quantizer, computed
// without touching every dimension of every centroid.
//
// Built once from the centroids alone (so an RVC added_*.index file gets it at load, without a
// rebuild): an orthonormal basis P of the top `dims` principal directions of the centroids, the
// centroids' projections P(c - mean) and the norms of their residuals r_c outside it. For a query
// q, ||P(q - c)||^2 + (||r_q|| - ||r_c||)^2 is a lower bound of ||q - c||^2, computed with one
// small sgemm per block of queries ([queries, dims] x [dims, nlist] instead of [queries, dim] x
// [dim, nlist]). Per query, the `nprobe` centroids with the smallest bounds get their exact
// distance; every other centroid whose bound does not exceed the nprobe-th best exact distance
// found so far gets it too, in the order of their bounds; the rest cannot be among the nearest.
// Inner-product indexes use the same bound through <q, c> = (||q||^2 + ||c||^2 - ||q - c||^2) / 2.
//
// Exactness: the bounds are lowered by a margin of 4 (dim + dims + 16) float roundings relative to
// the norms involved, above the worst-case rounding error of the float computations, so that a
// centroid is skipped only when its exact distance cannot reach the kept ones. Exact distances are
// faiss's own (fvec_L2sqr, fvec_inner_product: what faiss's flat quantizer computes for batches
// below its BLAS threshold), and the result is faiss's: the scored centroids are offered to
// faiss's heap in list order, as faiss offers every centroid, and a skipped centroid is worse
// than every list kept, so the same lists come out in the same order, ties included (for L2 of
// equal distances the smaller list id first).
//
// Part of the faiss adapter (faiss_index.h): only its files use this class.
// Thread-safe (immutable once created).
#ifndef TIMBRE_SERVER_FAISS_FAISS_PRUNED_COARSE_STEP_H_
#define TIMBRE_SERVER_FAISS_FAISS_PRUNED_COARSE_STEP_H_

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "server/faiss/search_types.h"

namespace timbre {

class PrunedCoarseStep {
 public:
  // `dims` that chooses the projection from the centroids: the fewest of kChosenDims directions
  // that keep kChosenVariance of the centroids' variance, otherwise kLargestChosenDims.
  static constexpr int kChooseDims = -1;
  static constexpr int kChosenDims[] = {64, 128, 192};
  static constexpr int kLargestChosenDims = 256;
  static constexpr double kChosenVariance = 0.85;
  // Centroids of fewer dimensions are scored in full when the projection is chosen (the caller's
  // decision: Create does not check it). A chosen projection is at least 64 directions, and in
  // 128-d centroids (the lists of a PCA128 index) the bounds prune too little to pay for it:
  // 540 against 370 us per 16 queries on speech-like frames, while 256-d RVC indexes gain.
  static constexpr int kChosenMinDim = 3 * kChosenDims[0];

  // `centroids` ([nlist, dim], not copied: must outlive the step) are the flat quantizer's;
  // `dims` (>= 1, or kChooseDims) is the size of the projection, clamped to dim / 2 (at least 1).
  // Errors: INVALID_ARGUMENT for nlist < 1, dim < 2 or dims < 1 other than kChooseDims; INTERNAL
  // if faiss's PCA fails.
  static absl::StatusOr<std::unique_ptr<PrunedCoarseStep>> Create(const float* centroids,
                                                                  int nlist, int dim,
                                                                  Metric metric, int dims);

  // Writes, for each of `count` queries ([count, dim]), the `nprobe` nearest lists (ids into
  // `lists`, scores as faiss's flat quantizer computes them into `scores`, both [count, nprobe]),
  // nearest first. `threads` (>= 1) share the queries.
  // REQUIRES: 1 <= nprobe <= nlist.
  void Assign(const float* queries, int64_t count, int nprobe, int threads, float* scores,
              int64_t* lists) const;

  // Size of the projection used.
  int dims() const { return dims_; }
  // Heap bytes of the basis, the projected centroids and the per-centroid constants.
  int64_t memory_bytes() const;

 private:
  PrunedCoarseStep() = default;
  void AssignBlock(const float* queries, int rows, int nprobe, float* scores,
                   int64_t* lists) const;
  void SelectQuery(const float* query, float* bounds, int nprobe, float* scores,
                   int64_t* lists) const;
  float ExactKey(const float* query, int list) const;

  const float* centroids_ = nullptr;
  int nlist_ = 0;
  int dim_ = 0;
  int dims_ = 0;
  Metric metric_ = Metric::kL2;
  // Relative margin of the bounds (see the header comment).
  float slack_ = 0.0f;
  std::vector<float> mean_;       // [dim], the centroids' mean
  std::vector<float> basis_;      // [dims, dim], orthonormal rows
  std::vector<float> projected_;  // [nlist, dims], P(c - mean)
  // Per centroid: the part of its bound that does not depend on the query, margin included.
  std::vector<float> base_;
  // Per centroid: lower and upper ends of ||r_c||, rounding included.
  std::vector<float> residual_lo_;
  std::vector<float> residual_hi_;
};

}  // namespace timbre

#endif  // TIMBRE_SERVER_FAISS_FAISS_PRUNED_COARSE_STEP_H_
