// BuildProgress: turns the progress of each step of a build into the progress of the whole
// build, by the table of build_stages.h, and tells a BuildObserver.
//
// The builder calls Begin() as each step of BuildSteps(plan) starts and hands the BuildProgress
// to the step as its BuildControl: the step's fractions in [0, 1] map onto the step's part
// [begin, end] of the build. Finish() reports exactly 1. What the observer sees never goes
// backwards, whatever a step reports. Begin() also times the stages into the report
// (BuildReport.stage_times).
//
// Thread-safe for Progress() and cancelled() (a step may report from any of its threads);
// Begin(), Finish() and ReportChanged() are called by the build's own thread.
#ifndef TIMBRE_SERVER_BUILD_BUILD_PROGRESS_H_
#define TIMBRE_SERVER_BUILD_BUILD_PROGRESS_H_

#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/build/build_stages.h"
#include "server/faiss/build_control.h"
#include "timbre/v1/build_job.pb.h"

namespace timbre {

// What a build reports as it runs. Every `fraction` is of the whole build, in [0, 1]; across
// the calls of one build they never decrease, and a build that succeeds ends with exactly 1.
// Implementations must be thread-safe: Progress() may come from any of a step's threads.
class BuildObserver {
 public:
  virtual ~BuildObserver() = default;
  // True once the build has been cancelled; the build stops at its next check.
  virtual bool cancelled() const = 0;
  // A step of `stage` starts, at `fraction` of the build.
  virtual void BeginStage(BuildStage stage, double fraction) = 0;
  // The build has reached `fraction`; `message` says what the step is doing.
  virtual void Progress(double fraction, absl::string_view message) = 0;
  // The report has grown (stage times, candidates' figures).
  virtual void UpdateReport(const timbre::v1::BuildReport& report) = 0;
};

class BuildProgress final : public BuildControl {
 public:
  // `steps`: BuildSteps(plan). `observer` may be null (no reporting, never cancelled);
  // `report` must outlive this object.
  BuildProgress(std::vector<BuildStep> steps, BuildObserver* observer,
                timbre::v1::BuildReport* report);
  // Ends the running stage's time.
  ~BuildProgress() override;

  // Starts the next step of `stage` (the next in `steps` that runs it) and reports its begin.
  void Begin(BuildStage stage);
  // Ends the last step: reports exactly 1 with `message`.
  void Finish(absl::string_view message);
  // Hands the report to the observer.
  void ReportChanged();

  // BuildControl, for the running step: `fraction` of the step.
  bool cancelled() const override;
  void Progress(double fraction, absl::string_view message) override;

 private:
  // Adds the running stage's time to the report, if a stage is running.
  void EndStageTime();

  const std::vector<BuildStep> steps_;
  BuildObserver* const observer_;
  timbre::v1::BuildReport* const report_;
  // Held while the observer is called, so that its calls never overlap nor go back in time.
  absl::Mutex mutex_;
  // The stage being timed and since when; none before the first Begin and after Finish.
  const BuildStep* timed_ ABSL_GUARDED_BY(mutex_) = nullptr;
  absl::Time stage_start_ ABSL_GUARDED_BY(mutex_);
  // The running step: an index into steps_; -1 before the first Begin.
  int step_ ABSL_GUARDED_BY(mutex_) = -1;
  bool finished_ ABSL_GUARDED_BY(mutex_) = false;
  double reported_ ABSL_GUARDED_BY(mutex_) = 0;  // the last fraction told to the observer
};

}  // namespace timbre

#endif  // TIMBRE_SERVER_BUILD_BUILD_PROGRESS_H_
