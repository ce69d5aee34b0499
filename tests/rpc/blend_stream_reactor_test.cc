// BlendStreamReactor through gRPC: a real server on a loopback port, called with the client
// library's sessions and with raw messages. Blocks are answered in order with their index,
// options may change from one block to the next, and every error ends the stream naming the
// block it came from.
#include "server/rpc/blend_stream_reactor.h"

#include <memory>
#include <string>
#include <vector>

#include "tests/support/server_test_support.h"
#include "timbre/timbre_client.h"

namespace timbre {
namespace {

using ::testing::HasSubstr;
using ::timbre::testing::IsOk;
using ::timbre::testing::Pack;
using ::timbre::testing::StatusIs;

class BlendStreamReactorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = timbre::testing::StartServer(timbre::testing::FixtureServerOptions(repo_));
    ASSERT_NE(server_, nullptr);
    client_ = timbre::testing::MakeClient(timbre::testing::LocalClientOptions(server_->port()));
    ASSERT_NE(client_, nullptr);
  }

  // `rows` fixture query frames from row `first` on, as a float32 block.
  std::vector<float> Rows(int64_t first, int64_t rows) const {
    return std::vector<float>(queries_.values.begin() + first * queries_.dim,
                              queries_.values.begin() + (first + rows) * queries_.dim);
  }
  v1::Frames Block(const std::vector<float>& values, int dim) const {
    return MakeFrames(v1::DTYPE_FLOAT32, static_cast<uint32_t>(values.size() / dim), dim,
                      Pack(values));
  }

  timbre::testing::ScratchDir repo_;
  const timbre::testing::FixtureQueries queries_ = timbre::testing::ReadFixtureQueries();
  std::unique_ptr<TimbreServer> server_;
  std::unique_ptr<TimbreClient> client_;
};

TEST_F(BlendStreamReactorTest, AnswersBlocksInOrderAndTakesNewOptions) {
  auto session = client_->OpenSession("rvc", v1::RetrievalOptions());
  constexpr int kBlock = 4;
  for (int b = 0; b < 3; ++b) {
    auto response = session->Send(Block(Rows(b * kBlock, kBlock), queries_.dim));
    ASSERT_THAT(response, IsOk());
    EXPECT_EQ(response->block_index(), static_cast<uint64_t>(b));
    EXPECT_EQ(response->frames().num_frames(), static_cast<uint32_t>(kBlock));
  }
  // index_rate 0 from this block on: the output is the input.
  v1::RetrievalOptions passthrough;
  passthrough.set_index_rate(0.0f);
  const std::vector<float> frames = Rows(0, kBlock);
  auto response = session->Send(Block(frames, queries_.dim), &passthrough);
  ASSERT_THAT(response, IsOk());
  EXPECT_EQ(response->block_index(), 3u);
  EXPECT_EQ(response->frames().data(), Pack(frames));
  EXPECT_THAT(session->Close(), IsOk());
}

TEST_F(BlendStreamReactorTest, StreamWithoutSpeakerIsRejected) {
  auto session = client_->OpenSession("", v1::RetrievalOptions());
  auto response = session->Send(Block(Rows(0, 1), queries_.dim));
  EXPECT_THAT(response,
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("first message of a BlendStream must name the speaker")));
}

TEST_F(BlendStreamReactorTest, UnknownSpeakerEndsTheStreamAtItsFirstBlock) {
  auto session = client_->OpenSession("nobody", v1::RetrievalOptions());
  auto response = session->Send(Block(Rows(0, 1), queries_.dim));
  EXPECT_THAT(response, StatusIs(absl::StatusCode::kNotFound,
                                 HasSubstr("block 0: speaker 'nobody'")));
}

TEST_F(BlendStreamReactorTest, MessageThatIsNoProtobufEndsTheStreamNamingTheBlock) {
  // A message that does not decode must not read as the end of the client's stream (OK).
  v1::BlendStreamRequest first;
  first.set_speaker("rvc");
  *first.mutable_frames() = Block(Rows(0, 1), queries_.dim);
  auto channel = MakeChannel(timbre::testing::LocalClientOptions(server_->port()));
  ASSERT_THAT(channel, IsOk());
  const grpc::Status status = timbre::testing::StreamRawMessages(
      *channel, "/timbre.v1.Timbre/BlendStream",
      {first.SerializeAsString(), timbre::testing::kNotAProtobuf, first.SerializeAsString()});
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(),
              HasSubstr("block 1: the message is not a valid timbre.v1.BlendStreamRequest"));
}

TEST_F(BlendStreamReactorTest, ErrorNamesTheBlock) {
  auto session = client_->OpenSession("rvc", v1::RetrievalOptions());
  std::vector<float> frames = Rows(0, 1);
  ASSERT_THAT(session->Send(Block(frames, queries_.dim)), IsOk());
  frames.push_back(1.0f);  // one value too many for dim
  auto response = session->Send(Block(frames, queries_.dim + 1));
  EXPECT_THAT(response, StatusIs(absl::StatusCode::kInvalidArgument,
                                 HasSubstr("block 1: speaker 'rvc': frames have dim 257")));
}

TEST_F(BlendStreamReactorTest, ClientThatClosesWithoutBlocksEndsOk) {
  auto channel = MakeChannel(timbre::testing::LocalClientOptions(server_->port()));
  ASSERT_THAT(channel, IsOk());
  const grpc::Status status =
      timbre::testing::StreamRawMessages(*channel, "/timbre.v1.Timbre/BlendStream", {});
  EXPECT_TRUE(status.ok()) << status.error_message();
}

}  // namespace
}  // namespace timbre
