#include "server/metrics/server_metrics.h"

#include <optional>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "prometheus/registry.h"
#include "prometheus/text_serializer.h"
#include "tests/support/test_support.h"

namespace timbre {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using ::timbre::testing::ExpectPromtoolClean;

std::string Expose(prometheus::Registry& registry) {
  return prometheus::TextSerializer().Serialize(registry.Collect());
}

// One of each kind of event, as the service and the build service record them.
void RecordOneOfEach(ServerMetrics& metrics) {
  metrics.CallStarted("Blend");
  metrics.RecordCall("Blend", grpc::StatusCode::OK, absl::Microseconds(300), 16, "alice");
  metrics.CallEnded("Blend");
  metrics.CallStarted("BlendStream");  // still open
  metrics.RecordCall("Blend", grpc::StatusCode::NOT_FOUND, absl::Microseconds(40), 16, "mallory");
  SearchTiming timing;
  timing.queued = absl::Microseconds(20);
  timing.search = absl::Microseconds(250);
  timing.batch_rows = 16;
  metrics.RecordStages(timing, absl::Microseconds(30));
  metrics.RecordRejected(kRejectedPermissionDenied);
  metrics.RecordIndexLoad(true, absl::Milliseconds(1500));
  metrics.RecordIndexLoad(false, absl::Milliseconds(10));
  metrics.RecordEviction();
  metrics.RecordBuildJob("succeeded", 42.0);
  metrics.RecordCredentialReload("tls", "failed");
}

TEST(ServerMetricsTest, EveryMetricIsExposedPromtoolClean) {
  prometheus::Registry registry;
  ServerMetrics metrics(registry);
  RecordOneOfEach(metrics);
  const std::string text = Expose(registry);
  ExpectPromtoolClean(text);
  for (const char* line : {
           "timbre_rpc_duration_seconds_count{code=\"OK\",method=\"Blend\"} 1",
           "timbre_rpc_duration_seconds_bucket{code=\"OK\",method=\"Blend\",le=\"0.0003\"} 1",
           "timbre_rpc_calls_total{code=\"NOT_FOUND\",method=\"Blend\"} 1",
           "timbre_frames_total{method=\"Blend\"} 16",
           "timbre_rpcs_in_flight{method=\"Blend\"} 0",
           "timbre_rpcs_in_flight{method=\"BlendStream\"} 1",
           "timbre_rejected_calls_total{reason=\"permission_denied\"} 1",
           "timbre_rejected_calls_total{reason=\"overloaded\"} 0",
           "timbre_rejected_calls_total{reason=\"deadline\"} 0",
           "timbre_rejected_calls_total{reason=\"too_large\"} 0",
           "timbre_rejected_calls_total{reason=\"invalid\"} 0",
           "timbre_rejected_calls_total{reason=\"unauthenticated\"} 0",
           "timbre_stage_duration_seconds_count{stage=\"search\"} 1",
           "timbre_search_batch_frames_count 1",
           "timbre_index_load_duration_seconds_count{result=\"ok\"} 1",
           "timbre_index_load_duration_seconds_count{result=\"error\"} 1",
           "timbre_index_load_duration_seconds_bucket{result=\"ok\",le=\"2.5\"} 1",
           "timbre_index_evictions_total 1",
           "timbre_build_jobs_finished_total{state=\"succeeded\"} 1",
           "timbre_build_job_duration_seconds_count{state=\"succeeded\"} 1",
           "timbre_build_job_duration_seconds_bucket{state=\"succeeded\",le=\"60\"} 1",
           "timbre_credential_reloads_total{credentials=\"tls\",result=\"failed\"} 1",
           "timbre_credential_reloads_total{credentials=\"tokens\",result=\"installed\"} 0",
       }) {
    EXPECT_THAT(text, HasSubstr(line));
  }
  EXPECT_THAT(text, Not(HasSubstr("speaker=")));
  // Build jobs by state are read from the queue at scrape time (BuildJobGauges).
  EXPECT_THAT(text, Not(HasSubstr("timbre_build_jobs{")));
}

TEST(RejectedReasonOfCodeTest, NamesOnlyTheCodesThatAreRefusalsWhoeverReturnsThem) {
  EXPECT_EQ(RejectedReasonOfCode(grpc::StatusCode::INVALID_ARGUMENT), kRejectedInvalid);
  EXPECT_EQ(RejectedReasonOfCode(grpc::StatusCode::UNAUTHENTICATED), kRejectedUnauthenticated);
  EXPECT_EQ(RejectedReasonOfCode(grpc::StatusCode::PERMISSION_DENIED), kRejectedPermissionDenied);
  // The core marks the others when they are refusals (server/status/rejection.h).
  for (grpc::StatusCode code :
       {grpc::StatusCode::OK, grpc::StatusCode::RESOURCE_EXHAUSTED,
        grpc::StatusCode::DEADLINE_EXCEEDED, grpc::StatusCode::NOT_FOUND,
        grpc::StatusCode::INTERNAL}) {
    EXPECT_TRUE(RejectedReasonOfCode(code).empty()) << code;
  }
}

TEST(ServerMetricsTest, CallsWithoutABlendLeaveTheBlendStageOut) {
  prometheus::Registry registry;
  ServerMetrics metrics(registry);
  SearchTiming timing;
  timing.search = absl::Microseconds(250);
  metrics.RecordStages(timing, absl::Microseconds(30));
  metrics.RecordStages(timing, std::nullopt);
  const std::string text = Expose(registry);
  EXPECT_THAT(text, HasSubstr("timbre_stage_duration_seconds_count{stage=\"search\"} 2"));
  EXPECT_THAT(text, HasSubstr("timbre_stage_duration_seconds_count{stage=\"blend\"} 1"));
}

TEST(MethodLabelTest, NamesTheMethodsOfTheTimbreServicesOnly) {
  EXPECT_EQ(MethodLabel("/timbre.v1.Timbre/Blend"), "Blend");
  EXPECT_EQ(MethodLabel("/timbre.v1.Timbre/BlendStream"), "BlendStream");
  EXPECT_EQ(MethodLabel("/timbre.v1.IndexBuilder/BuildIndex"), "BuildIndex");
  for (const char* other :
       {"", "/", "/timbre.v1.Timbre/", "/timbre.v1.Timbre/Nothing", "/timbre.v1.Nothing/Blend",
        "/timbre.v1.IndexBuilder/Blend", "timbre.v1.Timbre/Blend", "/timbre.v1.Timbre/Blend/x",
        "/grpc.health.v1.Health/Check"}) {
    EXPECT_TRUE(MethodLabel(other).empty()) << other;
  }
}

TEST(ServerMetricsTest, TokenRefusalsCountAsCallsOnlyOfTheServersMethods) {
  prometheus::Registry registry;
  ServerMetrics metrics(registry);
  metrics.RecordRefusedBeforeHandler("/timbre.v1.Timbre/Blend", grpc::StatusCode::UNAUTHENTICATED,
                             absl::Microseconds(5));
  metrics.RecordRefusedBeforeHandler("/timbre.v1.IndexBuilder/BuildIndex",
                             grpc::StatusCode::PERMISSION_DENIED, absl::Microseconds(5));
  metrics.RecordRefusedBeforeHandler("/anything/at-all", grpc::StatusCode::UNAUTHENTICATED,
                             absl::Microseconds(5));
  const std::string text = Expose(registry);
  EXPECT_THAT(text, HasSubstr("timbre_rejected_calls_total{reason=\"unauthenticated\"} 2"));
  EXPECT_THAT(text, HasSubstr("timbre_rejected_calls_total{reason=\"permission_denied\"} 1"));
  EXPECT_THAT(text,
              HasSubstr("timbre_rpc_calls_total{code=\"UNAUTHENTICATED\",method=\"Blend\"} 1"));
  EXPECT_THAT(text, HasSubstr("timbre_rpc_duration_seconds_count{code=\"PERMISSION_DENIED\","
                              "method=\"BuildIndex\"} 1"));
  EXPECT_THAT(text, Not(HasSubstr("anything")));
}

TEST(ServerMetricsTest, PerSpeakerLabelsNameOnlySpeakersOfSuccessfulCalls) {
  prometheus::Registry registry;
  ServerMetrics::Options options;
  options.per_speaker = true;
  ServerMetrics metrics(registry, options);
  RecordOneOfEach(metrics);
  const std::string text = Expose(registry);
  ExpectPromtoolClean(text);
  EXPECT_THAT(text, HasSubstr("timbre_rpc_duration_seconds_count{code=\"OK\",method=\"Blend\","
                              "speaker=\"alice\"} 1"));
  EXPECT_THAT(text, HasSubstr("timbre_frames_total{method=\"Blend\",speaker=\"alice\"} 16"));
  EXPECT_THAT(text, HasSubstr("timbre_rpc_duration_seconds_count{code=\"NOT_FOUND\","
                              "method=\"Blend\",speaker=\"\"} 1"));
  // Calls are counted by method and code only.
  EXPECT_THAT(text, HasSubstr("timbre_rpc_calls_total{code=\"OK\",method=\"Blend\"} 1"));
  EXPECT_THAT(text, Not(HasSubstr("mallory")));
}

}  // namespace
}  // namespace timbre
