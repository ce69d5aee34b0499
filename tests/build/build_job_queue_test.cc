#include "server/build/build_job_queue.h"

#include <sys/stat.h>

#include <algorithm>
#include <filesystem>
#include <utility>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "server/status/rejection.h"
#include "tests/support/fake_build_runner.h"
#include "tests/support/test_support.h"

namespace timbre {
namespace {

using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;
using ::timbre::testing::FakeBuildRunner;
using ::timbre::testing::IsOk;
using ::timbre::testing::ListDir;
using ::timbre::testing::ReadFile;
using ::timbre::testing::ScratchDir;
using ::timbre::testing::StatusIs;
using ::timbre::testing::WaitFor;
using ::timbre::testing::WriteFile;
using timbre::v1::BuildJob;

BuildRequest Request(const std::string& speaker, const std::string& comment = "") {
  BuildRequest request;
  request.speaker = speaker;
  request.feature_set_id = "fs-1";
  request.recipe.set_kind(timbre::v1::Recipe::KIND_RVC);
  request.comment = comment;
  return request;
}

class BuildJobQueueTest : public ::testing::Test {
 protected:
  std::unique_ptr<BuildJobQueue> MakeQueue(int max_queued = 16) {
    BuildJobQueue::Options options;
    options.builder = &runner_;
    options.jobs_dir = dir_.Join("jobs");
    options.max_queued = max_queued;
    options.on_published = [this](const std::string& speaker) {
      absl::MutexLock lock(&mutex_);
      published_.push_back(speaker);
    };
    options.on_finished = [this](const BuildJob& job) {
      absl::MutexLock lock(&mutex_);
      finished_.push_back(absl::StrCat(job.speaker(), " ", BuildJob::State_Name(job.state())));
    };
    auto queue = BuildJobQueue::Create(std::move(options));
    EXPECT_THAT(queue, IsOk());
    return *std::move(queue);
  }

  BuildJob::State StateOf(const BuildJobQueue& queue, const std::string& id) {
    return queue.Get(id)->state();
  }

  ScratchDir dir_;
  FakeBuildRunner runner_;
  absl::Mutex mutex_;
  std::vector<std::string> published_ ABSL_GUARDED_BY(mutex_);
  // Jobs told to on_finished, as "<speaker> <state>".
  std::vector<std::string> finished_ ABSL_GUARDED_BY(mutex_);
};

TEST_F(BuildJobQueueTest, RunsAJobToSuccessAndReportsThePublishedSpeaker) {
  auto queue = MakeQueue();
  auto job = queue->Submit(Request("alice"));
  ASSERT_THAT(job, IsOk());
  EXPECT_EQ(job->state(), BuildJob::STATE_QUEUED);
  EXPECT_EQ(job->speaker(), "alice");
  EXPECT_EQ(job->recipe().shuffle_seed(), 5u) << "the planned seed is recorded";
  runner_.WaitStarted();
  EXPECT_EQ(StateOf(*queue, job->id()), BuildJob::STATE_RUNNING);
  EXPECT_EQ(queue->Get(job->id())->stage(), "training");
  EXPECT_DOUBLE_EQ(queue->Get(job->id())->fraction(), 0.5);
  runner_.Release();
  ASSERT_TRUE(WaitFor([&] { return StateOf(*queue, job->id()) == BuildJob::STATE_SUCCEEDED; }));
  const BuildJob done = *queue->Get(job->id());
  EXPECT_EQ(done.report().version(), "3");
  EXPECT_DOUBLE_EQ(done.fraction(), 1.0);
  EXPECT_GT(done.finished_at_unix_ms(), 0);
  ASSERT_TRUE(WaitFor([&] {
    absl::MutexLock lock(&mutex_);
    return published_.size() == 1;
  }));
  absl::MutexLock lock(&mutex_);
  EXPECT_EQ(published_[0], "alice");
}

TEST_F(BuildJobQueueTest, RefusedPlanRecordsNoJob) {
  auto queue = MakeQueue();
  EXPECT_THAT(queue->Submit(Request("bad")),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("'bad'")));
  EXPECT_TRUE(queue->List().empty());
}

TEST_F(BuildJobQueueTest, FailedBuildIsRecordedWithItsReason) {
  auto queue = MakeQueue();
  auto job = queue->Submit(Request("alice", "fail"));
  ASSERT_THAT(job, IsOk());
  runner_.Release();
  ASSERT_TRUE(WaitFor([&] { return StateOf(*queue, job->id()) == BuildJob::STATE_FAILED; }));
  EXPECT_THAT(queue->Get(job->id())->error(), HasSubstr("INVALID_ARGUMENT: faiss refused"));
  absl::MutexLock lock(&mutex_);
  EXPECT_TRUE(published_.empty());
}

TEST_F(BuildJobQueueTest, CancelStopsARunningBuild) {
  auto queue = MakeQueue();
  auto job = queue->Submit(Request("alice"));
  ASSERT_THAT(job, IsOk());
  runner_.WaitStarted();
  auto cancelled = queue->Cancel(job->id());
  ASSERT_THAT(cancelled, IsOk());
  EXPECT_EQ(cancelled->state(), BuildJob::STATE_RUNNING);
  ASSERT_TRUE(WaitFor([&] { return StateOf(*queue, job->id()) == BuildJob::STATE_CANCELLED; }));
  EXPECT_THAT(queue->Get(job->id())->error(), HasSubstr("cancelled"));
  EXPECT_THAT(queue->Cancel(job->id()),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("already ended")));
}

