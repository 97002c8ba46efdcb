// Feature transformers: statistics by collectives, transforms row by row on each rank.
#include "lockstep/ml/feature.hpp"

#include <Eigen/Eigenvalues>
#include <algorithm>
#include <cmath>
#include <numeric>
#include <unordered_map>

#include "lockstep/data/partitioned.hpp"
#include "lockstep/data/wide.hpp"
#include "lockstep/ml/stats.hpp"

namespace lockstep::ml {

StandardScalerModel fit_standard_scaler(const Frame& f, const StandardScalerParams& p) {
  const Summary s = summarize(f);
  return {s.mean, s.std(), p.with_mean, p.with_std};
}

Frame StandardScalerModel::transform(const Frame& f) const {
  LOCKSTEP_CHECK(f.num_features() == mean.size(), DataError, "StandardScaler: fitted on ", mean.size(),
                 " features, the data has ", f.num_features());
  RowMatrix x = f.to_dense();
  for (std::int64_t j = 0; j < x.cols(); ++j) {
    const double shift = with_mean ? mean[j] : 0.0;
    const double scale = with_std ? (std[j] > 0 ? 1.0 / std[j] : 0.0) : 1.0;
    x.col(j) = ((x.col(j).cast<double>().array() - shift) * scale).cast<float>();
  }
  return f.with_features(std::move(x), f.feature_names());
}

MinMaxScalerModel fit_min_max_scaler(const Frame& f, const MinMaxScalerParams& p) {
  LOCKSTEP_CHECK(p.min < p.max, ConfigError, "MinMaxScaler: min (", p.min, ") must be below max (", p.max, ")");
  const Summary s = summarize(f);
  return {s.min, s.max, p.min, p.max};
}

Frame MinMaxScalerModel::transform(const Frame& f) const {
  RowMatrix x = f.to_dense();
  for (std::int64_t j = 0; j < x.cols(); ++j) {
    const double range = original_max[j] - original_min[j];
    if (range > 0) {
      x.col(j) = ((x.col(j).cast<double>().array() - original_min[j]) / range * (max - min) + min).cast<float>();
    } else {
      x.col(j).setConstant(static_cast<float>(0.5 * (max + min)));
    }
  }
  return f.with_features(std::move(x), f.feature_names());
}

MaxAbsScalerModel fit_max_abs_scaler(const Frame& f) {
  return {summarize(f).max_abs};
}

Frame MaxAbsScalerModel::transform(const Frame& f) const {
  RowMatrix x = f.to_dense();
  for (std::int64_t j = 0; j < x.cols(); ++j) x.col(j) *= static_cast<float>(max_abs[j] > 0 ? 1.0 / max_abs[j] : 0.0);
  return f.with_features(std::move(x), f.feature_names());
}

Frame Normalizer::transform(const Frame& f) const {
  LOCKSTEP_CHECK(p >= 1.0, ConfigError, "Normalizer: p must be >= 1, got ", p);
  RowMatrix x = f.to_dense();
  for (std::int64_t i = 0; i < x.rows(); ++i) {
    const auto r = x.row(i).cast<double>();
    const double norm = std::isinf(p) ? r.cwiseAbs().maxCoeff() : std::pow(r.cwiseAbs().array().pow(p).sum(), 1.0 / p);
    if (norm > 0) x.row(i) = (r / norm).cast<float>();
  }
  return f.with_features(std::move(x), f.feature_names());
}

OneHotEncoderModel fit_one_hot_encoder(const Frame& f, const OneHotEncoderParams& p) {
  LOCKSTEP_CHECK(!p.input_cols.empty(), ConfigError, "OneHotEncoder: inputCols is empty");
  OneHotEncoderModel m{p.input_cols, {}, p.drop_last};
  const RowMatrix x = f.to_dense();
  for (const auto& c : p.input_cols) {
    const std::int64_t j = f.column(c);
    double top = -1.0;
    std::int64_t bad = INT64_MAX;
    for (std::int64_t i = 0; i < x.rows(); ++i) {
      const double v = x(i, j);
      if (!(v >= 0) || v != std::floor(v)) {
        bad = f.row_offset() + i;
        break;
      }
      top = std::max(top, v);
    }
    agree_on_first_bad_row(f.comm(), bad,
                           "OneHotEncoder: column \"" + c + "\" at row " + std::to_string(bad) +
                               " is not a category index (expected an integer >= 0)");
    m.categories.push_back(static_cast<std::int64_t>(f.comm().allreduce<double>(top, comm::ReduceOp::kMax)) + 1);
  }
  return m;
}

Frame OneHotEncoderModel::transform(const Frame& f) const {
  const RowMatrix x = f.to_dense();
  std::vector<std::int64_t> src(static_cast<std::size_t>(f.num_features()), -1);  // input col -> which encoder
  for (std::size_t e = 0; e < input_cols.size(); ++e)
    src[static_cast<std::size_t>(f.column(input_cols[e]))] = static_cast<std::int64_t>(e);
  std::vector<std::string> names;
  std::int64_t width = 0;
  for (std::int64_t j = 0; j < f.num_features(); ++j) {
    const auto e = src[static_cast<std::size_t>(j)];
    if (e < 0) {
      names.push_back(f.feature_names()[static_cast<std::size_t>(j)]);
      ++width;
      continue;
    }
    const std::int64_t n = categories[static_cast<std::size_t>(e)] - (drop_last ? 1 : 0);
    for (std::int64_t c = 0; c < n; ++c)
      names.push_back(f.feature_names()[static_cast<std::size_t>(j)] + "_" + std::to_string(c));
    width += n;
  }
  RowMatrix out = RowMatrix::Zero(x.rows(), width);
  std::int64_t bad = INT64_MAX;
  for (std::int64_t i = 0; i < x.rows(); ++i) {
    std::int64_t o = 0;
    for (std::int64_t j = 0; j < x.cols(); ++j) {
      const auto e = src[static_cast<std::size_t>(j)];
      if (e < 0) {
        out(i, o++) = x(i, j);
        continue;
      }
      const std::int64_t n = categories[static_cast<std::size_t>(e)];
      const double v = x(i, j);
      if (!(v >= 0) || v != std::floor(v) || v >= static_cast<double>(n)) {
        bad = std::min(bad, f.row_offset() + i);
      } else if (static_cast<std::int64_t>(v) < n - (drop_last ? 1 : 0)) {
        out(i, o + static_cast<std::int64_t>(v)) = 1.0f;
      }
      o += n - (drop_last ? 1 : 0);
    }
  }
  agree_on_first_bad_row(
      f.comm(), bad, "OneHotEncoder: row " + std::to_string(bad) + " has a category index the encoder has not seen");
  return f.with_features(std::move(out), std::move(names));
}

StringIndexerModel fit_string_indexer(const Frame& f, const StringIndexerParams& p) {
  LOCKSTEP_CHECK(!p.input_cols.empty(), ConfigError, "StringIndexer: inputCols is empty");
  LOCKSTEP_CHECK(p.output_cols.size() == p.input_cols.size(), ConfigError,
                 "StringIndexer: outputCols needs one name per "
                 "input column (",
                 p.input_cols.size(), "), got ", p.output_cols.size());
  const std::string& order = p.string_order_type;
  LOCKSTEP_CHECK(
      order == "frequencyDesc" || order == "frequencyAsc" || order == "alphabetDesc" || order == "alphabetAsc",
      ConfigError, "stringOrderType: expected frequencyDesc, frequencyAsc, alphabetDesc or alphabetAsc; got \"", order,
      "\"");
  LOCKSTEP_CHECK(p.handle_invalid == "error" || p.handle_invalid == "skip" || p.handle_invalid == "keep", ConfigError,
                 "handleInvalid: expected error, skip or keep; got \"", p.handle_invalid, "\"");
  StringIndexerModel m{p.input_cols, p.output_cols, {}, p.handle_invalid};
  for (const auto& col : p.input_cols) {
    // The dictionary, with each value's count over all ranks (count_by_value), on every rank.
    auto v = data::count_by_value(data::Partitioned<std::string>::from_local(f.comm(), f.strings(col))).collect();
    std::sort(v.begin(), v.end());  // alphabetical (values are distinct)
    if (order == "frequencyDesc")
      std::stable_sort(v.begin(), v.end(), [](const auto& x, const auto& y) { return x.second > y.second; });
    else if (order == "frequencyAsc")
      std::stable_sort(v.begin(), v.end(), [](const auto& x, const auto& y) { return x.second < y.second; });
    else if (order == "alphabetDesc")
      std::reverse(v.begin(), v.end());
    std::vector<std::string> labels;
    for (const auto& [s, c] : v) labels.push_back(s);
    m.labels.push_back(std::move(labels));
  }
  return m;
}

Frame StringIndexerModel::transform(const Frame& f) const {
  const std::int64_t n = f.rows();
  std::vector<Vec> indexed;
  std::vector<char> keep(static_cast<std::size_t>(n), 1);
  std::int64_t bad_row = INT64_MAX;
  std::string bad_value, bad_col;
  for (std::size_t c = 0; c < input_cols.size(); ++c) {
    std::unordered_map<std::string, double> index;
    for (std::size_t k = 0; k < labels[c].size(); ++k) index[labels[c][k]] = static_cast<double>(k);
    const auto& values = f.strings(input_cols[c]);
    Vec out(n);
    for (std::int64_t i = 0; i < n; ++i) {
      const auto it = index.find(values[static_cast<std::size_t>(i)]);
      if (it != index.end()) {
        out[i] = it->second;
      } else if (handle_invalid == "keep") {
        out[i] = static_cast<double>(labels[c].size());
      } else if (handle_invalid == "skip") {
        out[i] = 0.0;
        keep[static_cast<std::size_t>(i)] = 0;
      } else if (f.row_offset() + i < bad_row) {
        bad_row = f.row_offset() + i, bad_value = values[static_cast<std::size_t>(i)], bad_col = input_cols[c];
      }
    }
    indexed.push_back(std::move(out));
  }
  agree_on_first_bad_row(f.comm(), bad_row,
                         "StringIndexer: column \"" + bad_col + "\" at row " + std::to_string(bad_row) +
                             " has the value \"" + bad_value +
                             "\", which the fit did not see (handleInvalid: error; use skip or keep)");
  RowMatrix x = f.to_dense();
  std::vector<std::string> names = f.feature_names();
  Vec label = f.label();
  std::vector<Vec> appended;
  for (std::size_t c = 0; c < output_cols.size(); ++c) {
    if (output_cols[c] == "label") {
      label = indexed[c];
    } else {
      appended.push_back(indexed[c]);
      names.push_back(output_cols[c]);
    }
  }
  RowMatrix wide(n, x.cols() + static_cast<std::int64_t>(appended.size()));
  wide.leftCols(x.cols()) = x;
  for (std::size_t k = 0; k < appended.size(); ++k)
    wide.col(x.cols() + static_cast<std::int64_t>(k)) = appended[k].cast<float>();
  Frame out = f.with_features(std::move(wide), std::move(names)).with_label(std::move(label));
  if (handle_invalid == "skip") {
    std::vector<std::int64_t> rows;
    for (std::int64_t i = 0; i < n; ++i)
      if (keep[static_cast<std::size_t>(i)]) rows.push_back(i);
    out = out.subset(rows);
  }
  return out;
}

PcaModel fit_pca(const Frame& f, const PcaParams& p) {
  const std::int64_t d = f.num_features();
  LOCKSTEP_CHECK(p.k >= 1 && p.k <= d, ConfigError, "PCA: k must be in [1, ", d, "] (the feature count), got ", p.k);
  const Summary s = summarize(f);
  // Weighted scatter of the centred rows: float32 products on blocks of 1024 centred rows,
  // accumulated in double.
  Mat scatter = Mat::Zero(d, d);
  Eigen::MatrixXf part(d, d);
  const Eigen::RowVectorXf mu = s.mean.transpose().cast<float>();
  RowMatrix xc;
  f.visit([&](const auto& x) {
    for (std::int64_t r0 = 0; r0 < f.rows(); r0 += 1024) {
      const std::int64_t m = std::min<std::int64_t>(1024, f.rows() - r0);
      xc = RowMatrix(x.middleRows(r0, m));
      xc.rowwise() -= mu;
      xc.array().colwise() *= f.weight().segment(r0, m).cwiseSqrt().cast<float>().array();
      part.setZero();
      part.selfadjointView<Eigen::Lower>().rankUpdate(xc.transpose());
      scatter += part.cast<double>();
    }
  });
  f.comm().allreduce(std::span<double>(scatter.data(), static_cast<std::size_t>(scatter.size())), comm::ReduceOp::kSum);
  const double W = s.weight_sum;
  // The unbiased weighted covariance (W - 1 for unit weights, as scikit-learn and Spark).
  double W2 = f.weight().squaredNorm();
  W2 = f.comm().allreduce<double>(W2, comm::ReduceOp::kSum);
  const double denom = W - W2 / W;
  LOCKSTEP_CHECK(denom > 0, DataError, "PCA: needs at least two rows");
  Mat cov = scatter.selfadjointView<Eigen::Lower>();
  cov /= denom;
  Eigen::SelfAdjointEigenSolver<Mat> es(cov);
  LOCKSTEP_CHECK(es.info() == Eigen::Success, Error, "PCA: the eigendecomposition failed");
  PcaModel m;
  m.mean = s.mean;
  m.components.resize(p.k, d);
  m.explained_variance.resize(p.k);
  for (std::int64_t c = 0; c < p.k; ++c) {
    const std::int64_t col = d - 1 - c;  // eigenvalues ascend
    Vec v = es.eigenvectors().col(col);
    Eigen::Index arg = 0;
    v.cwiseAbs().maxCoeff(&arg);
    if (v[arg] < 0) v = -v;
    m.components.row(c) = v.transpose();
    m.explained_variance[c] = std::max(0.0, es.eigenvalues()[col]);
  }
  const double total = es.eigenvalues().cwiseMax(0.0).sum();
  m.explained_variance_ratio = total > 0 ? Vec(m.explained_variance / total) : Vec(Vec::Zero(p.k));
  return m;
}

Frame PcaModel::transform(const Frame& f) const {
  LOCKSTEP_CHECK(f.num_features() == components.cols(), DataError, "PCA: fitted on ", components.cols(),
                 " features, the data has ", f.num_features());
  const Eigen::MatrixXf Ct = components.transpose().cast<float>();
  const Eigen::RowVectorXf shift = (mean.transpose() * components.transpose()).cast<float>();
  RowMatrix out(f.rows(), components.rows());
  f.visit([&](const auto& x) {  // row by row: the same bits at any number of ranks
    for (std::int64_t i = 0; i < f.rows(); ++i) out.row(i).noalias() = x.row(i) * Ct;
  });
  out.rowwise() -= shift;
  std::vector<std::string> names;
  for (std::int64_t c = 0; c < components.rows(); ++c) names.push_back("pc" + std::to_string(c));
  return f.with_features(std::move(out), std::move(names));
}

ImportanceSelectorModel select_by_importance(const Vec& imp, std::int64_t k) {
  LOCKSTEP_CHECK(k >= 1 && k <= imp.size(), ConfigError, "numFeatures: expected an integer in [1, ", imp.size(),
                 "], got ", k);
  std::vector<std::int64_t> idx(static_cast<std::size_t>(imp.size()));
  std::iota(idx.begin(), idx.end(), 0);
  std::stable_sort(idx.begin(), idx.end(), [&](std::int64_t a, std::int64_t b) { return imp[a] > imp[b]; });
  idx.resize(static_cast<std::size_t>(k));
  std::sort(idx.begin(), idx.end());
  return {idx};
}

Frame ImportanceSelectorModel::transform(const Frame& f) const {
  std::vector<std::string> names;
  for (auto j : columns) {
    LOCKSTEP_CHECK(j < f.num_features(), DataError, "selector: column ", j, " of ", f.num_features());
    names.push_back(f.feature_names()[static_cast<std::size_t>(j)]);
  }
  return f.assemble(names);
}

}  // namespace lockstep::ml
