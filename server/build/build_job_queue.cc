#include "server/build/build_job_queue.h"

#include <malloc.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <random>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "server/io/durable_write.h"
#include "server/io/json_proto_file.h"
#include "server/io/random_id.h"
#include "server/status/rejection.h"

namespace timbre {
namespace {

namespace fs = std::filesystem;
using timbre::v1::BuildJob;

int64_t NowMs() { return absl::ToUnixMillis(absl::Now()); }

// Writes the record as <dir>/<id>.json, atomically and durably. Errors: those of
// WriteJsonProtoFile.
absl::Status WriteRecord(const std::string& dir, const BuildJob& job) {
  return WriteJsonProtoFile(absl::StrCat(dir, "/", job.id(), ".json"), job);
}

}  // namespace

bool IsFinalJobState(BuildJob::State state) {
  return state == BuildJob::STATE_SUCCEEDED || state == BuildJob::STATE_FAILED ||
         state == BuildJob::STATE_CANCELLED;
}

struct BuildJobQueue::Job {
  BuildJob record;
  BuildRequest request;
  std::atomic<bool> cancelled{false};
  uint64_t revision = 0;
  std::vector<std::shared_ptr<Watcher>> watchers;
};

// Delivers records to one listener in revision order, never after Close().
class BuildJobQueue::Watcher {
 public:
  explicit Watcher(absl::AnyInvocable<void(const BuildJob&)> listener)
      : listener_(std::move(listener)) {}

  void Deliver(const BuildJob& job, uint64_t revision) {
    absl::MutexLock lock(&mutex_);
    if (closed_ || revision <= delivered_) return;
    delivered_ = revision;
    listener_(job);
  }

  void Close() {
    absl::MutexLock lock(&mutex_);
    closed_ = true;
  }

 private:
  absl::Mutex mutex_;
  absl::AnyInvocable<void(const BuildJob&)> listener_ ABSL_GUARDED_BY(mutex_);
  bool closed_ ABSL_GUARDED_BY(mutex_) = false;
  uint64_t delivered_ ABSL_GUARDED_BY(mutex_) = 0;
};

namespace {

// The caller's handle of a watcher: closing it on destruction.
class WatchHandle : public JobWatch {
 public:
  explicit WatchHandle(std::function<void()> close) : close_(std::move(close)) {}
  ~WatchHandle() override { close_(); }

 private:
  std::function<void()> close_;
};

}  // namespace

// Feeds one running job's progress into its record. The fractions are the build's own (of the
// whole build, never decreasing: BuildObserver); the record keeps the highest seen.
class BuildJobQueue::Observer : public BuildObserver {
 public:
  Observer(BuildJobQueue* queue, Job* job) : queue_(queue), job_(job) {}

  bool cancelled() const override { return job_->cancelled.load(); }

  void BeginStage(BuildStage stage, double fraction) override {
    absl::MutexLock lock(&queue_->mutex_);
    job_->record.set_stage(std::string(BuildStageName(stage)));
    SetFraction(fraction);
    job_->record.clear_message();
    queue_->Changed(*job_, /*persist=*/true);
  }

  void Progress(double fraction, absl::string_view message) override {
    absl::MutexLock lock(&queue_->mutex_);
    SetFraction(fraction);
    job_->record.set_message(std::string(message));
    queue_->Changed(*job_, /*persist=*/false);
  }

  void UpdateReport(const timbre::v1::BuildReport& report) override {
    absl::MutexLock lock(&queue_->mutex_);
    *job_->record.mutable_report() = report;
    queue_->Changed(*job_, /*persist=*/false);
  }

 private:
  void SetFraction(double fraction) ABSL_EXCLUSIVE_LOCKS_REQUIRED(queue_->mutex_) {
    job_->record.set_fraction(std::max(job_->record.fraction(), std::clamp(fraction, 0.0, 1.0)));
  }