TEST_F(BuildJobQueueTest, CancelOfAQueuedJobIsImmediate) {
  auto queue = MakeQueue();
  auto first = queue->Submit(Request("alice"));
  auto second = queue->Submit(Request("bob"));
  ASSERT_THAT(second, IsOk());
  runner_.WaitStarted();
  auto cancelled = queue->Cancel(second->id());
  ASSERT_THAT(cancelled, IsOk());
  EXPECT_EQ(cancelled->state(), BuildJob::STATE_CANCELLED);
  {
    absl::MutexLock lock(&mutex_);
    EXPECT_THAT(finished_, ElementsAre("bob STATE_CANCELLED")) << "told as it ends";
  }
  runner_.Release();
  ASSERT_TRUE(WaitFor([&] { return StateOf(*queue, first->id()) == BuildJob::STATE_SUCCEEDED; }));
  EXPECT_EQ(StateOf(*queue, second->id()), BuildJob::STATE_CANCELLED) << "never ran";
  ASSERT_TRUE(WaitFor([&] {
    absl::MutexLock lock(&mutex_);
    return finished_.size() == 2;
  }));
  absl::MutexLock lock(&mutex_);
  EXPECT_EQ(finished_[1], "alice STATE_SUCCEEDED");
}

TEST_F(BuildJobQueueTest, FullQueueIsRefused) {
  auto queue = MakeQueue(/*max_queued=*/1);
  ASSERT_THAT(queue->Submit(Request("a")), IsOk());
  runner_.WaitStarted();  // a runs; the queue is empty again
  ASSERT_THAT(queue->Submit(Request("b")), IsOk());
  const absl::Status refused = queue->Submit(Request("c")).status();
  EXPECT_THAT(refused, StatusIs(absl::StatusCode::kResourceExhausted, HasSubstr("already waiting")));
  EXPECT_EQ(RejectionReasonOf(refused), RejectionReason::kOverloaded);
  runner_.Release();
}

TEST_F(BuildJobQueueTest, WatchSeesEveryStageInOrderAndEndsWithTheFinalState) {
  auto queue = MakeQueue();
  ASSERT_THAT(queue->Submit(Request("first")), IsOk());
  runner_.WaitStarted();  // "alice" waits behind it, so its watch sees it from the queue on
  auto job = queue->Submit(Request("alice"));
  ASSERT_THAT(job, IsOk());
  absl::Mutex mutex;
  std::vector<BuildJob> seen;
  auto watch = queue->Watch(job->id(), [&](const BuildJob& record) {
    absl::MutexLock lock(&mutex);
    seen.push_back(record);
  });
  ASSERT_THAT(watch, IsOk());
  runner_.Release();
  ASSERT_TRUE(WaitFor([&] {
    absl::MutexLock lock(&mutex);
    return !seen.empty() && seen.back().state() == BuildJob::STATE_SUCCEEDED;
  }));
  absl::MutexLock lock(&mutex);
  std::vector<std::string> stages;
  for (size_t i = 0; i < seen.size(); ++i) {
    if (stages.empty() || stages.back() != seen[i].stage()) stages.push_back(seen[i].stage());
    if (i > 0) {
      EXPECT_GE(seen[i].fraction(), seen[i - 1].fraction()) << "never backwards";
    }
  }
  EXPECT_THAT(stages, ::testing::ElementsAre("queued", "loading", "training", "done"));
  EXPECT_EQ(stages.back(), "done");
}

