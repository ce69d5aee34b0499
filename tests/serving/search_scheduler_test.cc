#include "server/serving/search_scheduler.h"

#include <algorithm>
#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/blocking_counter.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/build/demo_speaker.h"
#include "server/faiss/faiss_index.h"
#include "server/status/rejection.h"
#include "tests/support/test_support.h"

namespace timbre {
namespace {

using ::testing::_;
using ::testing::Each;
using ::testing::HasSubstr;
using ::timbre::testing::IsOk;
using ::timbre::testing::StatusIs;

constexpr int kDim = 16;
constexpr int kNlist = 8;

std::shared_ptr<const IndexSnapshot> MakeSnapshot(const std::string& speaker, uint32_t seed) {
  const FrameMatrix frames = GenerateClusteredFrames(400, kDim, 8, seed);
  TrainOptions options;
  options.description = "IVF8,Flat";
  auto index = FaissIndex::Train(options, frames.values.data(), frames.rows, frames.dim);
  EXPECT_THAT(index, IsOk());
  if (!index.ok()) return nullptr;
  auto snapshot = std::make_shared<IndexSnapshot>();
  snapshot->speaker = speaker;
  snapshot->version = "1";
  snapshot->index = *std::move(index);
  return snapshot;
}

std::unique_ptr<SearchScheduler> MakeScheduler(int workers, int64_t max_batch_rows = 512,
                                               int max_queued_tasks = 64) {
  SearchScheduler::Options options;
  options.workers = workers;
  options.max_batch_rows = max_batch_rows;
  options.max_queued_tasks = max_queued_tasks;
  auto scheduler = SearchScheduler::Create(options);
  EXPECT_THAT(scheduler, IsOk());
  return scheduler.ok() ? *std::move(scheduler) : nullptr;
}

// One task with its own buffers and a record of how it completed.
struct Probe {
  Probe(std::shared_ptr<const IndexSnapshot> snapshot, int64_t rows, SearchParams params,
        uint32_t seed)
      : snapshot(std::move(snapshot)),
        params(params),
        queries(GenerateClusteredFrames(rows, kDim, 8, seed)),
        scores(rows * params.k, -1.0f),
        ids(rows * params.k, -2) {}

  // A task writing into this probe; `also` runs inside done after the bookkeeping.
  SearchTask Task(std::function<void()> also = nullptr) {
    SearchTask task;
    task.snapshot = snapshot;
    task.params = params;
    task.queries = queries.values.data();
    task.rows = queries.rows;
    task.scores = scores.data();
    task.ids = ids.data();
    task.done = [this, also = std::move(also)](absl::Status s, const SearchTiming& t) {
      status = std::move(s);
      timing = t;
      calls.fetch_add(1);
      if (also) also();
      finished.Notify();
    };
    return task;
  }

  // Compares the results with a direct single-threaded search of this probe's queries alone.
  void ExpectMatchesDirectSearch() const {
    std::vector<float> want_scores(scores.size());
    std::vector<int64_t> want_ids(ids.size());
    ASSERT_THAT(snapshot->index->Search(queries.values.data(), queries.rows, params, 1,
                                        want_scores.data(), want_ids.data()),
                IsOk());
    EXPECT_EQ(ids, want_ids);
    EXPECT_EQ(scores, want_scores);
  }

  std::shared_ptr<const IndexSnapshot> snapshot;
  SearchParams params;
  FrameMatrix queries;
  std::vector<float> scores;
  std::vector<int64_t> ids;
  absl::Status status = absl::UnknownError("not run");
  SearchTiming timing;
  std::atomic<int> calls{0};
  absl::Notification finished;
};

SearchParams Params(int k, int nprobe) {
  SearchParams params;
  params.k = k;
  params.nprobe = nprobe;
  return params;
}

// Occupies the only worker of a scheduler with a task of `rows` rows until Release(), so that
// the tasks submitted meanwhile queue up.
class BusyWorker {
 public:
  BusyWorker(SearchScheduler& scheduler, std::shared_ptr<const IndexSnapshot> snapshot,
             int64_t rows, uint32_t seed)
      : probe_(std::move(snapshot), rows, Params(4, kNlist), seed) {
    scheduler.Submit(probe_.Task([this] {
      started_.Notify();
      release_.WaitForNotification();
    }));
  }
  // Releases the worker if the test did not, and waits for the task to finish with it.
  ~BusyWorker() {
    if (!release_.HasBeenNotified()) release_.Notify();
    probe_.finished.WaitForNotificationWithTimeout(absl::Seconds(20));
  }

