// A unary or server-streaming request that is not a valid protobuf message gets INVALID_ARGUMENT
// naming the method and its request type, and counts as an invalid call; a server with the
// interceptor still answers valid calls.
#include "server/rpc/undecodable_request_interceptor.h"

#include "absl/strings/str_cat.h"
#include "tests/support/server_test_support.h"
#include "timbre/timbre_client.h"

namespace timbre {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using ::timbre::testing::CallWithRawRequest;
using ::timbre::testing::kNotAProtobuf;
using ::timbre::testing::MetricValue;
using ::timbre::testing::ScrapeMetrics;
using ::timbre::testing::ScratchDir;

class UndecodableRequestTest : public ::testing::Test {
 protected:
  void SetUp() override {
    TimbreServer::Options options = testing::FixtureServerOptions(repo_);
    options.metrics_host = "127.0.0.1";
    options.metrics_port = 0;
    server_ = testing::StartServer(options);
    ASSERT_NE(server_, nullptr);
    auto channel = MakeChannel(testing::LocalClientOptions(server_->port()));
    ASSERT_TRUE(channel.ok());
    channel_ = *channel;
  }

  double Metric(const std::string& name) {
    return MetricValue(ScrapeMetrics(server_->metrics_port()), name);
  }

  ScratchDir repo_;
  std::unique_ptr<TimbreServer> server_;
  std::shared_ptr<grpc::Channel> channel_;
};

TEST(UndecodableRequestStatusTest, NamesTheMethodAndItsRequestType) {
  const grpc::Status status = UndecodableRequestStatus("/timbre.v1.Timbre/Blend");
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(),
              AllOf(HasSubstr("'/timbre.v1.Timbre/Blend'"), HasSubstr("timbre.v1.BlendRequest")));
  EXPECT_THAT(UndecodableRequestStatus("/no.Such/Method").error_message(),
              HasSubstr("its request type"));
}

TEST_F(UndecodableRequestTest, UnaryGarbageIsInvalidArgumentAndCountedAsInvalid) {
  for (const char* method : {"/timbre.v1.Timbre/Blend", "/timbre.v1.Timbre/GetSpeaker",
                             "/timbre.v1.IndexBuilder/BuildIndex"}) {
    const grpc::Status status = CallWithRawRequest(channel_, method, kNotAProtobuf);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << method;
    EXPECT_THAT(status.error_message(), HasSubstr(absl::StrCat("'", method, "'")));
  }
  EXPECT_EQ(Metric("timbre_rejected_calls_total{reason=\"invalid\"}"), 3);
  EXPECT_EQ(Metric("timbre_rpc_calls_total{code=\"INVALID_ARGUMENT\",method=\"Blend\"}"), 1);
  EXPECT_EQ(Metric("timbre_rpc_calls_total{code=\"INVALID_ARGUMENT\",method=\"BuildIndex\"}"), 1);
}

TEST_F(UndecodableRequestTest, ServerStreamingGarbageIsInvalidArgument) {
  const grpc::Status status = CallWithRawRequest(channel_, "/timbre.v1.IndexBuilder/WatchJob",
                                                 kNotAProtobuf, /*server_streaming=*/true);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("timbre.v1.WatchJobRequest"));
  EXPECT_EQ(Metric("timbre_rejected_calls_total{reason=\"invalid\"}"), 1);
}

TEST_F(UndecodableRequestTest, ValidCallsAndHandlerErrorsAreUntouched) {
  // An empty message is a valid GetSpeakerRequest: the handler's own answer stays.
  const grpc::Status status = CallWithRawRequest(channel_, "/timbre.v1.Timbre/GetSpeaker", "");
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), ::testing::Not(HasSubstr("protobuf message")));
  v1::ListSpeakersRequest list;
  EXPECT_TRUE(
      CallWithRawRequest(channel_, "/timbre.v1.Timbre/ListSpeakers", list.SerializeAsString())
          .ok());
  // A method the server does not have is still UNIMPLEMENTED.
  EXPECT_EQ(CallWithRawRequest(channel_, "/timbre.v1.Timbre/NoSuchMethod", kNotAProtobuf)
                .error_code(),
            grpc::StatusCode::UNIMPLEMENTED);
}

}  // namespace
}  // namespace timbre