TEST_F(BuildJobQueueTest, WatchOfAnEndedJobDeliversItOnce) {
  auto queue = MakeQueue();
  auto job = queue->Submit(Request("alice"));
  runner_.Release();
  ASSERT_TRUE(WaitFor([&] { return StateOf(*queue, job->id()) == BuildJob::STATE_SUCCEEDED; }));
  int calls = 0;
  auto watch = queue->Watch(job->id(), [&](const BuildJob& record) {
    ++calls;
    EXPECT_EQ(record.state(), BuildJob::STATE_SUCCEEDED);
  });
  ASSERT_THAT(watch, IsOk());
  EXPECT_EQ(calls, 1);
}

TEST_F(BuildJobQueueTest, ADestroyedWatchGetsNoMoreCalls) {
  auto queue = MakeQueue();
  auto job = queue->Submit(Request("alice"));
  runner_.WaitStarted();
  std::atomic<int> calls{0};
  auto watch = queue->Watch(job->id(), [&](const BuildJob&) { ++calls; });
  ASSERT_THAT(watch, IsOk());
  watch->reset();
  const int before = calls.load();
  runner_.Release();
  ASSERT_TRUE(WaitFor([&] { return StateOf(*queue, job->id()) == BuildJob::STATE_SUCCEEDED; }));
  EXPECT_EQ(calls.load(), before);
}

TEST_F(BuildJobQueueTest, IdsAreValidated) {
  auto queue = MakeQueue();
  EXPECT_THAT(queue->Get("../../etc/passwd"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("malformed")));
  EXPECT_THAT(queue->Get("job-000000000000"), StatusIs(absl::StatusCode::kNotFound, HasSubstr("job-000000000000")));
  EXPECT_THAT(queue->Cancel("nope"), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("malformed")));
  EXPECT_THAT(queue->Watch("job-000000000000", [](const BuildJob&) {}),
              StatusIs(absl::StatusCode::kNotFound, ::testing::_));
}

TEST_F(BuildJobQueueTest, ListIsNewestFirst) {
  auto queue = MakeQueue();
  auto first = queue->Submit(Request("a"));
  absl::SleepFor(absl::Milliseconds(2));  // distinct creation times
  auto second = queue->Submit(Request("b"));
  runner_.Release();
  const std::vector<BuildJob> jobs = queue->List();
  ASSERT_EQ(jobs.size(), 2u);
  EXPECT_EQ(jobs[0].id(), second->id());
  EXPECT_EQ(jobs[1].id(), first->id());
}

TEST_F(BuildJobQueueTest, ARestartedQueueMarksTheInterruptedBuildFailed) {
  ScratchDir crashed;
  std::string id;
  {
    auto queue = MakeQueue();
    auto job = queue->Submit(Request("alice"));
    id = job->id();
    runner_.WaitStarted();
    // What a killed server leaves behind: the record as it was while running.
    std::filesystem::copy(dir_.Join("jobs"), crashed.Join("jobs"));
    runner_.Release();
  }
  BuildJobQueue::Options options;
  options.builder = &runner_;
  options.jobs_dir = crashed.Join("jobs");
  auto restarted = BuildJobQueue::Create(std::move(options));
  ASSERT_THAT(restarted, IsOk());
  auto job = (*restarted)->Get(id);
  ASSERT_THAT(job, IsOk());
  EXPECT_EQ(job->state(), BuildJob::STATE_FAILED);
  EXPECT_THAT(job->error(), HasSubstr("the server stopped during the build"));
  EXPECT_THAT(job->error(), HasSubstr("training"));
  // The failure is persisted: a second restart reads it as it is.
  (*restarted).reset();
  BuildJobQueue::Options again;
  again.builder = &runner_;
  again.jobs_dir = crashed.Join("jobs");
  EXPECT_EQ((*BuildJobQueue::Create(std::move(again)))->Get(id)->state(), BuildJob::STATE_FAILED);
}

TEST_F(BuildJobQueueTest, RecordsThatAreNotRegularFilesAreSkippedWithoutWaiting) {
  // Before, a FIFO among the records blocked the server's start for ever.
  ScratchDir jobs;
  ASSERT_EQ(mkfifo(jobs.Join("job-0123456789ab.json").c_str(), 0600), 0);
  std::filesystem::create_directories(jobs.Join("job-0123456789ac.json"));
  BuildJobQueue::Options options;
  options.builder = &runner_;
  options.jobs_dir = jobs.path();
  auto queue = BuildJobQueue::Create(std::move(options));
  ASSERT_THAT(queue, IsOk());
  EXPECT_THAT((*queue)->List(), ::testing::IsEmpty());
}

