#include "server/serving/retriever.h"

#include <atomic>
#include <cmath>
#include <limits>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/build/demo_speaker.h"
#include "server/faiss/faiss_index.h"
#include "server/serving/blend.h"
#include "server/serving/search_scheduler.h"
#include "server/serving/speaker_registry.h"
#include "server/serving/speaker_repository.h"
#include "tests/support/test_support.h"

namespace timbre {
namespace {

using ::testing::_;
using ::testing::AllOf;
using ::testing::HasSubstr;
using ::timbre::testing::IsOk;
using ::timbre::testing::ScratchDir;
using ::timbre::testing::StatusIs;
using ::timbre::testing::WriteRvcIndex;

constexpr int kDim = 16;
constexpr int kNlist = 8;
constexpr int64_t kMaxFrames = 64;
constexpr int kMaxK = 16;

// Waits for a call's single completion and counts how often `done` ran.
template <typename T>
struct Completion {
  absl::Notification finished;
  std::atomic<int> calls{0};
  absl::StatusOr<T> result = absl::UnknownError("not run");

  absl::AnyInvocable<void(absl::StatusOr<T>)> Done() {
    return [this](absl::StatusOr<T> r) {
      result = std::move(r);
      // Notify only on the first call, so that a second one is seen by calls, not as a crash.
      if (calls.fetch_add(1) == 0) finished.Notify();
    };
  }
};

class RetrieverTest : public ::testing::Test {
 protected:
  void SetUp() override {
    alice_frames_ = GenerateClusteredFrames(400, kDim, 8, 1);
    WriteRvcIndex(alice_frames_, kNlist, scratch_.Join("alice/added_alice.index"));
    WriteRvcIndex(GenerateClusteredFrames(400, 2 * kDim, 8, 2), kNlist,
                  scratch_.Join("wide/added_wide.index"));
    WriteRvcIndex(alice_frames_, kNlist, scratch_.Join("broken/trained_broken.index"));
    auto repository = SpeakerRepository::Create({scratch_.path()});
    ASSERT_THAT(repository, IsOk());
    repository_ = *std::move(repository);
    SpeakerRegistry::Options registry_options;
    registry_options.repository = repository_.get();
    registry_options.poll_interval = absl::ZeroDuration();
    auto registry = SpeakerRegistry::Create(registry_options);
    ASSERT_THAT(registry, IsOk());
    registry_ = *std::move(registry);
    SearchScheduler::Options scheduler_options;
    scheduler_options.workers = 2;
    scheduler_options.max_queued_tasks = 1000;  // ConcurrentBlendsAreAllCorrect queues them all
    auto scheduler = SearchScheduler::Create(scheduler_options);
    ASSERT_THAT(scheduler, IsOk());
    scheduler_ = *std::move(scheduler);
    Retriever::Options options;
    options.registry = registry_.get();
    options.scheduler = scheduler_.get();
    options.max_frames_per_call = kMaxFrames;
    options.max_k = kMaxK;
    auto retriever = Retriever::Create(options);
    ASSERT_THAT(retriever, IsOk());
    retriever_ = *std::move(retriever);
  }

  void TearDown() override {
    // Joining the workers guarantees no callback runs later; then every done ran exactly once.
    retriever_.reset();
    scheduler_.reset();
    for (const auto& completion : blends_) EXPECT_EQ(completion->calls.load(), 1);
    for (const auto& completion : searches_) EXPECT_EQ(completion->calls.load(), 1);
  }

  absl::StatusOr<BlendResult> Blend(RetrievalCall call) {
    blends_.push_back(std::make_unique<Completion<BlendResult>>());
    Completion<BlendResult>& completion = *blends_.back();
    retriever_->Blend(std::move(call), completion.Done());
    EXPECT_TRUE(completion.finished.WaitForNotificationWithTimeout(absl::Seconds(20)));
    return completion.result;
  }

