// The rows the sources produce: a dense feature vector with a label, or a sparse (LIBSVM) row.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "lockstep/data/detail/codec.hpp"

namespace lockstep::data {

struct Example {
  std::vector<float> features;
  float label = 0.0f;
  bool operator==(const Example&) const = default;
};

struct SparseExample {
  std::vector<std::int32_t> indices;  // 0-based, strictly increasing
  std::vector<float> values;
  float label = 0.0f;
  bool operator==(const SparseExample&) const = default;
  Example to_dense(std::int64_t num_features) const;
};

template <> struct Codec<Example> {
  static std::size_t size(const Example& e) { return Codec<std::vector<float>>::size(e.features) + sizeof(float); }
  static void encode(const Example& e, std::string& out) {
    Codec<std::vector<float>>::encode(e.features, out);
    Codec<float>::encode(e.label, out);
  }
  static Example decode(const char*& p) {
    Example e;
    e.features = Codec<std::vector<float>>::decode(p);
    e.label = Codec<float>::decode(p);
    return e;
  }
};

template <> struct Codec<SparseExample> {
  static std::size_t size(const SparseExample& e) {
    return Codec<std::vector<std::int32_t>>::size(e.indices) + Codec<std::vector<float>>::size(e.values) + sizeof(float);
  }
  static void encode(const SparseExample& e, std::string& out) {
    Codec<std::vector<std::int32_t>>::encode(e.indices, out);
    Codec<std::vector<float>>::encode(e.values, out);
    Codec<float>::encode(e.label, out);
  }
  static SparseExample decode(const char*& p) {
    SparseExample e;
    e.indices = Codec<std::vector<std::int32_t>>::decode(p);
    e.values = Codec<std::vector<float>>::decode(p);
    e.label = Codec<float>::decode(p);
    return e;
  }
};

}  // namespace lockstep::data
