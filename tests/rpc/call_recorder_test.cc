#include "server/rpc/call_recorder.h"

#include <map>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "prometheus/registry.h"
#include "server/status/rejection.h"
#include "tests/support/test_support.h"

namespace timbre {
namespace {

using ::testing::ElementsAre;
using ::testing::Pair;

// timbre_rejected_calls_total by reason, every series the registry holds.
std::map<std::string, double> RejectedCalls(prometheus::Registry& registry) {
  std::map<std::string, double> counts;
  for (const prometheus::MetricFamily& family : registry.Collect()) {
    if (family.name != "timbre_rejected_calls_total") continue;
    for (const prometheus::ClientMetric& metric : family.metric) {
      for (const prometheus::ClientMetric::Label& label : metric.label) {
        if (label.name == "reason") counts[label.value] = metric.counter.value;
      }
    }
  }
  return counts;
}

class CallRecorderTest : public ::testing::Test {
 protected:
  // Records one call of "Blend" ending with `status` and returns what it answers.
  grpc::Status RecordCall(const absl::Status& status) {
    CallRecorder recorder(&metrics_, "Blend");
    return recorder.Record(status, 16);
  }

  prometheus::Registry registry_;
  ServerMetrics metrics_{registry_};
};

TEST_F(CallRecorderTest, AnswersWithTheSameCodeAndMessage) {
  const grpc::Status answer = RecordCall(absl::NotFoundError("speaker 'x' not found"));
  EXPECT_EQ(answer.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(answer.error_message(), "speaker 'x' not found");
  EXPECT_TRUE(RecordCall(absl::OkStatus()).ok());
}

TEST_F(CallRecorderTest, RefusalsAreCountedByTheirMarkedReason) {
  RecordCall(Rejected(absl::ResourceExhaustedError("the search queue is full"),
                      RejectionReason::kOverloaded));
  RecordCall(Rejected(absl::DeadlineExceededError("not searched"), RejectionReason::kDeadline));
  // Also RESOURCE_EXHAUSTED, but no overload: retrying will not help.
  RecordCall(Rejected(absl::ResourceExhaustedError("speaker 'big': the index needs 9 bytes"),
                      RejectionReason::kTooLarge));
  RecordCall(Rejected(absl::ResourceExhaustedError("the upload would hold 11 bytes"),
                      RejectionReason::kTooLarge));
  EXPECT_THAT(RejectedCalls(registry_),
              ElementsAre(Pair("deadline", 1), Pair("invalid", 0), Pair("overloaded", 1),
                          Pair("permission_denied", 0), Pair("too_large", 2),
                          Pair("unauthenticated", 0)));
}

TEST_F(CallRecorderTest, RefusalsByCodeAreCountedWhoeverReturnsThem) {
  RecordCall(absl::InvalidArgumentError("frames have dim 256, index has dim 768"));
  RecordCall(absl::PermissionDeniedError("'/etc' is outside the import root"));
  const std::map<std::string, double> counts = RejectedCalls(registry_);
  EXPECT_EQ(counts.at("invalid"), 1);
  EXPECT_EQ(counts.at("permission_denied"), 1);
  EXPECT_EQ(counts.at("overloaded"), 0);
}

TEST_F(CallRecorderTest, ServerFailuresAndSuccessesAreNoRefusals) {
  RecordCall(absl::ResourceExhaustedError("job record: No space left on device"));
  RecordCall(absl::DeadlineExceededError("unmarked"));
  RecordCall(absl::InternalError("faiss failed"));
  RecordCall(absl::NotFoundError("no speaker"));
  RecordCall(absl::OkStatus());
  for (const auto& [reason, count] : RejectedCalls(registry_)) {
    EXPECT_EQ(count, 0) << reason;
  }
}

}  // namespace
}  // namespace timbre
