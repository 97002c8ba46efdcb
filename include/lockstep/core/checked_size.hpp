// Sizes computed from untrusted input (a file's header, a config key) are computed here: checked
// multiplication and addition of non-negative 64-bit counts that throw the caller's error type,
// with the caller's words for what was being sized, instead of wrapping around (and then
// allocating a small buffer that is overrun) or asking the allocator for exabytes (and failing
// with a bare std::bad_alloc that names nothing). A count that fits is then bounded with
// check_size_limit against what the input could possibly hold (a file's size) or what the
// machine has (physical_memory_bytes), before anything is allocated.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <span>
#include <string>

#include "lockstep/core/error.hpp"

namespace lockstep {

// The memory a process may plan to use, in bytes: this machine's physical memory (sysconf), or
// LOCKSTEP_MEMORY_LIMIT_MB when that is set and smaller (a Slurm job's --mem, a container's
// limit; the fuzz targets set it to stay inside libFuzzer's -rss_limit_mb); INT64_MAX when
// neither can be told.
std::int64_t physical_memory_bytes();
// "1.5 GiB", "812 bytes": a byte count for messages.
std::string bytes_text(std::int64_t bytes);

// a * b for counts a, b >= 0. `what` names what is being sized ("data.csv: 10 rows x 2 columns");
// a negative count or an overflow throws E("<what>: ...").
template <typename E> std::int64_t checked_mul(std::int64_t a, std::int64_t b, const std::string& what) {
  std::int64_t out = 0;
  if (a < 0 || b < 0) throw E(what + ": expected sizes >= 0, got " + std::to_string(a) + " and " + std::to_string(b));
  if (__builtin_mul_overflow(a, b, &out))
    throw E(what + ": " + std::to_string(a) + " x " + std::to_string(b) + " is more than a 64-bit count holds");
  return out;
}

// a + b for counts a, b >= 0, likewise.
template <typename E> std::int64_t checked_add(std::int64_t a, std::int64_t b, const std::string& what) {
  std::int64_t out = 0;
  if (a < 0 || b < 0) throw E(what + ": expected sizes >= 0, got " + std::to_string(a) + " and " + std::to_string(b));
  if (__builtin_add_overflow(a, b, &out))
    throw E(what + ": " + std::to_string(a) + " + " + std::to_string(b) + " is more than a 64-bit count holds");
  return out;
}

// The product of `dims` (1 for none), each >= 0, likewise.
template <typename E> std::int64_t checked_product(std::span<const std::int64_t> dims, const std::string& what) {
  std::int64_t n = 1;
  for (const std::int64_t d : dims) n = checked_mul<E>(n, d, what);
  return n;
}
template <typename E> std::int64_t checked_product(std::initializer_list<std::int64_t> dims, const std::string& what) {
  return checked_product<E>(std::span<const std::int64_t>(dims.begin(), dims.size()), what);
}

// Throws E("<what>: <bytes> bytes, more than <limit_text>") when bytes > limit. limit_text says
// what the limit is ("the 4.0 KiB the file holds", "this machine's 62.7 GiB of memory").
template <typename E>
void check_size_limit(std::int64_t bytes, std::int64_t limit, const std::string& what, const std::string& limit_text) {
  if (bytes > limit)
    throw E(what + ": " + std::to_string(bytes) + " bytes (" + bytes_text(bytes) + "), more than " + limit_text);
}

// The common case: bytes that must fit in physical_memory_bytes().
template <typename E> void check_fits_memory(std::int64_t bytes, const std::string& what) {
  const std::int64_t mem = physical_memory_bytes();
  check_size_limit<E>(bytes, mem, what, "the " + bytes_text(mem) + " of memory this machine has (or LOCKSTEP_MEMORY_LIMIT_MB allows)");
}

}  // namespace lockstep
