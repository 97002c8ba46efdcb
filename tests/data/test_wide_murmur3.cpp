// MurmurHash3 x86_32 against published known-answer vectors (the reference implementation's), and
// the index of encoded keys that the map-side combine uses.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "lockstep/core/murmur3.hpp"
#include "lockstep/data/wide/key_index.hpp"

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

// The map-side combine's index (wide/key_index.hpp): positions in order of first insertion, every
// key found again after the table has grown many times, byte strings with NULs and the empty key
// distinct, absent keys absent.
TEST(KeyIndex, PositionsInInsertionOrderThroughGrowth) {
  lockstep::data::wide::KeyIndex index;
  std::vector<std::string> keys = {"", std::string("\0", 1), std::string("\0\0", 2), "a", std::string("a\0", 2)};
  for (int i = 0; i < 100000; ++i) keys.push_back("key" + std::to_string(i * 7919 % 100003));
  for (std::size_t i = 0; i < keys.size(); ++i) {
    const auto [pos, inserted] = index.insert(keys[i]);
    EXPECT_TRUE(inserted) << i;
    EXPECT_EQ(pos, i);
  }
  EXPECT_EQ(index.size(), keys.size());
  for (std::size_t i = 0; i < keys.size(); ++i) {
    EXPECT_EQ(index.find(keys[i]), i);
    EXPECT_EQ(index.key_at(i), keys[i]);
    EXPECT_EQ(index.insert(keys[i]), (std::pair<std::size_t, bool>{i, false}));
  }
  EXPECT_EQ(index.find("key100003"), lockstep::data::wide::KeyIndex::kNone);
  EXPECT_EQ(index.find(std::string("\0\0\0", 3)), lockstep::data::wide::KeyIndex::kNone);
}
