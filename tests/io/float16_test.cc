#include "server/io/float16.h"

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>

#include "gtest/gtest.h"

namespace timbre {
namespace {

uint32_t Bits(float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, sizeof(bits));
  return bits;
}

TEST(HalfToFloatTest, KnownBitPatterns) {
  EXPECT_EQ(HalfToFloat(0x3C00), 1.0f);
  EXPECT_EQ(HalfToFloat(0xC000), -2.0f);
  EXPECT_EQ(HalfToFloat(0x7BFF), 65504.0f);
  EXPECT_EQ(HalfToFloat(0x0001), std::ldexp(1.0f, -24));
  EXPECT_EQ(HalfToFloat(0x8001), -std::ldexp(1.0f, -24));
  EXPECT_EQ(HalfToFloat(0x03FF), std::ldexp(1023.0f, -24));  // largest subnormal
  EXPECT_EQ(HalfToFloat(0x0400), std::ldexp(1.0f, -14));     // smallest normal
  EXPECT_EQ(HalfToFloat(0x3555), 0.333251953125f);
  EXPECT_EQ(Bits(HalfToFloat(0x0000)), 0x00000000u);
  EXPECT_EQ(Bits(HalfToFloat(0x8000)), 0x80000000u);  // -0 keeps its sign
  EXPECT_EQ(HalfToFloat(0x7C00), std::numeric_limits<float>::infinity());
  EXPECT_EQ(HalfToFloat(0xFC00), -std::numeric_limits<float>::infinity());
  EXPECT_TRUE(std::isnan(HalfToFloat(0x7E00)));
  EXPECT_TRUE(std::isnan(HalfToFloat(0x7C01)));
}

TEST(FloatToHalfTest, KnownBitPatterns) {
  EXPECT_EQ(FloatToHalf(1.0f), 0x3C00);
  EXPECT_EQ(FloatToHalf(-2.0f), 0xC000);
  EXPECT_EQ(FloatToHalf(65504.0f), 0x7BFF);
  EXPECT_EQ(FloatToHalf(std::ldexp(1.0f, -24)), 0x0001);
  EXPECT_EQ(FloatToHalf(std::ldexp(1023.0f, -24)), 0x03FF);
  EXPECT_EQ(FloatToHalf(std::ldexp(1.0f, -14)), 0x0400);
  EXPECT_EQ(FloatToHalf(0.0f), 0x0000);
  EXPECT_EQ(FloatToHalf(-0.0f), 0x8000);
}

TEST(FloatToHalfTest, RoundsToNearestEven) {
  // Halfway between 1.0 (0x3C00, even) and 1 + 2^-10 (0x3C01): down to even.
  EXPECT_EQ(FloatToHalf(1.0f + std::ldexp(1.0f, -11)), 0x3C00);
  // Halfway between 0x3C01 (odd) and 0x3C02 (even): up to even.
  EXPECT_EQ(FloatToHalf(1.0f + 3 * std::ldexp(1.0f, -11)), 0x3C02);
  // Just above and below the halfway point round to the nearer value.
  EXPECT_EQ(FloatToHalf(1.0f + std::ldexp(1.0f, -11) + std::ldexp(1.0f, -20)), 0x3C01);
  EXPECT_EQ(FloatToHalf(1.0f + std::ldexp(1.0f, -11) - std::ldexp(1.0f, -20)), 0x3C00);
  // Halfway between 0x3FFF (odd) and 2.0: the carry moves into the exponent.
  EXPECT_EQ(FloatToHalf(2.0f - std::ldexp(1.0f, -11)), 0x4000);
  // Subnormal results: 2^-25 is halfway between 0 and 0x0001, 3 * 2^-25 between 0x0001 and 0x0002.
  EXPECT_EQ(FloatToHalf(std::ldexp(1.0f, -25)), 0x0000);
  EXPECT_EQ(FloatToHalf(std::ldexp(3.0f, -25)), 0x0002);
  EXPECT_EQ(FloatToHalf(std::ldexp(1.0f, -25) * 1.001f), 0x0001);
  EXPECT_EQ(FloatToHalf(-std::ldexp(3.0f, -25)), 0x8002);
  // Halfway between the largest subnormal 0x03FF (odd) and the smallest normal 0x0400.
  EXPECT_EQ(FloatToHalf(std::ldexp(2047.0f, -25)), 0x0400);
  // Far below the smallest subnormal: zero with the sign kept.
  EXPECT_EQ(FloatToHalf(1e-30f), 0x0000);
  EXPECT_EQ(FloatToHalf(-1e-30f), 0x8000);
}

TEST(FloatToHalfTest, OverflowsToInfinity) {
  // 65520 is halfway between 65504 (0x7BFF, odd) and 65536 (not representable): infinity.
  EXPECT_EQ(FloatToHalf(65520.0f), 0x7C00);
  EXPECT_EQ(FloatToHalf(std::nextafter(65520.0f, 0.0f)), 0x7BFF);
  EXPECT_EQ(FloatToHalf(65536.0f), 0x7C00);
  EXPECT_EQ(FloatToHalf(1e10f), 0x7C00);
  EXPECT_EQ(FloatToHalf(-1e10f), 0xFC00);
  EXPECT_EQ(FloatToHalf(std::numeric_limits<float>::max()), 0x7C00);
  EXPECT_EQ(FloatToHalf(std::numeric_limits<float>::infinity()), 0x7C00);
  EXPECT_EQ(FloatToHalf(-std::numeric_limits<float>::infinity()), 0xFC00);
}

TEST(FloatToHalfTest, NanStaysNan) {
  const uint16_t half = FloatToHalf(std::numeric_limits<float>::quiet_NaN());
  EXPECT_EQ(half & 0x7C00, 0x7C00);
  EXPECT_NE(half & 0x03FF, 0);
}

TEST(FloatToHalfTest, EveryHalfRoundTrips) {
  for (uint32_t half = 0; half <= 0xFFFF; ++half) {
    const float value = HalfToFloat(static_cast<uint16_t>(half));
    const bool nan = (half & 0x7C00) == 0x7C00 && (half & 0x03FF) != 0;
    if (nan) {
      ASSERT_TRUE(std::isnan(value)) << std::hex << half;
      ASSERT_TRUE(std::isnan(HalfToFloat(FloatToHalf(value)))) << std::hex << half;
    } else {
      ASSERT_EQ(FloatToHalf(value), half) << std::hex << half;
    }
  }
}

// For random floats in half's finite range, the result is the nearest half, ties to even.
TEST(FloatToHalfTest, PicksNearestHalf) {
  std::mt19937 random(11);
  std::uniform_real_distribution<float> exponent(-26.0f, 15.9f);
  std::uniform_real_distribution<float> mantissa(1.0f, 2.0f);
  for (int i = 0; i < 20000; ++i) {
    float value = std::ldexp(mantissa(random), static_cast<int>(std::floor(exponent(random))));
    if (value >= 65504.0f) continue;
    if (i % 2 == 1) value = -value;
    const uint16_t half = FloatToHalf(value);
    const double error = std::abs(static_cast<double>(HalfToFloat(half)) - value);
    for (int step : {-1, 1}) {
      const uint16_t magnitude = half & 0x7FFF;
      if (magnitude == 0 && step < 0) continue;
      if (magnitude + step > 0x7BFF) continue;
      const uint16_t neighbour = (half & 0x8000) | static_cast<uint16_t>(magnitude + step);
      const double other = std::abs(static_cast<double>(HalfToFloat(neighbour)) - value);
      ASSERT_LE(error, other) << value;
      if (error == other) {
        EXPECT_EQ(half & 1, 0) << "tie not to even for " << value;
      }
    }
  }
}

}  // namespace
}  // namespace timbre
