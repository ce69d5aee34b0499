#include "server/build/build_progress.h"

#include <algorithm>
#include <utility>

#include "absl/time/clock.h"

namespace timbre {

BuildProgress::BuildProgress(std::vector<BuildStep> steps, BuildObserver* observer,
                             timbre::v1::BuildReport* report)
    : steps_(std::move(steps)), observer_(observer), report_(report) {}

BuildProgress::~BuildProgress() { EndStageTime(); }

void BuildProgress::Begin(BuildStage stage) {
  EndStageTime();
  absl::MutexLock lock(&mutex_);
  int next = step_ + 1;
  const int count = static_cast<int>(steps_.size());
  while (next < count && steps_[next].stage != stage) ++next;
  if (next == count || finished_) return;  // not a step of this plan: nothing to report
  step_ = next;
  timed_ = &steps_[step_];
  stage_start_ = absl::Now();
  reported_ = std::max(reported_, steps_[step_].begin);
  if (observer_ != nullptr) observer_->BeginStage(stage, reported_);
}

void BuildProgress::Finish(absl::string_view message) {
  EndStageTime();
  absl::MutexLock lock(&mutex_);
  finished_ = true;
  reported_ = 1.0;
  if (observer_ != nullptr) observer_->Progress(reported_, message);
}

void BuildProgress::ReportChanged() {
  if (observer_ != nullptr) observer_->UpdateReport(*report_);
}

bool BuildProgress::cancelled() const { return observer_ != nullptr && observer_->cancelled(); }

void BuildProgress::Progress(double fraction, absl::string_view message) {
  fraction = std::clamp(fraction, 0.0, 1.0);
  absl::MutexLock lock(&mutex_);  // held while reporting, so reports arrive in order
  if (step_ < 0 || finished_) return;
  const BuildStep& step = steps_[step_];
  // At 1 exactly the step's end, which is the next step's begin (and 1 for the last step).
  const double of_build =
      fraction == 1.0 ? step.end
                      : std::min(step.end, step.begin + (step.end - step.begin) * fraction);
  reported_ = std::max(reported_, of_build);
  if (observer_ != nullptr) observer_->Progress(reported_, message);
}

void BuildProgress::EndStageTime() {
  absl::MutexLock lock(&mutex_);
  if (timed_ == nullptr) return;
  timbre::v1::StageTime* time = report_->add_stage_times();
  time->set_stage(std::string(BuildStageName(timed_->stage)));
  time->set_seconds(absl::ToDoubleSeconds(absl::Now() - stage_start_));
  timed_ = nullptr;
  if (observer_ != nullptr) observer_->UpdateReport(*report_);
}

}  // namespace timbre
