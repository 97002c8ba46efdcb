// SparseExample::to_dense: a LIBSVM row spread out into a dense feature vector; to_examples: a
// table's rows as one Example each, for the callers that want a Partitioned of rows.
#include "lockstep/data/example.hpp"

#include "lockstep/data/sources.hpp"

#include "lockstep/core/error.hpp"

namespace lockstep::data {

Example SparseExample::to_dense(std::int64_t num_features) const {
  LOCKSTEP_CHECK(num_features >= 0, DataError, "SparseExample::to_dense: expected num_features >= 0, got ",
                 num_features);
  LOCKSTEP_CHECK(indices.size() == values.size(), DataError,
                 "SparseExample::to_dense: expected as many values as indices (", indices.size(), "), got ",
                 values.size());
  Example e;
  e.features.assign(static_cast<std::size_t>(num_features), 0.0f);
  e.label = label;
  for (std::size_t k = 0; k < indices.size(); ++k) {
    const std::int64_t i = indices[k];
    LOCKSTEP_CHECK(i >= 0 && i < num_features, DataError, "SparseExample::to_dense: expected feature indices in [0, ",
                   num_features, "), got ", i);
    e.features[static_cast<std::size_t>(i)] = values[k];
  }
  return e;
}

Partitioned<Example> to_examples(comm::Communicator& comm, const Table& t) {
  Table dense = t;
  densify(comm, dense, "to_examples");
  const std::int64_t f = dense.num_features();
  std::vector<Example> rows(static_cast<std::size_t>(dense.rows));
  for (std::int64_t i = 0; i < dense.rows; ++i) {
    auto& e = rows[static_cast<std::size_t>(i)];
    e.features.assign(dense.row(i), dense.row(i) + f);
    e.label = dense.label(i);
  }
  return Partitioned<Example>::from_local(comm, std::move(rows));
}

}  // namespace lockstep::data