  bool WaitUntilBusy() { return started_.WaitForNotificationWithTimeout(absl::Seconds(20)); }
  void Release() { release_.Notify(); }
  const Probe& probe() const { return probe_; }

 private:
  Probe probe_;
  absl::Notification started_;
  absl::Notification release_;
};

class SearchSchedulerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    alice_ = new std::shared_ptr<const IndexSnapshot>(MakeSnapshot("alice", 1));
    bob_ = new std::shared_ptr<const IndexSnapshot>(MakeSnapshot("bob", 2));
  }
  static void TearDownTestSuite() {
    delete alice_;
    delete bob_;
  }

  static std::shared_ptr<const IndexSnapshot>* alice_;
  static std::shared_ptr<const IndexSnapshot>* bob_;
};

std::shared_ptr<const IndexSnapshot>* SearchSchedulerTest::alice_ = nullptr;
std::shared_ptr<const IndexSnapshot>* SearchSchedulerTest::bob_ = nullptr;

TEST(SearchSchedulerCreateTest, RejectsBadOptions) {
  SearchScheduler::Options no_rows;
  no_rows.max_batch_rows = 0;
  EXPECT_THAT(SearchScheduler::Create(no_rows),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("max_batch_rows")));
  SearchScheduler::Options negative;
  negative.workers = -1;
  EXPECT_THAT(SearchScheduler::Create(negative),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("workers")));
  SearchScheduler::Options no_queue;
  no_queue.max_queued_tasks = 0;
  EXPECT_THAT(SearchScheduler::Create(no_queue),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("max_queued_tasks is 0")));
  SearchScheduler::Options negative_spin;
  negative_spin.idle_spin = absl::Milliseconds(-1);
  EXPECT_THAT(SearchScheduler::Create(negative_spin),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("idle_spin is -1ms")));
}

TEST(SearchSchedulerCreateTest, WorkerCount) {
  auto two = MakeScheduler(2);
  ASSERT_NE(two, nullptr);
  EXPECT_EQ(two->workers(), 2);
  auto per_core = MakeScheduler(0);
  ASSERT_NE(per_core, nullptr);
  EXPECT_EQ(per_core->workers(),
            static_cast<int>(std::max(1u, std::thread::hardware_concurrency())));
}

TEST_F(SearchSchedulerTest, TaskMatchesDirectSearch) {
  auto scheduler = MakeScheduler(2);
  ASSERT_NE(scheduler, nullptr);
  for (int nprobe : {0, 1, 3, kNlist}) {
    Probe probe(*alice_, 10, Params(5, nprobe), 3);
    scheduler->Submit(probe.Task());
    ASSERT_TRUE(probe.finished.WaitForNotificationWithTimeout(absl::Seconds(20)));
    EXPECT_THAT(probe.status, IsOk());
    EXPECT_EQ(probe.calls.load(), 1);
    EXPECT_EQ(probe.timing.batch_rows, 10);
    EXPECT_GE(probe.timing.queued, absl::ZeroDuration());
    EXPECT_GE(probe.timing.search, absl::ZeroDuration());
    probe.ExpectMatchesDirectSearch();
    EXPECT_THAT(probe.ids, Each(::testing::Ge(0)));
  }
}

TEST_F(SearchSchedulerTest, LoneTaskSplitsItsSearchAcrossTheIdleWorkers) {
  auto scheduler = MakeScheduler(2);
  ASSERT_NE(scheduler, nullptr);
  Probe probe(*alice_, 16, Params(8, 1), 4);
  scheduler->Submit(probe.Task());
  ASSERT_TRUE(probe.finished.WaitForNotificationWithTimeout(absl::Seconds(20)));
  EXPECT_THAT(probe.status, IsOk());
  EXPECT_EQ(probe.timing.threads, 2);
  probe.ExpectMatchesDirectSearch();
}

