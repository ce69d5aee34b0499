// proto_convert: timbre.v1 messages to and from the core's types, with the wire checks (dtype,
// shape, byte length) and the option defaults.
#include "server/rpc/proto_convert.h"

#include <chrono>
#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/time/clock.h"
#include "tests/support/test_support.h"

namespace timbre {
namespace {

using ::testing::HasSubstr;
using ::timbre::testing::IsOk;
using ::timbre::testing::IsOkAndHolds;
using ::timbre::testing::StatusIs;

FrameMatrix Frames(int64_t rows, int dim) {
  FrameMatrix frames;
  frames.rows = rows;
  frames.dim = dim;
  for (int64_t i = 0; i < rows * dim; ++i) frames.values.push_back(0.25f * static_cast<float>(i));
  return frames;
}

timbre::v1::Frames Wire(const FrameMatrix& frames, DType dtype) {
  timbre::v1::Frames wire;
  ToProto(frames, dtype, &wire);
  return wire;
}

TEST(ProtoConvertTest, DTypesConvertBothWays) {
  EXPECT_THAT(FromProto(timbre::v1::DTYPE_FLOAT32), IsOkAndHolds(DType::kFloat32));
  EXPECT_THAT(FromProto(timbre::v1::DTYPE_FLOAT16), IsOkAndHolds(DType::kFloat16));
  EXPECT_EQ(ToProto(DType::kFloat32), timbre::v1::DTYPE_FLOAT32);
  EXPECT_EQ(ToProto(DType::kFloat16), timbre::v1::DTYPE_FLOAT16);
}

TEST(ProtoConvertTest, UnspecifiedOrUnknownDTypeIsNamed) {
  EXPECT_THAT(FromProto(timbre::v1::DTYPE_UNSPECIFIED),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("dtype DTYPE_UNSPECIFIED (0); use DTYPE_FLOAT32 or "
                                 "DTYPE_FLOAT16")));
  EXPECT_THAT(FromProto(static_cast<timbre::v1::DType>(99)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("(99)")));
}

TEST(ProtoConvertTest, RetrievalCallTakesTheFramesAndAppliesOptionDefaults) {
  const FrameMatrix frames = Frames(3, 4);
  absl::StatusOr<RetrievalCall> call =
      ToRetrievalCall("alice", Wire(frames, DType::kFloat32), timbre::v1::RetrievalOptions());
  ASSERT_THAT(call, IsOk());
  EXPECT_EQ(call->speaker, "alice");
  EXPECT_EQ(call->frames.rows, 3);
  EXPECT_EQ(call->frames.dim, 4);
  EXPECT_EQ(call->frames.values, frames.values);
  EXPECT_EQ(call->params.k, kDefaultK);
  EXPECT_EQ(call->params.nprobe, 0);  // the index's own
  EXPECT_EQ(call->params.k_factor, 0);
  EXPECT_FLOAT_EQ(call->index_rate, kDefaultIndexRate);
}

TEST(ProtoConvertTest, RetrievalCallKeepsExplicitOptionsAndBoundsHugeOnes) {
  timbre::v1::RetrievalOptions options;
  options.set_k(4);
  options.set_nprobe(16);
  options.set_k_factor(2);
  options.set_index_rate(0.0f);  // set, so not the default
  absl::StatusOr<RetrievalCall> call =
      ToRetrievalCall("alice", Wire(Frames(1, 4), DType::kFloat16), options);
  ASSERT_THAT(call, IsOk());
  EXPECT_EQ(call->params.k, 4);
  EXPECT_EQ(call->params.nprobe, 16);
  EXPECT_EQ(call->params.k_factor, 2);
  EXPECT_EQ(call->index_rate, 0.0f);

  options.set_k(std::numeric_limits<uint32_t>::max());
  options.set_nprobe(std::numeric_limits<uint32_t>::max());
  options.set_k_factor(std::numeric_limits<uint32_t>::max());
  call = ToRetrievalCall("alice", Wire(Frames(1, 4), DType::kFloat32), options);
  ASSERT_THAT(call, IsOk());
  EXPECT_EQ(call->params.k, 1 << 30);  // positive ints, refused later against the index
  EXPECT_EQ(call->params.nprobe, 1 << 30);
  EXPECT_EQ(call->params.k_factor, 1 << 16);
}

TEST(ProtoConvertTest, BadFramesAreRefusedNamingTheSpeakerAndTheProblem) {
  timbre::v1::Frames unspecified = Wire(Frames(1, 4), DType::kFloat32);
  unspecified.set_dtype(timbre::v1::DTYPE_UNSPECIFIED);
  EXPECT_THAT(ToRetrievalCall("alice", unspecified, {}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("speaker 'alice': frames: dtype DTYPE_UNSPECIFIED")));

  timbre::v1::Frames empty = Wire(Frames(1, 4), DType::kFloat32);
  empty.set_num_frames(0);
  EXPECT_THAT(ToRetrievalCall("alice", empty, {}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("speaker 'alice': the batch has no frames")));

  timbre::v1::Frames short_data = Wire(Frames(2, 4), DType::kFloat32);
  short_data.mutable_data()->pop_back();
  EXPECT_THAT(ToRetrievalCall("bob", short_data, {}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("speaker 'bob': ")));
}

TEST(ProtoConvertTest, FramesArePackedInTheirDType) {
  const FrameMatrix frames = Frames(2, 3);
  const timbre::v1::Frames f32 = Wire(frames, DType::kFloat32);
  EXPECT_EQ(f32.dtype(), timbre::v1::DTYPE_FLOAT32);
  EXPECT_EQ(f32.num_frames(), 2u);
  EXPECT_EQ(f32.dim(), 3u);
  EXPECT_EQ(f32.data().size(), 6 * sizeof(float));
  const timbre::v1::Frames f16 = Wire(frames, DType::kFloat16);
  EXPECT_EQ(f16.dtype(), timbre::v1::DTYPE_FLOAT16);
  EXPECT_EQ(f16.data().size(), 6 * 2u);
  // Back through ToRetrievalCall: the values (multiples of 0.25, exact in float16) survive.
  for (const timbre::v1::Frames* wire : {&f32, &f16}) {
    absl::StatusOr<RetrievalCall> call = ToRetrievalCall("alice", *wire, {});
    ASSERT_THAT(call, IsOk());
    EXPECT_EQ(call->frames.values, frames.values);
  }
}

TEST(ProtoConvertTest, DeadlineWithoutLimitIsTheInfiniteFuture) {
  EXPECT_EQ(FromGrpcDeadline(std::chrono::system_clock::time_point::max()),
            absl::InfiniteFuture());
  const absl::Time now = absl::FromUnixMillis(absl::ToUnixMillis(absl::Now()));
  EXPECT_EQ(FromGrpcDeadline(absl::ToChronoTime(now)), now);
}

TEST(ProtoConvertTest, TimingIsInMicrosecondsClampedToTheField) {
  SearchTiming timing;
  timing.queued = absl::Microseconds(120);
  timing.search = absl::Hours(24 * 365);  // beyond uint32 microseconds
  timing.batch_rows = 48;
  timbre::v1::ServerTiming out;
  ToProto(timing, -absl::Microseconds(5), &out);
  EXPECT_EQ(out.queue_us(), 120u);
  EXPECT_EQ(out.search_us(), std::numeric_limits<uint32_t>::max());
  EXPECT_EQ(out.blend_us(), 0u);  // negative durations become 0
  EXPECT_EQ(out.batch_frames(), 48u);
}

TEST(ProtoConvertTest, SpeakerStatesAndAnUnloadedSpeaker) {
  EXPECT_EQ(ToProto(SpeakerState::kLoaded), timbre::v1::SpeakerInfo::STATE_LOADED);
  EXPECT_EQ(ToProto(SpeakerState::kLoading), timbre::v1::SpeakerInfo::STATE_LOADING);
  EXPECT_EQ(ToProto(SpeakerState::kFailed), timbre::v1::SpeakerInfo::STATE_FAILED);
  EXPECT_EQ(ToProto(SpeakerState::kUnloaded), timbre::v1::SpeakerInfo::STATE_UNLOADED);
  SpeakerStatus status;
  status.name = "alice";
  status.state = SpeakerState::kFailed;
  status.error = "cannot read 'alice/1/index.faiss'";
  timbre::v1::SpeakerInfo info;
  ToProto(status, &info);
  EXPECT_EQ(info.name(), "alice");
  EXPECT_EQ(info.state(), timbre::v1::SpeakerInfo::STATE_FAILED);
  EXPECT_EQ(info.error(), status.error);
  EXPECT_EQ(info.num_vectors(), 0u);  // no snapshot, no index figures
  EXPECT_EQ(info.version(), "");
}

TEST(ProtoConvertTest, LoadedSpeakerReportsItsIndexAndVersion) {
  auto snapshot = std::make_shared<IndexSnapshot>();
  snapshot->speaker = "alice";
  snapshot->version = "3";
  snapshot->path = "/repo/alice/3/index.faiss";
  snapshot->loaded_at = absl::FromUnixSeconds(1700000000);
  snapshot->index = testing::TrainOrDie("IVF4,Flat", Metric::kL2, Frames(200, 8), /*nprobe=*/2);
  ASSERT_NE(snapshot->index, nullptr);
  snapshot->metadata.set_recipe("rvc");
  SpeakerStatus status;
  status.name = "alice";
  status.state = SpeakerState::kLoaded;
  status.snapshot = snapshot;
  timbre::v1::SpeakerInfo info;
  ToProto(status, &info);
  EXPECT_EQ(info.state(), timbre::v1::SpeakerInfo::STATE_LOADED);
  EXPECT_EQ(info.dim(), 8u);
  EXPECT_EQ(info.num_vectors(), 200u);
  EXPECT_EQ(info.description(), "IVF4,Flat");
  EXPECT_EQ(info.metric(), timbre::v1::METRIC_L2);
  EXPECT_EQ(info.nprobe(), 2u);
  EXPECT_EQ(info.nlist(), 4u);
  EXPECT_EQ(info.version(), "3");
  EXPECT_EQ(info.path(), "/repo/alice/3/index.faiss");
  EXPECT_EQ(info.loaded_at_unix_seconds(), 1700000000);
  EXPECT_EQ(info.recipe(), "rvc");
  EXPECT_GT(info.memory_bytes(), 200u * 8 * 4);
}

TEST(ProtoConvertTest, FeatureSetListsItsFilesInOrder) {
  FeatureSetInfo set;
  set.id = "fs-0123456789abcdef";
  set.source = "/data/alice";
  set.files = {{"0_0.npy", 10, 768, "float32", 30848, std::string(64, 'a')},
               {"0_1.npy", 5, 768, "float16", 7808, std::string(64, 'b')}};
  set.rows = 15;
  set.dim = 768;
  set.bytes = 38656;
  set.created_at = absl::FromUnixSeconds(1700000001);
  timbre::v1::FeatureSet out;
  ToProto(set, &out);
  EXPECT_EQ(out.id(), set.id);
  EXPECT_EQ(out.source(), "/data/alice");
  ASSERT_EQ(out.files_size(), 2);
  EXPECT_EQ(out.files(1).name(), "0_1.npy");
  EXPECT_EQ(out.files(1).rows(), 5u);
  EXPECT_EQ(out.files(1).dtype(), "float16");
  EXPECT_EQ(out.files(1).sha256(), std::string(64, 'b'));
  EXPECT_EQ(out.rows(), 15u);
  EXPECT_EQ(out.dim(), 768u);
  EXPECT_EQ(out.bytes(), 38656u);
  EXPECT_EQ(out.created_at_unix_seconds(), 1700000001);
}

}  // namespace
}  // namespace timbre
