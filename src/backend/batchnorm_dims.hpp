// The [N, C, S] view of a batch-norm operand that both backends' kernels share (private to
// src/backend): S = 1 for flat features, the plane for images.
#pragma once

#include "lockstep/backend/ops.hpp"

namespace lockstep::backend::bn {

struct Dims {
  std::int64_t n, c, s;
};

inline Dims dims_of(const Tensor& x, std::int64_t channels, const Tensor& stat, const char* op) {
  const std::int64_t n = x.ndim() > 0 ? x.dim(0) : 0;
  LOCKSTEP_CHECK(channels > 0 && n > 0 && x.numel() % (n * channels) == 0 && stat.numel() == channels, Error,
                 "backend::", op, ": ", shape_str(x.shape()), " is not [rows, ", channels, ", ...] or the statistics ",
                 shape_str(stat.shape()), " are not [", channels, "]");
  return {n, channels, x.numel() / (n * channels)};
}

inline const float* maybe(const Tensor& t) { return t.defined() ? t.data<float>() : nullptr; }

}  // namespace lockstep::backend::bn
