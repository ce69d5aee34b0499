// IndexBuilder: turns a feature set into a published speaker version, stage by stage.
//
// The stages follow RVC's train_index, with the options of the faiss tuning notes; they and
// their share of the build's progress are the table of build_stages.h, and BuildSteps(plan) lists
// the steps of one build:
//   loading      every file of the feature set, concatenated in file-name order
//   shuffling    rows permuted as numpy's RandomState(seed).shuffle does (seed recorded)
//   compressing  k-means to the plan's centroids when the set is large (RVC: >200k rows -> 10k)
//   normalizing  L2-normalised rows, inner-product metric (cosine); then optional alpha query
//                expansion ("expanding")
//   reference    auto: the exact index the candidates are measured against; then per candidate
//                "training" and, per search setting, "evaluating" on held-out frames
//   training     train and add the index to publish (auto: the kept candidate, on all rows)
//   publishing   index file (plus the exact frames when the index does not keep them) and
//                metadata written and renamed into place as a new numbered version
// Progress reported to the BuildObserver rises through the steps and ends at exactly 1.
// A failed or cancelled build publishes nothing and leaves no file behind.
//
// Thread-safe: Build() may run concurrently for different jobs (the job queue runs one at a time).
#ifndef TIMBRE_SERVER_BUILD_INDEX_BUILDER_H_
#define TIMBRE_SERVER_BUILD_INDEX_BUILDER_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "server/build/build_progress.h"
#include "server/build/build_recipe.h"
#include "server/build/feature_set_store.h"
#include "server/serving/speaker_repository.h"
#include "timbre/v1/build_job.pb.h"

namespace timbre {

// What to build.
struct BuildRequest {
  std::string job_id;
  std::string speaker;
  std::string feature_set_id;
  timbre::v1::Recipe recipe;
  std::string comment;
  // Shuffle seed used when the recipe sets none.
  uint32_t default_seed = 0;
};

// Plans and runs builds; the job queue's view of IndexBuilder (tests substitute fakes).
class BuildRunner {
 public:
  virtual ~BuildRunner() = default;
  // Checks a request before it is queued. Errors: INVALID_ARGUMENT / NOT_FOUND naming the problem.
  virtual absl::StatusOr<BuildPlan> Plan(const BuildRequest& request) const = 0;
  // Runs a planned build to its end. Errors: CANCELLED when `observer` says so; any other on failure.
  virtual absl::StatusOr<timbre::v1::BuildReport> Build(const BuildRequest& request,
                                                        BuildObserver* observer) const = 0;
};

class IndexBuilder final : public BuildRunner {
 public:
  struct Options {
    // Where feature sets are read from. Required; must outlive the builder.
    const FeatureSetStore* feature_sets = nullptr;
    // Where versions are published. Required; must outlive the builder.
    const SpeakerRepository* repository = nullptr;
  };

  // Errors: INVALID_ARGUMENT without a feature-set store or repository.
  static absl::StatusOr<std::unique_ptr<IndexBuilder>> Create(Options options);

  // Checks a request before it is queued: the speaker name, the feature set, and the recipe
  // against the set's size (PlanBuild). Errors: INVALID_ARGUMENT naming the problem; NOT_FOUND
  // for an unknown feature set.
  absl::StatusOr<BuildPlan> Plan(const BuildRequest& request) const override;

  // Runs the build and publishes the new version. Returns the final report (version set).
  // Errors: CANCELLED when `observer` reports cancellation; those of the stages (INVALID_ARGUMENT
  // for data faiss refuses, RESOURCE_EXHAUSTED for a full disk, FAILED_PRECONDITION for a feature
  // set whose files changed); nothing is published on error.
  absl::StatusOr<timbre::v1::BuildReport> Build(const BuildRequest& request,
                                                BuildObserver* observer) const override;

 private:
  explicit IndexBuilder(Options options) : options_(options) {}

  const Options options_;
};

}  // namespace timbre

#endif  // TIMBRE_SERVER_BUILD_INDEX_BUILDER_H_
