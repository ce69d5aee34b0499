// The integer kernels of the pruned exact coarse step (faiss_pruned_coarse_step.h) and list scan
// (faiss_pruned_list_scan.h): coding vectors in 8 bits and the terms of their bounds, the integer
// products of coded queries and coded vectors (centroids, or a list's vectors), the bounds that
// follow from them and the vectors under a threshold, each portable and with AVX-512 (VNNI), the
// products also with AMX. A step or scan picks one set when it is created.
//
// Part of the faiss adapter (faiss_index.h): only its files use these functions. They do not
// touch faiss.
#ifndef TIMBRE_SERVER_FAISS_FAISS_COARSE_KERNELS_H_
#define TIMBRE_SERVER_FAISS_FAISS_COARSE_KERNELS_H_

#include <cstddef>
#include <cstdint>
#include <vector>

namespace timbre {
namespace coarse_kernels {

// Centroids per block of the codes' layout: [blocks][groups][kBlock][4] signed bytes, 4
// consecutive dimensions of kBlock centroids side by side.
constexpr int kBlock = 16;
// Queries and groups of 4 dimensions per AMX tile; coded queries come in whole tiles.
constexpr int kRowTile = 16;
constexpr int kGroupTile = 16;
// The codes of a query are b + kQueryOffset (0..254), as the integer kernels want them unsigned.
constexpr int kQueryOffset = 128;
constexpr int kCodeMax = 127;

// The scale of the codes of a vector whose largest magnitude is `largest`: largest / kCodeMax,
// or 1 when that is not a normal float (all codes 0 then, the vector itself the error), so that
// dividing by it stays finite.
float CodeScale(double largest);

// The relative margin of the bounds for `dim` dimensions: 4 (dim + 16) float roundings
// (faiss_pruned_coarse_step.h).
float BoundSlack(int dim);

// The per-vector arrays of a bound (CodedTerms'), for centroids or list vectors.
struct CentroidTerms {
  const int32_t* code_sums;
  const float* base;
  const float* scale;
  const float* error_norm;
  const float* code_norm;
};

// A coded vector's terms of its bounds (one entry of each array of CentroidTerms).
struct VectorTerms {
  int32_t code_sum;
  float scale;
  float code_norm;
  float error_norm;
  float base;
};

// The per-vector terms of a coded set, one entry per slot of its codes' layout.
class CodedTerms {
 public:
  // `slots` entries of zeros.
  void Reset(size_t slots);
  void Set(size_t slot, const VectorTerms& terms);
  // A vector whose bounds must not exclude it (it has no code): a base of -infinity.
  void SetUnbounded(size_t slot);
  // The arrays of a bound, from `slot` on.
  CentroidTerms From(size_t slot) const;
  int64_t memory_bytes() const;

 private:
  std::vector<int32_t> code_sums_;  // sum of the codes
  std::vector<float> scale_;        // s
  std::vector<float> code_norm_;    // ||s a||, rounded up
  std::vector<float> error_norm_;   // ||e||, rounded up
  // The part of the bound that does not depend on the query, margin included.
  std::vector<float> base_;
};

// Codes v' = vector - mean (dim finite values; ||mean||^2 is `mean_norm`) into slot `slot` of
// `block` (one block of the codes' layout, [groups][kBlock][4]) and returns its terms, for L2
// (`l2`) or inner product, with the margin `slack`.
VectorTerms CodeVector(const float* vector, const float* mean, double mean_norm, int dim, bool l2,
                       float slack, int8_t* block, int slot);

// A query coded (faiss_pruned_coarse_step.h): t, ||q'||^2 and ||f||^2, in float.
struct QueryCode {
  float scale = 1.0f;
  float centered_norm = 0.0f;
  float error_norm = 0.0f;
};

// The per-query terms of a bound: bound[c] = base[c] + constant - weight * (scale * scale[c] *
// <b, a_c> + norm * error_norm[c] + error * code_norm[c]).
struct QueryTerms {
  float weight;
  float scale;
  float constant;
  float norm;
  float error;
};

// A query's terms from its code, its squared norm and its product with the mean (used for inner
// product only).
QueryTerms TermsOf(const QueryCode& code, float norm, float mean_product, bool l2, float slack);

// The kernels a step runs: all portable, AVX-512 with VNNI, or the same with AMX's products.
struct Kernels {
  // Codes q' = query - mean (dim values) into code (dim bytes, b + kQueryOffset); *out gets t
  // and the norms.
  void (*code_query)(const float* query, const float* mean, int dim, uint8_t* code, QueryCode* out);
  // products[r * stride + c] = <coded query r, codes of centroid c> for `rows` coded queries
  // ([rows][groups * 4] bytes, groups a multiple of kGroupTile) and `blocks` blocks of codes.
  // Both buffers hold rows rounded up to kRowTile.
  void (*products)(const uint8_t* queries, int rows, const int8_t* codes, int groups, int blocks,
                   int32_t* products, int stride);
  // Writes the `nlist` bounds of one query from its products (offset included); returns the
  // smallest. A bound that is not finite (norms that overflow float) is -infinity: it cannot
  // exclude its centroid.
  float (*bounds)(int nlist, const QueryTerms& query, const CentroidTerms& centroids,
                  const int32_t* products, float* bounds);
  // Writes the centroids whose bound does not exceed `threshold` into `ids`, in order; returns
  // their count.
  int (*below)(const float* bounds, int nlist, float threshold, int* ids);
};

// The kernel sets.
extern const Kernels kPortableKernels;
extern const Kernels kVnniKernels;
extern const Kernels kAmxKernels;

// True if the CPU has AVX-512 F, BW, VL and VNNI.
bool CpuHasVnni();
// True if the CPU has AMX's int8 tiles and Linux lets this process use them (asked once).
bool CpuHasAmx();

}  // namespace coarse_kernels
}  // namespace timbre

#endif  // TIMBRE_SERVER_FAISS_FAISS_COARSE_KERNELS_H_
