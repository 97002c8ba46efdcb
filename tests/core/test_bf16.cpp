// bf16 rounding, the plain bit arithmetic that the CPU backend and the CUDA kernels share: round to
// nearest, ties to even; NaN stays NaN; overflow goes to infinity; every bf16 value survives a
// round trip through float.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>

#include "lockstep/core/bfloat16.hpp"

using lockstep::bf16;

TEST(Bf16Rounding, RoundsToNearestTiesToEven) {
  EXPECT_EQ(bf16::from_float(1.0f).bits, 0x3f80);
  EXPECT_EQ(bf16::from_float(-2.5f).to_float(), -2.5f);
  // 1 + 2^-8 lies halfway between 1 and 1 + 2^-7: ties go to the even mantissa (1).
  EXPECT_EQ(bf16::from_float(1.0f + 0x1p-8f).bits, 0x3f80);
  // 1 + 3 * 2^-8 lies halfway between 1 + 2^-7 (odd) and 1 + 2^-6 (even).
  EXPECT_EQ(bf16::from_float(1.0f + 3 * 0x1p-8f).bits, 0x3f82);
  // Just above a midpoint rounds up.
  EXPECT_EQ(bf16::from_float(1.0f + 0x1p-8f + 0x1p-20f).bits, 0x3f81);
  EXPECT_TRUE(std::isnan(bf16::from_float(std::numeric_limits<float>::quiet_NaN()).to_float()));
  // A NaN whose payload sits in the low bits only must not round into infinity.
  EXPECT_TRUE(std::isnan(bf16::from_float(std::bit_cast<float>(0x7f800001u)).to_float()));
  EXPECT_EQ(bf16::from_float(std::numeric_limits<float>::infinity()).to_float(),
            std::numeric_limits<float>::infinity());
  EXPECT_EQ(bf16::from_float(std::numeric_limits<float>::max()).to_float(), std::numeric_limits<float>::infinity());
  // Every bf16 value survives a trip through float.
  for (std::uint32_t bits = 0; bits < 0x10000u; ++bits) {
    bf16 b;
    b.bits = static_cast<std::uint16_t>(bits);
    const float f = b.to_float();
    if (std::isnan(f)) continue;
    ASSERT_EQ(bf16::from_float(f).bits, b.bits) << std::hex << bits;
  }
}

TEST(Bf16Rounding, LoadAndStoreGoThroughFloat) {
  bf16 buf[2];
  lockstep::store_f(buf, 1, 3.14159f);
  EXPECT_EQ(lockstep::load_f(buf, 1), lockstep::round_bf16(3.14159f));
  EXPECT_EQ(lockstep::round_bf16(3.14159f), 3.140625f);  // 7 mantissa bits
  float f[1];
  lockstep::store_f(f, 0, 3.14159f);
  EXPECT_EQ(lockstep::load_f(f, 0), 3.14159f);
}
