#include "server/rpc/raw_message.h"

#include "tests/support/test_support.h"
#include "timbre/v1/timbre.pb.h"

namespace timbre {
namespace {

using ::testing::HasSubstr;
using ::timbre::testing::IsOk;
using ::timbre::testing::StatusIs;

grpc::ByteBuffer Bytes(const std::string& bytes) {
  grpc::Slice slice(bytes);
  return grpc::ByteBuffer(&slice, 1);
}

TEST(RawMessageTest, EncodedMessageDecodesToTheSame) {
  timbre::v1::BlendStreamRequest request;
  request.set_speaker("alice");
  request.mutable_frames()->set_num_frames(3);
  grpc::ByteBuffer bytes;
  ASSERT_THAT(EncodeMessage(request, &bytes), IsOk());
  timbre::v1::BlendStreamRequest decoded;
  decoded.set_speaker("left over from before");
  ASSERT_THAT(DecodeMessage(bytes, &decoded), IsOk());
  EXPECT_EQ(decoded.SerializeAsString(), request.SerializeAsString());
}

TEST(RawMessageTest, EncodingIntoAUsedBufferReplacesItsContents) {
  // A BlendStream writes every answer from one buffer; gRPC's serializer aborted the server when
  // that buffer still held the previous answer.
  timbre::v1::BlendStreamRequest first;
  first.set_speaker("first");
  timbre::v1::BlendStreamRequest second;
  second.set_speaker("second");
  grpc::ByteBuffer bytes;
  ASSERT_THAT(EncodeMessage(first, &bytes), IsOk());
  ASSERT_THAT(EncodeMessage(second, &bytes), IsOk());
  timbre::v1::BlendStreamRequest decoded;
  ASSERT_THAT(DecodeMessage(bytes, &decoded), IsOk());
  EXPECT_EQ(decoded.speaker(), "second");
}

TEST(RawMessageTest, GarbageIsInvalidArgumentNamingTheTypeAndLeavesAnEmptyMessage) {
  timbre::v1::BlendStreamRequest decoded;
  decoded.set_speaker("stale");
  grpc::ByteBuffer bytes = Bytes(std::string("\x0a\x64" "abc"));
  EXPECT_THAT(DecodeMessage(bytes, &decoded),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("not a valid timbre.v1.BlendStreamRequest")));
  EXPECT_TRUE(decoded.speaker().empty());
}

TEST(RawMessageTest, EmptyBytesAreTheEmptyMessage) {
  timbre::v1::BlendStreamRequest decoded;
  grpc::ByteBuffer bytes = Bytes("");
  EXPECT_THAT(DecodeMessage(bytes, &decoded), IsOk());
}

}  // namespace
}  // namespace timbre
