#include "server/io/frame_codec.h"

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/test_support.h"

namespace timbre {
namespace {

using ::testing::AllOf;
using ::testing::ElementsAreArray;
using ::testing::HasSubstr;
using ::timbre::testing::IsOk;
using ::timbre::testing::StatusIs;

uint32_t Bits(float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, sizeof(bits));
  return bits;
}

// Packs 16-bit values little-endian, independently of the codec.
std::string PackHalves(const std::vector<uint16_t>& halves) {
  std::string out;
  for (uint16_t half : halves) {
    out.push_back(static_cast<char>(half & 0xff));
    out.push_back(static_cast<char>(half >> 8));
  }
  return out;
}

TEST(EncodeFramesTest, WritesLittleEndianBytes) {
  EXPECT_EQ(EncodeFrames(DType::kFloat32, {1.0f}), std::string("\x00\x00\x80\x3F", 4));
  EXPECT_EQ(EncodeFrames(DType::kFloat16, {1.0f, -2.0f}), PackHalves({0x3C00, 0xC000}));
  EXPECT_EQ(EncodeFrames(DType::kFloat16, {1e6f}), PackHalves({0x7C00}));
  EXPECT_EQ(EncodeFrames(DType::kFloat32, {}), "");
  EXPECT_EQ(BytesPerValue(DType::kFloat32), 4);
  EXPECT_EQ(BytesPerValue(DType::kFloat16), 2);
}

TEST(DecodeFramesTest, Float32RoundTripsBitForBit) {
  std::mt19937 random(3);
  std::normal_distribution<float> normal(0.0f, 10.0f);
  std::vector<float> values(3 * 5);
  for (float& value : values) value = normal(random);
  values[4] = -0.0f;
  values[7] = std::numeric_limits<float>::denorm_min();
  const std::string bytes = EncodeFrames(DType::kFloat32, values);
  ASSERT_EQ(bytes.size(), values.size() * 4);
  absl::StatusOr<FrameMatrix> frames = DecodeFrames(DType::kFloat32, 3, 5, bytes);
  ASSERT_THAT(frames, IsOk());
  EXPECT_EQ(frames->rows, 3);
  EXPECT_EQ(frames->dim, 5);
  ASSERT_EQ(frames->values.size(), values.size());
  for (size_t i = 0; i < values.size(); ++i) EXPECT_EQ(Bits(frames->values[i]), Bits(values[i]));
  EXPECT_EQ(frames->row(2)[1], values[11]);
}

TEST(DecodeFramesTest, Float16RoundTripsRepresentableValues) {
  const std::vector<float> values = {1.0f, -2.0f,  65504.0f, std::ldexp(1.0f, -24), 0.5f,
                                     0.0f, -0.25f, 1024.0f,  0.333251953125f,       -65504.0f,
                                     3.0f, 7.5f};
  const std::string bytes = EncodeFrames(DType::kFloat16, values);
  ASSERT_EQ(bytes.size(), values.size() * 2);
  absl::StatusOr<FrameMatrix> frames = DecodeFrames(DType::kFloat16, 4, 3, bytes);
  ASSERT_THAT(frames, IsOk());
  EXPECT_EQ(frames->rows, 4);
  EXPECT_EQ(frames->dim, 3);
  EXPECT_THAT(frames->values, ElementsAreArray(values));
}

TEST(DecodeFramesTest, Float16WidensHandPackedBytes) {
  absl::StatusOr<FrameMatrix> frames =
      DecodeFrames(DType::kFloat16, 1, 4, PackHalves({0x3C00, 0xC000, 0x7BFF, 0x0001}));
  ASSERT_THAT(frames, IsOk());
  EXPECT_THAT(frames->values, ElementsAreArray({1.0f, -2.0f, 65504.0f, std::ldexp(1.0f, -24)}));
}

TEST(DecodeFramesTest, Float16RoundsLikeNumpyOnTheWayOut) {
  // 0.1 is not representable; numpy's float16(0.1) is 0x2E66.
  const std::string bytes = EncodeFrames(DType::kFloat16, {0.1f});
  EXPECT_EQ(bytes, PackHalves({0x2E66}));
  absl::StatusOr<FrameMatrix> frames = DecodeFrames(DType::kFloat16, 1, 1, bytes);
  ASSERT_THAT(frames, IsOk());
  EXPECT_EQ(frames->values[0], HalfToFloat(0x2E66));
}

TEST(DecodeFramesTest, RejectsRowsBelowOne) {
  EXPECT_THAT(DecodeFrames(DType::kFloat32, 0, 4, ""),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("num_frames")));
  EXPECT_THAT(DecodeFrames(DType::kFloat32, -1, 4, ""),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("num_frames")));
}