  absl::StatusOr<SearchResult> Search(RetrievalCall call) {
    searches_.push_back(std::make_unique<Completion<SearchResult>>());
    Completion<SearchResult>& completion = *searches_.back();
    retriever_->Search(std::move(call), completion.Done());
    EXPECT_TRUE(completion.finished.WaitForNotificationWithTimeout(absl::Seconds(20)));
    return completion.result;
  }

  static RetrievalCall Call(const std::string& speaker, int64_t rows, int dim = kDim,
                            uint32_t seed = 9) {
    RetrievalCall call;
    call.speaker = speaker;
    call.frames = GenerateClusteredFrames(rows, dim, 8, seed);
    return call;
  }

  // The blend computed directly: a single-threaded search of the speaker's serving index, then
  // BlendFrames.
  std::vector<float> DirectBlend(const RetrievalCall& call) {
    auto snapshot = registry_->Acquire(call.speaker);
    EXPECT_THAT(snapshot, IsOk());
    if (!snapshot.ok()) return {};
    const FaissIndex& index = *(*snapshot)->index;
    const int64_t rows = call.frames.rows;
    std::vector<float> scores(rows * call.params.k);
    std::vector<int64_t> ids(rows * call.params.k);
    EXPECT_THAT(
        index.Search(call.frames.values.data(), rows, call.params, 1, scores.data(), ids.data()),
        IsOk());
    std::vector<float> out(call.frames.values.size());
    BlendFrames(
        call.frames.values.data(), rows, call.frames.dim, scores.data(), ids.data(), call.params.k,
        index.metric(), call.index_rate, [&index](int64_t id) { return index.StoredVector(id); },
        out.data());
    return out;
  }

