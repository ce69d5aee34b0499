// Candidate evaluation: how faithful and how fast one candidate index is, measured against exact
// search on held-out frames. The `auto` recipe builds several candidates and keeps the fastest one
// that meets its fidelity target.
//
// Fidelity is measured two ways, both against a "Flat" index over the same stored vectors:
//   - recall@k, the share of the exact k nearest neighbours the candidate also returns;
//   - the cosine between the frame RVC's blend (blend.h) makes from the candidate's neighbours and
//     the one it makes from the exact neighbours, which is what a listener hears the difference
//     in. Each blend reads the stored vectors of its own index (StoredVector), so a candidate that
//     stores compressed vectors is charged for them too.
// Speed is the latency of what the server does per real-time call: a search of `call_frames`
// frames on one thread followed by the blend.
//
// Thread-safe: a pure function of its arguments; it reads the indexes through their const API and
// reports through the BuildControl. Latency figures are only meaningful when the caller does not
// run other work on the same core meanwhile.
#ifndef TIMBRE_SERVER_BUILD_CANDIDATE_EVALUATION_H_
#define TIMBRE_SERVER_BUILD_CANDIDATE_EVALUATION_H_

#include "absl/status/statusor.h"
#include "server/faiss/build_control.h"
#include "server/faiss/faiss_index.h"
#include "server/faiss/search_types.h"
#include "server/io/frame_codec.h"

namespace timbre {

struct EvaluationOptions {
  // Neighbours per query for both indexes and the k of recall@k; >= 1 and <= the index size.
  // Default 8, RVC's k. The candidate's SearchParams::k must equal it.
  int k = 8;
  // index_rate of the blends compared, in [0, 1]. Default 1: the blends are the retrieved part
  // alone. At RVC's 0.75 both blends would share 0.25 x the query frame, which pulls every cosine
  // towards 1 and hides the differences the comparison is for.
  float index_rate = 1.0f;
  // Frames per timed call, >= 1. Default 16: RVC's real-time block (0.25 s + 0.05 s crossfade
  // + 0.01 s at 50 frames/s).
  int call_frames = 16;
  // Timed calls, >= 1. Default 200, enough for a stable p99.
  int latency_calls = 200;
};

struct CandidateFigures {
  // Mean over queries of |candidate ids AND exact ids| / k, in [0, 1]. Missing neighbours (id -1)
  // count as misses; so do ties broken differently among equidistant stored vectors.
  double recall_at_k = 0.0;
  // Mean over queries of cosine(blend with the candidate's neighbours, blend with the exact
  // neighbours), in [-1, 1]; 1 where both blends are zero.
  double mean_blend_cosine = 0.0;
  // Median and 99th percentile (nearest rank) of one call's wall time in microseconds: a
  // FaissIndex::Search of call_frames consecutive held-out frames (wrapping around) with
  // `params` on one thread, plus BlendFrames of the result.
  double p50_call_us = 0.0;
  double p99_call_us = 0.0;
};

// Evaluates `candidate`, searched with `params`, against `exact` on `held_out_queries`
// ([queries, dim], frames that are not among the stored vectors).
// REQUIRES: `exact` is a "Flat" index over the same vectors as `candidate` with the same ids.
// Progress: the fidelity pass reports up to 0.5, the latency pass up to 1; cancellation is checked
// between batches and between timed calls.
// Errors: INVALID_ARGUMENT if `exact` is not Flat; the two indexes differ in dim, metric or size;
// the queries' dim differs or there are no queries; params.k != options.k; params.nprobe is
// outside [0, candidate.nlist()]; an option is out of range. CANCELLED (BuildCancelledError) if
// `control` is cancelled. INTERNAL if a search fails.
absl::StatusOr<CandidateFigures> EvaluateCandidate(
    const FaissIndex& candidate, const SearchParams& params, const FaissIndex& exact,
    const FrameMatrix& held_out_queries, const EvaluationOptions& options, BuildControl* control);

// The latency pass of EvaluateCandidate alone: p50_call_us and p99_call_us of `candidate`
// searched with `params` (the fidelity figures are left 0). Progress: reports from 0.5 up to 1.
// Errors: as EvaluateCandidate's that concern these arguments (queries, k, nprobe, options);
// CANCELLED; INTERNAL if a search fails.
absl::StatusOr<CandidateFigures> TimeCandidate(const FaissIndex& candidate,
                                               const SearchParams& params,
                                               const FrameMatrix& held_out_queries,
                                               const EvaluationOptions& options,
                                               BuildControl* control);

}  // namespace timbre

#endif  // TIMBRE_SERVER_BUILD_CANDIDATE_EVALUATION_H_