TEST_F(SearchSchedulerTest, WithoutSplitWhenIdleALoneTaskSearchesOnOneThread) {
  SearchScheduler::Options options;
  options.workers = 2;
  options.split_when_idle = false;
  auto scheduler = SearchScheduler::Create(options);
  ASSERT_THAT(scheduler, IsOk());
  Probe probe(*alice_, 16, Params(8, 1), 4);
  (*scheduler)->Submit(probe.Task());
  ASSERT_TRUE(probe.finished.WaitForNotificationWithTimeout(absl::Seconds(20)));
  EXPECT_THAT(probe.status, IsOk());
  EXPECT_EQ(probe.timing.threads, 1);
  probe.ExpectMatchesDirectSearch();
}

TEST_F(SearchSchedulerTest, TaskTakenWhileAnotherWorkerIsBusySearchesOnOneThread) {
  auto scheduler = MakeScheduler(2);
  ASSERT_NE(scheduler, nullptr);
  BusyWorker blocker(*scheduler, *alice_, 2, 7);
  ASSERT_TRUE(blocker.WaitUntilBusy());
  Probe probe(*alice_, 16, Params(8, 1), 4);
  scheduler->Submit(probe.Task());
  ASSERT_TRUE(probe.finished.WaitForNotificationWithTimeout(absl::Seconds(20)));
  EXPECT_THAT(probe.status, IsOk());
  EXPECT_EQ(probe.timing.threads, 1);
  EXPECT_EQ(blocker.probe().timing.threads, 2) << "the blocker was alone when it was taken";
  probe.ExpectMatchesDirectSearch();
}

// With one worker and a spin far longer than the test, every task after the first is found by
// the polling worker: each must still be searched at once, and the destructor must end the
// polling.
TEST_F(SearchSchedulerTest, PollingWorkerTakesEachNewTaskAndStopsWithTheScheduler) {
  SearchScheduler::Options options;
  options.workers = 1;
  options.idle_spin = absl::Hours(1);
  auto scheduler = SearchScheduler::Create(options);
  ASSERT_THAT(scheduler, IsOk());
  for (int i = 0; i < 5; ++i) {
    Probe probe(*alice_, 16, Params(8, 1), 10 + i);
    (*scheduler)->Submit(probe.Task());
    ASSERT_TRUE(probe.finished.WaitForNotificationWithTimeout(absl::Seconds(20))) << i;
    EXPECT_THAT(probe.status, IsOk());
    probe.ExpectMatchesDirectSearch();
  }
  absl::Notification destroyed;
  std::thread destroy([&] {
    scheduler->reset();
    destroyed.Notify();
  });
  EXPECT_TRUE(destroyed.WaitForNotificationWithTimeout(absl::Seconds(20)))
      << "the destructor waited for a polling worker";
  destroy.join();
}

TEST_F(SearchSchedulerTest, ConcurrentSubmitsAllCompleteExactlyOnce) {
  constexpr int kThreads = 4;
  constexpr int kPerThread = 40;
  auto scheduler = MakeScheduler(2, 64, /*max_queued_tasks=*/kThreads * kPerThread);
  ASSERT_NE(scheduler, nullptr);
  std::vector<std::unique_ptr<Probe>> probes;
  for (int i = 0; i < kThreads * kPerThread; ++i) {
    // Mixed snapshots, k and sizes; nprobe = all lists so that results do not depend on batching.
    probes.push_back(std::make_unique<Probe>(i % 3 == 0 ? *bob_ : *alice_, 1 + i % 7,
                                             Params(i % 2 == 0 ? 4 : 8, kNlist), 100 + i));
  }
  absl::BlockingCounter remaining(kThreads * kPerThread);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = t * kPerThread; i < (t + 1) * kPerThread; ++i) {
        scheduler->Submit(probes[i]->Task([&remaining] { remaining.DecrementCount(); }));
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  remaining.Wait();
  scheduler.reset();  // joins the workers: no callback can still be running or come later
  for (const auto& probe : probes) {
    EXPECT_EQ(probe->calls.load(), 1);
    EXPECT_THAT(probe->status, IsOk());
    EXPECT_GE(probe->timing.batch_rows, probe->queries.rows);
    EXPECT_LE(probe->timing.batch_rows, std::max<int64_t>(64, probe->queries.rows));
    probe->ExpectMatchesDirectSearch();
  }
}

