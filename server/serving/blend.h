// RVC's retrieval blend, with its two edge cases repaired.
//
// For each frame q with neighbours (score_j, id_j), j < k:
//   w_j = (1 / score_j)^2, normalised to sum 1           (RVC: weight = np.square(1 / score))
//   retrieved = sum_j w_j * stored[id_j]
//   out = retrieved * index_rate + (1 - index_rate) * q
// computed in float32 in the same order as RVC's numpy code, so results agree to float32
// rounding. Repairs:
//   - exact match: neighbours whose score is <= 0, or whose weight overflows float32, share all the
//     weight equally (the limit of 1/score^2 as score -> 0) instead of producing NaN;
//   - missing neighbour (id -1, a probed list shorter than k): skipped, never read; a frame with no
//     neighbour at all is returned unchanged.
// For inner-product indexes the score is a similarity; the blend uses 2 - 2 * score, the squared
// L2 distance between unit vectors, in place of the L2 score.
//
// NormalizeRows scales rows to unit length: the queries of an inner-product (cosine) index, and
// the rows such an index is built from.
//
// Thread-safe: pure functions.
#ifndef TIMBRE_SERVER_SERVING_BLEND_H_
#define TIMBRE_SERVER_SERVING_BLEND_H_

#include <cstdint>

#include "absl/functional/function_ref.h"
#include "server/faiss/search_types.h"
#include "server/io/frame_codec.h"

namespace timbre {

// Blends `rows` frames of `dim` values.
//   frames:     [rows, dim] query frames
//   scores/ids: [rows, k] search results, nearest first
//   stored:     returns the stored vector (dim values) of an id in [0, index size), read as
//               StoredFloat: it need not be aligned
//   out:        [rows, dim]; may alias `frames`
// REQUIRES: 0 <= index_rate <= 1, k >= 1.
void BlendFrames(const float* frames, int64_t rows, int dim, const float* scores,
                 const int64_t* ids, int k, Metric metric, float index_rate,
                 absl::FunctionRef<const float*(int64_t)> stored, float* out);

// Norms below this divide by it instead (the faiss tuning notes' eps).
inline constexpr double kRowNormFloor = 1e-9;

// Divides each row by max(||row||_2, kRowNormFloor) in place, as the notes'
// X / np.maximum(eps, norm): nonzero rows get unit length, an all-zero row stays zero (never NaN).
void NormalizeRows(FrameMatrix* rows);

}  // namespace timbre

#endif  // TIMBRE_SERVER_SERVING_BLEND_H_
