// BuildJobQueue: build jobs, run one at a time on a background thread, tracked and persisted.
//
// Submit() checks a request (IndexBuilder::Plan), records a job in state QUEUED and returns at
// once. A single worker runs jobs in submission order through IndexBuilder::Build, updating the
// job's stage, fraction and message as the build reports them. Watchers get the job at every
// change. Cancel() stops a queued job at once and a running one at its next check (k-means
// iteration, add batch, faiss block). Each job's record is written to `<jobs_dir>/<id>.json` when
// it is submitted, changes stage and ends, so a restarted server still lists it: BuildJob in the
// JSON form of version metadata (WriteJsonProtoFile: proto field names, replaced atomically and
// fsynced); records written with camelCase names still load. A job that was queued or running
// when the server stopped is marked FAILED ("the server stopped during the build") when the
// queue is created again.
//
// Thread-safe.
#ifndef TIMBRE_SERVER_BUILD_BUILD_JOB_QUEUE_H_
#define TIMBRE_SERVER_BUILD_BUILD_JOB_QUEUE_H_

#include <array>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "server/build/index_builder.h"
#include "timbre/v1/build_job.pb.h"

namespace timbre {

// True for the states a job ends in: succeeded, failed, cancelled.
bool IsFinalJobState(timbre::v1::BuildJob::State state);

// A number of jobs per state, indexed by timbre::v1::BuildJob::State.
using JobStateCounts = std::array<int64_t, timbre::v1::BuildJob::State_ARRAYSIZE>;

// Receives a job's record at every change until it ends or the JobWatch is destroyed.
class JobWatch {
 public:
  virtual ~JobWatch() = default;
};

class BuildJobQueue {
 public:
  struct Options {
    // Plans and runs the builds (an IndexBuilder). Required; must outlive the queue.
    const BuildRunner* builder = nullptr;
    // Directory of the job records; created if missing. Required.
    std::string jobs_dir;
    // Most jobs waiting (not counting the running one); more get RESOURCE_EXHAUSTED. Default 16.
    int max_queued = 16;
    // Called on the worker thread after a build published a version of `speaker` and before
    // its job reads as succeeded, e.g. to make the serving registry pick it up at once. Optional.
    absl::AnyInvocable<void(const std::string& speaker)> on_published;
    // Called when a job ends, with its final record: on the worker thread, or on Cancel's
    // thread for a job cancelled before it started (so it must be thread-safe); not for the
    // queued jobs the destructor cancels. Optional.
    absl::AnyInvocable<void(const timbre::v1::BuildJob& job)> on_finished;
  };

  // Reads the job records in jobs_dir (marking interrupted ones FAILED) and starts the worker.
  // Errors: INVALID_ARGUMENT without a builder or jobs_dir; INTERNAL if jobs_dir cannot be made.
  static absl::StatusOr<std::unique_ptr<BuildJobQueue>> Create(Options options);

  // Cancels the running job, waits for the worker to stop and marks queued jobs CANCELLED.
  ~BuildJobQueue();

  // Queues a build. Errors: those of IndexBuilder::Plan; RESOURCE_EXHAUSTED marked
  // RejectionReason::kOverloaded (rejection.h) when max_queued jobs are waiting.
  absl::StatusOr<timbre::v1::BuildJob> Submit(BuildRequest request);

  // Errors: INVALID_ARGUMENT for a malformed id; NOT_FOUND for an unknown one.
  absl::StatusOr<timbre::v1::BuildJob> Get(absl::string_view id) const;

  // Every job, newest first.
  std::vector<timbre::v1::BuildJob> List() const;

  // How many of the jobs List() returns are in each state (none in STATE_UNSPECIFIED). Copies no
  // record: cheap enough for every metrics scrape.
  JobStateCounts CountByState() const;

  // Cancels a queued or running job and returns its record after the request.
  // Errors: as Get; FAILED_PRECONDITION for a job that already ended.
  absl::StatusOr<timbre::v1::BuildJob> Cancel(absl::string_view id);

  // Calls `listener` with the job now, then after every change, until the job ends (the last call
  // has a final state) or the returned JobWatch is destroyed; no call starts after its
  // destruction returns. Calls come from the caller's thread (the first), the worker and Cancel's
  // caller; they never overlap and never go back in time. The listener must not call into the
  // queue nor destroy its JobWatch. Errors: as Get.
  absl::StatusOr<std::unique_ptr<JobWatch>> Watch(
      absl::string_view id, absl::AnyInvocable<void(const timbre::v1::BuildJob& job)> listener);

 private:
  struct Job;
  class Observer;
  class Watcher;

  explicit BuildJobQueue(Options options);
  absl::Status LoadRecords();
  void WorkLoop();
  void Run(Job& job);
  // Records a change of `job` (caller holds mutex_): persists it if `persist`, then notifies.
  void Changed(Job& job, bool persist) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  absl::StatusOr<Job*> Find(absl::string_view id) const ABSL_SHARED_LOCKS_REQUIRED(mutex_);

  Options options_;
  mutable absl::Mutex mutex_;
  std::map<std::string, std::unique_ptr<Job>, std::less<>> jobs_ ABSL_GUARDED_BY(mutex_);
  std::deque<Job*> queue_ ABSL_GUARDED_BY(mutex_);
  bool stopping_ ABSL_GUARDED_BY(mutex_) = false;
  std::thread worker_;
};

}  // namespace timbre

#endif  // TIMBRE_SERVER_BUILD_BUILD_JOB_QUEUE_H_
