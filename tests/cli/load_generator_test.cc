#include "client/cli/load_generator.h"

#include <filesystem>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/build/demo_speaker.h"
#include "server/timbre_server.h"
#include "tests/support/server_test_support.h"
#include "tests/support/test_support.h"

namespace timbre {
namespace {

using ::testing::HasSubstr;
using ::testing::UnorderedElementsAre;
using ::timbre::testing::IsOk;
using ::timbre::testing::StatusIs;

// A LoadClock on which each thread has its own time, from the same start: SleepUntil moves the
// calling thread's time forward, no thread really waits, and calls take no time. It records
// every thread's wake-up times, in milliseconds from the start. (Back-to-back runs would never
// end on it: only sleeps advance its time.)
class StepClock final : public LoadClock {
 public:
  absl::Time Now() override {
    absl::MutexLock lock(&mutex_);
    return kStart + elapsed_[std::this_thread::get_id()];
  }
  void SleepUntil(absl::Time time) override {
    absl::MutexLock lock(&mutex_);
    absl::Duration& elapsed = elapsed_[std::this_thread::get_id()];
    elapsed = std::max(elapsed, time - kStart);
    wake_ups_[std::this_thread::get_id()].push_back(absl::ToInt64Milliseconds(elapsed));
  }
  std::vector<std::vector<int64_t>> WakeUps() const {
    absl::MutexLock lock(&mutex_);
    std::vector<std::vector<int64_t>> wake_ups;
    for (const auto& [thread, times] : wake_ups_) wake_ups.push_back(times);
    return wake_ups;
  }

 private:
  static constexpr absl::Time kStart = absl::UnixEpoch();
  mutable absl::Mutex mutex_;
  std::map<std::thread::id, absl::Duration> elapsed_ ABSL_GUARDED_BY(mutex_);
  std::map<std::thread::id, std::vector<int64_t>> wake_ups_ ABSL_GUARDED_BY(mutex_);
};

class LoadGeneratorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const FrameMatrix frames = GenerateClusteredFrames(800, 32, 16, 3);
    timbre::testing::WriteRvcIndex(frames, 16, repo_.Join("small/added_IVF16_Flat_nprobe_1_s_v2.index"));
    timbre::testing::WriteRvcIndex(frames, 16, repo_.Join("other/added_IVF16_Flat_nprobe_1_o_v2.index"));
    timbre::testing::WriteRvcIndex(GenerateClusteredFrames(800, 48, 16, 3), 16,
                                   repo_.Join("wide/added_IVF16_Flat_nprobe_1_w_v2.index"));
    server_ = testing::StartServer(testing::LocalServerOptions(repo_.path()));
    ASSERT_NE(server_, nullptr);
    auto client = TimbreClient::Create(testing::LocalClientOptions(server_->port()));
    ASSERT_THAT(client, IsOk());
    client_ = *std::move(client);
  }

  timbre::testing::ScratchDir repo_;
  std::unique_ptr<TimbreServer> server_;
  std::unique_ptr<TimbreClient> client_;
};

TEST_F(LoadGeneratorTest, CountsCallsFramesAndLatencies) {
  for (bool streaming : {false, true}) {
    LoadOptions options;
    options.speaker = "small";
    options.concurrency = 3;
    options.frames = 5;
    options.streaming = streaming;
    options.duration = absl::Milliseconds(300);
    options.warmup = absl::Milliseconds(50);
    auto report = RunLoad(*client_, options);
    ASSERT_THAT(report, IsOk());
    EXPECT_GT(report->calls, 0);
    EXPECT_EQ(report->errors, 0) << report->first_error;
    EXPECT_EQ(report->frames, report->calls * 5);
    ASSERT_EQ(report->latency_us.size(), static_cast<size_t>(report->calls));
    EXPECT_LE(LoadReport::Percentile(report->latency_us, 50),
              LoadReport::Percentile(report->latency_us, 99));
    EXPECT_GE(report->seconds, 0.3);
    // The server's own time is part of the end-to-end time.
    EXPECT_LE(LoadReport::Percentile(report->server_us, 50),
              LoadReport::Percentile(report->latency_us, 50));
    EXPECT_THAT(report->ToText(), HasSubstr("frames/s"));
    EXPECT_THAT(report->ToJson(), HasSubstr("\"p99_ms\""));
  }
}

