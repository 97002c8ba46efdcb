// Helpers shared by the nn tests: deterministic test data, float32 tensors built from vectors, and
// a central finite-difference gradient check. The objective a check differentiates is evaluated
// in double from the float32 forward pass; the step is the one float32 actually took
// (float(x + eps) - float(x - eps)), so rounding of the perturbed input does not bias the slope.
// Tolerances are float32 ones and explicit: an element passes when
//   |analytic - numeric| <= rtol * max(|analytic|, |numeric|) + atol.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

#include "lockstep/core/rng.hpp"
#include "lockstep/core/tensor.hpp"

namespace lockstep::testing {

struct GradTolerance {
  double eps;   // finite-difference step
  double rtol;  // relative part
  double atol;  // absolute floor, for elements whose gradient is near zero
};

// float32 forward passes: eps = 1e-3 keeps the truncation error of the central difference near
// 1e-6 while the rounding noise of a float32 forward, divided by 2*eps, stays near 1e-4.
inline constexpr GradTolerance kF32Grad{1e-3, 1e-2, 1e-3};

// Uniform floats in [lo, hi), a pure function of (seed, stream index).
inline std::vector<float> uniform_floats(std::size_t n, float lo, float hi, std::uint64_t seed, std::uint64_t stream = 0) {
  CounterRng rng(seed, RngStream::kUser, stream);
  std::vector<float> v(n);
  for (auto& x : v) x = lo + (hi - lo) * rng.uniform();
  return v;
}

// Uniform floats with |x| in [min_abs, max_abs) and a random sign: inputs kept off activation kinks.
inline std::vector<float> away_from_zero(std::size_t n, float min_abs, float max_abs, std::uint64_t seed) {
  CounterRng rng(seed, RngStream::kUser, 7);
  std::vector<float> v(n);
  for (auto& x : v) {
    const float mag = min_abs + (max_abs - min_abs) * rng.uniform();
    x = rng.uniform() < 0.5f ? -mag : mag;
  }
  return v;
}

inline Tensor make_tensor(const Shape& shape, const std::vector<float>& values) {
  Tensor t(shape);
  EXPECT_EQ(static_cast<std::size_t>(t.numel()), values.size());
  float* p = t.data<float>();
  for (std::size_t i = 0; i < values.size(); ++i) p[i] = values[i];
  return t;
}

inline std::vector<float> to_vector(const Tensor& t) {
  const float* p = t.data<float>();
  return std::vector<float>(p, p + t.numel());
}

// d f / d x by central differences; x is restored afterwards.
inline double central_difference(float& x, double eps, const std::function<double()>& f) {
  const float orig = x;
  const float up = static_cast<float>(static_cast<double>(orig) + eps);
  const float down = static_cast<float>(static_cast<double>(orig) - eps);
  x = up;
  const double f_up = f();
  x = down;
  const double f_down = f();
  x = orig;
  return (f_up - f_down) / (static_cast<double>(up) - static_cast<double>(down));
}

// Checks analytic[i] against the central difference of f w.r.t. values[indices[i]] for each
// listed element (all of them when `indices` is empty). Reports the worst elements by name.
inline ::testing::AssertionResult check_gradient(const std::string& what, const float* analytic, float* values,
                                                 std::int64_t n, const std::function<double()>& f,
                                                 const GradTolerance& tol, std::vector<std::int64_t> indices = {}) {
  if (indices.empty()) {
    for (std::int64_t i = 0; i < n; ++i) indices.push_back(i);
  }
  std::ostringstream failures;
  int failed = 0;
  double worst = 0.0;
  for (const auto i : indices) {
    const double a = analytic[i];
    const double num = central_difference(values[i], tol.eps, f);
    const double err = std::fabs(a - num);
    const double allowed = tol.rtol * std::max(std::fabs(a), std::fabs(num)) + tol.atol;
    worst = std::max(worst, err / allowed);
    if (!(err <= allowed)) {
      if (failed < 8) failures << "\n  " << what << "[" << i << "]: analytic " << a << ", numeric " << num;
      ++failed;
    }
  }
  if (failed == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << what << ": " << failed << " of " << indices.size()
                                       << " elements differ from central differences (eps " << tol.eps << ", rtol "
                                       << tol.rtol << ", atol " << tol.atol << "; worst err/allowed " << worst << ")"
                                       << failures.str();
}

// sum_i r[i] * y[i] in double: a scalar objective whose gradient w.r.t. y is r.
inline double weighted_sum(const Tensor& y, const std::vector<float>& r) {
  const float* p = y.data<float>();
  double s = 0.0;
  for (std::size_t i = 0; i < r.size(); ++i) s += static_cast<double>(r[i]) * static_cast<double>(p[i]);
  return s;
}

}  // namespace lockstep::testing
