// PrunedCoarseStep: the exact coarse step of an IVF index with a flat coarse quantizer, computed
// mostly in 8-bit integers.
//
// Built once from the centroids alone (so an RVC added_*.index file gets it at load, without a
// rebuild): the centroids minus their mean, c' = c - mean, as 8-bit codes a_c with one scale s_c
// per centroid (c' ~ s_c a_c), and per centroid the norms of the code's value and of its error
// e_c = c' - s_c a_c. A block of queries is coded the same way (q' = q - mean ~ t_q b_q, error
// f_q), and one pass of integer multiply-adds (AMX or AVX-512 VNNI where the CPU has them) gives
// every <b_q, a_c> exactly. Since <q', c'> = t_q s_c <b_q, a_c> + <f_q, s_c a_c> + <q', e_c>,
// Cauchy-Schwarz bounds the error of the integer estimate by ||f_q|| ||s_c a_c|| + ||q'|| ||e_c||,
// which gives a lower bound of every centroid's distance (L2: ||q'||^2 + ||c'||^2 - 2 <q', c'>;
// inner product: -<q, c> = -<q', c'> - <mean, c'> - <q, mean>). Per query, the `nprobe`
// centroids with the smallest bounds get their exact distance; every other centroid whose bound
// does not exceed the nprobe-th best exact distance found so far gets it too, in the order of
// their bounds; the rest cannot be among the nearest. On RVC's 768-d IVF3333 index a query needs
// 1.7 exact distances on average on the benchmark's Gaussian frames and 3.4 on speech-like ones.
//
// Exactness: the bounds are lowered by a margin of 4 (dim + 16) float roundings relative to the
// norms involved, above the worst-case rounding error of the float computations, so that a
// centroid is skipped only when its exact distance cannot reach the kept ones. Exact distances are
// faiss's own (fvec_L2sqr, fvec_inner_product: what faiss's flat quantizer computes for batches
// below its BLAS threshold), and the result is faiss's: the scored centroids are offered to
// faiss's heap in list order, as faiss offers every centroid, and a skipped centroid is worse
// than every list kept, so the same lists come out in the same order, ties included (for L2 of
// equal distances the smaller list id first).
//
// The integer kernels are in faiss_coarse_kernels.h. Part of the faiss adapter (faiss_index.h):
// only its files use this class.
// Thread-safe (immutable once created).
#ifndef TIMBRE_SERVER_FAISS_FAISS_PRUNED_COARSE_STEP_H_
#define TIMBRE_SERVER_FAISS_FAISS_PRUNED_COARSE_STEP_H_

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "server/faiss/faiss_coarse_kernels.h"
#include "server/faiss/search_types.h"

namespace timbre {

class PrunedCoarseStep {
 public:
  // The integer kernels: the best this CPU runs (AMX's tiles where the CPU has them and Linux
  // allows them, else AVX-512 VNNI, else portable C++), or at most AVX-512 VNNI, or the portable
  // ones (for tests and comparisons).
  enum class Kernel { kBest, kAvx512Vnni, kPortable };
  // The largest dimension: keeps every integer product sum within int32.
  static constexpr int kMaxDim = 1 << 16;

  // `centroids` ([nlist, dim], not copied: must outlive the step) are the flat quantizer's.
  // Errors: INVALID_ARGUMENT for nlist < 1 or a dim outside 1..kMaxDim, or for centroids that
  // are not finite.
  static absl::StatusOr<std::unique_ptr<PrunedCoarseStep>> Create(const float* centroids, int nlist,
                                                                  int dim, Metric metric,
                                                                  Kernel kernel = Kernel::kBest);

  // Writes, for each of `count` queries ([count, dim]), the `nprobe` nearest lists (ids into
  // `lists`, scores as faiss's flat quantizer computes them into `scores`, both [count, nprobe]),
  // nearest first. `threads` (>= 1) share the queries.
  // REQUIRES: 1 <= nprobe <= nlist.
  void Assign(const float* queries, int64_t count, int nprobe, int threads, float* scores,
              int64_t* lists) const;

  // The kernels in use: kBest means AMX, kAvx512Vnni and kPortable what they say.
  Kernel kernel() const { return kernel_; }
  // Heap bytes of the codes and the per-centroid constants.
  int64_t memory_bytes() const;

 private:
  PrunedCoarseStep() = default;
  void AssignBlock(const float* queries, int rows, int nprobe, float* scores,
                   int64_t* lists) const;
  struct Scratch;
  // Writes the centroids whose bound (of the `count`) does not exceed a threshold, in order;
  // returns their count.
  using BelowFn = int (*)(const float* bounds, int count, float threshold, int* ids);
  // The nprobe nearest lists of `query` from its bounds (in `scratch`, the smallest `smallest`).
  void SelectQuery(const float* query, float smallest, int nprobe, BelowFn below, Scratch& scratch,
                   float* scores, int64_t* lists) const;
  float ExactKey(const float* query, int list) const;

  const float* centroids_ = nullptr;
  int nlist_ = 0;
  int dim_ = 0;
  int groups_ = 0;  // dim rounded up to a multiple of 64, in groups of 4 bytes
  int blocks_ = 0;  // nlist in blocks of coarse_kernels::kBlock
  Metric metric_ = Metric::kL2;
  Kernel kernel_ = Kernel::kPortable;
  // Relative margin of the bounds (see the header comment).
  float slack_ = 0.0f;
  std::vector<float> mean_;  // [dim], the centroids' mean
  // The codes a_c, [blocks][groups][kBlock][4]: 4 consecutive dimensions of kBlock centroids
  // side by side, zero beyond dim and nlist.
  std::vector<int8_t> codes_;
  coarse_kernels::CodedTerms terms_;  // per centroid
};

}  // namespace timbre

#endif  // TIMBRE_SERVER_FAISS_FAISS_PRUNED_COARSE_STEP_H_
