// Sq8Scan: the scan of the chosen lists of an IVF index with 8-bit scalar codes ("IVF1436,SQ8",
// and behind a PCA "PCA128,IVF1436,SQ8,RFlat"), in place of faiss's search_preassigned.
//
// faiss 1.7.3 decodes every code again for every query that scans its list (per dimension: widen,
// offset by half a step, scale, shift, subtract, multiply-add). Decoding is affine per dimension,
// value_i = vmin_i + (code_i + 0.5) * step_i, so for a query (minus the list's centroid when the
// codes hold residuals) t, <t, value> = <t, vmin + step / 2> + sum_i (t_i step_i) code_i: one set
// of weights per (query, list), then one multiply-add per code byte. With the squared norm of every
// decoded vector computed at creation, the L2 distance is ||t||^2 - 2 <t, value> + ||value||^2,
// and the inner product the coarse score plus <t, value> (faiss's formulas). The bytes are
// multiplied with an AVX2 kernel where the CPU has one.
//
// Results are faiss's up to float rounding: the same vectors decoded, the same distances summed in
// another order and, for L2, expanded (||t||^2 - 2 <t, value> + ||value||^2, whose rounding grows
// with ||t||^2 rather than with the distance; clamped at 0). Candidates are offered to faiss's heap
// list by list in the coarse step's order, as faiss does.
//
// Part of the faiss adapter (faiss_index.h): only its files use this class.
// Thread-safe (immutable once created).
#ifndef TIMBRE_SERVER_FAISS_FAISS_SQ8_SCAN_H_
#define TIMBRE_SERVER_FAISS_FAISS_SQ8_SCAN_H_

#include <cstdint>
#include <memory>
#include <vector>

#include "server/faiss/search_types.h"

namespace faiss {
struct IndexIVF;
}  // namespace faiss

namespace timbre {

class Sq8Scan {
 public:
  // The scan of `ivf` (not copied: must outlive the scan), or null if its codes are not 8-bit
  // scalar codes (faiss's QT_8bit or QT_8bit_uniform) or it holds vectors in lists timbre cannot
  // read without copying. Reads every code once.
  static std::unique_ptr<Sq8Scan> Create(const faiss::IndexIVF& ivf);

  // For each of `count` queries ([count, d] in the IVF index's space): the `k` nearest vectors in
  // its `nprobe` lists (`lists` and `coarse_scores` [count, nprobe] as the coarse step wrote them;
  // a list id of -1 is skipped), as scores and ids [count, k], nearest first, -1 where missing.
  // REQUIRES: k >= 1, nprobe >= 1.
  void Search(const float* queries, int64_t count, int64_t k, int nprobe, const int64_t* lists,
              const float* coarse_scores, float* scores, int64_t* ids) const;

  // Heap bytes of the per-vector norms and the per-dimension decoding constants.
  int64_t memory_bytes() const;

 private:
  explicit Sq8Scan(const faiss::IndexIVF& ivf);
  // Writes t_i * step_i into `weights` ([d]) and returns <t, offset_>.
  float Weigh(const float* t, float* weights) const;

  const faiss::IndexIVF& ivf_;
  // sums[v] = <weights, code v> for `count` consecutive codes: the AVX2 kernel where the CPU has
  // AVX2 and FMA, a portable loop otherwise.
  void (*dot_codes_)(const float* weights, const uint8_t* codes, int dim, int count,
                     float* sums) = nullptr;
  int dim_ = 0;
  Metric metric_ = Metric::kL2;
  bool by_residual_ = false;
  std::vector<float> offset_;  // [d]: vmin + step / 2, the value of a code byte 0 plus rounding
  std::vector<float> step_;    // [d]: vdiff / 255
  // Squared norms of the decoded vectors, list by list; list l starts at norm_start_[l].
  std::vector<float> norms_;
  std::vector<int64_t> norm_start_;
};

}  // namespace timbre

#endif  // TIMBRE_SERVER_FAISS_FAISS_SQ8_SCAN_H_