TEST(DecodeFramesTest, RejectsDimBelowOne) {
  EXPECT_THAT(DecodeFrames(DType::kFloat16, 2, 0, ""),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("dim")));
  EXPECT_THAT(DecodeFrames(DType::kFloat32, 2, -3, ""),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("dim")));
}

TEST(DecodeFramesTest, RejectsWrongByteLength) {
  // 2 frames x 3 values x 4 bytes = 24 bytes needed.
  EXPECT_THAT(
      DecodeFrames(DType::kFloat32, 2, 3, std::string(23, '\0')),
      StatusIs(absl::StatusCode::kInvalidArgument, AllOf(HasSubstr("23 bytes"), HasSubstr("24"))));
  EXPECT_THAT(
      DecodeFrames(DType::kFloat32, 2, 3, std::string(25, '\0')),
      StatusIs(absl::StatusCode::kInvalidArgument, AllOf(HasSubstr("25 bytes"), HasSubstr("24"))));
  EXPECT_THAT(
      DecodeFrames(DType::kFloat32, 2, 3, ""),
      StatusIs(absl::StatusCode::kInvalidArgument, AllOf(HasSubstr("0 bytes"), HasSubstr("24"))));
  // Float16 data of float32 length is wrong too: 2 x 3 x 2 = 12 needed.
  EXPECT_THAT(
      DecodeFrames(DType::kFloat16, 2, 3, std::string(24, '\0')),
      StatusIs(absl::StatusCode::kInvalidArgument, AllOf(HasSubstr("24 bytes"), HasSubstr("12"))));
}

// Shapes whose byte count overflows int64 must not pass the length check with a tiny payload
// (both fit the proto's uint32 num_frames and dim).
TEST(DecodeFramesTest, RejectsShapesWhoseByteCountOverflows) {
  // 2147549185 * 2147418113 = 2^62 + 1 values; times 4 bytes wraps to 4.
  EXPECT_THAT(DecodeFrames(DType::kFloat32, 2147549185, 2147418113, std::string(4, '\0')),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("bytes")));
  // 2^62 * 4 values wraps to 0.
  EXPECT_THAT(DecodeFrames(DType::kFloat16, int64_t{1} << 62, 4, ""),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("bytes")));
}

TEST(DecodeFramesTest, RejectsNanNamingFrameAndColumn) {
  std::vector<float> values(3 * 4, 0.5f);
  values[1 * 4 + 2] = std::numeric_limits<float>::quiet_NaN();
  EXPECT_THAT(DecodeFrames(DType::kFloat32, 3, 4, EncodeFrames(DType::kFloat32, values)),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("frame 1"), HasSubstr("column 2"))));
}

TEST(DecodeFramesTest, RejectsInfinityNamingFrameAndColumn) {
  std::vector<float> values(3 * 4, 0.5f);
  values[2 * 4 + 0] = -std::numeric_limits<float>::infinity();
  EXPECT_THAT(DecodeFrames(DType::kFloat32, 3, 4, EncodeFrames(DType::kFloat32, values)),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("frame 2"), HasSubstr("column 0"))));
}

TEST(DecodeFramesTest, RejectsFloat16InfinityAndNan) {
  EXPECT_THAT(DecodeFrames(DType::kFloat16, 2, 2, PackHalves({0x3C00, 0x3C00, 0x3C00, 0x7C00})),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("frame 1"), HasSubstr("column 1"))));
  EXPECT_THAT(DecodeFrames(DType::kFloat16, 2, 2, PackHalves({0x3C00, 0x7E00, 0x3C00, 0x3C00})),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("frame 0"), HasSubstr("column 1"))));
}

}  // namespace
}  // namespace timbre
