#include "server/core/frame_codec.h"

#include <cmath>
#include <cstring>
#include <limits>

#include "absl/strings/str_cat.h"

namespace timbre {
namespace {

static_assert(sizeof(float) == 4, "float must be IEEE binary32");

uint32_t FloatBits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof(u));
  return u;
}

float BitsToFloat(uint32_t u) {
  float f;
  std::memcpy(&f, &u, sizeof(f));
  return f;
}

// The build targets little-endian x86-64 and arm64, so packed values are copied as they are.
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "timbre assumes a little-endian host");

}  // namespace

int BytesPerValue(DType dtype) { return dtype == DType::kFloat16 ? 2 : 4; }

float HalfToFloat(uint16_t half) {
  const uint32_t sign = static_cast<uint32_t>(half & 0x8000u) << 16;
  const uint32_t exponent = (half >> 10) & 0x1fu;
  const uint32_t mantissa = half & 0x3ffu;
  if (exponent == 0) {
    // Zero or subnormal: mantissa * 2^-24, exact in float32.
    const float magnitude = std::ldexp(static_cast<float>(mantissa), -24);
    return sign ? -magnitude : magnitude;
  }
  if (exponent == 0x1f) return BitsToFloat(sign | 0x7f800000u | (mantissa << 13));
  return BitsToFloat(sign | ((exponent + 112) << 23) | (mantissa << 13));
}

uint16_t FloatToHalf(float value) {
  const uint32_t bits = FloatBits(value);
  const uint16_t sign = static_cast<uint16_t>((bits >> 16) & 0x8000u);
  const uint32_t abs_bits = bits & 0x7fffffffu;
  if (abs_bits >= 0x7f800000u) {  // inf or NaN
    return sign | 0x7c00u | (abs_bits > 0x7f800000u ? 0x200u : 0u);
  }
  if (abs_bits >= 0x477ff000u) return sign | 0x7c00u;  // rounds to >= 65520: overflow to inf
  if (abs_bits < 0x38800000u) {
    // Result is subnormal or zero: round abs/2^-24 to nearest even integer.
    const float scaled = BitsToFloat(abs_bits) * 16777216.0f;  // exact: power-of-two scale
    return sign | static_cast<uint16_t>(std::nearbyint(scaled));
  }
  // Normal: rebias the exponent and round the 13 dropped mantissa bits to nearest even.
  const uint32_t rebased = abs_bits - (112u << 23);
  const uint32_t round_bit = 1u << 12;
  const uint32_t lower = rebased & 0x1fffu;
  uint32_t half = rebased >> 13;
  if (lower > round_bit || (lower == round_bit && (half & 1u))) ++half;
  return sign | static_cast<uint16_t>(half);
}

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
