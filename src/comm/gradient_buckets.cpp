// Gradient bucket plan and the exact fixed-point gradient sum.
#include "lockstep/comm/gradient_buckets.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>

#include "lockstep/core/trace.hpp"

namespace lockstep::comm {

GradientBuckets::GradientBuckets(Communicator& comm, std::int64_t total,
                                 const std::vector<std::pair<std::int64_t, std::int64_t>>& param_ranges,
                                 std::size_t bucket_bytes, bool overlap, ReduceOp op, CommType type)
    : comm_(comm), overlap_(overlap), op_(op), type_(type) {
  // Parameter boundaries sorted by offset; a bucket closes once it holds bucket_bytes.
  std::vector<std::int64_t> cuts;
  for (const auto& r : param_ranges) cuts.push_back(r.second);
  std::sort(cuts.begin(), cuts.end());
  const auto cap = static_cast<std::int64_t>(std::max<std::size_t>(bucket_bytes / comm_type_size(type), 1));
  std::int64_t begin = 0;
  for (auto c : cuts) {
    if (c - begin >= cap) {
      buckets_.push_back({begin, c});
      begin = c;
    }
  }
  if (begin < total) buckets_.push_back({begin, total});
}

void GradientBuckets::begin_step(void* grads) {
  grads_ = static_cast<char*>(grads);
  next_ = 0;
  pending_.clear();
}

void GradientBuckets::start(std::size_t i) {
  const auto& b = buckets_[i];
  trace::set_pending_arg({"bucket", static_cast<std::int64_t>(i)});  // names the allreduce's trace event
  pending_.push_back(comm_.iallreduce(grads_ + b.begin * static_cast<std::int64_t>(comm_type_size(type_)),
                                      static_cast<std::size_t>(b.end - b.begin), type_, op_));
}

void GradientBuckets::mark_ready(std::int64_t ready_end) {
  if (!overlap_ || comm_.size() == 1) return;
  while (next_ < buckets_.size() && buckets_[next_].end <= ready_end) start(next_++);
}

double GradientBuckets::finish() {
  const auto t0 = std::chrono::steady_clock::now();
  if (comm_.size() > 1) {
    while (next_ < buckets_.size()) start(next_++);
    for (auto& r : pending_) r->wait();
  }
  pending_.clear();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

ExactGradientSum::ExactGradientSum(std::int64_t n)
    : n_(n), words_(2 * static_cast<std::size_t>(n) + 2) {}

void ExactGradientSum::reset() {
  std::fill(words_.begin(), words_.end(), 0);
  adds_ = 0;
}

void ExactGradientSum::add(const float* g) {
  // words_ = [hi_0 .. hi_{n-1}, lo_0 .. lo_{n-1}, bad, adds]
  // Locals and __restrict so the loop vectorises: through `this`, the int64 stores could alias n_.
  const std::int64_t n = n_;
  std::int64_t* __restrict hi = words_.data();
  std::int64_t* __restrict lo = hi + n;
  const float* __restrict gp = g;
  std::int64_t bad = 0;
  constexpr double kLimit = 4503599627370496.0;  // 2^52 = 2^20 * 2^32
  for (std::int64_t i = 0; i < n; ++i) {
    const double x = static_cast<double>(gp[i]) * 4294967296.0;  // exact: g * 2^32
    // NaN fails the comparison, so it is counted as bad too.
    const bool ok = std::fabs(x) < kLimit;
    const double xs = ok ? x : 0.0;
    const double h = std::floor(xs);
    hi[i] += static_cast<std::int64_t>(h);
    lo[i] += static_cast<std::int64_t>((xs - h) * 4294967296.0);  // in [0, 2^32), exact to 2^-64
    bad += !ok;
  }
  words_[2 * static_cast<std::size_t>(n)] += bad;
  ++adds_;
}

void ExactGradientSum::allreduce_into(Communicator& comm, float* out, double scale) {
  // Each add contributes |hi| < 2^52 and 0 <= lo < 2^32 per element, so the global sums fit in
  // int64 while the global number of adds stays below 2^11; int64 addition is exact and
  // associative (even through wrap-around, as long as the final sum fits), so a native MPI_SUM
  // gives the same words at any rank count. The add count and the bad-element count travel in
  // the same buffer: one collective, and every rank sees the same verdict.
  words_[2 * static_cast<std::size_t>(n_) + 1] = adds_;
  comm.allreduce(std::span<std::int64_t>(words_), ReduceOp::kSum);
  const std::int64_t bad = words_[2 * static_cast<std::size_t>(n_)];
  const std::int64_t adds = words_[2 * static_cast<std::size_t>(n_) + 1];
  if (bad != 0) {  // every rank holds the same reduced count, so every rank throws this
    throw_agreed<Error>(detail::concat(
        "deterministic gradient sum: ", bad,
        " gradient elements were NaN, infinite or beyond the fixed-point range (|g| < 2^20 per micro-batch); "
        "lower the learning rate or use training.deterministic: false"));
  }
  if (adds > kMaxAdds) {
    throw_agreed<Error>(detail::concat("deterministic gradient sum: ", adds, " micro-batches in one step, at most ",
                                       kMaxAdds, " fit the fixed-point words; raise training.micro_batch"));
  }
  const std::int64_t* hi = words_.data();
  const std::int64_t* lo = hi + n_;
  // value = (hi * 2^32 + lo) * 2^-64 * scale, each step a correctly rounded (so deterministic)
  // double operation.
  const double hi_unit = std::ldexp(scale, -32), lo_unit = std::ldexp(scale, -64);
  for (std::int64_t i = 0; i < n_; ++i) {
    out[i] = static_cast<float>(static_cast<double>(hi[i]) * hi_unit + static_cast<double>(lo[i]) * lo_unit);
  }
}

}  // namespace lockstep::comm