TEST_F(LoadGeneratorTest, CallsEachCallerOnItsScheduleAtTheRate) {
  // 20 calls/s per caller: caller 0 is due every 50 ms from the start, caller 1 25 ms later.
  // The first 100 ms are warm-up; the measured 500 ms end at 600 ms.
  StepClock clock;
  LoadOptions options;
  options.speaker = "small";
  options.concurrency = 2;
  options.rate = 20;
  options.warmup = absl::Milliseconds(100);
  options.duration = absl::Milliseconds(500);
  options.clock = &clock;
  auto report = RunLoad(*client_, options);
  ASSERT_THAT(report, IsOk());
  std::vector<int64_t> caller0, caller1;
  for (int64_t ms = 0; ms < 600; ms += 50) {
    caller0.push_back(ms);
    caller1.push_back(ms + 25);
  }
  // Each caller waited for each of its calls, and once more for the first one past the end.
  caller0.push_back(600);
  caller1.push_back(625);
  EXPECT_THAT(clock.WakeUps(), UnorderedElementsAre(caller0, caller1));
  EXPECT_EQ(report->calls, 2 * 10) << report->first_error;  // the warm-up's 2 each not counted
  EXPECT_EQ(report->errors, 0);
  EXPECT_EQ(report->seconds, 0.5);
  EXPECT_EQ(report->calls_per_second(), 40);
}

TEST_F(LoadGeneratorTest, CountsServerErrors) {
  LoadOptions options;
  options.speaker = "small";
  options.concurrency = 1;
  options.duration = absl::Milliseconds(100);
  options.warmup = absl::ZeroDuration();
  options.options.set_index_rate(2.0f);  // every call is refused
  auto report = RunLoad(*client_, options);
  ASSERT_THAT(report, IsOk());
  EXPECT_EQ(report->calls, 0);
  EXPECT_GT(report->errors, 0);
  EXPECT_THAT(report->first_error, HasSubstr("index_rate is 2"));
  const std::map<std::string, int64_t> by_code = {{"INVALID_ARGUMENT", report->errors}};
  EXPECT_EQ(report->errors_by_code, by_code);
  const std::string count = std::to_string(report->errors);
  EXPECT_THAT(report->ToJson(),
              HasSubstr("\"errors_by_code\": {\"INVALID_ARGUMENT\": " + count + "}"));
  EXPECT_THAT(report->ToText(), HasSubstr("errors:       INVALID_ARGUMENT " + count + "\n"));
}

TEST_F(LoadGeneratorTest, RejectsBadOptions) {
  LoadOptions options;
  EXPECT_THAT(RunLoad(*client_, options).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--speaker")));
  options.speaker = "small";
  options.concurrency = 0;
  EXPECT_THAT(RunLoad(*client_, options).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--concurrency")));
  options.concurrency = 1;
  options.frames = 0;
  EXPECT_THAT(RunLoad(*client_, options).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--frames")));
  options.frames = 1;
  options.rate = -1;
  EXPECT_THAT(RunLoad(*client_, options).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--rate")));
  options.rate = 0;
  options.duration = absl::ZeroDuration();
  EXPECT_THAT(RunLoad(*client_, options).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--duration")));
  options.duration = absl::Seconds(1);
  options.clock = nullptr;
  EXPECT_THAT(RunLoad(*client_, options).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("clock")));
  options.clock = LoadClock::System();
  options.speaker = "nobody";
  EXPECT_THAT(RunLoad(*client_, options).status(), StatusIs(absl::StatusCode::kNotFound, HasSubstr("nobody")));
  options.speaker = "small";
  options.queries = {1.0f, 2.0f, 3.0f};
  options.query_rows = 1;
  EXPECT_THAT(RunLoad(*client_, options).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("dim 32")));
}

TEST_F(LoadGeneratorTest, SpreadsCallersOverSeveralSpeakersLoadingThemOnTheirFirstCall) {
  ASSERT_THAT(client_->UnloadSpeaker("other"), IsOk());
  LoadOptions options;
  options.speaker = "small,other";
  options.concurrency = 2;
  options.duration = absl::Milliseconds(200);
  options.warmup = absl::ZeroDuration();
  // "other" is not loaded, so its dim is unknown without query frames.
  EXPECT_THAT(RunLoad(*client_, options).status(),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("speaker 'other' is not loaded; give query frames")));
  options.query_rows = 4;
  options.queries.assign(4 * 32, 0.5f);
  auto report = RunLoad(*client_, options);
  ASSERT_THAT(report, IsOk());
  EXPECT_GT(report->calls, 0);
  EXPECT_EQ(report->errors, 0) << report->first_error;
  auto other = client_->GetSpeaker("other");
  ASSERT_THAT(other, IsOk());
  EXPECT_EQ(other->state(), v1::SpeakerInfo::STATE_LOADED);  // the second caller called it
  options.speaker = "small,wide";
  EXPECT_THAT(RunLoad(*client_, options).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("'wide' has dim 48")));
  options.speaker = "small,nobody";
  EXPECT_THAT(RunLoad(*client_, options).status(),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("nobody")));
}

}  // namespace
}  // namespace timbre
