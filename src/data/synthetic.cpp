// Synthetic Gaussian blobs. Row i is drawn from its own counter-based generator keyed by
// (seed, i), and class centres from generators keyed by (seed, class) on a separate counter range,
// so any rank can produce any row without the others: the data set is the same at every rank count.
#include <cmath>

#include "data/source_util.hpp"
#include "lockstep/core/rng.hpp"
#include "lockstep/data/source.hpp"
#include "lockstep/data/sources.hpp"

namespace lockstep::data {

Table make_synthetic_table(comm::Communicator& comm, const SyntheticOptions& options) {
  Table t;
  detail::collectively(comm, [&] {
    LOCKSTEP_CHECK(options.samples >= 0, ConfigError, "make_synthetic: expected samples >= 0, got ", options.samples);
    LOCKSTEP_CHECK(options.features >= 1, ConfigError, "make_synthetic: expected features >= 1, got ",
                   options.features);
    LOCKSTEP_CHECK(options.classes >= 1, ConfigError, "make_synthetic: expected classes >= 1, got ", options.classes);
    LOCKSTEP_CHECK(std::isfinite(options.noise) && options.noise >= 0.0f, ConfigError,
                   "make_synthetic: expected a finite noise >= 0, got ", options.noise);
    const auto d = static_cast<std::size_t>(options.features);
    // Centres use the second counter word b = 1; rows use b = 0, so the two never share counters
    // whatever the number of rows.
    std::vector<float> centres(static_cast<std::size_t>(options.classes) * d);
    for (std::int64_t c = 0; c < options.classes; ++c) {
      CounterRng rng(options.seed, RngStream::kSynthetic, static_cast<std::uint64_t>(c), 1);
      for (std::size_t j = 0; j < d; ++j)
        centres[static_cast<std::size_t>(c) * d + j] = static_cast<float>(3.0 * rng.normal());
    }
    const Range r = split_range(options.samples, comm.rank(), comm.size());
    t.rows = r.size();
    t.sample_shape = {options.features};
    t.features.resize(static_cast<std::size_t>(r.size()) * d);
    t.labels.resize(static_cast<std::size_t>(r.size()));
    // Note: first_row is not applied here (as before this table form), so a test split repeats
    // the first training rows; fixing it changes every synthetic run's test figures.
    for (std::int64_t i = r.begin; i < r.end; ++i) {
      CounterRng rng(options.seed, RngStream::kSynthetic, static_cast<std::uint64_t>(i), 0);
      const auto c = static_cast<std::size_t>(rng.below(static_cast<std::uint64_t>(options.classes)));
      const auto k = static_cast<std::size_t>(i - r.begin);
      t.labels[k] = static_cast<float>(c);
      float* x = t.features.data() + k * d;
      for (std::size_t j = 0; j < d; ++j) x[j] = centres[c * d + j] + options.noise * static_cast<float>(rng.normal());
    }
  });
  return t;
}

Partitioned<Example> make_synthetic(comm::Communicator& comm, const SyntheticOptions& options) {
  return to_examples(comm, make_synthetic_table(comm, options));
}

SyntheticOptions synthetic_options(ParamReader& p, SplitKind split) {
  // The config's defaults (a small 4-class set), not SyntheticOptions' own.
  std::int64_t samples = 2048, test_samples = 512, features = 16, classes = 4;
  std::uint64_t seed = 1;
  double noise = 1.0;
  p.get("synthetic.samples", samples, at_least(std::int64_t{1}));
  p.get("synthetic.test_samples", test_samples, at_least(std::int64_t{1}));
  p.get("synthetic.features", features, at_least(std::int64_t{1}));
  p.get("synthetic.classes", classes, at_least(std::int64_t{2}));
  p.get("synthetic.seed", seed);
  p.get("synthetic.noise", noise, at_least(0.0));
  SyntheticOptions o;
  o.samples = split == SplitKind::kTest ? test_samples : samples;
  o.features = features;
  o.classes = classes;
  o.seed = seed;
  o.noise = static_cast<float>(noise);
  // The test split is the rows that follow the training rows in the same stream: same class
  // centres, different samples.
  if (split == SplitKind::kTest) o.first_row = samples;
  return o;
}

namespace {

Table read_synthetic_source(comm::Communicator& comm, const SourceRequest& req, ParamReader& p) {
  const SyntheticOptions o = synthetic_options(p, req.split);
  p.finish();
  return make_synthetic_table(comm, o);
}

const SourceRegistrar kSynthetic{Source{"synthetic", {"synthetic.*"}, false, false, read_synthetic_source}};

}  // namespace

}  // namespace lockstep::data
