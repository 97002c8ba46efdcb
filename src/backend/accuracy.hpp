// How the dense losses count correct rows, written once for both backends (host code: the CUDA
// backend brings outputs and targets back to the host for it).
#pragma once

#include <cstdint>

namespace lockstep::backend::accuracy {

// MSE: a row is correct when the arg-max of the output equals the arg-max of the target.
inline std::int64_t argmax_matches(const float* out, const float* target, std::int64_t rows, std::int64_t k) {
  std::int64_t correct = 0;
  for (std::int64_t i = 0; i < rows; ++i) {
    const float* o = out + i * k;
    const float* t = target + i * k;
    std::int64_t ao = 0, at = 0;
    for (std::int64_t j = 1; j < k; ++j) {
      if (o[j] > o[ao]) ao = j;
      if (t[j] > t[at]) at = j;
    }
    correct += ao == at;
  }
  return correct;
}

// BCE with logits: a row is correct when every output's sign agrees with its target (> 0.5).
inline std::int64_t all_signs_match(const float* logits, const float* target, std::int64_t rows, std::int64_t k) {
  std::int64_t correct = 0;
  for (std::int64_t i = 0; i < rows; ++i) {
    bool all = true;
    for (std::int64_t j = 0; j < k; ++j) all = all && ((logits[i * k + j] > 0.0f) == (target[i * k + j] > 0.5f));
    correct += all;
  }
  return correct;
}

}  // namespace lockstep::backend::accuracy
