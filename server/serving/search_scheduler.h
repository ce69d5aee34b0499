// SearchScheduler: runs nearest-neighbour searches on a fixed set of worker threads, merging
// concurrent calls to the same index into one search (dynamic batching, as Triton does).
//
// Batching adds no wait: a worker that becomes free takes the oldest queued task together with
// every queued task for the same snapshot and search parameters, up to max_batch_rows, and
// searches them as one batch. At light load the queue is empty, a task is searched at once, and
// if the other workers are idle too the search is split across all of them (each takes a share of
// the call's frames; faiss_index.h). Under load tasks queue while the workers search, and the
// next free worker takes them together, up to max_batch_rows: fewer, larger searches.
//
// Threads: `workers` searching threads, each single-threaded except for the split search at light
// load, which uses `workers` threads (set workers = cores). A call that arrives while a split
// search runs is searched at once on another worker, so for that while up to 2 x workers - 1
// threads search.
//
// Overload: at most max_queued_tasks tasks wait in the queue (tasks being searched do not count).
// Submit refuses a task beyond that at once with RESOURCE_EXHAUSTED, so that a burst is turned
// away in microseconds instead of making every admitted call wait behind it. A task whose
// deadline has passed by the time a worker takes it is answered DEADLINE_EXCEEDED and not
// searched: nobody waits for its answer any more.
//
// Thread-safe. Submit never blocks; completion callbacks run on a worker thread, or inline in
// Submit for a refused task.
#ifndef TIMBRE_SERVER_SERVING_SEARCH_SCHEDULER_H_
#define TIMBRE_SERVER_SERVING_SEARCH_SCHEDULER_H_

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/faiss/search_types.h"
#include "server/serving/index_snapshot.h"

namespace timbre {

// How one task's search went.
struct SearchTiming {
  absl::Duration queued;  // from Submit to the start of its batch's search
  absl::Duration search;  // the batch's search
  int64_t batch_rows = 0; // rows searched together in that batch
  int threads = 0;        // threads the batch's search used (workers when split)
};

// One call's search. The scheduler fills `scores` and `ids` ([rows, params.k] each) and then
// runs `done` exactly once: on a worker thread, or inline in Submit when the queue is full.
// A task that was not searched (refused, or expired) leaves `scores` and `ids` untouched and
// reports batch_rows 0.
struct SearchTask {
  std::shared_ptr<const IndexSnapshot> snapshot;  // required
  SearchParams params;
  const float* queries = nullptr;  // [rows, dim]; must stay valid until done runs
  int64_t rows = 0;
  float* scores = nullptr;         // [rows, k]; must stay valid until done runs
  int64_t* ids = nullptr;          // [rows, k]; must stay valid until done runs
  // When the caller stops waiting for the answer; a task still queued then is not searched.
  // Default: never.
  absl::Time deadline = absl::InfiniteFuture();
  absl::AnyInvocable<void(absl::Status, const SearchTiming&)> done;
};

class SearchScheduler {
 public:
  struct Options {
    // Searching threads. Default 0: one per core (std::thread::hardware_concurrency()).
    int workers = 0;
    // Most query rows merged into one batch. A single larger task is searched alone. Default 64
    // (four 16-frame calls): at saturation on the benchmark's W1 file 2-12% more frames/s than
    // 512 in each of 6 alternating measurements (README, Performance design): a call's neighbours
    // are blended soon after they were read, before a long batch pushed them out of the caches.
    int64_t max_batch_rows = 64;
    // Split a search across idle workers when nothing else is queued. On the benchmark's 2-core
    // machine, splitting the whole search instead of its coarse step alone took a lone 16-frame
    // call end to end from 1.42-1.46 to 0.99-1.01 ms on the 0.999 speech-like index of README's
    // "Speech-like frames", and from 0.77-0.80 to 0.71-0.73 ms on RVC's W1 file. Default on.
    bool split_when_idle = true;
    // Most tasks waiting for a worker; Submit refuses more with RESOURCE_EXHAUSTED. 64 queued
    // 16-frame calls are about 1,000 frames of searching to wait for. Default 64.
    int max_queued_tasks = 64;
    // After a search, one worker keeps polling the queue for this long before it sleeps
    // (yielding its core to any thread that wants it), so that the next call finds a core that
    // is running rather than one woken from idle. On the benchmark's 2-core VM, 50 ms takes
    // real-time load (8 callers x 4 calls/s) from p50 2.1 to 1.45 ms, and costs up to a core
    // of CPU time while calls come less than idle_spin apart (README, Benchmark). Not for
    // CPU-quota-limited containers: the polling uses the quota. Default zero: sleep at once.
    absl::Duration idle_spin = absl::ZeroDuration();
    // Called on the worker before each batch is searched, outside the scheduler's lock. Lets a
    // test hold the worker busy for as long as it needs. Default none.
    std::function<void()> before_search;
  };

  // Errors: INVALID_ARGUMENT for negative workers, max_batch_rows < 1, max_queued_tasks < 1 or a
  // negative idle_spin.
  static absl::StatusOr<std::unique_ptr<SearchScheduler>> Create(Options options);

  // Finishes every queued task, then joins the workers.
  ~SearchScheduler();

  // Queues `task`. REQUIRES: task.snapshot, queries, scores, ids and done are set; rows >= 1.
  // Statuses passed to task.done besides the search's own: RESOURCE_EXHAUSTED marked
  // RejectionReason::kOverloaded (inline, before Submit returns) when max_queued_tasks tasks are
  // already waiting; DEADLINE_EXCEEDED marked kDeadline when task.deadline passed while the task
  // was queued (rejection.h).
  void Submit(SearchTask task);

  int workers() const { return static_cast<int>(threads_.size()); }

 private:
  struct Queued {
    SearchTask task;
    absl::Time submitted;
  };

  explicit SearchScheduler(Options options) : options_(options) {}
  void WorkerLoop();
  void RunBatch(std::vector<Queued>& batch, int threads);
  // Moves the queued tasks whose deadline is before `now` into `expired`.
  void TakeExpired(absl::Time now, std::vector<Queued>& expired)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  static void FinishExpired(std::vector<Queued>& expired, absl::Time now);
  // Polls until a task is queued, the scheduler stops or options_.idle_spin has passed.
  void SpinWhileIdle();

  const Options options_;
  absl::Mutex mutex_;
  std::deque<Queued> queue_ ABSL_GUARDED_BY(mutex_);
  int busy_ ABSL_GUARDED_BY(mutex_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mutex_) = false;
  // queue_.size() and stopping_, for SpinWhileIdle to read without the mutex.
  std::atomic<size_t> queued_{0};
  std::atomic<bool> stop_spinning_{false};
  std::atomic<bool> spinning_{false};  // a worker is in SpinWhileIdle
  std::vector<std::thread> threads_;
};

}  // namespace timbre

#endif  // TIMBRE_SERVER_SERVING_SEARCH_SCHEDULER_H_
