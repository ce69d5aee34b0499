// A BuildRunner for the tests of the build job queue and what reads it: no faiss, no files.
#ifndef TIMBRE_TESTS_SUPPORT_FAKE_BUILD_RUNNER_H_
#define TIMBRE_TESTS_SUPPORT_FAKE_BUILD_RUNNER_H_

#include <string>

#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "server/build/index_builder.h"

namespace timbre::testing {

// Plans every request but one for speaker "bad" (INVALID_ARGUMENT). Its builds go through two
// stages (loading from 0, training from 0.5) and then wait until released (or cancelled); a released build whose comment is "fail"
// fails, any other publishes version "3". Thread-safe.
class FakeBuildRunner : public BuildRunner {
 public:
  absl::StatusOr<BuildPlan> Plan(const BuildRequest& request) const override {
    if (request.speaker == "bad") return absl::InvalidArgumentError("speaker 'bad' is refused");
    BuildPlan plan;
    plan.shuffle_seed = request.recipe.has_shuffle_seed() ? request.recipe.shuffle_seed() : 5;
    return plan;
  }

  absl::StatusOr<timbre::v1::BuildReport> Build(const BuildRequest& request,
                                                BuildObserver* observer) const override {
    observer->BeginStage(BuildStage::kLoading, 0.0);
    observer->Progress(0.25, "half loaded");
    observer->BeginStage(BuildStage::kTraining, 0.5);
    if (!started_.HasBeenNotified()) started_.Notify();
    while (!release_.HasBeenNotified()) {
      if (observer->cancelled()) return BuildCancelledError();
      absl::SleepFor(absl::Milliseconds(1));
    }
    if (request.comment == "fail") return absl::InvalidArgumentError("faiss refused the rows");
    timbre::v1::BuildReport report;
    report.set_version("3");
    return report;
  }

  // Blocks until the first build has reached its waiting stage.
  void WaitStarted() const { started_.WaitForNotification(); }
  // Lets every build, running or to come, finish.
  void Release() { release_.Notify(); }

 private:
  mutable absl::Notification started_;
  absl::Notification release_;
};

}  // namespace timbre::testing

#endif  // TIMBRE_TESTS_SUPPORT_FAKE_BUILD_RUNNER_H_
