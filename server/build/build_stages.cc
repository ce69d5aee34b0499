#include "server/build/build_stages.h"

namespace timbre {

static_assert(sizeof(kBuildStages) / sizeof(kBuildStages[0]) ==
                  static_cast<size_t>(BuildStage::kPublishing) + 1,
              "kBuildStages has one row per BuildStage");

const BuildStageInfo& BuildStageInfoOf(BuildStage stage) {
  return kBuildStages[static_cast<size_t>(stage)];
}

std::vector<BuildStep> BuildSteps(const BuildPlan& plan) {
  std::vector<BuildStage> stages = {BuildStage::kLoading, BuildStage::kShuffling};
  if (plan.compress) stages.push_back(BuildStage::kCompressing);
  if (plan.normalize) stages.push_back(BuildStage::kNormalizing);
  if (plan.normalize && plan.expansion_neighbours > 0) stages.push_back(BuildStage::kExpanding);
  if (plan.kind == timbre::v1::Recipe::KIND_AUTO) {
    stages.push_back(BuildStage::kReference);
    for (const CandidateIndex& candidate : plan.candidates) {
      stages.push_back(BuildStage::kTraining);
      stages.insert(stages.end(), candidate.settings.size(), BuildStage::kEvaluating);
    }
  }
  stages.push_back(BuildStage::kTraining);
  stages.push_back(BuildStage::kPublishing);

  double total = 0;
  for (BuildStage stage : stages) total += BuildStageInfoOf(stage).weight;
  std::vector<BuildStep> steps;
  steps.reserve(stages.size());
  double done = 0;  // weight of the steps before this one
  for (BuildStage stage : stages) {
    BuildStep step;
    step.stage = stage;
    step.begin = steps.empty() ? 0.0 : steps.back().end;
    done += BuildStageInfoOf(stage).weight;
    step.end = done / total;
    steps.push_back(step);
  }
  steps.back().end = 1.0;
  return steps;
}

}  // namespace timbre