  ScratchDir scratch_;
  FrameMatrix alice_frames_;
  std::unique_ptr<SpeakerRepository> repository_;
  std::unique_ptr<SpeakerRegistry> registry_;
  std::unique_ptr<SearchScheduler> scheduler_;
  std::unique_ptr<Retriever> retriever_;
  std::vector<std::unique_ptr<Completion<BlendResult>>> blends_;
  std::vector<std::unique_ptr<Completion<SearchResult>>> searches_;
};

TEST(RetrieverCreateTest, RejectsMissingCollaboratorsAndBadLimits) {
  EXPECT_THAT(Retriever::Create({}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("registry")));
  ScratchDir scratch;
  auto repository = SpeakerRepository::Create({scratch.path()});
  ASSERT_THAT(repository, IsOk());
  SpeakerRegistry::Options registry_options;
  registry_options.repository = repository->get();
  registry_options.poll_interval = absl::ZeroDuration();
  auto registry = SpeakerRegistry::Create(registry_options);
  ASSERT_THAT(registry, IsOk());
  SearchScheduler::Options scheduler_options;
  scheduler_options.workers = 1;
  auto scheduler = SearchScheduler::Create(scheduler_options);
  ASSERT_THAT(scheduler, IsOk());

  Retriever::Options options;
  options.registry = registry->get();
  EXPECT_THAT(Retriever::Create(options), StatusIs(absl::StatusCode::kInvalidArgument, _));
  options.scheduler = scheduler->get();
  EXPECT_THAT(Retriever::Create(options), IsOk());
  Retriever::Options no_frames = options;
  no_frames.max_frames_per_call = 0;
  EXPECT_THAT(Retriever::Create(no_frames), StatusIs(absl::StatusCode::kInvalidArgument, _));
  Retriever::Options no_k = options;
  no_k.max_k = 0;
  EXPECT_THAT(Retriever::Create(no_k), StatusIs(absl::StatusCode::kInvalidArgument, _));
}

TEST_F(RetrieverTest, BlendEqualsDirectBlend) {
  for (float rate : {0.0f, 0.5f, kDefaultIndexRate, 1.0f}) {
    RetrievalCall call = Call("alice", 20);
    call.index_rate = rate;
    const std::vector<float> want = DirectBlend(call);
    const std::vector<float> input = call.frames.values;
    auto result = Blend(call);
    ASSERT_THAT(result, IsOk());
    EXPECT_EQ(result->frames.rows, 20);
    EXPECT_EQ(result->frames.dim, kDim);
    EXPECT_EQ(result->frames.values, want) << "rate " << rate;
    if (rate == 0.0f) {
      EXPECT_EQ(result->frames.values, input);
    } else {
      EXPECT_NE(result->frames.values, input);
    }
    EXPECT_EQ(result->version, "added_alice.index");
    EXPECT_EQ(result->timing.batch_rows, 20);
    EXPECT_GE(result->blend, absl::ZeroDuration());
  }
}

TEST_F(RetrieverTest, BlendWithExplicitParamsEqualsDirectBlend) {
  RetrievalCall call = Call("alice", kMaxFrames, kDim, 10);
  call.params.k = kMaxK;
  call.params.nprobe = kNlist;
  const std::vector<float> want = DirectBlend(call);
  auto result = Blend(call);
  ASSERT_THAT(result, IsOk());
  EXPECT_EQ(result->frames.values, want);
}

TEST_F(RetrieverTest, BlendOfStoredFramesWithFullRateReturnsThem) {
  // Each stored frame is its own exact match (score 0): all weight on it.
  RetrievalCall call;
  call.speaker = "alice";
  call.frames.rows = 10;
  call.frames.dim = kDim;
  call.frames.values.assign(alice_frames_.values.begin(), alice_frames_.values.begin() + 10 * kDim);
  call.index_rate = 1.0f;
  call.params.nprobe = kNlist;  // every list, so that each frame meets its stored self
  auto result = Blend(call);
  ASSERT_THAT(result, IsOk());
  for (size_t i = 0; i < call.frames.values.size(); ++i) {
    ASSERT_TRUE(std::isfinite(result->frames.values[i]));
    EXPECT_FLOAT_EQ(result->frames.values[i], call.frames.values[i]);
  }
}

TEST_F(RetrieverTest, SearchReturnsNeighboursAndSnapshot) {
  RetrievalCall call = Call("alice", 12);
  call.params.k = 5;
  call.index_rate = std::numeric_limits<float>::quiet_NaN();  // ignored by Search
  auto snapshot = registry_->Acquire("alice");
  ASSERT_THAT(snapshot, IsOk());
  std::vector<float> want_scores(12 * 5);
  std::vector<int64_t> want_ids(12 * 5);
  ASSERT_THAT((*snapshot)->index->Search(call.frames.values.data(), 12, call.params, 1,
                                         want_scores.data(), want_ids.data()),
              IsOk());
  auto result = Search(call);
  ASSERT_THAT(result, IsOk());
  EXPECT_EQ(result->rows, 12);
  EXPECT_EQ(result->k, 5);
  EXPECT_EQ(result->ids, want_ids);
  EXPECT_EQ(result->scores, want_scores);
  EXPECT_EQ(result->snapshot, *snapshot);
  EXPECT_EQ(result->timing.batch_rows, 12);
}

TEST_F(RetrieverTest, ConcurrentBlendsAreAllCorrect) {
  constexpr int kThreads = 4;
  constexpr int kPerThread = 25;
  std::vector<RetrievalCall> calls;
  std::vector<std::vector<float>> wants;
  for (int i = 0; i < kThreads * kPerThread; ++i) {
    RetrievalCall call = Call("alice", 1 + i % 9, kDim, 1000 + i);
    call.params.nprobe = kNlist;  // all lists: results independent of how calls are batched
    call.params.k = 4 + i % 2;
    wants.push_back(DirectBlend(call));
    calls.push_back(std::move(call));
  }
  std::vector<Completion<BlendResult>> completions(kThreads * kPerThread);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = t * kPerThread; i < (t + 1) * kPerThread; ++i) {
        retriever_->Blend(calls[i], completions[i].Done());
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  for (auto& completion : completions) {
    ASSERT_TRUE(completion.finished.WaitForNotificationWithTimeout(absl::Seconds(20)));
  }
  scheduler_.reset();  // no callback runs after this
  for (size_t i = 0; i < completions.size(); ++i) {
    EXPECT_EQ(completions[i].calls.load(), 1);
    ASSERT_THAT(completions[i].result, IsOk());
    EXPECT_EQ(completions[i].result->frames.values, wants[i]) << "call " << i;
  }
}

TEST_F(RetrieverTest, UnknownSpeakerIsNotFound) {
  EXPECT_THAT(Blend(Call("nobody", 4)), StatusIs(absl::StatusCode::kNotFound, HasSubstr("nobody")));
  EXPECT_THAT(Search(Call("nobody", 4)),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("nobody")));
}

TEST_F(RetrieverTest, InvalidSpeakerNameIsInvalidArgument) {
  EXPECT_THAT(Blend(Call("../alice", 4)), StatusIs(absl::StatusCode::kInvalidArgument, _));
  EXPECT_THAT(Search(Call("", 4)), StatusIs(absl::StatusCode::kInvalidArgument, _));
}

TEST_F(RetrieverTest, FailedSpeakerIsFailedPrecondition) {
  EXPECT_THAT(Blend(Call("broken", 4)),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       AllOf(HasSubstr("broken"), HasSubstr("trained_"))));
  EXPECT_THAT(Search(Call("broken", 4)), StatusIs(absl::StatusCode::kFailedPrecondition, _));
}

