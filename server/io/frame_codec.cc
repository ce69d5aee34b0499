#include "server/io/frame_codec.h"

#include <cmath>
#include <cstring>
#include <limits>

#include "absl/strings/str_cat.h"

namespace timbre {
namespace {

// The build targets little-endian x86-64 and arm64, so packed values are copied as they are.
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "timbre assumes a little-endian host");

}  // namespace

int BytesPerValue(DType dtype) { return dtype == DType::kFloat16 ? 2 : 4; }

absl::StatusOr<FrameMatrix> DecodeFrames(DType dtype, int64_t rows, int dim,
                                         absl::string_view data) {
  if (rows < 1) return absl::InvalidArgumentError("frames: num_frames must be at least 1");
  if (dim < 1) return absl::InvalidArgumentError("frames: dim must be at least 1");
  if (rows > std::numeric_limits<int64_t>::max() / 4 / dim) {
    return absl::InvalidArgumentError(absl::StrCat("frames: ", rows, " frames x ", dim,
                                                   " values needs more bytes than any message holds"));
  }
  const int64_t count = rows * dim;
  const int64_t expected = count * BytesPerValue(dtype);
  if (static_cast<int64_t>(data.size()) != expected) {
    return absl::InvalidArgumentError(absl::StrCat(
        "frames: data has ", data.size(), " bytes but ", rows, " frames x ", dim, " values x ",
        BytesPerValue(dtype), " bytes need ", expected));
  }
  FrameMatrix frames;
  frames.rows = rows;
  frames.dim = dim;
  frames.values.resize(count);
  if (dtype == DType::kFloat32) {
    std::memcpy(frames.values.data(), data.data(), data.size());
  } else {
    for (int64_t i = 0; i < count; ++i) {
      uint16_t half;
      std::memcpy(&half, data.data() + 2 * i, 2);
      frames.values[i] = HalfToFloat(half);
    }
  }
  for (int64_t i = 0; i < count; ++i) {
    if (!std::isfinite(frames.values[i])) {
      return absl::InvalidArgumentError(absl::StrCat("frames: value at frame ", i / dim,
                                                     ", column ", i % dim, " is ",
                                                     frames.values[i], "; values must be finite"));
    }
  }
  return frames;
}

std::string EncodeFrames(DType dtype, absl::Span<const float> values) {
  std::string out;
  if (dtype == DType::kFloat32) {
    out.resize(values.size() * 4);
    if (!values.empty()) std::memcpy(out.data(), values.data(), out.size());
    return out;
  }
  out.resize(values.size() * 2);
  for (size_t i = 0; i < values.size(); ++i) {
    const uint16_t half = FloatToHalf(values[i]);
    std::memcpy(out.data() + 2 * i, &half, 2);
  }
  return out;
}

}  // namespace timbre