TEST_F(BuildJobQueueTest, RecordsAreWrittenInTheJsonFormOfMetadata) {
  auto queue = MakeQueue();
  auto job = queue->Submit(Request("alice"));
  ASSERT_THAT(job, IsOk());
  const std::string record = ReadFile(dir_.Join(absl::StrCat("jobs/", job->id(), ".json")));
  EXPECT_THAT(record, HasSubstr("\"feature_set_id\": \"fs-1\""));
  EXPECT_THAT(record, HasSubstr("\"created_at_unix_ms\": "));
  EXPECT_THAT(record, Not(HasSubstr("featureSetId")));
  runner_.Release();
  ASSERT_TRUE(WaitFor([&] { return IsFinalJobState(StateOf(*queue, job->id())); }));
  queue.reset();
  // Only the records: every write replaced its file whole, leaving no temporary.
  EXPECT_THAT(ListDir(dir_.Join("jobs")), ElementsAre(absl::StrCat(job->id(), ".json")));
}

TEST_F(BuildJobQueueTest, CamelCaseRecordsOfEarlierVersionsStillLoad) {
  ScratchDir jobs;
  WriteFile(jobs.Join("job-0123456789ab.json"),
            R"({"id": "job-0123456789ab", "speaker": "alice", "featureSetId": "fs-0123456789abcdef",
                "state": "STATE_SUCCEEDED", "stage": "done", "fraction": 1,
                "createdAtUnixMs": "1700000000000", "finishedAtUnixMs": "1700000060000",
                "report": {"inputRows": "20000", "version": "3"}})");
  WriteFile(jobs.Join("job-0123456789ac.json"),
            R"({"id": "job-0123456789ac", "speaker": "bob", "featureSetId": "fs-0123456789abcdef",
                "state": "STATE_RUNNING", "stage": "training", "createdAtUnixMs": "1700000000001"})");
  // Temporaries of writes a crash interrupted, from this version and an earlier one.
  WriteFile(jobs.Join("job-0123456789ad.json.partial-AbC123"), "{\"id\": \"job-01");
  WriteFile(jobs.Join("job-0123456789ae.json.tmp"), "{");
  BuildJobQueue::Options options;
  options.builder = &runner_;
  options.jobs_dir = jobs.path();
  auto queue = BuildJobQueue::Create(std::move(options));
  ASSERT_THAT(queue, IsOk());
  auto done = (*queue)->Get("job-0123456789ab");
  ASSERT_THAT(done, IsOk());
  EXPECT_EQ(done->feature_set_id(), "fs-0123456789abcdef");
  EXPECT_EQ(done->state(), BuildJob::STATE_SUCCEEDED);
  EXPECT_EQ(done->created_at_unix_ms(), 1700000000000);
  EXPECT_EQ(done->finished_at_unix_ms(), 1700000060000);
  EXPECT_EQ(done->report().input_rows(), 20000u);
  EXPECT_EQ(done->report().version(), "3");
  auto interrupted = (*queue)->Get("job-0123456789ac");
  ASSERT_THAT(interrupted, IsOk());
  EXPECT_EQ(interrupted->state(), BuildJob::STATE_FAILED);
  // The record rewritten on loading takes the form of metadata.
  EXPECT_THAT(ReadFile(jobs.Join("job-0123456789ac.json")),
              AllOf(HasSubstr("\"feature_set_id\": \"fs-0123456789abcdef\""),
                    HasSubstr("\"state\": \"STATE_FAILED\"")));
  EXPECT_THAT(ListDir(jobs.path()), ElementsAre("job-0123456789ab.json", "job-0123456789ac.json"));
}

TEST_F(BuildJobQueueTest, ShutdownCancelsTheRunningAndQueuedJobs) {
  std::string running, queued;
  {
    auto queue = MakeQueue();
    running = queue->Submit(Request("a"))->id();
    queued = queue->Submit(Request("b"))->id();
    runner_.WaitStarted();
  }
  BuildJobQueue::Options options;
  options.builder = &runner_;
  options.jobs_dir = dir_.Join("jobs");
  auto restarted = BuildJobQueue::Create(std::move(options));
  ASSERT_THAT(restarted, IsOk());
  EXPECT_EQ((*restarted)->Get(running)->state(), BuildJob::STATE_CANCELLED);
  EXPECT_THAT((*restarted)->Get(running)->error(), HasSubstr("shut down during the build"));
  EXPECT_EQ((*restarted)->Get(queued)->state(), BuildJob::STATE_CANCELLED);
  runner_.Release();
}

