// The feature transformers as pipeline stages (feature.hpp): StandardScaler, MinMaxScaler,
// MaxAbsScaler, Normalizer, OneHotEncoder, StringIndexer, PCA and FeatureSelector — each one's
// parameters by Spark name, its saved form (format version 1, the layout of lockstep-pipeline-1)
// and its registry row.
#include <limits>

#include "lockstep/ml/feature.hpp"
#include "ml/stage_rows.hpp"

namespace lockstep::ml {

// ---- saved forms (outside the anonymous namespace: ModelStage finds save_model and
// model_summary by argument-dependent lookup, which does not look into unnamed namespaces) ----

void save_model(H5File& h, const std::string& g, const StandardScalerModel& m) {
  put(h, g + "/mean", m.mean);
  put(h, g + "/std", m.std);
  h.set_attr(g, "withMean", static_cast<std::int64_t>(m.with_mean));
  h.set_attr(g, "withStd", static_cast<std::int64_t>(m.with_std));
}
StandardScalerModel load_standard_scaler(const H5File& h, const std::string& g) {
  StandardScalerModel m{get_vec(h, g + "/mean"), get_vec(h, g + "/std"), int_attr_in(h, g, "withMean", 0, 1) != 0,
                        int_attr_in(h, g, "withStd", 0, 1) != 0};
  expect_model(m.mean.size() >= 1, h, g, "mean", "expected at least one feature, found none");
  expect_size(h, g, "std", m.std.size(), m.mean.size(), "one per feature of mean");
  return m;
}

void save_model(H5File& h, const std::string& g, const MinMaxScalerModel& m) {
  put(h, g + "/originalMin", m.original_min);
  put(h, g + "/originalMax", m.original_max);
  h.set_attr(g, "min", m.min);
  h.set_attr(g, "max", m.max);
}
MinMaxScalerModel load_min_max_scaler(const H5File& h, const std::string& g) {
  MinMaxScalerModel m{get_vec(h, g + "/originalMin"), get_vec(h, g + "/originalMax"), h.attr_double(g, "min"),
                      h.attr_double(g, "max")};
  expect_model(m.original_min.size() >= 1, h, g, "originalMin", "expected at least one feature, found none");
  expect_size(h, g, "originalMax", m.original_max.size(), m.original_min.size(), "one per feature of originalMin");
  expect_model(m.min < m.max, h, g, "", "attributes min and max: expected min < max");
  return m;
}

void save_model(H5File& h, const std::string& g, const MaxAbsScalerModel& m) {
  put(h, g + "/maxAbs", m.max_abs);
}
MaxAbsScalerModel load_max_abs_scaler(const H5File& h, const std::string& g) {
  MaxAbsScalerModel m{get_vec(h, g + "/maxAbs")};
  expect_model(m.max_abs.size() >= 1, h, g, "maxAbs", "expected at least one feature, found none");
  return m;
}

void save_model(H5File& h, const std::string& g, const Normalizer& m) {
  h.set_attr(g, "p", m.p);
}
Normalizer load_normalizer(const H5File& h, const std::string& g) {
  const Normalizer n{h.attr_double(g, "p")};
  expect_model(n.p >= 1.0, h, g, "", "attribute p: expected a number >= 1");
  return n;
}

void save_model(H5File& h, const std::string& g, const OneHotEncoderModel& m) {
  h.set_attr(g, "inputCols", join_lines(m.input_cols));
  h.set_attr(g, "dropLast", static_cast<std::int64_t>(m.drop_last));
  h.write<std::int64_t>(g + "/categories", m.categories.data(), {static_cast<std::int64_t>(m.categories.size())});
}
// At most 2^24 categories per column: each becomes a dense indicator column.
constexpr std::int64_t kMaxCategories = std::int64_t{1} << 24;

OneHotEncoderModel load_one_hot_encoder(const H5File& h, const std::string& g) {
  OneHotEncoderModel m{split_lines(h.attr_string(g, "inputCols")), h.read<std::int64_t>(g + "/categories"),
                       int_attr_in(h, g, "dropLast", 0, 1) != 0};
  expect_model(!m.input_cols.empty(), h, g, "", "attribute inputCols: expected at least one column, found none");
  expect_size(h, g, "categories", static_cast<std::int64_t>(m.categories.size()),
              static_cast<std::int64_t>(m.input_cols.size()), "one per column of inputCols");
  for (std::size_t c = 0; c < m.categories.size(); ++c)
    expect_model(m.categories[c] >= 1 && m.categories[c] <= kMaxCategories, h, g, "categories",
                 "value " + std::to_string(c) + " is " + std::to_string(m.categories[c]) + ", expected in [1, " +
                     std::to_string(kMaxCategories) + "]");
  return m;
}

void save_model(H5File& h, const std::string& g, const StringIndexerModel& m) {
  h.set_attr(g, "inputCols", join_lines(m.input_cols));
  h.set_attr(g, "outputCols", join_lines(m.output_cols));
  h.set_attr(g, "handleInvalid", m.handle_invalid);
  for (std::size_t c = 0; c < m.labels.size(); ++c) {
    h.set_attr(g, "labels" + std::to_string(c), join_lines(m.labels[c]));
    h.set_attr(g, "numLabels" + std::to_string(c), static_cast<std::int64_t>(m.labels[c].size()));
  }
}
StringIndexerModel load_string_indexer(const H5File& h, const std::string& g) {
  StringIndexerModel m{split_lines(h.attr_string(g, "inputCols")),
                       split_lines(h.attr_string(g, "outputCols")),
                       {},
                       h.attr_string(g, "handleInvalid")};
  expect_model(!m.input_cols.empty(), h, g, "", "attribute inputCols: expected at least one column, found none");
  expect_model(m.output_cols.size() == m.input_cols.size(), h, g, "",
               "attribute outputCols: expected one per column of inputCols (" + std::to_string(m.input_cols.size()) +
                   "), found " + std::to_string(m.output_cols.size()));
  expect_model(m.handle_invalid == "error" || m.handle_invalid == "skip" || m.handle_invalid == "keep", h, g, "",
               "attribute handleInvalid: expected error, skip or keep, found \"" + m.handle_invalid + "\"");
  for (std::size_t c = 0; c < m.input_cols.size(); ++c) {
    auto labels = split_lines(h.attr_string(g, "labels" + std::to_string(c)));
    // The newline join loses a trailing empty label; the count brings it back (and only that one).
    const auto n = static_cast<std::int64_t>(labels.size());
    labels.resize(static_cast<std::size_t>(int_attr_in(h, g, "numLabels" + std::to_string(c), n, n + 1)));
    m.labels.push_back(std::move(labels));
  }
  return m;
}

void save_model(H5File& h, const std::string& g, const PcaModel& m) {
  put(h, g + "/components", m.components);
  put(h, g + "/explainedVariance", m.explained_variance);
  put(h, g + "/explainedVarianceRatio", m.explained_variance_ratio);
  put(h, g + "/mean", m.mean);
}
PcaModel load_pca(const H5File& h, const std::string& g) {
  PcaModel m{get_mat(h, g + "/components"), get_vec(h, g + "/explainedVariance"),
             get_vec(h, g + "/explainedVarianceRatio"), get_vec(h, g + "/mean")};
  expect_model(m.components.rows() >= 1 && m.components.cols() >= 1, h, g, "components",
               "expected at least one component of at least one feature, found shape [" +
                   std::to_string(m.components.rows()) + ", " + std::to_string(m.components.cols()) + "]");
  expect_size(h, g, "explainedVariance", m.explained_variance.size(), m.components.rows(), "one per component");
  expect_size(h, g, "explainedVarianceRatio", m.explained_variance_ratio.size(), m.components.rows(),
              "one per component");
  expect_size(h, g, "mean", m.mean.size(), m.components.cols(), "one per feature: columns of components");
  return m;
}
std::map<std::string, double> model_summary(const PcaModel& m) {
  return {{"explainedVarianceRatio", m.explained_variance_ratio.sum()}};
}

void save_model(H5File& h, const std::string& g, const ImportanceSelectorModel& m) {
  h.write<std::int64_t>(g + "/columns", m.columns.data(), {static_cast<std::int64_t>(m.columns.size())});
}
// Column indices: at least one, increasing (column order), each in [0, 2^31).
ImportanceSelectorModel load_importance_selector(const H5File& h, const std::string& g) {
  ImportanceSelectorModel m{h.read<std::int64_t>(g + "/columns")};
  expect_model(!m.columns.empty(), h, g, "columns", "expected at least one column, found none");
  for (std::size_t i = 0; i < m.columns.size(); ++i) {
    const std::int64_t lo = i == 0 ? 0 : m.columns[i - 1] + 1;
    expect_model(m.columns[i] >= lo && m.columns[i] <= std::numeric_limits<std::int32_t>::max(), h, g, "columns",
                 "value " + std::to_string(i) + " is " + std::to_string(m.columns[i]) +
                     ", expected increasing column indices >= 0");
  }
  return m;
}

namespace {

constexpr auto kTransformer = StageTask::kTransformer;

// ---- parameters ----

void read_string_indexer(ParamReader& p, StringIndexerParams& q) {
  std::string in, out;  // Spark's single-column spellings, appended to the lists
  p.get("inputCol", in);
  p.get("outputCol", out);
  p.get_list("inputCols", q.input_cols);
  p.get_list("outputCols", q.output_cols);
  p.get("stringOrderType", q.string_order_type);
  p.get("handleInvalid", q.handle_invalid);
  if (!in.empty()) q.input_cols.push_back(in);
  if (!out.empty()) q.output_cols.push_back(out);
}

struct NoParams {};

// FeatureSelector fits the tree estimator given under `estimator` on the same rows and keeps the
// numFeatures columns with the largest importances.
std::shared_ptr<const Stage> fit_feature_selector(const StageFitArgs& a) {
  const io::StageConfig& st = a.config;
  std::int64_t k = 0;
  ParamReader p(st.params, st.type);
  p.get("numFeatures", k, at_least(std::int64_t{1}));
  p.finish();
  if (st.inner.size() != 1)
    throw ConfigError(st.where + ": expected one estimator (estimator: {RandomForestClassifier: {...}})");
  LOCKSTEP_CHECK(k >= 1, ConfigError, st.where, ".numFeatures: expected an integer >= 1, got none");
  const auto est = fit_stage(st.inner[0], a.train, nullptr, a.context);
  const Vec imp = est->importances();
  if (imp.size() == 0)
    throw ConfigError(st.inner[0].where + ": FeatureSelector needs a tree estimator (feature importances)");
  return std::make_shared<ModelStage<ImportanceSelectorModel>>(
      st.type, kTransformer, with_where(st, [&] { return select_by_importance(imp, k); }));
}

StageKind feature_selector_row() {
  StageKind k;
  k.name = "FeatureSelector";
  k.task = kTransformer;
  k.fit = fit_feature_selector;
  k.load = [](const H5File& h, const std::string& g) -> std::shared_ptr<const Stage> {
    return std::make_shared<ModelStage<ImportanceSelectorModel>>("FeatureSelector", kTransformer,
                                                                 load_importance_selector(h, g));
  };
  return k;
}

// ---- rows ----

const StageRegistrar kStandardScaler{model_row<StandardScalerModel, StandardScalerParams>(
    "StandardScaler", kTransformer, 1,
    [](ParamReader& p, StandardScalerParams& q) {
      p.get("withMean", q.with_mean);
      p.get("withStd", q.with_std);
    },
    fit_standard_scaler, load_standard_scaler)};

const StageRegistrar kMinMaxScaler{model_row<MinMaxScalerModel, MinMaxScalerParams>(
    "MinMaxScaler", kTransformer, 1,
    [](ParamReader& p, MinMaxScalerParams& q) {
      p.get("min", q.min);
      p.get("max", q.max);
    },
    fit_min_max_scaler, load_min_max_scaler)};

const StageRegistrar kMaxAbsScaler{model_row<MaxAbsScalerModel, NoParams>(
    "MaxAbsScaler", kTransformer, 1, [](ParamReader&, NoParams&) {},
    [](const Frame& f, const NoParams&) { return fit_max_abs_scaler(f); }, load_max_abs_scaler)};

const StageRegistrar kNormalizer{model_row<Normalizer, Normalizer>(
    "Normalizer", kTransformer, 1, [](ParamReader& p, Normalizer& n) { p.get("p", n.p, at_least(1.0)); },
    [](const Frame&, const Normalizer& n) { return n; }, load_normalizer)};

const StageRegistrar kOneHotEncoder{model_row<OneHotEncoderModel, OneHotEncoderParams>(
    "OneHotEncoder", kTransformer, 1,
    [](ParamReader& p, OneHotEncoderParams& q) {
      p.get_list("inputCols", q.input_cols);
      p.get("dropLast", q.drop_last);
    },
    fit_one_hot_encoder, load_one_hot_encoder)};

const StageRegistrar kStringIndexer{model_row<StringIndexerModel, StringIndexerParams>(
    "StringIndexer", kTransformer, 1, read_string_indexer, fit_string_indexer, load_string_indexer)};

const StageRegistrar kPca{model_row<PcaModel, PcaParams>(
    "PCA", kTransformer, 1, [](ParamReader& p, PcaParams& q) { p.get("k", q.k); }, fit_pca, load_pca)};

const StageRegistrar kFeatureSelector{feature_selector_row()};

}  // namespace
}  // namespace lockstep::ml