TEST_F(SearchSchedulerTest, QueuedTasksForTheSameSearchAreMerged) {
  auto scheduler = MakeScheduler(1);
  ASSERT_NE(scheduler, nullptr);
  BusyWorker blocker(*scheduler, *alice_, 2, 7);
  ASSERT_TRUE(blocker.WaitUntilBusy());

  // The only worker is busy: these queue up and are then searched as one batch.
  std::vector<std::unique_ptr<Probe>> probes;
  for (int i = 0; i < 20; ++i) {
    probes.push_back(std::make_unique<Probe>(*alice_, 3, Params(4, kNlist), 200 + i));
    scheduler->Submit(probes.back()->Task());
  }
  blocker.Release();
  for (const auto& probe : probes) {
    ASSERT_TRUE(probe->finished.WaitForNotificationWithTimeout(absl::Seconds(20)));
  }
  scheduler.reset();
  EXPECT_EQ(blocker.probe().timing.batch_rows, 2);
  for (const auto& probe : probes) {
    EXPECT_EQ(probe->calls.load(), 1);
    EXPECT_THAT(probe->status, IsOk());
    EXPECT_EQ(probe->timing.batch_rows, 20 * 3);
    probe->ExpectMatchesDirectSearch();
  }
}

TEST_F(SearchSchedulerTest, BatchesRespectMaxBatchRows) {
  auto scheduler = MakeScheduler(1, /*max_batch_rows=*/25);
  ASSERT_NE(scheduler, nullptr);
  BusyWorker blocker(*scheduler, *alice_, 1, 8);
  ASSERT_TRUE(blocker.WaitUntilBusy());
  std::vector<std::unique_ptr<Probe>> probes;
  for (int i = 0; i < 20; ++i) {
    probes.push_back(std::make_unique<Probe>(*alice_, 3, Params(4, kNlist), 300 + i));
    scheduler->Submit(probes.back()->Task());
  }
  // Larger than a batch on its own: searched alone, whole.
  Probe big(*alice_, 40, Params(4, kNlist), 9);
  scheduler->Submit(big.Task());
  blocker.Release();
  ASSERT_TRUE(big.finished.WaitForNotificationWithTimeout(absl::Seconds(20)));
  scheduler.reset();
  // 20 tasks of 3 rows in FIFO order: batches of 8, 8 and 4 tasks.
  for (int i = 0; i < 20; ++i) {
    EXPECT_EQ(probes[i]->calls.load(), 1);
    EXPECT_EQ(probes[i]->timing.batch_rows, i < 16 ? 24 : 12) << "task " << i;
    probes[i]->ExpectMatchesDirectSearch();
  }
  EXPECT_EQ(big.calls.load(), 1);
  EXPECT_THAT(big.status, IsOk());
  EXPECT_EQ(big.timing.batch_rows, 40);
  big.ExpectMatchesDirectSearch();
}

TEST_F(SearchSchedulerTest, DifferentSnapshotsOrParamsAreNeverMerged) {
  auto scheduler = MakeScheduler(1);
  ASSERT_NE(scheduler, nullptr);
  BusyWorker blocker(*scheduler, *alice_, 1, 10);
  ASSERT_TRUE(blocker.WaitUntilBusy());

  // Five kinds of search, three tasks of two rows each, submitted interleaved.
  struct Kind {
    std::shared_ptr<const IndexSnapshot> snapshot;
    SearchParams params;
  };
  SearchParams unpruned = Params(4, kNlist);
  unpruned.unpruned = true;
  const std::vector<Kind> kinds = {{*alice_, Params(4, kNlist)},
                                   {*bob_, Params(4, kNlist)},
                                   {*alice_, Params(6, kNlist)},
                                   {*alice_, Params(4, 2)},
                                   {*alice_, unpruned}};
  std::vector<std::unique_ptr<Probe>> probes;
  for (int round = 0; round < 3; ++round) {
    for (size_t kind = 0; kind < kinds.size(); ++kind) {
      probes.push_back(std::make_unique<Probe>(kinds[kind].snapshot, 2, kinds[kind].params,
                                               400 + 10 * round + kind));
      scheduler->Submit(probes.back()->Task());
    }
  }
  blocker.Release();
  for (const auto& probe : probes) {
    ASSERT_TRUE(probe->finished.WaitForNotificationWithTimeout(absl::Seconds(20)));
  }
  scheduler.reset();
  for (const auto& probe : probes) {
    EXPECT_EQ(probe->calls.load(), 1);
    EXPECT_THAT(probe->status, IsOk());
    // Merged with exactly the two other tasks of its kind.
    EXPECT_EQ(probe->timing.batch_rows, 6);
    probe->ExpectMatchesDirectSearch();
  }
}

