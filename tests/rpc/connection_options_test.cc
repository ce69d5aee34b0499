// ConnectionOptions: validation, the channel arguments they set, and their effect on a real
// server: separate receive and send limits, and connections asked to reconnect after their age.
#include "server/rpc/connection_options.h"

#include <climits>

#include "absl/strings/str_cat.h"
#include "tests/support/server_test_support.h"

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
  EXPECT_EQ(options.max_concurrent_streams, 100);
  EXPECT_EQ(options.max_connection_idle, absl::Minutes(30));
  EXPECT_EQ(options.max_metadata_bytes, 16 << 10);
  EXPECT_THAT(ConnectionChannelArguments(options),
              UnorderedElementsAre(Pair("grpc.keepalive_time_ms", 60000),
                                   Pair("grpc.keepalive_timeout_ms", 20000),
                                   Pair("grpc.max_connection_idle_ms", 1800000),
                                   Pair("grpc.max_concurrent_streams", 100),
                                   Pair("grpc.max_metadata_size", 16384)));
}

TEST(ConnectionOptionsTest, ConnectionAgeAndGraceBecomeChannelArguments) {
  ConnectionOptions options;
  options.keepalive_time = absl::InfiniteDuration();
  options.keepalive_timeout = absl::Seconds(5);
  options.max_connection_age = absl::Minutes(30);
  options.max_connection_age_grace = absl::Seconds(90);
  options.max_connection_idle = absl::InfiniteDuration();
  options.max_concurrent_streams = 7;
  options.max_metadata_bytes = 4096;
  EXPECT_THAT(ConnectionChannelArguments(options),
              UnorderedElementsAre(Pair("grpc.keepalive_time_ms", INT_MAX),
                                   Pair("grpc.keepalive_timeout_ms", 5000),
                                   Pair("grpc.max_connection_age_ms", 1800000),
                                   Pair("grpc.max_connection_age_grace_ms", 90000),
                                   Pair("grpc.max_concurrent_streams", 7),
                                   Pair("grpc.max_metadata_size", 4096)));
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
  EXPECT_THAT(invalid([](ConnectionOptions& o) { o.max_concurrent_streams = 0; }),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("--max_concurrent_streams is 0")));
  EXPECT_THAT(invalid([](ConnectionOptions& o) { o.max_connection_idle = absl::ZeroDuration(); }),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--max_connection_idle is")));
  EXPECT_THAT(invalid([](ConnectionOptions& o) { o.max_metadata_bytes = 100; }),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("--max_metadata_bytes is 100")));
}

class ConnectionOptionsServerTest : public ::testing::Test {
 protected:
  void Start(const ConnectionOptions& connection) {
    TimbreServer::Options options = timbre::testing::FixtureServerOptions(repo_);
    options.connection = connection;
    server_ = timbre::testing::StartServer(options);
    ASSERT_NE(server_, nullptr);
  }

  // A plain-text channel to the server and a stub on it.
  std::unique_ptr<v1::Timbre::Stub> Connect() {
    channel_ = grpc::CreateChannel(absl::StrCat("127.0.0.1:", server_->port()),
                                   grpc::InsecureChannelCredentials());
    return v1::Timbre::NewStub(channel_);
  }

  // Lists the speakers on `stub` with `context`.
  static grpc::Status List(v1::Timbre::Stub& stub, grpc::ClientContext* context) {
    v1::ListSpeakersResponse response;
    return stub.ListSpeakers(context, v1::ListSpeakersRequest(), &response);
  }

  // The channel of the server's GOAWAY leaves READY within 10 s; the next call reconnects.
  void ExpectAskedToReconnect(v1::Timbre::Stub& stub) {
    EXPECT_TRUE(timbre::testing::WaitFor(
        [&] { return channel_->GetState(false) != GRPC_CHANNEL_READY; }, absl::Seconds(10)));
    grpc::ClientContext again;
    EXPECT_TRUE(List(stub, &again).ok());
  }

  timbre::testing::ScratchDir repo_;
  const timbre::testing::FixtureQueries queries_ = timbre::testing::ReadFixtureQueries();
  std::unique_ptr<TimbreServer> server_;
  std::shared_ptr<grpc::Channel> channel_;
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
  auto stub = Connect();
  grpc::ClientContext context;
  ASSERT_TRUE(List(*stub, &context).ok());
  ASSERT_EQ(channel_->GetState(false), GRPC_CHANNEL_READY);
  ExpectAskedToReconnect(*stub);
}

TEST_F(ConnectionOptionsServerTest, OversizedMetadataIsRefusedAndTheServerServesOn) {
  ConnectionOptions connection;
  connection.max_metadata_bytes = 4096;
  Start(connection);
  auto stub = Connect();
  grpc::ClientContext oversized;
  oversized.AddMetadata("x-padding", std::string(64 << 10, 'a'));
  oversized.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  const grpc::Status refused = List(*stub, &oversized);
  EXPECT_FALSE(refused.ok());
  EXPECT_NE(refused.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED) << refused.error_message();
  // The refusal may close the connection (the server cannot read the rest of its header
  // block), and a call sent before the client saw it close fails with "Socket closed": the
  // server serves on if a call on a new connection succeeds, within a few attempts.
  grpc::Status served;
  for (int attempt = 0; attempt < 5 && (attempt == 0 || !served.ok()); ++attempt) {
    grpc::ClientContext small;
    small.AddMetadata("x-padding", std::string(1000, 'a'));
    small.set_wait_for_ready(true);
    small.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    served = List(*stub, &small);
  }
  EXPECT_TRUE(served.ok()) << served.error_message();
}

TEST_F(ConnectionOptionsServerTest, StreamsBeyondTheLimitWaitForAFreeOne) {
  ConnectionOptions connection;
  connection.max_concurrent_streams = 2;
  Start(connection);
  auto stub = Connect();
  v1::BlendStreamRequest block;
  *block.mutable_frames() = FixtureBlendRequest(queries_, 4).frames();
  block.set_speaker("rvc");
  std::vector<std::unique_ptr<grpc::ClientContext>> contexts;
  std::vector<std::unique_ptr<grpc::ClientReaderWriter<v1::BlendStreamRequest,
                                                       v1::BlendStreamResponse>>> streams;
  for (int i = 0; i < 2; ++i) {  // the connection's two streams, each answered
    contexts.push_back(std::make_unique<grpc::ClientContext>());
    streams.push_back(stub->BlendStream(contexts.back().get()));
    v1::BlendStreamResponse answer;
    ASSERT_TRUE(streams.back()->Write(block));
    ASSERT_TRUE(streams.back()->Read(&answer));
  }
  // A third call on the same connection is not started until a stream ends.
  grpc::ClientContext waiting;
  waiting.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(1500));
  EXPECT_EQ(List(*stub, &waiting).error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  streams.front()->WritesDone();
  EXPECT_TRUE(streams.front()->Finish().ok());
  grpc::ClientContext admitted;
  EXPECT_TRUE(List(*stub, &admitted).ok());
  streams.back()->WritesDone();
  EXPECT_TRUE(streams.back()->Finish().ok());
}

TEST_F(ConnectionOptionsServerTest, IdleConnectionIsClosed) {
  ConnectionOptions connection;
  connection.max_connection_idle = absl::Milliseconds(300);
  Start(connection);
  auto stub = Connect();
  grpc::ClientContext context;
  ASSERT_TRUE(List(*stub, &context).ok());
  ExpectAskedToReconnect(*stub);  // no call for 300 ms
}

}  // namespace
}  // namespace timbre