TEST_F(RetrieverTest, DimMismatchNamesBothDims) {
  EXPECT_THAT(Blend(Call("wide", 4, kDim)),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("speaker 'wide'"),
                             HasSubstr("frames have dim 16, index has dim 32"))));
  EXPECT_THAT(Search(Call("alice", 4, 2 * kDim)),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("frames have dim 32, index has dim 16")));
}

TEST_F(RetrieverTest, KOutsideRangeIsInvalidArgument) {
  for (int k : {0, -1, kMaxK + 1}) {
    RetrievalCall call = Call("alice", 4);
    call.params.k = k;
    EXPECT_THAT(Blend(call), StatusIs(absl::StatusCode::kInvalidArgument,
                                      AllOf(HasSubstr("k is " + std::to_string(k)),
                                            HasSubstr(std::to_string(kMaxK)))));
    EXPECT_THAT(Search(call), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("k is")));
  }
  RetrievalCall largest = Call("alice", 4);
  largest.params.k = kMaxK;
  EXPECT_THAT(Search(largest), IsOk());
}

TEST_F(RetrieverTest, NprobeAboveListCountIsInvalidArgument) {
  RetrievalCall call = Call("alice", 4);
  call.params.nprobe = kNlist + 1;
  EXPECT_THAT(Blend(call), StatusIs(absl::StatusCode::kInvalidArgument,
                                    AllOf(HasSubstr("nprobe is 9"), HasSubstr("8 lists"))));
  EXPECT_THAT(Search(call), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("nprobe")));
  call.params.nprobe = -1;
  EXPECT_THAT(Search(call), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("nprobe")));
  call.params.nprobe = kNlist;
  EXPECT_THAT(Blend(call), IsOk());
}

TEST_F(RetrieverTest, IndexRateOutsideUnitIntervalIsInvalidArgument) {
  for (float rate : {-0.1f, 1.5f, std::numeric_limits<float>::quiet_NaN(),
                     std::numeric_limits<float>::infinity()}) {
    RetrievalCall call = Call("alice", 4);
    call.index_rate = rate;
    EXPECT_THAT(Blend(call), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("index_rate")))
        << rate;
  }
}

TEST_F(RetrieverTest, TooManyFramesIsInvalidArgument) {
  EXPECT_THAT(
      Blend(Call("alice", kMaxFrames + 1)),
      StatusIs(absl::StatusCode::kInvalidArgument, AllOf(HasSubstr("65 frames"), HasSubstr("64"))));
  EXPECT_THAT(Search(Call("alice", kMaxFrames + 1)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("65 frames")));
  EXPECT_THAT(Blend(Call("alice", kMaxFrames)), IsOk());
}

