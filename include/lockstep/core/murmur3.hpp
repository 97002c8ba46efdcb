// MurmurHash3 x86_32 (Austin Appleby's public-domain reference, MurmurHash3_x86_32), byte for byte:
// little-endian 4-byte blocks, the standard tail, fmix32. Portable across compilers, platforms and
// runs, unlike std::hash. The keyed shuffles (data/wide/) hash the Codec encoding of a key with it;
// Spark's HashingTF uses the same function with seed 42.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace lockstep {

namespace detail {
constexpr std::uint32_t rotl32(std::uint32_t x, int r) {
  return (x << r) | (x >> (32 - r));
}
constexpr std::uint32_t fmix32(std::uint32_t h) {
  h ^= h >> 16;
  h *= 0x85ebca6bU;
  h ^= h >> 13;
  h *= 0xc2b2ae35U;
  h ^= h >> 16;
  return h;
}
}  // namespace detail

inline std::uint32_t murmur3_32(const void* key, std::size_t len, std::uint32_t seed) {
  const auto* data = static_cast<const unsigned char*>(key);
  const std::size_t nblocks = len / 4;
  std::uint32_t h1 = seed;
  constexpr std::uint32_t c1 = 0xcc9e2d51U;
  constexpr std::uint32_t c2 = 0x1b873593U;
  for (std::size_t i = 0; i < nblocks; ++i) {
    const unsigned char* b = data + 4 * i;
    std::uint32_t k1 = static_cast<std::uint32_t>(b[0]) | (static_cast<std::uint32_t>(b[1]) << 8) |
                       (static_cast<std::uint32_t>(b[2]) << 16) | (static_cast<std::uint32_t>(b[3]) << 24);
    k1 *= c1;
    k1 = detail::rotl32(k1, 15);
    k1 *= c2;
    h1 ^= k1;
    h1 = detail::rotl32(h1, 13);
    h1 = h1 * 5 + 0xe6546b64U;
  }
  const unsigned char* tail = data + 4 * nblocks;
  std::uint32_t k1 = 0;
  switch (len & 3U) {
    case 3:
      k1 ^= static_cast<std::uint32_t>(tail[2]) << 16;
      [[fallthrough]];
    case 2:
      k1 ^= static_cast<std::uint32_t>(tail[1]) << 8;
      [[fallthrough]];
    case 1:
      k1 ^= static_cast<std::uint32_t>(tail[0]);
      k1 *= c1;
      k1 = detail::rotl32(k1, 15);
      k1 *= c2;
      h1 ^= k1;
      break;
    default:
      break;
  }
  h1 ^= static_cast<std::uint32_t>(len);
  return detail::fmix32(h1);
}

inline std::uint32_t murmur3_32(std::string_view bytes, std::uint32_t seed) {
  return murmur3_32(bytes.data(), bytes.size(), seed);
}

}  // namespace lockstep
