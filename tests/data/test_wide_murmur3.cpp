// MurmurHash3 x86_32 against published known-answer vectors (the reference implementation's).
#include <gtest/gtest.h>

#include <string>

#include "lockstep/core/murmur3.hpp"

using lockstep::murmur3_32;

TEST(Murmur3, KnownAnswers) {
  EXPECT_EQ(murmur3_32("", 0), 0u);
  EXPECT_EQ(murmur3_32("", 1), 0x514E28B7u);
  EXPECT_EQ(murmur3_32("", 0xffffffffu), 0x81F16F39u);
  EXPECT_EQ(murmur3_32(std::string("\0\0\0\0", 4), 0), 0x2362F9DEu);
  EXPECT_EQ(murmur3_32("a", 0x9747b28cu), 0x7FA09EA6u);
  EXPECT_EQ(murmur3_32("aa", 0x9747b28cu), 0x5D211726u);
  EXPECT_EQ(murmur3_32("aaa", 0x9747b28cu), 0x283E0130u);
  EXPECT_EQ(murmur3_32("aaaa", 0x9747b28cu), 0x5A97808Au);
  EXPECT_EQ(murmur3_32("abc", 0), 0xB3DD93FAu);
  EXPECT_EQ(murmur3_32("abcd", 0x9747b28cu), 0xF0478627u);
  EXPECT_EQ(murmur3_32("Hello, world!", 0x9747b28cu), 0x24884CBAu);
  EXPECT_EQ(murmur3_32("The quick brown fox jumps over the lazy dog", 0x9747b28cu), 0x2FA826CDu);
}
