// Column statistics by allreduce.
#include "lockstep/ml/stats.hpp"

#include <cmath>
#include <limits>
#include <sstream>

namespace lockstep::ml {

void check_finite(const Frame& f) {
  std::int64_t bad_row = INT64_MAX, bad_col = -1;
  f.visit([&](const auto& x) {
    using X = std::decay_t<decltype(x)>;
    if constexpr (std::is_same_v<X, CsrMatrix>) {
      for (std::int64_t i = 0; i < x.outerSize() && bad_row == INT64_MAX; ++i)
        for (typename X::InnerIterator it(x, i); it; ++it)
          if (!std::isfinite(it.value())) {
            bad_row = f.row_offset() + i, bad_col = it.col();
            break;
          }
    } else {
      // One vectorisable sweep (NaN fails the comparison) before looking for the culprit.
      const float* p = x.data();
      const std::int64_t n = x.size();
      bool bad = false;
      for (std::int64_t i = 0; i < n; ++i) bad |= !(std::fabs(p[i]) <= std::numeric_limits<float>::max());
      if (!bad) return;
      for (std::int64_t i = 0; i < x.rows() && bad_row == INT64_MAX; ++i)
        for (std::int64_t j = 0; j < x.cols(); ++j)
          if (!std::isfinite(x(i, j))) {
            bad_row = f.row_offset() + i, bad_col = j;
            break;
          }
    }
  });
  std::ostringstream os;
  if (bad_row != INT64_MAX)
    os << "features: NaN or infinite value at row " << bad_row << ", column " << bad_col << " (\""
       << f.feature_names()[static_cast<std::size_t>(bad_col)] << "\"); drop or impute such rows first";
  agree_on_first_bad_row(f.comm(), bad_row, os.str());
}

Summary summarize(const Frame& f) {
  check_finite(f);
  auto& comm = f.comm();
  const std::int64_t d = f.num_features();
  const Vec& w = f.weight();
  // Pass 1: weight sums, weighted sums, extremes and non-zero counts.
  Vec sums = Vec::Zero(d + 2);  // [sum w x_j..., W, sum w^2]
  Vec lo = Vec::Constant(d, std::numeric_limits<double>::infinity());
  Vec hi = Vec::Constant(d, -std::numeric_limits<double>::infinity());
  Vec nnz = Vec::Zero(d);
  sums[d] = w.sum();
  sums[d + 1] = w.squaredNorm();
  f.visit([&](const auto& x) {
    using X = std::decay_t<decltype(x)>;
    if constexpr (std::is_same_v<X, CsrMatrix>) {
      for (std::int64_t i = 0; i < x.outerSize(); ++i)
        for (typename X::InnerIterator it(x, i); it; ++it) {
          const double v = it.value();
          sums[it.col()] += w[i] * v;
          lo[it.col()] = std::min(lo[it.col()], v);
          hi[it.col()] = std::max(hi[it.col()], v);
          nnz[it.col()] += v != 0.0;
        }
      // Columns with implicit zeros: zero takes part in min and max.
      Vec stored = Vec::Zero(d);
      for (std::int64_t i = 0; i < x.outerSize(); ++i)
        for (typename X::InnerIterator it(x, i); it; ++it) stored[it.col()] += 1.0;
      for (std::int64_t j = 0; j < d; ++j)
        if (stored[j] < static_cast<double>(x.rows())) lo[j] = std::min(lo[j], 0.0), hi[j] = std::max(hi[j], 0.0);
    } else {
      // Through restrict pointers so the column loop vectorises (the same operations per column).
      double* __restrict ps = sums.data();
      double* __restrict pl = lo.data();
      double* __restrict ph = hi.data();
      double* __restrict pn = nnz.data();
      for (std::int64_t i = 0; i < x.rows(); ++i) {
        const double wi = w[i];
        const float* __restrict xi = x.data() + i * d;
        for (std::int64_t j = 0; j < d; ++j) {
          const double v = xi[j];
          ps[j] += wi * v;
          pl[j] = v < pl[j] ? v : pl[j];
          ph[j] = ph[j] < v ? v : ph[j];
          pn[j] += v != 0.0 ? 1.0 : 0.0;
        }
      }
    }
  });
  comm.allreduce(std::span<double>(sums.data(), static_cast<std::size_t>(sums.size())), comm::ReduceOp::kSum);
  comm.allreduce(std::span<double>(lo.data(), static_cast<std::size_t>(d)), comm::ReduceOp::kMin);
  comm.allreduce(std::span<double>(hi.data(), static_cast<std::size_t>(d)), comm::ReduceOp::kMax);
  comm.allreduce(std::span<double>(nnz.data(), static_cast<std::size_t>(d)), comm::ReduceOp::kSum);
  Summary s;
  s.count = f.global_rows();
  s.weight_sum = sums[d];
  const double W = sums[d], W2 = sums[d + 1];
  s.mean = W > 0 ? Vec(sums.head(d) / W) : Vec(Vec::Zero(d));
  // Pass 2: centred squares.
  Vec m2 = Vec::Zero(d);
  f.visit([&](const auto& x) {
    using X = std::decay_t<decltype(x)>;
    if constexpr (std::is_same_v<X, CsrMatrix>) {
      // sum w (x - m)^2 = sum over stored (w((x-m)^2 - m^2)) + m^2 sum w
      for (std::int64_t i = 0; i < x.outerSize(); ++i)
        for (typename X::InnerIterator it(x, i); it; ++it) {
          const double m = s.mean[it.col()], v = it.value();
          m2[it.col()] += w[i] * ((v - m) * (v - m) - m * m);
        }
      m2 += s.mean.cwiseAbs2() * w.sum();
    } else {
      double* __restrict pm = m2.data();
      const double* __restrict mu = s.mean.data();
      for (std::int64_t i = 0; i < x.rows(); ++i) {
        const double wi = w[i];
        const float* __restrict xi = x.data() + i * d;
        for (std::int64_t j = 0; j < d; ++j) {
          const double c = xi[j] - mu[j];
          pm[j] += wi * c * c;
        }
      }
    }
  });
  comm.allreduce(std::span<double>(m2.data(), static_cast<std::size_t>(d)), comm::ReduceOp::kSum);
  const double denom = W - (W > 0 ? W2 / W : 0.0);
  s.variance = denom > 0 ? Vec(m2 / denom) : Vec(Vec::Zero(d));
  s.min = s.count > 0 ? lo : Vec(Vec::Zero(d));
  s.max = s.count > 0 ? hi : Vec(Vec::Zero(d));
  s.max_abs = s.min.cwiseAbs().cwiseMax(s.max.cwiseAbs());
  s.nnz = nnz;
  return s;
}

}  // namespace lockstep::ml
