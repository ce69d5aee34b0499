// Pure stages of an index build: RVC's row shuffle, L2 normalisation and alpha-query expansion.
//
// RVC's train_index concatenates the feature files, shuffles the rows with numpy's global
// RandomState (np.random.shuffle, unseeded) and trains on the result. NumpyShufflePermutation
// reproduces that shuffle for a recorded seed, so a build is reproducible and, with the seed RVC
// happened to use, identical to RVC's file. AlphaQueryExpand (with NormalizeRows, blend.h) implements the
// database-side alpha-query expansion of the faiss tuning notes (nadare881):
//   x' = normalise( sum over the m nearest rows n of x (by inner product, x itself included) of
//                   max(x.n, 0)^alpha * n )
//
// Shapes: a FrameMatrix is row-major [rows, dim] float32; row numbers are 0-based int64.
// Thread-safe: free functions without state; AlphaQueryExpand reports through the BuildControl.
#ifndef TIMBRE_SERVER_BUILD_FEATURE_TRANSFORMS_H_
#define TIMBRE_SERVER_BUILD_FEATURE_TRANSFORMS_H_

#include <cstdint>
#include <random>
#include <vector>

#include "absl/status/statusor.h"
#include "server/faiss/build_control.h"
#include "server/faiss/faiss_index.h"
#include "server/io/frame_codec.h"
#include "server/serving/blend.h"  // NormalizeRows

namespace timbre {

// The permutation `np.random.seed(seed); idx = np.arange(n); np.random.shuffle(idx)` leaves in
// idx (numpy's legacy RandomState: MT19937 seeded by init_genrand, then a Fisher-Yates pass from
// the last element down, each swap partner drawn by NumpyRandomInterval). n <= 0 gives an empty
// permutation.
std::vector<int64_t> NumpyShufflePermutation(int64_t n, uint32_t seed);

// numpy's random_interval(bitgen, max): a uniform integer in [0, max] by rejection with the
// smallest all-ones mask >= max; one 32-bit draw per attempt while max <= 0xffffffff, otherwise a
// 64-bit draw made of two 32-bit outputs, the first one high. The building block of the shuffle,
// exposed so that its 64-bit branch can be checked against numpy without a 4-billion-row shuffle.
uint64_t NumpyRandomInterval(uint64_t max, std::mt19937* engine);

// Moves the entries of `permutation` that are >= first_row (rows from first_row on, in file order)
// to its end, keeping the relative order of both parts: the auto recipe holds out the set's last
// frames as whole clips, not frames scattered among their neighbours of 20 ms before and after.
void MoveRowsToEnd(int64_t first_row, std::vector<int64_t>* permutation);

// out.row(i) = rows.row(permutation[i]) for every i (numpy's big_npy[big_npy_idx]); out has
// permutation.size() rows.
// REQUIRES: 0 <= permutation[i] < rows.rows.
FrameMatrix PermuteRows(const FrameMatrix& rows, const std::vector<int64_t>& permutation);

// Database-side alpha-query expansion, a build option.
struct AlphaQueryExpansion {
  // Exponent applied to each neighbour's similarity; finite and >= 0. The notes use 3.
  float alpha = 3.0f;
  // Nearest rows summed per row, the row itself included; 0 = expansion off (AlphaQueryExpand
  // itself requires >= 1).
  int neighbours = 0;
};

// Rows up to which AlphaQueryExpand finds neighbours by exact search. Exact search of every row
// against every row costs 2 N^2 D flops: 0.4 TFLOP at 16,384 x 768 (a few seconds on one core), but
// 26 TFLOP at RVC's typical 130k x 768 (several minutes). Above this size an IVF index is used.
inline constexpr int64_t kExactNeighbourSearchMaxRows = 16384;

// Lists probed per query when the neighbour search is approximate.
inline constexpr int kApproximateNeighbourSearchNprobe = 16;

// How AlphaQueryExpand indexes `rows` normalised rows for its neighbour search, by inner product:
//   rows <= kExactNeighbourSearchMaxRows: "Flat" (exact);
//   larger: "IVF{L},Flat" with L = int(sqrt(rows)) and nprobe kApproximateNeighbourSearchNprobe.
// L = sqrt(N) rather than RVC's min(16 sqrt(N), N/39): faiss's k-means runs 25 iterations over
// min(N, 256 L) rows, so RVC's 3,333 lists at 130k x 768 would cost ~17 TFLOP to train, close to
// the exact search it replaces; with 360 lists training costs ~1.3 TFLOP and the search, probing
// 16 lists of ~360 rows, another ~1.2 TFLOP. The neighbour sets that matter here are few (m is
// small) and near, which a 16-list probe finds with high recall on clustered features.
TrainOptions NeighbourSearchRecipe(int64_t rows);

// Expands every row of `normalized_rows` ([N, D], rows already L2-normalised, e.g. by
// NormalizeRows): for row x with its `options.neighbours` nearest rows n_j by inner product (x
// itself included),
//   x' = s / max(||s||_2, 1e-9),   s = sum_j max(x.n_j, 0)^alpha * n_j.
// Equals the notes' np.power(x.n, alpha) weighting wherever the similarity is non-negative. For a
// negative similarity the notes' formula gives NaN (fractional alpha) or a weight that pushes the
// row away from that neighbour (odd alpha); here such a neighbour weighs 0.
// Similarities are recomputed in double from the rows; sums are accumulated in double.
// Neighbours are searched through an index trained by NeighbourSearchRecipe(N), single-threaded,
// in batches; progress is reported per batch and cancellation checked between batches.
// Returns [N, D]. Memory: the neighbour index holds its own copy of the rows besides the result.
// Errors: INVALID_ARGUMENT if neighbours < 1 or > N, alpha is not finite or < 0, or N or D < 1;
// CANCELLED (BuildCancelledError) if `control` is cancelled; those of FaissIndex::Train.
absl::StatusOr<FrameMatrix> AlphaQueryExpand(const FrameMatrix& normalized_rows,
                                             const AlphaQueryExpansion& options,
                                             BuildControl* control);

// AlphaQueryExpand with the neighbour search done by `neighbour_index`, which must hold exactly
// the rows of `normalized_rows` with id = row number and rank by inner product.
// Errors: those of AlphaQueryExpand; INVALID_ARGUMENT if the index's metric, dim or size do not
// match; INTERNAL if the search fails.
absl::StatusOr<FrameMatrix> AlphaQueryExpandWithIndex(const FrameMatrix& normalized_rows,
                                                      const AlphaQueryExpansion& options,
                                                      const FaissIndex& neighbour_index,
                                                      BuildControl* control);

}  // namespace timbre

#endif  // TIMBRE_SERVER_BUILD_FEATURE_TRANSFORMS_H_
