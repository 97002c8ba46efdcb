// checked_size.hpp: sizes from untrusted input either come out exact or throw the caller's error
// type with the caller's words, never wrap around.
#include <gtest/gtest.h>

#include <limits>

#include "lockstep/core/checked_size.hpp"

using namespace lockstep;

namespace {

template <typename E, typename Fn> std::string message_of(Fn&& fn) {
  try {
    fn();
  } catch (const E& e) {
    return e.what();
  }
  return "(no exception)";
}

}  // namespace

TEST(CheckedSize, ExactWhenItFits) {
  EXPECT_EQ(checked_mul<DataError>(60000, 784, "x"), 47040000);
  EXPECT_EQ(checked_add<DataError>(std::numeric_limits<std::int64_t>::max() - 1, 1, "x"),
            std::numeric_limits<std::int64_t>::max());
  EXPECT_EQ(checked_product<DataError>({2, 3, 4}, "x"), 24);
  EXPECT_EQ(checked_product<DataError>({}, "x"), 1);
  EXPECT_EQ(checked_product<DataError>({0, std::numeric_limits<std::int64_t>::max(), 5}, "x"), 0);
}

TEST(CheckedSize, OverflowThrowsTheCallersTypeAndWords) {
  // The case: units 922337203685477581 on 784 inputs.
  const auto m = message_of<ConfigError>(
      [] { checked_mul<ConfigError>(784, 922337203685477581, "configs/x.yaml:12: model.layers[0].units"); });
  EXPECT_EQ(m, "configs/x.yaml:12: model.layers[0].units: 784 x 922337203685477581 is more than a 64-bit count holds");
  EXPECT_THROW(checked_add<DataError>(std::numeric_limits<std::int64_t>::max(), 1, "f"), DataError);
  EXPECT_THROW(checked_product<DataError>({1 << 30, 1 << 30, 1 << 30}, "f"), DataError);
  EXPECT_NE(message_of<DataError>([] { checked_mul<DataError>(-1, 2, "f.idx"); }).find("f.idx: expected sizes >= 0"),
            std::string::npos);
}

TEST(CheckedSize, LimitNamesBothSizes) {
  EXPECT_NO_THROW(check_size_limit<DataError>(4096, 4096, "f", "the file"));
  EXPECT_EQ(message_of<DataError>([] { check_size_limit<DataError>(3 << 20, 1024, "f.h5:/features", "the 1.0 KiB the file holds"); }),
            "f.h5:/features: 3145728 bytes (3.0 MiB), more than the 1.0 KiB the file holds");
}

TEST(CheckedSize, PhysicalMemoryIsPlausible) {
  const std::int64_t mem = physical_memory_bytes();
  EXPECT_GT(mem, std::int64_t{64} << 20);
  EXPECT_THROW(check_fits_memory<ConfigError>(std::numeric_limits<std::int64_t>::max(), "k"), ConfigError);
  EXPECT_NO_THROW(check_fits_memory<ConfigError>(1024, "k"));
  EXPECT_EQ(bytes_text(812), "812 bytes");
  EXPECT_EQ(bytes_text(1536), "1.5 KiB");
}
