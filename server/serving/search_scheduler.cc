#include "server/serving/search_scheduler.h"

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "server/status/rejection.h"

namespace timbre {
namespace {

bool SameSearch(const SearchTask& a, const SearchTask& b) {
  return a.snapshot == b.snapshot && a.params.k == b.params.k &&
         a.params.nprobe == b.params.nprobe && a.params.k_factor == b.params.k_factor &&
         a.params.unpruned == b.params.unpruned;
}

}  // namespace

absl::StatusOr<std::unique_ptr<SearchScheduler>> SearchScheduler::Create(Options options) {
  if (options.workers < 0) return absl::InvalidArgumentError("workers must be >= 0");
  if (options.max_batch_rows < 1) return absl::InvalidArgumentError("max_batch_rows must be >= 1");
  if (options.max_queued_tasks < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_queued_tasks is ", options.max_queued_tasks, "; it must be >= 1"));
  }
  if (options.idle_spin < absl::ZeroDuration()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "idle_spin is ", absl::FormatDuration(options.idle_spin), "; it must be >= 0"));
  }
  if (options.workers == 0) {
    options.workers = std::max(1u, std::thread::hardware_concurrency());
  }
  std::unique_ptr<SearchScheduler> scheduler(new SearchScheduler(options));
  for (int i = 0; i < options.workers; ++i) {
    scheduler->threads_.emplace_back([s = scheduler.get()] { s->WorkerLoop(); });
  }
  return scheduler;
}

SearchScheduler::~SearchScheduler() {
  {
    absl::MutexLock lock(&mutex_);
    stopping_ = true;
    stop_spinning_.store(true, std::memory_order_relaxed);
  }
  for (std::thread& thread : threads_) thread.join();
}

void SearchScheduler::Submit(SearchTask task) {
  {
    absl::MutexLock lock(&mutex_);
    if (queue_.size() < static_cast<size_t>(options_.max_queued_tasks)) {
      queue_.push_back(Queued{std::move(task), absl::Now()});
      queued_.store(queue_.size(), std::memory_order_relaxed);
      return;
    }
  }
  task.done(Rejected(absl::ResourceExhaustedError(absl::StrCat(
                         "the server is overloaded: the search queue is full (limit: ",
                         options_.max_queued_tasks,
                         " waiting calls); retry with backoff or on another server")),
                     RejectionReason::kOverloaded),
            SearchTiming{});
}

void SearchScheduler::TakeExpired(absl::Time now, std::vector<Queued>& expired) {
  for (auto it = queue_.begin(); it != queue_.end();) {
    if (it->task.deadline < now) {
      expired.push_back(std::move(*it));
      it = queue_.erase(it);
    } else {
      ++it;
    }
  }
}

void SearchScheduler::FinishExpired(std::vector<Queued>& expired, absl::Time now) {
  for (Queued& queued : expired) {
    SearchTiming timing;
    timing.queued = now - queued.submitted;
    queued.task.done(Rejected(absl::DeadlineExceededError(absl::StrCat(
                                  "the call's deadline passed while it waited ",
                                  absl::FormatDuration(timing.queued),
                                  " for a search worker; it was not searched")),
                              RejectionReason::kDeadline),
                     timing);
  }
}

void SearchScheduler::WorkerLoop() {
  for (;;) {
    std::vector<Queued> batch;
    std::vector<Queued> expired;
    int threads = 1;
    bool stop = false;
    absl::Time now;
    {
      absl::MutexLock lock(&mutex_);
      mutex_.Await(absl::Condition(
          +[](SearchScheduler* s) ABSL_EXCLUSIVE_LOCKS_REQUIRED(s->mutex_) {
            return s->stopping_ || !s->queue_.empty();
          },
          this));
      now = absl::Now();
      TakeExpired(now, expired);
      if (queue_.empty()) {
        stop = stopping_;  // stopping, and every task is done
      } else {
        batch.push_back(std::move(queue_.front()));
        queue_.pop_front();
        int64_t rows = batch[0].task.rows;
        for (auto it = queue_.begin(); it != queue_.end();) {
          if (SameSearch(it->task, batch[0].task) &&
              rows + it->task.rows <= options_.max_batch_rows) {
            rows += it->task.rows;
            batch.push_back(std::move(*it));
            it = queue_.erase(it);
          } else {
            ++it;
          }
        }
        ++busy_;
        if (options_.split_when_idle && queue_.empty() && busy_ == 1) threads = workers();
      }
      queued_.store(queue_.size(), std::memory_order_relaxed);
    }
    FinishExpired(expired, now);
    if (batch.empty()) {
      if (stop) return;
      continue;
    }
    if (options_.before_search) options_.before_search();
    RunBatch(batch, threads);
    {
      absl::MutexLock lock(&mutex_);
      --busy_;
    }
    if (options_.idle_spin > absl::ZeroDuration()) SpinWhileIdle();
  }
}

void SearchScheduler::SpinWhileIdle() {
  bool free = false;
  if (!spinning_.compare_exchange_strong(free, true)) return;  // another worker spins already
  const absl::Time until = absl::Now() + options_.idle_spin;
  while (queued_.load(std::memory_order_relaxed) == 0 &&
         !stop_spinning_.load(std::memory_order_relaxed) && absl::Now() < until) {
    std::this_thread::yield();
  }
  spinning_.store(false);
}

void SearchScheduler::RunBatch(std::vector<Queued>& batch, int threads) {
  const SearchTask& first = batch[0].task;
  const FaissIndex& index = *first.snapshot->index;
  const int dim = index.dim();
  const int k = first.params.k;
  const absl::Time start = absl::Now();
  absl::Status status;
  int64_t rows = 0;
  if (batch.size() == 1) {
    rows = first.rows;
    status = index.Search(first.queries, rows, first.params, threads, first.scores, first.ids);
  } else {
    for (const Queued& queued : batch) rows += queued.task.rows;
    std::vector<float> queries(static_cast<size_t>(rows) * dim);
    std::vector<float> scores(static_cast<size_t>(rows) * k);
    std::vector<int64_t> ids(static_cast<size_t>(rows) * k);
    int64_t offset = 0;
    for (const Queued& queued : batch) {
      std::memcpy(queries.data() + offset * dim, queued.task.queries,
                  sizeof(float) * queued.task.rows * dim);
      offset += queued.task.rows;
    }
    status = index.Search(queries.data(), rows, first.params, threads, scores.data(), ids.data());
    offset = 0;
    for (Queued& queued : batch) {
      const size_t n = static_cast<size_t>(queued.task.rows) * k;
      std::memcpy(queued.task.scores, scores.data() + offset * k, sizeof(float) * n);
      std::memcpy(queued.task.ids, ids.data() + offset * k, sizeof(int64_t) * n);
      offset += queued.task.rows;
    }
  }
  SearchTiming timing;
  timing.search = absl::Now() - start;
  timing.batch_rows = rows;
  timing.threads = threads;
  for (Queued& queued : batch) {
    timing.queued = start - queued.submitted;
    queued.task.done(status, timing);
  }
}

}  // namespace timbre