TEST_F(SearchSchedulerTest, DestructorFinishesQueuedTasks) {
  auto scheduler = MakeScheduler(1);
  ASSERT_NE(scheduler, nullptr);
  BusyWorker blocker(*scheduler, *alice_, 1, 11);
  ASSERT_TRUE(blocker.WaitUntilBusy());
  // Distinct k: each is its own batch, so most are still queued when the destructor starts.
  std::vector<std::unique_ptr<Probe>> probes;
  for (int i = 0; i < 12; ++i) {
    probes.push_back(std::make_unique<Probe>(*alice_, 50, Params(1 + i, kNlist), 500 + i));
    scheduler->Submit(probes.back()->Task());
  }
  blocker.Release();
  scheduler.reset();
  EXPECT_EQ(blocker.probe().calls.load(), 1);
  for (const auto& probe : probes) {
    EXPECT_TRUE(probe->finished.HasBeenNotified());
    EXPECT_EQ(probe->calls.load(), 1);
    EXPECT_THAT(probe->status, IsOk());
    probe->ExpectMatchesDirectSearch();
  }
}

TEST_F(SearchSchedulerTest, FullQueueRefusesAtOnceAndAdmittedTasksSucceed) {
  constexpr int kQueue = 4;
  constexpr int kSubmitted = 10;
  auto scheduler = MakeScheduler(1, 512, kQueue);
  ASSERT_NE(scheduler, nullptr);
  BusyWorker blocker(*scheduler, *alice_, 1, 12);
  ASSERT_TRUE(blocker.WaitUntilBusy());
  // The busy task does not count: kQueue tasks are admitted, the rest are refused inline.
  std::vector<std::unique_ptr<Probe>> probes;
  int refused_inline = 0;
  for (int i = 0; i < kSubmitted; ++i) {
    probes.push_back(std::make_unique<Probe>(*alice_, 2, Params(4, kNlist), 600 + i));
    scheduler->Submit(probes.back()->Task());
    if (probes.back()->calls.load() == 1) ++refused_inline;
  }
  EXPECT_EQ(refused_inline, kSubmitted - kQueue);
  blocker.Release();
  for (const auto& probe : probes) {
    ASSERT_TRUE(probe->finished.WaitForNotificationWithTimeout(absl::Seconds(20)));
  }
  scheduler.reset();
  int admitted = 0;
  for (int i = 0; i < kSubmitted; ++i) {
    const Probe& probe = *probes[i];
    EXPECT_EQ(probe.calls.load(), 1);
    if (i < kQueue) {
      ++admitted;
      EXPECT_THAT(probe.status, IsOk());
      probe.ExpectMatchesDirectSearch();
    } else {
      EXPECT_THAT(probe.status, StatusIs(absl::StatusCode::kResourceExhausted,
                                         HasSubstr("limit: 4 waiting calls")));
      EXPECT_EQ(RejectionReasonOf(probe.status), RejectionReason::kOverloaded);
      EXPECT_EQ(probe.timing.batch_rows, 0);
      EXPECT_THAT(probe.ids, Each(-2));  // not searched
    }
  }
  EXPECT_EQ(admitted, kQueue);
}

TEST_F(SearchSchedulerTest, QueueHasRoomAgainOnceWorkersTakeTasks) {
  auto scheduler = MakeScheduler(1, 512, /*max_queued_tasks=*/1);
  ASSERT_NE(scheduler, nullptr);
  for (int i = 0; i < 5; ++i) {  // one at a time: never more than one waiting
    Probe probe(*alice_, 2, Params(4, kNlist), 650 + i);
    scheduler->Submit(probe.Task());
    ASSERT_TRUE(probe.finished.WaitForNotificationWithTimeout(absl::Seconds(20)));
    EXPECT_THAT(probe.status, IsOk());
  }
}

