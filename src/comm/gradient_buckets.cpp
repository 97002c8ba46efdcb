// Gradient bucket plan and the exact fixed-point gradient sum.
#include "lockstep/comm/gradient_buckets.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>

namespace lockstep::comm {

GradientBuckets::GradientBuckets(Communicator& comm, std::int64_t total,
                                 const std::vector<std::pair<std::int64_t, std::int64_t>>& param_ranges,
                                 std::size_t bucket_bytes, bool overlap, ReduceOp op)
    : comm_(comm), overlap_(overlap), op_(op) {
  // Parameter boundaries sorted by offset; a bucket closes once it holds bucket_bytes.
  std::vector<std::int64_t> cuts;
  for (const auto& r : param_ranges) cuts.push_back(r.second);
  std::sort(cuts.begin(), cuts.end());
  const auto cap = static_cast<std::int64_t>(std::max<std::size_t>(bucket_bytes / sizeof(float), 1));
  std::int64_t begin = 0;
  for (auto c : cuts) {
    if (c - begin >= cap) {
      buckets_.push_back({begin, c});
      begin = c;
    }
  }
  if (begin < total) buckets_.push_back({begin, total});
}

void GradientBuckets::begin_step(float* grads) {
  grads_ = grads;
  next_ = 0;
  pending_.clear();
}

void GradientBuckets::start(std::size_t i) {
  const auto& b = buckets_[i];
  pending_.push_back(comm_.iallreduce(grads_ + b.begin, static_cast<std::size_t>(b.end - b.begin), CommType::kF32, op_));
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
    : n_(n),
      hi_(static_cast<std::size_t>(n)),
      lo_(static_cast<std::size_t>(n)),
      wide_(static_cast<std::size_t>(n) + 1) {}

void ExactGradientSum::reset() {
  std::fill(hi_.begin(), hi_.end(), 0);
  std::fill(lo_.begin(), lo_.end(), 0);
  std::fill(wide_.begin(), wide_.end(), 0);
  bad_ = 0;
  pending_adds_ = 0;
}

// With |g| < 2^20 each add puts less than 2^52 into a high word and less than 2^32 into a low
// word, so kFoldEvery adds cannot overflow either int64; then they are folded into the int128 sums.
void ExactGradientSum::fold() {
  for (std::size_t i = 0; i < static_cast<std::size_t>(n_); ++i) {
    wide_[i] += static_cast<int128>(hi_[i]) * (static_cast<int128>(1) << 32) + lo_[i];
    hi_[i] = 0;
    lo_[i] = 0;
  }
  pending_adds_ = 0;
}

void ExactGradientSum::add(const float* g) {
  if (pending_adds_ == kFoldEvery) fold();
  std::int64_t* hi = hi_.data();
  std::int64_t* lo = lo_.data();
  std::int64_t bad = 0;
  constexpr double kLimit = 4503599627370496.0;  // 2^52 = 2^20 * 2^32
  for (std::int64_t i = 0; i < n_; ++i) {
    const double x = static_cast<double>(g[i]) * 4294967296.0;  // exact: g * 2^32
    // NaN fails the comparison, so it is counted as bad too.
    const bool ok = std::fabs(x) < kLimit;
    const double xs = ok ? x : 0.0;
    const double h = std::floor(xs);
    hi[i] += static_cast<std::int64_t>(h);
    lo[i] += static_cast<std::int64_t>((xs - h) * 4294967296.0);  // in [0, 2^32), exact to 2^-64
    bad += !ok;
  }
  bad_ += bad;
  ++pending_adds_;
}

void ExactGradientSum::allreduce_into(Communicator& comm, float* out, double scale) {
  fold();
  wide_[static_cast<std::size_t>(n_)] = bad_;  // travels with the data: one collective, no hang
  comm.allreduce(wide_.data(), wide_.size(), CommType::kI128, ReduceOp::kSum);
  const auto bad = static_cast<std::int64_t>(wide_[static_cast<std::size_t>(n_)]);
  if (bad != 0) {  // every rank holds the same reduced count, so every rank throws this
    throw_agreed<Error>(detail::concat(
        "deterministic gradient sum: ", bad,
        " gradient elements were NaN, infinite or beyond the fixed-point range (|g| < 2^20 per micro-batch); "
        "lower the learning rate or use training.deterministic: false"));
  }
  const double unit = std::ldexp(scale, -64);
  for (std::int64_t i = 0; i < n_; ++i) {
    out[i] = static_cast<float>(static_cast<double>(wide_[static_cast<std::size_t>(i)]) * unit);
  }
}

}  // namespace lockstep::comm
