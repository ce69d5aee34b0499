// ConnectionOptions: validation, the channel arguments they set, and their effect on a real
// server: separate receive and send limits, and connections asked to reconnect after their age.
#include "server/service/connection_options.h"

#include <climits>

#include "absl/strings/str_cat.h"
#include "tests/server_test_support.h"

namespace timbre {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Pair;
using ::testing::UnorderedElementsAre;
using ::timbre::testing::FixtureBlendRequest;
using ::timbre::testing::IsOk;
using ::timbre::testing::StatusIs;

TEST(ConnectionOptionsTest, DefaultsAreValidAndKeepConnections) {
  const ConnectionOptions options;
  EXPECT_THAT(ValidateConnectionOptions(options), IsOk());
  EXPECT_EQ(options.max_receive_message_bytes, 64 << 20);
  EXPECT_EQ(options.max_send_message_bytes, 64 << 20);
  EXPECT_THAT(ConnectionChannelArguments(options),
              UnorderedElementsAre(Pair("grpc.keepalive_time_ms", 60000),
                                   Pair("grpc.keepalive_timeout_ms", 20000)));
}

TEST(ConnectionOptionsTest, ConnectionAgeAndGraceBecomeChannelArguments) {
  ConnectionOptions options;
  options.keepalive_time = absl::InfiniteDuration();
  options.keepalive_timeout = absl::Seconds(5);
  options.max_connection_age = absl::Minutes(30);
  options.max_connection_age_grace = absl::Seconds(90);
  EXPECT_THAT(ConnectionChannelArguments(options),
              UnorderedElementsAre(Pair("grpc.keepalive_time_ms", INT_MAX),
                                   Pair("grpc.keepalive_timeout_ms", 5000),
                                   Pair("grpc.max_connection_age_ms", 1800000),
                                   Pair("grpc.max_connection_age_grace_ms", 90000)));
}

TEST(ConnectionOptionsTest, BadValuesNameTheFlag) {
  auto invalid = [](void (*edit)(ConnectionOptions&)) {
    ConnectionOptions options;
    edit(options);
    return ValidateConnectionOptions(options);
  };
  EXPECT_THAT(invalid([](ConnectionOptions& o) { o.max_receive_message_bytes = 10; }),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("--max_receive_message_bytes is 10"), HasSubstr("1024"))));
  EXPECT_THAT(
      invalid([](ConnectionOptions& o) { o.max_send_message_bytes = -1; }),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--max_send_message_bytes is -1")));
  EXPECT_THAT(invalid([](ConnectionOptions& o) { o.keepalive_time = absl::ZeroDuration(); }),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--keepalive_time is 0")));
  EXPECT_THAT(invalid([](ConnectionOptions& o) { o.keepalive_timeout = -absl::Seconds(1); }),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--keepalive_timeout")));
  EXPECT_THAT(invalid([](ConnectionOptions& o) { o.max_connection_age = absl::ZeroDuration(); }),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--max_connection_age is")));
  EXPECT_THAT(
      invalid([](ConnectionOptions& o) { o.max_connection_age_grace = -absl::Seconds(1); }),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--max_connection_age_grace")));
  EXPECT_THAT(
      invalid([](ConnectionOptions& o) { o.max_connection_age_grace = absl::ZeroDuration(); }),
      IsOk());
}

class ConnectionOptionsServerTest : public ::testing::Test {
 protected:
  void Start(const ConnectionOptions& connection) {
    TimbreServer::Options options = timbre::testing::FixtureServerOptions(repo_);
    options.connection = connection;
    server_ = timbre::testing::StartServer(options);
    ASSERT_NE(server_, nullptr);
  }

  timbre::testing::ScratchDir repo_;
  const timbre::testing::FixtureQueries queries_ = timbre::testing::ReadFixtureQueries();
  std::unique_ptr<TimbreServer> server_;
};

TEST_F(ConnectionOptionsServerTest, ReceiveAndSendLimitsApplySeparately) {
  // A float32 frame of dim 256 is 1 KiB: 16 frames pass both ways, 40 are received but their
  // answer is too large to send, 80 are too large to receive.
  ConnectionOptions connection;
  connection.max_receive_message_bytes = 64 << 10;
  connection.max_send_message_bytes = 32 << 10;
  Start(connection);
  auto client = timbre::testing::MakeClient(timbre::testing::LocalClientOptions(server_->port()));
  ASSERT_NE(client, nullptr);
  EXPECT_THAT(client->Blend(FixtureBlendRequest(queries_, 16)), IsOk());
  EXPECT_THAT(client->Blend(FixtureBlendRequest(queries_, 40)),
              StatusIs(absl::StatusCode::kResourceExhausted, HasSubstr("Sent message larger")));
  EXPECT_THAT(client->Blend(FixtureBlendRequest(queries_, 80)),
              StatusIs(absl::StatusCode::kResourceExhausted, HasSubstr("Received message larger")));
}

TEST_F(ConnectionOptionsServerTest, ConnectionPastItsAgeIsAskedToReconnect) {
  ConnectionOptions connection;
  connection.max_connection_age = absl::Milliseconds(300);
  connection.max_connection_age_grace = absl::Milliseconds(300);
  Start(connection);
  auto channel = grpc::CreateChannel(absl::StrCat("127.0.0.1:", server_->port()),
                                     grpc::InsecureChannelCredentials());
  auto stub = v1::Timbre::NewStub(channel);
  grpc::ClientContext context;
  v1::ListSpeakersResponse response;
  ASSERT_TRUE(stub->ListSpeakers(&context, v1::ListSpeakersRequest(), &response).ok());
  ASSERT_EQ(channel->GetState(false), GRPC_CHANNEL_READY);
  // The server's GOAWAY takes the idle channel out of READY; the next call reconnects.
  EXPECT_TRUE(timbre::testing::WaitFor(
      [&] { return channel->GetState(false) != GRPC_CHANNEL_READY; }, absl::Seconds(10)));
  grpc::ClientContext again;
  EXPECT_TRUE(stub->ListSpeakers(&again, v1::ListSpeakersRequest(), &response).ok());
}

}  // namespace
}  // namespace timbre
