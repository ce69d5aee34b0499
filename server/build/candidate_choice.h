// Which measured candidate the auto recipe keeps.
//
// Candidates are eligible when their p50 per call is within the latency bound. Among the eligible
// ones that reach the fidelity target (mean blend cosine), the fastest is kept. When none reaches
// it, the most faithful eligible one is kept and a note says so, naming any candidate that reached
// the target only above the bound. When none is within the bound (an explicit bound below every
// candidate), the fastest is kept, with a note.
//
// The default bound is what the caller names, in the auto recipe the p50 of RVC's own recipe
// (IVF{RvcListCount(N)},Flat at nprobe 1) searched without timbre's pruned steps, as a server
// before them searched it: by default a kept index costs no more than RVC's recipe did.
//
// Thread-safe: pure functions.
#ifndef TIMBRE_SERVER_BUILD_CANDIDATE_CHOICE_H_
#define TIMBRE_SERVER_BUILD_CANDIDATE_CHOICE_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "timbre/v1/version_metadata.pb.h"

namespace timbre {

struct CandidateChoice {
  int chosen = 0;            // index into the candidates
  double max_call_ms = 0.0;  // the bound applied
  std::vector<std::string> notes;
};

// Chooses among `candidates` (measured, in the order built) with the fidelity target
// `min_blend_cosine` and the bound `max_call_ms`, or `default_bound_ms` when it is 0.
// Errors: INVALID_ARGUMENT for no candidates, a negative or NaN max_call_ms, or a default bound
// that is needed and not > 0.
absl::StatusOr<CandidateChoice> ChooseCandidate(
    const std::vector<timbre::v1::IndexEvaluation>& candidates, double min_blend_cosine,
    double max_call_ms, double default_bound_ms);

}  // namespace timbre

#endif  // TIMBRE_SERVER_BUILD_CANDIDATE_CHOICE_H_