TEST_F(BuildJobQueueTest, CountsJobsByState) {
  auto queue = MakeQueue();
  EXPECT_EQ(queue->CountByState(), JobStateCounts{});
  auto succeeding = queue->Submit(Request("a"));
  runner_.WaitStarted();
  auto failing = queue->Submit(Request("b", "fail"));
  auto cancelled = queue->Submit(Request("c"));
  ASSERT_THAT(queue->Cancel(cancelled->id()), IsOk());
  JobStateCounts expected{};
  expected[BuildJob::STATE_QUEUED] = 1;
  expected[BuildJob::STATE_RUNNING] = 1;
  expected[BuildJob::STATE_CANCELLED] = 1;
  EXPECT_EQ(queue->CountByState(), expected);
  runner_.Release();
  ASSERT_TRUE(WaitFor([&] { return StateOf(*queue, failing->id()) == BuildJob::STATE_FAILED; }));
  expected = JobStateCounts{};
  expected[BuildJob::STATE_SUCCEEDED] = 1;
  expected[BuildJob::STATE_FAILED] = 1;
  expected[BuildJob::STATE_CANCELLED] = 1;
  EXPECT_EQ(queue->CountByState(), expected);
}

// Once started, reports a fraction lower than one before it, as a faulty build might.
class BackwardsRunner : public BuildRunner {
 public:
  absl::StatusOr<BuildPlan> Plan(const BuildRequest& request) const override { return BuildPlan(); }
  absl::StatusOr<timbre::v1::BuildReport> Build(const BuildRequest& request,
                                                BuildObserver* observer) const override {
    if (!start.WaitForNotificationWithTimeout(absl::Seconds(20))) {
      return absl::DeadlineExceededError("never started");
    }
    observer->BeginStage(BuildStage::kLoading, 0.0);
    observer->Progress(0.6, "ahead");
    observer->Progress(0.3, "behind");
    observer->BeginStage(BuildStage::kTraining, 0.5);
    observer->Progress(2.0, "beyond");
    return timbre::v1::BuildReport();
  }

  absl::Notification start;
};

TEST(BuildJobQueueProgressTest, TheRecordedFractionNeverGoesBackNorPastOneAndEndsAtOne) {
  ScratchDir dir;
  BackwardsRunner runner;
  BuildJobQueue::Options options;
  options.builder = &runner;
  options.jobs_dir = dir.Join("jobs");
  absl::Mutex mutex;
  std::vector<std::pair<std::string, double>> seen;
  auto queue = BuildJobQueue::Create(std::move(options));
  ASSERT_THAT(queue, IsOk());
  auto job = (*queue)->Submit(Request("alice"));
  ASSERT_THAT(job, IsOk());
  auto watch = (*queue)->Watch(job->id(), [&](const BuildJob& record) {
    absl::MutexLock lock(&mutex);
    seen.emplace_back(record.stage(), record.fraction());
  });
  ASSERT_THAT(watch, IsOk());
  runner.start.Notify();
  ASSERT_TRUE(WaitFor([&] { return (*queue)->Get(job->id())->state() == BuildJob::STATE_SUCCEEDED; }));
  absl::MutexLock lock(&mutex);
  ASSERT_FALSE(seen.empty());
  for (size_t i = 1; i < seen.size(); ++i) {
    EXPECT_GE(seen[i].second, seen[i - 1].second) << "record " << i;
    EXPECT_LE(seen[i].second, 1.0) << "record " << i;
  }
  EXPECT_EQ(seen.back(), std::make_pair(std::string("done"), 1.0));
  const auto training = std::find_if(seen.begin(), seen.end(),
                                     [](const auto& record) { return record.first == "training"; });
  ASSERT_NE(training, seen.end());
  EXPECT_EQ(training->second, 0.6) << "the training stage began below what loading reached";
}

TEST(BuildJobQueueCreateTest, NeedsABuilderAndADirectory) {
  EXPECT_THAT(BuildJobQueue::Create({}), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("builder")));
}

}  // namespace
}  // namespace timbre
