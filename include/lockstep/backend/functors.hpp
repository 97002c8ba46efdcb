// Element-wise math, written once as host/device functors. The CPU backend applies them in plain
// loops; the CUDA backend launches the same functors in kernels, so the CPU tests exercise the
// math the GPU runs.
#pragma once

#include <cmath>
#include <cstdint>

#include "lockstep/core/hostdevice.hpp"
#include "lockstep/core/rng.hpp"

namespace lockstep::backend::fn {

struct ReluForward {
  LOCKSTEP_HD float operator()(float x) const { return x > 0.0f ? x : 0.0f; }
};
// Derivatives take (input x, output y, upstream dy).
struct ReluBackward {
  LOCKSTEP_HD float operator()(float x, float /*y*/, float dy) const { return x > 0.0f ? dy : 0.0f; }
};
struct SigmoidForward {
  LOCKSTEP_HD float operator()(float x) const { return 1.0f / (1.0f + expf(-x)); }
};
struct SigmoidBackward {
  LOCKSTEP_HD float operator()(float /*x*/, float y, float dy) const { return dy * y * (1.0f - y); }
};
struct TanhForward {
  LOCKSTEP_HD float operator()(float x) const { return tanhf(x); }
};
struct TanhBackward {
  LOCKSTEP_HD float operator()(float /*x*/, float y, float dy) const { return dy * (1.0f - y * y); }
};

// Inverted dropout: keep with probability 1 - p and scale by 1 / (1 - p). The mask of element j
// of a sample depends only on (seed, epoch, layer, global sample index, j), so it is the same on
// every rank count and on both backends.
struct DropoutMask {
  std::uint64_t seed;
  std::uint64_t epoch;
  std::uint32_t layer;
  float p;
  LOCKSTEP_HD float operator()(std::int64_t sample, std::int64_t j) const {
    const auto b = Philox4x32::generate(
        seed ^ (0x5DEECE66Dull * (epoch + 1)), (static_cast<std::uint64_t>(RngStream::kDropout) << 32) | layer,
        (static_cast<std::uint64_t>(sample) << 20) ^ static_cast<std::uint64_t>(j >> 2));
    const float u = Philox4x32::to_unit_float(b.v[j & 3]);
    return u >= p ? 1.0f / (1.0f - p) : 0.0f;
  }
};

// Optimizer updates, one element at a time (PyTorch's semantics, so results are comparable).
// grad_scale multiplies the incoming gradient first: the trainer reduces gradients as sums and
// lets the update divide by the number of ranks, which saves a pass over the buffer per step.
struct SgdUpdate {
  float lr, momentum, weight_decay;
  bool nesterov;
  float grad_scale = 1.0f;
  LOCKSTEP_HD void operator()(float& w, float g, float& v) const {
    g = g * grad_scale + weight_decay * w;
    if (momentum != 0.0f) {
      v = momentum * v + g;
      g = nesterov ? g + momentum * v : v;
    }
    w -= lr * g;
  }
};
struct AdamUpdate {
  float lr, beta1, beta2, eps, weight_decay;
  bool decoupled;      // AdamW
  float bias1, bias2;  // 1 - beta^t
  // 1 - beta, computed in double by the caller as PyTorch does: in float, 1 - 0.999f is off by
  // 1.3e-5 relative, enough to drift from PyTorch's trajectory.
  float one_minus_beta1, one_minus_beta2;
  float grad_scale = 1.0f;
  // The update for step `step` (1-based): scalars formed in double and rounded to float once, as
  // PyTorch's Python-side arithmetic does. Host only; both backends build it this way.
  static AdamUpdate make(double lr, double b1, double b2, double eps, double wd, bool decoupled, std::int64_t step,
                         double grad_scale) {
    const auto f = [](double x) { return static_cast<float>(x); };
    const double bias1 = 1.0 - std::pow(b1, static_cast<double>(step));
    const double bias2 = 1.0 - std::pow(b2, static_cast<double>(step));
    return AdamUpdate{f(lr),    f(b1),    f(b2),       f(eps),      f(wd),        decoupled,
                      f(bias1), f(bias2), f(1.0 - b1), f(1.0 - b2), f(grad_scale)};
  }
  LOCKSTEP_HD void operator()(float& w, float g, float& m, float& v) const {
    g *= grad_scale;
    if (decoupled) {
      w -= lr * weight_decay * w;
    } else {
      g += weight_decay * w;
    }
    m = beta1 * m + one_minus_beta1 * g;
    v = beta2 * v + one_minus_beta2 * g * g;
    const float mhat = m / bias1;
    const float vhat = v / bias2;
    w -= lr * mhat / (sqrtf(vhat) + eps);
  }
};

// Binary cross-entropy with logits, numerically stable: max(x,0) - x*t + log(1 + exp(-|x|)).
struct BceWithLogits {
  LOCKSTEP_HD float loss(float x, float t) const { return fmaxf(x, 0.0f) - x * t + log1pf(expf(-fabsf(x))); }
  LOCKSTEP_HD float grad(float x, float t) const { return 1.0f / (1.0f + expf(-x)) - t; }
};

// Regression losses per element, in double: loss(o, t) and its derivative in o. The dense-loss
// loops divide both by the number of outputs (a mean over columns, as PyTorch's losses per
// sample) and scale the gradient.
struct AbsoluteError {
  LOCKSTEP_HD double loss(float o, float t) const { return fabs(static_cast<double>(o) - t); }
  LOCKSTEP_HD double grad(float o, float t) const {
    const double e = static_cast<double>(o) - t;
    return e > 0.0 ? 1.0 : (e < 0.0 ? -1.0 : 0.0);
  }
};
// Huber with delta = 1 (PyTorch's HuberLoss and Keras' Huber defaults): quadratic within delta
// of the target, linear beyond it.
struct Huber {
  static constexpr double kDelta = 1.0;
  LOCKSTEP_HD double loss(float o, float t) const {
    const double a = fabs(static_cast<double>(o) - t);
    return a <= kDelta ? 0.5 * a * a : kDelta * (a - 0.5 * kDelta);
  }
  LOCKSTEP_HD double grad(float o, float t) const {
    const double e = static_cast<double>(o) - t;
    return e > kDelta ? kDelta : (e < -kDelta ? -kDelta : e);
  }
};

}  // namespace lockstep::backend::fn
