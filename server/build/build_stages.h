// The stages of an index build and their share of its progress, in one table (kBuildStages).
//
// A build runs a sequence of steps, each one stage; some stages run more than once (the auto
// recipe trains and evaluates every candidate). BuildSteps() lists the steps of a plan with the
// part of the build's progress each one covers: a step's share is its stage's weight divided by
// the sum of the weights of all the plan's steps. The steps tile [0, 1] in order, the first
// beginning at 0 and the last ending at exactly 1, so progress rises with every step and reaches
// 1 when the build ends, whatever the recipe.
//
// Thread-safe: constants and pure functions.
#ifndef TIMBRE_SERVER_BUILD_BUILD_STAGES_H_
#define TIMBRE_SERVER_BUILD_BUILD_STAGES_H_

#include <vector>

#include "absl/strings/string_view.h"
#include "server/build/build_recipe.h"

namespace timbre {

// In the order a build runs them.
enum class BuildStage {
  kLoading,      // every file of the feature set read, in file-name order
  kShuffling,    // rows permuted as numpy's RandomState(seed).shuffle does
  kCompressing,  // k-means of a large set to the plan's centroids
  kNormalizing,  // rows L2-normalised (cosine)
  kExpanding,    // alpha query expansion of the normalised rows
  kReference,    // auto: the exact (Flat) index the candidates are measured against
  kTraining,     // one index trained and filled (auto: once per candidate, then the kept one)
  kEvaluating,   // auto: one candidate measured at one search setting
  kPublishing,   // index, frames and metadata written and renamed into place
};

struct BuildStageInfo {
  BuildStage stage;
  // How BuildJob.stage and the report's stage times name it.
  const char* name;
  // Relative cost of one step of this stage; only ratios matter.
  double weight;
};

// The table, one row per BuildStage in enum order. The weights follow the build benchmark
// (README, "Builds": 130,000 x 768 rows, training about 45 s): loading a few seconds, k-means
// compression of a large set several times a training, a candidate's evaluation about 3 s per
// search setting.
inline constexpr BuildStageInfo kBuildStages[] = {
    {BuildStage::kLoading, "loading", 5},
    {BuildStage::kShuffling, "shuffling", 1},
    {BuildStage::kCompressing, "compressing", 250},
    {BuildStage::kNormalizing, "normalizing", 1},
    {BuildStage::kExpanding, "expanding", 30},
    {BuildStage::kReference, "reference", 2},
    {BuildStage::kTraining, "training", 60},
    {BuildStage::kEvaluating, "evaluating", 4},
    {BuildStage::kPublishing, "publishing", 5},
};

// The stage's row of kBuildStages.
const BuildStageInfo& BuildStageInfoOf(BuildStage stage);
inline absl::string_view BuildStageName(BuildStage stage) { return BuildStageInfoOf(stage).name; }

// One step of a build: its stage and the part [begin, end] of the build's progress it covers.
struct BuildStep {
  BuildStage stage;
  double begin = 0;
  double end = 0;
};

// The steps a build of `plan` runs, in order: loading, shuffling, compressing (plan.compress),
// normalizing (plan.normalize), expanding (plan.expansion_neighbours > 0); for the auto recipe
// a reference step and, per candidate, a training step and an evaluating step per search
// setting; then training (the index published) and publishing. Consecutive steps share their
// boundary (steps[i].end == steps[i + 1].begin); steps.front().begin is 0 and steps.back().end
// is exactly 1.
std::vector<BuildStep> BuildSteps(const BuildPlan& plan);

}  // namespace timbre

#endif  // TIMBRE_SERVER_BUILD_BUILD_STAGES_H_