TEST_F(SearchSchedulerTest, TaskPastItsDeadlineIsNotSearched) {
  auto scheduler = MakeScheduler(1);
  ASSERT_NE(scheduler, nullptr);
  BusyWorker blocker(*scheduler, *alice_, 1, 13);
  ASSERT_TRUE(blocker.WaitUntilBusy());
  Probe expired(*alice_, 3, Params(4, kNlist), 700);
  SearchTask expired_task = expired.Task();
  expired_task.deadline = absl::Now() - absl::Milliseconds(1);
  scheduler->Submit(std::move(expired_task));
  Probe expiring(*alice_, 3, Params(4, kNlist), 701);
  SearchTask expiring_task = expiring.Task();
  const absl::Time deadline = absl::Now() + absl::Milliseconds(20);
  expiring_task.deadline = deadline;
  scheduler->Submit(std::move(expiring_task));
  Probe live(*alice_, 3, Params(4, kNlist), 702);
  SearchTask live_task = live.Task();
  live_task.deadline = absl::Now() + absl::Hours(1);
  scheduler->Submit(std::move(live_task));
  // The second task's deadline passes while it waits behind the busy worker.
  ASSERT_TRUE(timbre::testing::WaitFor([deadline] { return absl::Now() > deadline; }));
  blocker.Release();
  for (Probe* probe : {&expired, &expiring, &live}) {
    ASSERT_TRUE(probe->finished.WaitForNotificationWithTimeout(absl::Seconds(20)));
  }
  scheduler.reset();
  for (Probe* probe : {&expired, &expiring}) {
    EXPECT_EQ(probe->calls.load(), 1);
    EXPECT_THAT(probe->status, StatusIs(absl::StatusCode::kDeadlineExceeded,
                                        HasSubstr("it was not searched")));
    EXPECT_EQ(RejectionReasonOf(probe->status), RejectionReason::kDeadline);
    EXPECT_EQ(probe->timing.batch_rows, 0);
    EXPECT_GT(probe->timing.queued, absl::ZeroDuration());
    EXPECT_THAT(probe->ids, Each(-2));
    EXPECT_THAT(probe->scores, Each(-1.0f));
  }
  EXPECT_EQ(live.calls.load(), 1);
  EXPECT_THAT(live.status, IsOk());
  EXPECT_EQ(live.timing.batch_rows, 3);  // searched alone: the expired tasks did not join
  live.ExpectMatchesDirectSearch();
}

TEST_F(SearchSchedulerTest, BeforeSearchRunsOnTheWorkerBeforeEachBatch) {
  SearchScheduler::Options options;
  options.workers = 1;
  std::atomic<int> calls{0};
  std::atomic<int> finished_before{-1};
  Probe probe(*alice_, 3, Params(4, kNlist), 720);
  options.before_search = [&] {
    calls.fetch_add(1);
    finished_before.store(probe.finished.HasBeenNotified() ? 1 : 0);
  };
  auto scheduler = SearchScheduler::Create(options);
  ASSERT_THAT(scheduler, IsOk());
  (*scheduler)->Submit(probe.Task());
  ASSERT_TRUE(probe.finished.WaitForNotificationWithTimeout(absl::Seconds(20)));
  EXPECT_EQ(calls.load(), 1);
  EXPECT_EQ(finished_before.load(), 0);  // called before the task was searched and answered
  EXPECT_THAT(probe.status, IsOk());
  probe.ExpectMatchesDirectSearch();
}

TEST_F(SearchSchedulerTest, ExpiredTaskOnAnIdleSchedulerIsNotSearched) {
  auto scheduler = MakeScheduler(2);
  ASSERT_NE(scheduler, nullptr);
  Probe probe(*alice_, 3, Params(4, kNlist), 710);
  SearchTask task = probe.Task();
  task.deadline = absl::Now() - absl::Seconds(1);
  scheduler->Submit(std::move(task));
  ASSERT_TRUE(probe.finished.WaitForNotificationWithTimeout(absl::Seconds(20)));
  scheduler.reset();
  EXPECT_THAT(probe.status, StatusIs(absl::StatusCode::kDeadlineExceeded, _));
  EXPECT_THAT(probe.ids, Each(-2));
}

}  // namespace
}  // namespace timbre
