// Partitioned<T>: an RDD-like distributed collection with one partition per rank.
//
// Narrow transformations (map, filter, flat_map, map_partitions) are lazy: each returns a new
// Partitioned whose generator wraps its parent's, so a chain of them runs as one fused pass over
// the partition when an action (count, reduce, aggregate, collect, take) or cache() pulls on it.
// Wide operations (repartition, zip_with_index, rebalance) move elements between ranks with the
// Communicator. Actions are collective: every rank calls them and every rank gets the result.
// The global order of a collection is rank order, then order within the partition.
#pragma once

#include <algorithm>
#include <cstring>
#include <cstdint>
#include <functional>
#include <memory>
#include <numeric>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "lockstep/comm/communicator.hpp"
#include "lockstep/data/detail/codec.hpp"

namespace lockstep::data {

// The contiguous block of [0, total) that rank `rank` of `size` owns.
struct Range {
  std::int64_t begin = 0;
  std::int64_t end = 0;
  std::int64_t size() const { return end - begin; }
};
inline Range split_range(std::int64_t total, int rank, int size) {
  return {total * rank / size, total * (rank + 1) / size};
}

template <typename T> class Partitioned {
 public:
  using value_type = T;
  using Emit = std::function<void(T&&)>;
  using Generator = std::function<void(const Emit&)>;

  Partitioned(comm::Communicator& comm, Generator gen) : comm_(&comm), gen_(std::move(gen)) {}

  // This rank's partition is `local`, as given.
  static Partitioned from_local(comm::Communicator& comm, std::vector<T> local) {
    auto data = std::make_shared<const std::vector<T>>(std::move(local));
    return Partitioned(comm, [data](const Emit& emit) {
      for (const T& x : *data) emit(T(x));
    }, data);
  }
  // The same global vector on every rank, split into contiguous blocks.
  static Partitioned parallelize(comm::Communicator& comm, const std::vector<T>& all) {
    const Range r = split_range(static_cast<std::int64_t>(all.size()), comm.rank(), comm.size());
    return from_local(comm, std::vector<T>(all.begin() + r.begin, all.begin() + r.end));
  }

  comm::Communicator& comm() const { return *comm_; }

  // ---- narrow, lazy ----
  template <typename F> auto map(F f) const {
    using U = std::decay_t<std::invoke_result_t<F, T&&>>;
    auto g = gen_;
    return Partitioned<U>(*comm_, [g, f](const typename Partitioned<U>::Emit& emit) {
      g([&](T&& x) { emit(f(std::move(x))); });
    });
  }
  template <typename F> Partitioned filter(F pred) const {
    auto g = gen_;
    return Partitioned(*comm_, [g, pred](const Emit& emit) {
      g([&](T&& x) {
        if (pred(static_cast<const T&>(x))) emit(std::move(x));
      });
    });
  }
  // f returns any iterable of U (a vector, an optional-like range, ...).
  template <typename F> auto flat_map(F f) const {
    using R = std::decay_t<std::invoke_result_t<F, T&&>>;
    using U = std::decay_t<decltype(*std::begin(std::declval<R&>()))>;
    auto g = gen_;
    return Partitioned<U>(*comm_, [g, f](const typename Partitioned<U>::Emit& emit) {
      g([&](T&& x) {
        for (auto&& y : f(std::move(x))) emit(U(std::move(y)));
      });
    });
  }
  // f sees the whole partition at once: std::vector<T> -> std::vector<U>.
  template <typename F> auto map_partitions(F f) const {
    using V = std::decay_t<std::invoke_result_t<F, std::vector<T>&&>>;
    using U = typename V::value_type;
    auto g = gen_;
    return Partitioned<U>(*comm_, [g, f](const typename Partitioned<U>::Emit& emit) {
      std::vector<T> all;
      g([&](T&& x) { all.push_back(std::move(x)); });
      for (auto& y : f(std::move(all))) emit(std::move(y));
    });
  }

  // Runs the pipeline once and keeps the result; later actions read the cached partition.
  Partitioned cache() const {
    if (cached_) return *this;
    return from_local(*comm_, local());
  }
  bool is_cached() const { return cached_ != nullptr; }

  // This rank's elements, computing the pipeline (or copying the cache).
  std::vector<T> local() const {
    if (cached_) return *cached_;
    std::vector<T> out;
    gen_([&](T&& x) { out.push_back(std::move(x)); });
    return out;
  }
  // Borrow the cached partition without copying; computes and caches nothing.
  const std::vector<T>* cached_local() const { return cached_.get(); }

  // Visits this rank's elements in order without materialising them.
  template <typename F> void for_each_local(F f) const {
    gen_([&](T&& x) { f(std::move(x)); });
  }

  // ---- actions (collective) ----
  std::int64_t count() const {
    std::int64_t n = 0;
    if (cached_) {
      n = static_cast<std::int64_t>(cached_->size());
    } else {
      gen_([&](T&&) { ++n; });
    }
    return comm_->allreduce<std::int64_t>(n, comm::ReduceOp::kSum);
  }
  std::int64_t local_count() const {
    if (cached_) return static_cast<std::int64_t>(cached_->size());
    std::int64_t n = 0;
    gen_([&](T&&) { ++n; });
    return n;
  }

  // Combines with an associative f: locally in partition order, then across ranks in rank order,
  // so the result is the same on every rank. Throws on an empty collection (as Spark does).
  template <typename F> T reduce(F f) const {
    std::optional<T> acc;
    gen_([&](T&& x) { acc = acc ? f(std::move(*acc), std::move(x)) : std::move(x); });
    auto partials = gather_optional(acc);
    std::optional<T> out;
    for (auto& p : partials) {
      if (p) out = out ? f(std::move(*out), std::move(*p)) : std::move(*p);
    }
    LOCKSTEP_CHECK(out.has_value(), Error, "Partitioned::reduce: the collection is empty");
    return std::move(*out);
  }

  // Spark's aggregate: seq folds elements into a per-rank accumulator, comb merges accumulators in
  // rank order. Both start from `zero`.
  template <typename A, typename Seq, typename Comb> A aggregate(A zero, Seq seq, Comb comb) const {
    A acc = zero;
    gen_([&](T&& x) { acc = seq(std::move(acc), std::move(x)); });
    std::string bytes;
    Codec<A>::encode(acc, bytes);
    auto all = comm_->allgather_strings(bytes);
    A out = zero;
    for (auto& s : all) {
      const char* p = s.data();
      out = comb(std::move(out), Codec<A>::decode(p));
    }
    return out;
  }

  // Every element, in global order, on every rank.
  std::vector<T> collect() const { return gather_all(local()); }

  // The first n elements in global order, on every rank.
  std::vector<T> take(std::int64_t n) const {
    std::vector<T> mine = local();
    const auto counts = comm_->allgather<std::int64_t>(static_cast<std::int64_t>(mine.size()));
    std::int64_t before = 0;
    for (int r = 0; r < comm_->rank(); ++r) before += counts[static_cast<std::size_t>(r)];
    const std::int64_t keep = std::clamp<std::int64_t>(n - before, 0, static_cast<std::int64_t>(mine.size()));
    mine.resize(static_cast<std::size_t>(keep));
    return gather_all(mine);
  }

  // ---- wide (collective) ----
  // Sends each element to the rank target(x) returns; a negative target drops the element (a
  // filter fused into the exchange, so dropped elements are never encoded). Elements arrive
  // grouped by source rank in rank order, each group in its source order, so the result is
  // deterministic.
  template <typename F> Partitioned repartition(F target) const {
    // Two passes over the partition (a cached one is read in place, without copies): the first
    // finds each element's destination and encoded size, the second encodes it straight into its
    // slot of the single send buffer that alltoallv needs.
    std::vector<T> owned;
    if (!cached_) owned = local();
    const std::vector<T>& mine = cached_ ? *cached_ : owned;
    const int p = comm_->size();
    std::vector<int> dest(mine.size());
    std::vector<std::size_t> send_counts(static_cast<std::size_t>(p), 0);
    for (std::size_t i = 0; i < mine.size(); ++i) {
      const int r = target(mine[i]);
      LOCKSTEP_CHECK(r < p, Error, "Partitioned::repartition: target rank ", r, " outside [0, ", p, ")");
      dest[i] = r;
      if (r >= 0) send_counts[static_cast<std::size_t>(r)] += Codec<T>::size(mine[i]);
    }
    std::vector<std::size_t> offset(static_cast<std::size_t>(p), 0);
    for (int r = 1; r < p; ++r)
      offset[static_cast<std::size_t>(r)] = offset[static_cast<std::size_t>(r - 1)] + send_counts[static_cast<std::size_t>(r - 1)];
    char* send = send_buffer().get(offset.back() + send_counts.back());
    std::string scratch;
    for (std::size_t i = 0; i < mine.size(); ++i) {
      if (dest[i] < 0) continue;
      scratch.clear();
      Codec<T>::encode(mine[i], scratch);
      auto& off = offset[static_cast<std::size_t>(dest[i])];
      std::memcpy(send + off, scratch.data(), scratch.size());
      off += scratch.size();
    }
    return from_local(*comm_, exchange(send, send_counts));
  }

  // Pairs every element with its global index (Spark's zipWithIndex).
  Partitioned<std::pair<std::int64_t, T>> zip_with_index() const {
    std::vector<T> mine = local();
    std::int64_t i = comm_->exscan(static_cast<std::int64_t>(mine.size()));
    std::vector<std::pair<std::int64_t, T>> out;
    out.reserve(mine.size());
    for (auto& x : mine) out.emplace_back(i++, std::move(x));
    return Partitioned<std::pair<std::int64_t, T>>::from_local(*comm_, std::move(out));
  }

  // Evens out partition sizes, keeping the global order (rank r gets the r-th contiguous block).
  Partitioned rebalance() const {
    std::vector<T> mine = local();
    const std::int64_t total = comm_->allreduce<std::int64_t>(static_cast<std::int64_t>(mine.size()),
                                                              comm::ReduceOp::kSum);
    std::int64_t i = comm_->exscan(static_cast<std::int64_t>(mine.size()));
    const int p = comm_->size();
    std::vector<std::size_t> counts(static_cast<std::size_t>(p), 0);
    std::string bytes;
    int r = 0;
    for (auto& x : mine) {
      while (i >= split_range(total, r, p).end) ++r;  // destinations ascend with the global index
      const std::size_t before = bytes.size();
      Codec<T>::encode(x, bytes);
      counts[static_cast<std::size_t>(r)] += bytes.size() - before;
      ++i;
    }
    return from_local(*comm_, exchange(bytes.data(), counts));
  }

 private:
  template <typename U> friend class Partitioned;
  Partitioned(comm::Communicator& comm, Generator gen, std::shared_ptr<const std::vector<T>> cached)
      : comm_(&comm), gen_(std::move(gen)), cached_(std::move(cached)) {}

  // send holds the bytes for rank 0, then rank 1, ...; send_counts[r] of them go to rank r.
  std::vector<T> exchange(const char* send, const std::vector<std::size_t>& send_counts) const {
    const int p = comm_->size();
    std::vector<std::uint64_t> sizes(send_counts.begin(), send_counts.end()), recv_sizes(static_cast<std::size_t>(p));
    comm_->alltoall(sizes.data(), sizeof(std::uint64_t), recv_sizes.data());
    std::vector<std::size_t> rc(recv_sizes.begin(), recv_sizes.end());
    const std::size_t total = std::accumulate(rc.begin(), rc.end(), std::size_t{0});
    char* recv = recv_buffer().get(total);
    comm_->alltoallv(send, send_counts, recv, rc);
    std::vector<T> result;
    const char* q = recv;
    while (q < recv + total) result.push_back(Codec<T>::decode(q));
    return result;
  }

  // Byte buffers reused across wide operations on this thread. An epoch's shuffle moves the whole
  // training set; fresh buffers each time would be fresh pages, and the kernel zeroing them cost
  // more than the exchange itself.
  struct Scratch {
    std::unique_ptr<char[]> data;
    std::size_t capacity = 0;
    char* get(std::size_t n) {
      if (n > capacity) {
        data.reset(new char[n]);
        capacity = n;
      }
      return data.get();
    }
  };
  static Scratch& send_buffer() {
    thread_local Scratch s;
    return s;
  }
  static Scratch& recv_buffer() {
    thread_local Scratch s;
    return s;
  }

  std::vector<T> gather_all(const std::vector<T>& mine) const {
    std::string bytes;
    encode_all(mine, bytes);
    std::vector<T> out;
    for (auto& s : comm_->allgather_strings(bytes)) decode_all(s, out);
    return out;
  }

  std::vector<std::optional<T>> gather_optional(const std::optional<T>& v) const {
    std::string bytes;
    if (v) Codec<T>::encode(*v, bytes);
    std::vector<std::optional<T>> out;
    for (auto& s : comm_->allgather_strings(bytes)) {
      if (s.empty()) {
        out.emplace_back();
      } else {
        const char* p = s.data();
        out.emplace_back(Codec<T>::decode(p));
      }
    }
    return out;
  }

  comm::Communicator* comm_;
  Generator gen_;
  std::shared_ptr<const std::vector<T>> cached_;
};

}  // namespace lockstep::data
