// Column statistics of a Frame, computed by collectives: each rank sums its shard, an allreduce
// combines the sums. Spark's Summarizer, with its conventions: weighted means, the unbiased
// weighted variance sum(w (x - mean)^2) / (W - sum(w^2) / W), where W = sum(w).
#pragma once

#include "lockstep/ml/frame.hpp"

namespace lockstep::ml {

struct Summary {
  std::int64_t count = 0;  // rows
  double weight_sum = 0.0;
  Vec mean, variance, min, max, max_abs, nnz;  // nnz: rows with a non-zero value, weighted by nothing
  Vec std() const { return variance.cwiseMax(0.0).cwiseSqrt(); }
};

// Two passes (mean, then centred squares), so variances do not cancel catastrophically. A NaN or
// infinite feature is a DataError on every rank naming its global row and column.
Summary summarize(const Frame& f);

// Throws the agreed DataError if any feature is NaN or infinite (the check summarize() runs).
void check_finite(const Frame& f);

}  // namespace lockstep::ml
