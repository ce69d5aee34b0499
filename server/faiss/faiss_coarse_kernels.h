// The integer kernels of the pruned exact coarse step (faiss_pruned_coarse_step.h): coding
// vectors in 8 bits, the integer products of coded queries and centroids, the bounds that follow
// from them and the centroids under a threshold, each portable and with AVX-512 (VNNI), the
// products also with AMX. A step picks one set when it is created.
//
// Part of the faiss adapter (faiss_index.h): only its files use these functions. They do not
// touch faiss.
#ifndef TIMBRE_SERVER_FAISS_FAISS_COARSE_KERNELS_H_
#define TIMBRE_SERVER_FAISS_FAISS_COARSE_KERNELS_H_

#include <cstdint>

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

// A query coded (faiss_pruned_coarse_step.h): t, ||q'||^2 and ||f||^2, in float.
struct QueryCode {
  float scale = 1.0f;
  float centered_norm = 0.0f;
  float error_norm = 0.0f;
};

// The per-centroid arrays of a bound (PrunedCoarseStep's members of the same names).
struct CentroidTerms {
  const int32_t* code_sums;
  const float* base;
  const float* scale;
  const float* error_norm;
  const float* code_norm;
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

// The kernels a step runs: all portable, AVX-512 with VNNI, or the same with AMX's products.
struct Kernels {
  // Codes q' = query - mean (dim values) into code (dim bytes, b + kQueryOffset); *out gets t
  // and the norms.
  void (*code_query)(const float* query, const float* mean, int dim, uint8_t* code, QueryCode* out);
  // products[r * stride + c] = <coded query r, codes of centroid c> for `rows` coded queries
  // ([rows][groups * 4] bytes, groups a multiple of kGroupTile) and `blocks` blocks of codes (an
  // even count). Both buffers hold rows rounded up to kRowTile.
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
