// Feature transformers fitted by collectives (Spark ML's names, parameters and defaults):
//   StandardScaler (withMean false, withStd true; unbiased standard deviation, as Spark),
//   MinMaxScaler (min 0, max 1), MaxAbsScaler, Normalizer (p = 2), OneHotEncoder (dropLast),
//   PCA (k components of the weighted covariance; transform centres, as scikit-learn does),
//   and ImportanceSelector (the top-k columns by a fitted model's feature importances).
// A fitted transformer maps a Frame to a Frame with the same rows, labels and weights.
#pragma once

#include <string>
#include <vector>

#include "lockstep/ml/frame.hpp"

namespace lockstep::ml {

struct StandardScalerParams {
  bool with_mean = false;
  bool with_std = true;
};
struct StandardScalerModel {
  Vec mean, std;  // a column with std 0 becomes 0 (Spark)
  bool with_mean = false, with_std = true;
  Frame transform(const Frame& f) const;
};
StandardScalerModel fit_standard_scaler(const Frame& f, const StandardScalerParams& p = {});

struct MinMaxScalerParams {
  double min = 0.0, max = 1.0;
};
struct MinMaxScalerModel {
  Vec original_min, original_max;
  double min = 0.0, max = 1.0;  // a constant column maps to (min + max) / 2 (Spark)
  Frame transform(const Frame& f) const;
};
MinMaxScalerModel fit_min_max_scaler(const Frame& f, const MinMaxScalerParams& p = {});

struct MaxAbsScalerModel {
  Vec max_abs;  // an all-zero column stays 0
  Frame transform(const Frame& f) const;
};
MaxAbsScalerModel fit_max_abs_scaler(const Frame& f);

// Row-wise: x / |x|_p; an all-zero row stays zero. No fitting.
struct Normalizer {
  double p = 2.0;
  Frame transform(const Frame& f) const;
};

// Columns holding category indices 0..n-1 become n indicator columns (n - 1 with dropLast, the
// last category being all zeros). n is learned: 1 + the largest index over all ranks.
struct OneHotEncoderParams {
  std::vector<std::string> input_cols;
  bool drop_last = true;
};
struct OneHotEncoderModel {
  std::vector<std::string> input_cols;
  std::vector<std::int64_t> categories;  // per input column
  bool drop_last = true;
  Frame transform(const Frame& f) const;
};
OneHotEncoderModel fit_one_hot_encoder(const Frame& f, const OneHotEncoderParams& p);

// StringIndexer: text columns (CSV string_columns) become category indices, by Spark's rules:
// stringOrderType frequencyDesc (ties alphabetical), frequencyAsc, alphabetDesc or alphabetAsc;
// handleInvalid for values the fit did not see: error, skip (drop the row) or keep (index n).
// An outputCol named "label" sets the label; any other is appended as a feature column.
// The counts are per rank, gathered as (value, count) pairs: the dictionary, not the rows.
struct StringIndexerParams {
  std::vector<std::string> input_cols, output_cols;
  std::string string_order_type = "frequencyDesc";
  std::string handle_invalid = "error";
};
struct StringIndexerModel {
  std::vector<std::string> input_cols, output_cols;
  std::vector<std::vector<std::string>> labels;  // per input column, index order
  std::string handle_invalid = "error";
  Frame transform(const Frame& f) const;
};
StringIndexerModel fit_string_indexer(const Frame& f, const StringIndexerParams& p);

struct PcaParams {
  std::int64_t k = 2;
};
struct PcaModel {
  Mat components;          // k x features, unit rows; each row's largest-|.| entry is positive
  Vec explained_variance;  // eigenvalues of the covariance, descending
  Vec explained_variance_ratio;
  Vec mean;
  Frame transform(const Frame& f) const;  // (x - mean) components^T, columns pc0..pc{k-1}
};
PcaModel fit_pca(const Frame& f, const PcaParams& p);

// Keeps the k columns with the largest importances (ties: the lower index), in column order.
struct ImportanceSelectorModel {
  std::vector<std::int64_t> columns;
  Frame transform(const Frame& f) const;
};
ImportanceSelectorModel select_by_importance(const Vec& importances, std::int64_t k);

}  // namespace lockstep::ml
