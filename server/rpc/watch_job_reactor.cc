#include "server/rpc/watch_job_reactor.h"

namespace timbre {

WatchJobReactor::WatchJobReactor(BuildJobQueue* jobs, ServerMetrics* metrics,
                                 const std::string& id)
    : recorder_(metrics, "WatchJob") {
  absl::StatusOr<std::unique_ptr<JobWatch>> watch =
      jobs->Watch(id, [this](const timbre::v1::BuildJob& job) { Offer(job); });
  if (!watch.ok()) {
    absl::MutexLock lock(&mutex_);
    finished_ = true;
    Finish(recorder_.Record(watch.status(), 0));
    return;
  }
  watch_ = *std::move(watch);
}

void WatchJobReactor::Offer(const timbre::v1::BuildJob& job) {
  absl::MutexLock lock(&mutex_);
  if (finished_) return;
  pending_ = job;
  if (!write_in_flight_) Pump();
}

void WatchJobReactor::Pump() {
  if (pending_.has_value()) {
    writing_ = *std::move(pending_);
    pending_.reset();
    write_in_flight_ = true;
    StartWrite(&writing_);
    return;
  }
  if (IsFinalJobState(writing_.state()) && !finished_) {
    finished_ = true;
    Finish(recorder_.Record(absl::OkStatus(), 0));
  }
}

void WatchJobReactor::OnWriteDone(bool ok) {
  absl::MutexLock lock(&mutex_);
  write_in_flight_ = false;
  if (!ok) {
    if (!finished_) {
      finished_ = true;
      Finish(recorder_.Record(absl::CancelledError("the client went away"), 0));
    }
    return;
  }
  Pump();
}

void WatchJobReactor::OnCancel() {
  absl::MutexLock lock(&mutex_);
  if (finished_) return;
  finished_ = true;
  Finish(recorder_.Record(absl::CancelledError("the client cancelled"), 0));
}

void WatchJobReactor::OnDone() {
  // Unsubscribe first: no notification starts after this returns.
  watch_.reset();
  delete this;
}

}  // namespace timbre
