// The byte exchange under every keyed wide operation, with the memory check: before a rank
// allocates its receive buffer it compares the bytes it will receive with a limit (the environment
// variable LOCKSTEP_SHUFFLE_LIMIT_MB when set, else MemAvailable from /proc/meminfo), and the ranks
// agree (Communicator::agree) so that a rank over its limit makes every rank throw the same Error,
// naming the operation, the rank, the bytes and the limit; none is left waiting in the alltoallv.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <limits>
#include <memory>
#include <numeric>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "lockstep/comm/communicator.hpp"
#include "lockstep/core/murmur3.hpp"
#include "lockstep/data/detail/codec.hpp"

namespace lockstep::data::wide {

// The seed of the keyed shuffles' hash of a key's Codec encoding.
inline constexpr std::uint32_t kShuffleSeed = 42;

// A byte buffer that is not zero-filled (fresh pages are zeroed by the kernel once, not twice).
struct Bytes {
  std::unique_ptr<char[]> data;
  std::size_t size = 0;
  explicit Bytes(std::size_t n = 0) : data(n ? new char[n] : nullptr), size(n) {}
  char* get() { return data.get(); }
  const char* get() const { return data.get(); }
};

// The receive limit in bytes: LOCKSTEP_SHUFFLE_LIMIT_MB (a decimal number of MiB, fractions allowed)
// when set, else MemAvailable, else no limit.
inline std::uint64_t shuffle_limit_bytes() {
  if (const char* s = std::getenv("LOCKSTEP_SHUFFLE_LIMIT_MB"); s != nullptr && *s != '\0') {
    char* end = nullptr;
    const double mb = std::strtod(s, &end);
    if (end != s && mb >= 0) return static_cast<std::uint64_t>(mb * 1024.0 * 1024.0);
  }
  std::ifstream f("/proc/meminfo");
  std::string name, unit;
  std::uint64_t kb = 0;
  while (f >> name >> kb >> unit) {
    if (name == "MemAvailable:") return kb * 1024;
  }
  return std::numeric_limits<std::uint64_t>::max();
}

// Collective: throws the same Error on every rank when any rank's `bytes` to receive exceed its
// limit; `what` says what is received.
inline void check_receive(comm::Communicator& comm, std::uint64_t bytes, const char* op, const char* what) {
  const std::uint64_t limit = shuffle_limit_bytes();
  std::optional<std::string> err;
  if (bytes > limit) {
    std::ostringstream m;
    m << op << ": rank " << comm.rank() << " would receive " << bytes << " bytes " << what << ", over the limit of "
      << limit << " bytes (LOCKSTEP_SHUFFLE_LIMIT_MB, else MemAvailable)";
    err = m.str();
  }
  comm.agree(err);
}

// send holds the bytes for rank 0, then rank 1, ...; counts[r] of them go to rank r. Returns the
// received bytes, concatenated in source-rank order. Collective; `op` names the operation in errors.
inline Bytes exchange_bytes(comm::Communicator& comm, const Bytes& send, const std::vector<std::size_t>& counts,
                            const char* op) {
  const int p = comm.size();
  std::vector<std::uint64_t> sizes(counts.begin(), counts.end()), recv_sizes(static_cast<std::size_t>(p));
  comm.alltoall(sizes.data(), sizeof(std::uint64_t), recv_sizes.data());
  const std::uint64_t total = std::accumulate(recv_sizes.begin(), recv_sizes.end(), std::uint64_t{0});
  check_receive(comm, total, op, "in its shuffle");
  Bytes recv(static_cast<std::size_t>(total));
  std::vector<std::size_t> rc(recv_sizes.begin(), recv_sizes.end());
  comm.alltoallv(send.get(), counts, recv.get(), rc);
  return recv;
}

// Encodes items into one send buffer grouped by dest[i] (negative: dropped), each group in item
// order, exchanges it, and decodes what arrives (source-rank order, each source in its order).
// `items` is released once encoded, so the shuffle holds at most input + send + receive + output.
template <typename T>
std::vector<T> exchange_items(comm::Communicator& comm, std::vector<T>&& items, const std::vector<int>& dest,
                              const char* op) {
  const int p = comm.size();
  std::vector<std::size_t> counts(static_cast<std::size_t>(p), 0);
  for (std::size_t i = 0; i < items.size(); ++i)
    if (dest[i] >= 0) counts[static_cast<std::size_t>(dest[i])] += Codec<T>::size(items[i]);
  std::vector<std::size_t> offset(static_cast<std::size_t>(p), 0);
  for (int r = 1; r < p; ++r)
    offset[static_cast<std::size_t>(r)] =
        offset[static_cast<std::size_t>(r - 1)] + counts[static_cast<std::size_t>(r - 1)];
  Bytes send(offset.back() + counts.back());
  std::string scratch;
  for (std::size_t i = 0; i < items.size(); ++i) {
    if (dest[i] < 0) continue;
    scratch.clear();
    Codec<T>::encode(items[i], scratch);
    auto& off = offset[static_cast<std::size_t>(dest[i])];
    std::memcpy(send.get() + off, scratch.data(), scratch.size());
    off += scratch.size();
  }
  std::vector<T>().swap(items);
  Bytes recv = exchange_bytes(comm, send, counts, op);
  send = Bytes();
  std::vector<T> out;
  const char* q = recv.get();
  const char* end = q + recv.size;
  while (q < end) out.push_back(Codec<T>::decode(q));
  return out;
}

// The rank that owns a 32-bit hash: rank r owns [r*2^32/p, (r+1)*2^32/p) as real numbers, i.e.
// the hashes h with r <= h*p/2^32 < r+1, so owner = floor(h*p / 2^32).
inline int hash_owner(std::uint32_t h, int p) {
  return static_cast<int>((static_cast<std::uint64_t>(h) * static_cast<std::uint64_t>(p)) >> 32);
}

// The hash of a key's Codec encoding (which `bytes` receives).
template <typename K>
std::uint32_t key_hash(const K& k, std::string& bytes) {
  bytes.clear();
  Codec<K>::encode(k, bytes);
  return murmur3_32(bytes.data(), bytes.size(), kShuffleSeed);
}

}  // namespace lockstep::data::wide