TEST_F(RetrieverTest, NoFramesIsInvalidArgument) {
  RetrievalCall call;
  call.speaker = "alice";
  call.frames.dim = kDim;
  EXPECT_THAT(Blend(call), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("no frames")));
  EXPECT_THAT(Search(call), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("no frames")));
}

TEST_F(RetrieverTest, CallPastItsDeadlineIsNotSearched) {
  RetrievalCall call = Call("alice", 4);
  call.deadline = absl::Now() - absl::Milliseconds(1);
  EXPECT_THAT(Blend(call), StatusIs(absl::StatusCode::kDeadlineExceeded,
                                    HasSubstr("it was not searched")));
  EXPECT_THAT(Search(call), StatusIs(absl::StatusCode::kDeadlineExceeded, _));
  call.deadline = absl::Now() + absl::Minutes(1);
  EXPECT_THAT(Blend(call), IsOk());
}

TEST_F(RetrieverTest, FullSchedulerQueueIsResourceExhaustedAtOnce) {
  // A scheduler of one worker and a queue of one, whose worker a raw task holds.
  SearchScheduler::Options scheduler_options;
  scheduler_options.workers = 1;
  scheduler_options.max_queued_tasks = 1;
  auto scheduler = SearchScheduler::Create(scheduler_options);
  ASSERT_THAT(scheduler, IsOk());
  Retriever::Options options;
  options.registry = registry_.get();
  options.scheduler = scheduler->get();
  auto retriever = Retriever::Create(options);
  ASSERT_THAT(retriever, IsOk());
  auto snapshot = registry_->Acquire("alice");
  ASSERT_THAT(snapshot, IsOk());
  RetrievalCall held = Call("alice", 1);
  std::vector<float> scores(8);
  std::vector<int64_t> ids(8);
  absl::Notification started, release, released;
  SearchTask blocker;
  blocker.snapshot = *snapshot;
  blocker.queries = held.frames.values.data();
  blocker.rows = 1;
  blocker.scores = scores.data();
  blocker.ids = ids.data();
  blocker.done = [&](absl::Status, const SearchTiming&) {
    started.Notify();
    release.WaitForNotification();
    released.Notify();
  };
  (*scheduler)->Submit(std::move(blocker));
  ASSERT_TRUE(started.WaitForNotificationWithTimeout(absl::Seconds(20)));

  Completion<BlendResult> queued, refused;
  (*retriever)->Blend(Call("alice", 4), queued.Done());
  (*retriever)->Blend(Call("alice", 4), refused.Done());
  // Refused before Blend returned, while the first call still waits.
  ASSERT_TRUE(refused.finished.HasBeenNotified());
  EXPECT_THAT(refused.result, StatusIs(absl::StatusCode::kResourceExhausted,
                                       HasSubstr("limit: 1 waiting calls")));
  EXPECT_FALSE(queued.finished.HasBeenNotified());
  release.Notify();
  ASSERT_TRUE(queued.finished.WaitForNotificationWithTimeout(absl::Seconds(20)));
  EXPECT_THAT(queued.result, IsOk());
  ASSERT_TRUE(released.WaitForNotificationWithTimeout(absl::Seconds(20)));
}

TEST_F(RetrieverTest, CallForAnUnloadedSpeakerLoadsItFirst) {
  ASSERT_THAT(registry_->Unload("alice"), IsOk());
  const RetrievalCall call = Call("alice", 5);
  auto blended = Blend(call);
  ASSERT_THAT(blended, IsOk());
  EXPECT_EQ(registry_->Get("alice")->state, SpeakerState::kLoaded);
  EXPECT_EQ(blended->frames.values, DirectBlend(call));

  ASSERT_THAT(registry_->Unload("alice"), IsOk());
  auto searched = Search(Call("alice", 3));
  ASSERT_THAT(searched, IsOk());
  EXPECT_EQ(searched->rows, 3);
  // A call that fails its checks after the load is still answered once, with the reason.
  ASSERT_THAT(registry_->Unload("alice"), IsOk());
  EXPECT_THAT(Blend(Call("alice", 2, 2 * kDim)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("frames have dim 32")));
}

}  // namespace
}  // namespace timbre
