// PrunedListScan: the exact scan of the chosen lists of an IVF-Flat index (RVC's "IVF3333,Flat"),
// mostly in 8-bit integers, in place of faiss's search_preassigned.
//
// The pruned coarse step's bounds (faiss_pruned_coarse_step.h) applied to the vectors of every
// list, with the list's centroid as their mean: built once from the index alone (an RVC
// added_*.index file gets it at load), the vectors minus their list's centroid, x' = x - c, as
// 8-bit codes with one scale per vector, and per vector the norms of the code's value and of its
// error. Per query and list scanned, the query minus the centroid is coded the same way, one pass
// of integer multiply-adds (AVX-512 VNNI where the CPU has it) over the list's codes gives a lower
// bound of every vector's distance (L2) or minus its inner product, and, over all the lists a
// query scans, the `k` vectors with the smallest bounds get their exact distance; then every
// other vector whose bound does not exceed the k-th best exact distance found so far, in the
// order of their bounds. The rest cannot be among the k nearest. A list's codes are a quarter of
// its floats, and most exact reads are skipped: on the benchmark's 768-d IVF3333 index (Gaussian
// frames, k 8) a query's list holds 65 vectors on average and 17 of them are read in float; at
// nprobe 8, 18 of ~1,990.
//
// Exactness, as for the coarse step: the bounds carry a margin above the worst-case rounding of
// the float computations; exact distances are faiss's (fvec_L2sqr, fvec_inner_product: what its
// IVF-Flat scanner computes), offered to faiss's heap list by list in the coarse step's order and
// in list order within a list, as faiss offers every vector. A skipped vector is worse than the
// k kept, so the same vectors come out in the same order, ties included. A vector that is not
// finite has no code: it always gets its exact distance.
//
// Part of the faiss adapter (faiss_index.h): only its files use this class.
// Thread-safe (immutable once created).
#ifndef TIMBRE_SERVER_FAISS_FAISS_PRUNED_LIST_SCAN_H_
#define TIMBRE_SERVER_FAISS_FAISS_PRUNED_LIST_SCAN_H_

#include <cstdint>
#include <memory>
#include <vector>

#include "server/faiss/faiss_coarse_kernels.h"
#include "server/faiss/faiss_pruned_coarse_step.h"
#include "server/faiss/search_types.h"

namespace faiss {
struct IndexIVF;
}  // namespace faiss

namespace timbre {

class PrunedListScan {
 public:
  // kBest and kAvx512Vnni: AVX-512 VNNI where the CPU has it (one query per list: AMX's tiles
  // would compute 15 rows for nothing); kPortable: portable C++.
  using Kernel = PrunedCoarseStep::Kernel;

  // The scan of `ivf` (not copied: must outlive the scan) with its flat quantizer's `centroids`
  // ([nlist, d]), or null if it is not exactly an IndexIVFFlat with L2 or inner-product metric,
  // its lists are not readable in place, or d exceeds PrunedCoarseStep::kMaxDim. Reads every
  // vector once.
  static std::unique_ptr<PrunedListScan> Create(const faiss::IndexIVF& ivf, const float* centroids,
                                                Kernel kernel = Kernel::kBest);

  // For each of `count` queries ([count, d]): the `k` nearest vectors in its `nprobe` lists
  // (`lists` [count, nprobe] as the coarse step wrote them; a list id of -1 is skipped), as scores
  // and ids [count, k], nearest first, -1 where missing: faiss's search_preassigned's result.
  // REQUIRES: k >= 1, nprobe >= 1.
  void Search(const float* queries, int64_t count, int64_t k, int nprobe, const int64_t* lists,
              float* scores, int64_t* ids) const;

  // The kernels in use: kAvx512Vnni or kPortable.
  Kernel kernel() const { return kernel_; }
  // Heap bytes of the codes and the per-vector constants.
  int64_t memory_bytes() const;

 private:
  explicit PrunedListScan(const faiss::IndexIVF& ivf) : ivf_(ivf) {}
  struct Scratch;
  // The kernel set of kernel_.
  const coarse_kernels::Kernels& KernelSet() const;
  // Writes the bounds of the vectors of the query's lists into scratch (list after list).
  void Bound(const float* query, int nprobe, const int64_t* lists, Scratch& scratch) const;
  // The k nearest of the bounded vectors (see the header comment).
  void Select(const float* query, int64_t k, int nprobe, const int64_t* lists, Scratch& scratch,
              float* scores, int64_t* ids) const;

  const faiss::IndexIVF& ivf_;
  const float* centroids_ = nullptr;
  int dim_ = 0;
  int groups_ = 0;  // dim rounded up to a multiple of 64, in groups of 4 bytes
  Metric metric_ = Metric::kL2;
  Kernel kernel_ = Kernel::kPortable;
  float slack_ = 0.0f;
  // List l's codes start at block first_block_[l] (blocks of coarse_kernels::kBlock vectors, a
  // list starting on a new block); its vectors' constants at slot kBlock * first_block_[l].
  std::vector<int64_t> first_block_;
  std::vector<int8_t> codes_;         // [blocks][groups][kBlock][4], as the coarse step's
  coarse_kernels::CodedTerms terms_;  // per slot; unbounded for a vector that is not finite
};

}  // namespace timbre

#endif  // TIMBRE_SERVER_FAISS_FAISS_PRUNED_LIST_SCAN_H_
