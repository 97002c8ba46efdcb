// Synthetic Gaussian blobs. Row i is drawn from its own counter-based generator keyed by
// (seed, i), and class centres from generators keyed by (seed, class) on a separate counter range,
// so any rank can produce any row without the others: the data set is the same at every rank count.
#include <cmath>

#include "data/source_util.hpp"
#include "lockstep/core/rng.hpp"
#include "lockstep/data/sources.hpp"

namespace lockstep::data {

Partitioned<Example> make_synthetic(comm::Communicator& comm, const SyntheticOptions& options) {
  std::vector<Example> rows;
  detail::collectively(comm, [&] {
    LOCKSTEP_CHECK(options.samples >= 0, ConfigError, "make_synthetic: expected samples >= 0, got ", options.samples);
    LOCKSTEP_CHECK(options.features >= 1, ConfigError, "make_synthetic: expected features >= 1, got ", options.features);
    LOCKSTEP_CHECK(options.classes >= 1, ConfigError, "make_synthetic: expected classes >= 1, got ", options.classes);
    LOCKSTEP_CHECK(std::isfinite(options.noise) && options.noise >= 0.0f, ConfigError,
                   "make_synthetic: expected a finite noise >= 0, got ", options.noise);
    const auto d = static_cast<std::size_t>(options.features);
    // Centres use the second counter word b = 1; rows use b = 0, so the two never share counters
    // whatever the number of rows.
    std::vector<float> centres(static_cast<std::size_t>(options.classes) * d);
    for (std::int64_t c = 0; c < options.classes; ++c) {
      CounterRng rng(options.seed, RngStream::kSynthetic, static_cast<std::uint64_t>(c), 1);
      for (std::size_t j = 0; j < d; ++j) centres[static_cast<std::size_t>(c) * d + j] = static_cast<float>(3.0 * rng.normal());
    }
    const Range r = split_range(options.samples, comm.rank(), comm.size());
    rows.resize(static_cast<std::size_t>(r.size()));
    for (std::int64_t i = r.begin; i < r.end; ++i) {
      CounterRng rng(options.seed, RngStream::kSynthetic, static_cast<std::uint64_t>(i), 0);
      const auto c = static_cast<std::size_t>(rng.below(static_cast<std::uint64_t>(options.classes)));
      Example& e = rows[static_cast<std::size_t>(i - r.begin)];
      e.label = static_cast<float>(c);
      e.features.resize(d);
      for (std::size_t j = 0; j < d; ++j) {
        e.features[j] = centres[c * d + j] + options.noise * static_cast<float>(rng.normal());
      }
    }
  });
  return Partitioned<Example>::from_local(comm, std::move(rows));
}

}  // namespace lockstep::data
