#include "server/build/candidate_choice.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace timbre {
namespace {

using timbre::v1::IndexEvaluation;

std::string Name(const IndexEvaluation& c) {
  return absl::StrFormat("%s nprobe %d k_factor %d (blend cosine %.6f, p50 %.3f ms)",
                         c.description(), c.nprobe(), c.k_factor(), c.mean_blend_cosine(),
                         c.p50_call_ms());
}

// The index of the best candidate by `better` among those `eligible`, or -1.
template <typename Eligible, typename Better>
int Best(const std::vector<IndexEvaluation>& candidates, Eligible eligible, Better better) {
  int best = -1;
  for (int i = 0; i < static_cast<int>(candidates.size()); ++i) {
    if (!eligible(candidates[i])) continue;
    if (best < 0 || better(candidates[i], candidates[best])) best = i;
  }
  return best;
}

bool Faster(const IndexEvaluation& a, const IndexEvaluation& b) {
  return a.p50_call_ms() < b.p50_call_ms();
}

bool MoreFaithful(const IndexEvaluation& a, const IndexEvaluation& b) {
  return a.mean_blend_cosine() > b.mean_blend_cosine();
}

}  // namespace

absl::StatusOr<CandidateChoice> ChooseCandidate(const std::vector<IndexEvaluation>& candidates,
                                                double min_blend_cosine, double max_call_ms,
                                                double default_bound_ms) {
  if (candidates.empty()) return absl::InvalidArgumentError("no candidates to choose from");
  if (!(max_call_ms >= 0)) {
    return absl::InvalidArgumentError(absl::StrCat("max_call_ms ", max_call_ms, " must be >= 0"));
  }
  if (max_call_ms == 0 && !(default_bound_ms > 0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("the default latency bound ", default_bound_ms, " ms must be > 0"));
  }
  CandidateChoice choice;
  choice.max_call_ms = max_call_ms > 0 ? max_call_ms : default_bound_ms;
  const double bound = choice.max_call_ms;
  auto within = [bound](const IndexEvaluation& c) { return c.p50_call_ms() <= bound; };
  auto faithful = [min_blend_cosine](const IndexEvaluation& c) {
    return c.mean_blend_cosine() >= min_blend_cosine;
  };
  choice.chosen = Best(
      candidates, [&](const IndexEvaluation& c) { return within(c) && faithful(c); }, Faster);
  if (choice.chosen >= 0) return choice;

  const std::string target = absl::StrFormat("mean blend cosine %.4f", min_blend_cosine);
  const std::string limit = absl::StrFormat("p50 <= %.3f ms", bound);
  choice.chosen = Best(candidates, within, MoreFaithful);
  if (choice.chosen >= 0) {
    choice.notes.push_back(
        absl::StrCat("no candidate reached ", target, " within ", limit,
                     "; kept the most faithful one within it: ", Name(candidates[choice.chosen])));
  } else {
    choice.chosen = Best(
        candidates, [](const IndexEvaluation&) { return true; }, Faster);
    choice.notes.push_back(
        absl::StrCat("no candidate ran within ", limit,
                     "; kept the fastest one: ", Name(candidates[choice.chosen])));
  }
  const int above = Best(
      candidates, [&](const IndexEvaluation& c) { return !within(c) && faithful(c); }, Faster);
  if (above >= 0) {
    choice.notes.push_back(absl::StrCat("the fastest candidate reaching ", target,
                                        " is over the bound: ", Name(candidates[above]),
                                        "; raise max_call_ms to keep it"));
  }
  return choice;
}

}  // namespace timbre
