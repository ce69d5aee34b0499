#include "client/cli/load_generator.h"

#include <filesystem>
#include <map>
#include <string>

#include "absl/strings/str_cat.h"
#include "server/build/demo_speaker.h"
#include "server/timbre_server.h"
#include "tests/support/server_test_support.h"
#include "tests/support/test_support.h"

namespace timbre {
namespace {

using ::testing::HasSubstr;
using ::timbre::testing::IsOk;
using ::timbre::testing::StatusIs;

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

TEST_F(LoadGeneratorTest, RateLimitsEachCaller) {
  LoadOptions options;
  options.speaker = "small";
  options.concurrency = 2;
  options.rate = 20;  // 20 calls/s per caller for 0.5 s: about 10 each
  options.duration = absl::Milliseconds(500);
  options.warmup = absl::ZeroDuration();
  auto report = RunLoad(*client_, options);
  ASSERT_THAT(report, IsOk());
  EXPECT_GE(report->calls, 2 * 8);
  EXPECT_LE(report->calls, 2 * 12);
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