  BuildJobQueue* queue_;
  Job* job_;
};

BuildJobQueue::BuildJobQueue(Options options) : options_(std::move(options)) {}

absl::StatusOr<std::unique_ptr<BuildJobQueue>> BuildJobQueue::Create(Options options) {
  if (options.builder == nullptr || options.jobs_dir.empty()) {
    return absl::InvalidArgumentError("BuildJobQueue needs a builder and a jobs directory");
  }
  std::error_code error;
  fs::create_directories(options.jobs_dir, error);
  if (error) {
    return absl::InternalError(
        absl::StrCat("cannot create jobs directory '", options.jobs_dir, "': ", error.message()));
  }
  std::unique_ptr<BuildJobQueue> queue(new BuildJobQueue(std::move(options)));
  if (absl::Status loaded = queue->LoadRecords(); !loaded.ok()) return loaded;
  queue->worker_ = std::thread([q = queue.get()] { q->WorkLoop(); });
  return queue;
}

absl::Status BuildJobQueue::LoadRecords() {
  std::error_code error;
  absl::MutexLock lock(&mutex_);
  for (const fs::directory_entry& entry : fs::directory_iterator(options_.jobs_dir, error)) {
    const std::string name = entry.path().filename().string();
    if (!absl::EndsWith(name, ".json")) {
      // Temporaries of a write a crash interrupted (".tmp" from older versions).
      std::error_code ignored;
      if (IsPartialFileName(name) || absl::EndsWith(name, ".tmp")) {
        fs::remove(entry.path(), ignored);
      }
      continue;
    }
    auto job = std::make_unique<Job>();
    // Not a regular file of valid JSON (a FIFO, a device, a directory included): not a record
    // of ours, skipped without being waited on.
    if (!ReadJsonProtoFile(entry.path().string(), "job record", &job->record).ok() ||
        !ValidateRandomId(kJobIdForm, job->record.id()).ok()) {
      continue;  // not a record of ours
    }
    if (!IsFinalJobState(job->record.state())) {
      job->record.set_state(BuildJob::STATE_FAILED);
      job->record.set_error(absl::StrCat("the server stopped during the build (at stage '",
                                         job->record.stage(),
                                         "'); the serving version was not changed"));
      job->record.set_finished_at_unix_ms(NowMs());
      if (absl::Status written = WriteRecord(options_.jobs_dir, job->record); !written.ok()) {
        return written;
      }
    }
    jobs_[job->record.id()] = std::move(job);
  }
  if (error) {
    return absl::InternalError(
        absl::StrCat("cannot read jobs directory '", options_.jobs_dir, "': ", error.message()));
  }
  return absl::OkStatus();
}

BuildJobQueue::~BuildJobQueue() {
  {
    absl::MutexLock lock(&mutex_);
    stopping_ = true;
    for (Job* job : queue_) {
      job->record.set_state(BuildJob::STATE_CANCELLED);
      job->record.set_error("the server shut down before the build started");
      job->record.set_finished_at_unix_ms(NowMs());
      Changed(*job, /*persist=*/true);
    }
    queue_.clear();
    for (auto& [id, job] : jobs_) {
      if (job->record.state() == BuildJob::STATE_RUNNING) job->cancelled = true;
    }
  }
  if (worker_.joinable()) worker_.join();
}

absl::StatusOr<BuildJob> BuildJobQueue::Submit(BuildRequest request) {
  request.default_seed = std::random_device()();
  auto plan = options_.builder->Plan(request);
  if (!plan.ok()) return plan.status();
  auto job = std::make_unique<Job>();
  job->request = std::move(request);
  BuildJob& record = job->record;
  record.set_id(NewRandomId(kJobIdForm));
  record.set_speaker(job->request.speaker);
  record.set_feature_set_id(job->request.feature_set_id);
  *record.mutable_recipe() = job->request.recipe;
  record.mutable_recipe()->set_shuffle_seed(plan->shuffle_seed);
  record.set_comment(job->request.comment);
  record.set_state(BuildJob::STATE_QUEUED);
  record.set_stage("queued");
  record.set_created_at_unix_ms(NowMs());
  job->request.job_id = record.id();
  job->request.recipe.set_shuffle_seed(plan->shuffle_seed);

  absl::MutexLock lock(&mutex_);
  if (static_cast<int>(queue_.size()) >= options_.max_queued) {
    return Rejected(absl::ResourceExhaustedError(absl::StrCat(
                        options_.max_queued,
                        " builds are already waiting; try again when one has finished")),
                    RejectionReason::kOverloaded);
  }
  if (absl::Status written = WriteRecord(options_.jobs_dir, record); !written.ok()) return written;
  Job* queued = job.get();
  jobs_[record.id()] = std::move(job);
  queue_.push_back(queued);
  return queued->record;
}

absl::StatusOr<BuildJobQueue::Job*> BuildJobQueue::Find(absl::string_view id) const {
  if (absl::Status valid = ValidateRandomId(kJobIdForm, id); !valid.ok()) return valid;
  auto it = jobs_.find(id);
  if (it == jobs_.end()) return absl::NotFoundError(absl::StrCat("no build job '", id, "'"));
  return it->second.get();
}

absl::StatusOr<BuildJob> BuildJobQueue::Get(absl::string_view id) const {
  absl::ReaderMutexLock lock(&mutex_);
  auto job = Find(id);
  if (!job.ok()) return job.status();
  return (*job)->record;
}

std::vector<BuildJob> BuildJobQueue::List() const {
  std::vector<BuildJob> jobs;
  {
    absl::ReaderMutexLock lock(&mutex_);
    for (const auto& [id, job] : jobs_) jobs.push_back(job->record);
  }
  std::sort(jobs.begin(), jobs.end(), [](const BuildJob& a, const BuildJob& b) {
    return std::make_pair(a.created_at_unix_ms(), a.id()) > std::make_pair(b.created_at_unix_ms(), b.id());
  });
  return jobs;
}

JobStateCounts BuildJobQueue::CountByState() const {
  JobStateCounts counts{};
  absl::ReaderMutexLock lock(&mutex_);
  for (const auto& [id, job] : jobs_) {
    const int state = job->record.state();
    if (BuildJob::State_IsValid(state)) ++counts[state];
  }
  return counts;
}

absl::StatusOr<BuildJob> BuildJobQueue::Cancel(absl::string_view id) {
  BuildJob record;
  bool ended = false;  // a queued job, cancelled before it started
  {
    absl::MutexLock lock(&mutex_);
    auto found = Find(id);
    if (!found.ok()) return found.status();
    Job& job = **found;
    if (IsFinalJobState(job.record.state())) {
      return absl::FailedPreconditionError(absl::StrCat("build job '", id,
                                                        "' has already ended (",
                                                        BuildJob::State_Name(job.record.state()),
                                                        ")"));
    }
    job.cancelled = true;
    ended = job.record.state() == BuildJob::STATE_QUEUED;
    if (ended) {
      queue_.erase(std::remove(queue_.begin(), queue_.end(), &job), queue_.end());
      job.record.set_state(BuildJob::STATE_CANCELLED);
      job.record.set_error("cancelled before it started");
      job.record.set_finished_at_unix_ms(NowMs());
      Changed(job, /*persist=*/true);
    } else {
      job.record.set_message("cancelling");
      Changed(job, /*persist=*/false);
    }
    record = job.record;
  }
  if (ended && options_.on_finished) options_.on_finished(record);
  return record;
}

absl::StatusOr<std::unique_ptr<JobWatch>> BuildJobQueue::Watch(
    absl::string_view id, absl::AnyInvocable<void(const BuildJob&)> listener) {
  auto watcher = std::make_shared<Watcher>(std::move(listener));
  BuildJob now;
  uint64_t revision = 0;
  {
    absl::MutexLock lock(&mutex_);
    auto job = Find(id);
    if (!job.ok()) return job.status();
    now = (*job)->record;
    revision = ++(*job)->revision;
    if (!IsFinalJobState(now.state())) (*job)->watchers.push_back(watcher);
  }
  watcher->Deliver(now, revision);
  return std::unique_ptr<JobWatch>(new WatchHandle([this, watcher, key = std::string(id)] {
    watcher->Close();
    absl::MutexLock lock(&mutex_);
    auto it = jobs_.find(key);
    if (it == jobs_.end()) return;
    auto& watchers = it->second->watchers;
    watchers.erase(std::remove(watchers.begin(), watchers.end(), watcher), watchers.end());
  }));
}

void BuildJobQueue::Changed(Job& job, bool persist) {
  if (persist) {
    // A record that cannot be written is still served from memory; the next change retries.
    WriteRecord(options_.jobs_dir, job.record).IgnoreError();
  }
  const uint64_t revision = ++job.revision;
  // Deliveries happen under mutex_ so that they are ordered with the record; listeners must not
  // call back into the queue (they hand the record to their own thread, e.g. a gRPC reactor).
  for (const std::shared_ptr<Watcher>& watcher : job.watchers) watcher->Deliver(job.record, revision);
  if (IsFinalJobState(job.record.state())) job.watchers.clear();
}

void BuildJobQueue::WorkLoop() {
  while (true) {
    Job* job = nullptr;
    {
      absl::MutexLock lock(&mutex_);
      mutex_.Await(absl::Condition(
          +[](BuildJobQueue* q) ABSL_EXCLUSIVE_LOCKS_REQUIRED(q->mutex_) {
            return q->stopping_ || !q->queue_.empty();
          },
          this));
      if (stopping_) return;
      job = queue_.front();
      queue_.pop_front();
      job->record.set_state(BuildJob::STATE_RUNNING);
      job->record.set_started_at_unix_ms(NowMs());
      Changed(*job, /*persist=*/true);
    }
    Run(*job);
    // A build allocates and frees hundreds of megabytes on this thread; glibc keeps the freed
    // memory in the thread's arena for reuse, so the server's RSS would stay at the build's peak.
    // Give it back now that the job is over.
    malloc_trim(0);
  }
}

void BuildJobQueue::Run(Job& job) {
  Observer observer(this, &job);
  absl::StatusOr<timbre::v1::BuildReport> report = options_.builder->Build(job.request, &observer);
  // The new version serves here before the job reads as succeeded.
  if (report.ok() && options_.on_published) options_.on_published(job.request.speaker);
  BuildJob final_record;
  {
    absl::MutexLock lock(&mutex_);
    BuildJob& record = job.record;
    record.set_finished_at_unix_ms(NowMs());
    if (report.ok()) {
      record.set_state(BuildJob::STATE_SUCCEEDED);
      record.set_stage("done");
      record.set_fraction(1.0);
      record.clear_message();
      *record.mutable_report() = *report;
    } else if (job.cancelled || report.status().code() == absl::StatusCode::kCancelled) {
      record.set_state(BuildJob::STATE_CANCELLED);
      record.set_error(stopping_ ? "the server shut down during the build"
                                 : std::string(report.status().message()));
    } else {
      record.set_state(BuildJob::STATE_FAILED);
      record.set_error(absl::StrCat(absl::StatusCodeToString(report.status().code()), ": ",
                                    report.status().message()));
    }
    Changed(job, /*persist=*/true);
    final_record = record;
  }
  if (options_.on_finished) options_.on_finished(final_record);
}

}  // namespace timbre
