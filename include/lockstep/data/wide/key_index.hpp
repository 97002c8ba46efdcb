// KeyIndex: byte strings (Codec encodings of keys) -> dense positions 0, 1, 2, ... in order of first
// insertion, for the map-side combine and the hash join. Open addressing with linear probing over a
// power-of-two table at most half full; each 8-byte slot holds 32 bits of the hash and the position,
// and the key bytes sit back to back in one arena, so a lookup touches two or three cache lines
// instead of a node-based map's pointer chain (word count over 200 MB at one rank: 10.0 s -> 7.4-8.0 s).
// The hash is local to the process (the shuffle's portable hash is MurmurHash3, shuffle.hpp): it
// decides only where a key sits in the table, never an output order.
#pragma once

#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace lockstep::data::wide {

class KeyIndex {
 public:
  static constexpr std::size_t kNone = static_cast<std::size_t>(-1);

  // The key's position, inserting it at position size() when absent: {position, inserted}.
  std::pair<std::size_t, bool> insert(std::string_view key) {
    if (2 * (size() + 1) > slots_.size()) grow();
    const std::uint64_t h = hash(key);
    const auto tag = static_cast<std::uint32_t>(h >> 32);
    for (std::size_t s = h & mask_;; s = (s + 1) & mask_) {
      const std::uint64_t slot = slots_[s];
      if (slot == 0) {
        const std::size_t pos = size();
        slots_[s] = (std::uint64_t{tag} << 32) | (pos + 1);
        arena_.append(key);
        starts_.push_back(arena_.size());
        return {pos, true};
      }
      if (static_cast<std::uint32_t>(slot >> 32) == tag && key_at((slot & 0xFFFFFFFFU) - 1) == key)
        return {(slot & 0xFFFFFFFFU) - 1, false};
    }
  }
  // The key's position, or kNone.
  std::size_t find(std::string_view key) const {
    if (slots_.empty()) return kNone;
    const std::uint64_t h = hash(key);
    const auto tag = static_cast<std::uint32_t>(h >> 32);
    for (std::size_t s = h & mask_;; s = (s + 1) & mask_) {
      const std::uint64_t slot = slots_[s];
      if (slot == 0) return kNone;
      if (static_cast<std::uint32_t>(slot >> 32) == tag && key_at((slot & 0xFFFFFFFFU) - 1) == key)
        return (slot & 0xFFFFFFFFU) - 1;
    }
  }
  std::size_t size() const { return starts_.size() - 1; }
  std::string_view key_at(std::size_t pos) const {
    return std::string_view(arena_).substr(starts_[pos], starts_[pos + 1] - starts_[pos]);
  }

  // 8 bytes at a time, multiply-xorshift mixing (after the folds of wyhash and MurmurHash3's fmix64).
  static std::uint64_t hash(std::string_view key) {
    const char* p = key.data();
    std::size_t n = key.size();
    std::uint64_t h = 0x9E3779B97F4A7C15ULL ^ (n * 0xC2B2AE3D27D4EB4FULL);
    while (n >= 8) {
      std::uint64_t v;
      std::memcpy(&v, p, 8);
      h = (h ^ v) * 0xFF51AFD7ED558CCDULL;
      h ^= h >> 32;
      p += 8;
      n -= 8;
    }
    std::uint64_t v = 0;
    std::memcpy(&v, p, n);
    h = (h ^ v) * 0xC4CEB9FE1A85EC53ULL;
    h ^= h >> 29;
    h *= 0xFF51AFD7ED558CCDULL;
    return h ^ (h >> 32);
  }

 private:
  // A slot is 8 bytes: the hash's high 32 bits, then position + 1 (0: empty). A million keys make
  // an 16 MB table; 124,593 words (bench/wordcount_vs_unix.sh) 2 MB. Positions fit 32 bits.
  void grow() {
    if (size() + 1 >= (std::size_t{1} << 32) - 1) throw std::length_error("KeyIndex: more than 2^32 - 2 distinct keys on one rank");
    std::vector<std::uint64_t> old = std::move(slots_);
    slots_.assign(old.empty() ? 64 : 2 * old.size(), 0);
    mask_ = slots_.size() - 1;
    for (const std::uint64_t o : old) {
      if (o == 0) continue;
      const std::uint64_t h = hash(key_at((o & 0xFFFFFFFFU) - 1));
      std::size_t s = h & mask_;
      while (slots_[s] != 0) s = (s + 1) & mask_;
      slots_[s] = o;
    }
  }
  std::vector<std::uint64_t> slots_;
  std::size_t mask_ = 0;
  std::string arena_;                      // the keys, back to back in position order
  std::vector<std::size_t> starts_{0};     // key p is arena_[starts_[p], starts_[p + 1])
};

}  // namespace lockstep::data::wide
