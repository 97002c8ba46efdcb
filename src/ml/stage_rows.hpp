// What the stage files (src/ml/*_stages.cpp) share, private to the library: ModelStage, the one
// Stage class over any model struct with transform() or predict(); model_row(), which makes a
// registry row from "read the parameters" + "fit" + "load"; and the HDF5 helpers for Eigen
// matrices and string lists that the models' save and load functions use.
//
// A model type M takes part by having, in namespace lockstep::ml (found by argument-dependent
// lookup), `void save_model(detail::H5File&, const std::string& group, const M&)` and optionally
// `std::map<std::string, double> model_summary(const M&)`.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "detail/hdf5.hpp"
#include "lockstep/core/param_reader.hpp"
#include "lockstep/ml/registry.hpp"

namespace lockstep::ml {

using detail::H5File;

// ---- HDF5 helpers: row-major double datasets for Eigen data, newline-joined string lists ----
void put(H5File& h, const std::string& path, const Mat& m);
void put(H5File& h, const std::string& path, const Vec& v);
// A 2-D (get_mat) or 1-D (get_vec) dataset; any other rank is an IoError naming the dataset.
Mat get_mat(const H5File& h, const std::string& path);
Vec get_vec(const H5File& h, const std::string& path);

// ---- checks of a loaded model (every stage's load runs them before the model is used) ----
// An IoError "<file>:<group>/<item>: <what>" (item: a dataset or attribute name; empty: the group).
[[noreturn]] void bad_model(const H5File& h, const std::string& group, const std::string& item,
                            const std::string& what);
inline void expect_model(bool ok, const H5File& h, const std::string& group, const std::string& item,
                         const std::string& what) {
  if (!ok) bad_model(h, group, item, what);
}
// Sizes of datasets that must agree: "has N values, expected M (<why>)".
void expect_size(const H5File& h, const std::string& group, const std::string& item, std::int64_t size,
                 std::int64_t expected, const std::string& why);
// An integer attribute in [lo, hi].
std::int64_t int_attr_in(const H5File& h, const std::string& group, const std::string& name, std::int64_t lo,
                         std::int64_t hi);
std::string join_lines(const std::vector<std::string>& v);
std::vector<std::string> split_lines(const std::string& s);

// Estimators raise their own parameter errors ("maxIter: expected ...") without knowing where the
// stage came from; this prefixes the stage's place in the YAML.
template <typename F>
auto with_where(const io::StageConfig& config, F&& f) {
  try {
    return f();
  } catch (const ConfigError& e) {
    throw ConfigError(config.where + ": " + e.what());
  }
}

template <typename M>
class ModelStage final : public Stage {
 public:
  ModelStage(std::string type, StageTask task, M model)
      : type_(std::move(type)), task_(task), model_(std::move(model)) {}
  const std::string& type() const override { return type_; }
  StageTask task() const override { return task_; }
  Frame transform(const Frame& f) const override {
    if constexpr (requires { model_.transform(f); })
      return model_.transform(f);
    else
      return f;
  }
  Predictions predict(const Frame& f) const override {
    if constexpr (requires { model_.predict(f); })
      return model_.predict(f);
    else
      return Stage::predict(f);
  }
  Frame evaluation_rows(const Frame& f) const override {
    if constexpr (requires { model_.evaluation_rows(f); })
      return model_.evaluation_rows(f);
    else
      return f;
  }
  Vec importances() const override {
    if constexpr (requires { model_.feature_importances; })
      return model_.feature_importances;
    else
      return {};
  }
  std::map<std::string, double> summary() const override {
    if constexpr (requires { model_summary(model_); })
      return model_summary(model_);
    else
      return {};
  }
  void save(H5File& file, const std::string& group) const override { save_model(file, group, model_); }
  const M& model() const { return model_; }

 private:
  std::string type_;
  StageTask task_;
  M model_;
};

// A row for a stage whose parameters read into a P and whose fit needs only the rows:
//   read(reader, params) takes each parameter by its Spark name (finish() is called after it),
//   fit(frame, params) fits (its ConfigErrors are prefixed with the stage's place),
//   load(file, group) reads back what save_model wrote.
template <typename M, typename P>
StageKind model_row(std::string name, StageTask task, std::int64_t format_version,
                    std::function<void(ParamReader&, P&)> read, std::function<M(const Frame&, const P&)> fit,
                    std::function<M(const H5File&, const std::string&)> load) {
  StageKind k;
  k.name = name;
  k.task = task;
  k.format_version = format_version;
  k.fit = [name, task, read, fit](const StageFitArgs& a) -> std::shared_ptr<const Stage> {
    P params{};
    ParamReader reader(a.config.params, name);
    read(reader, params);
    reader.finish();
    return std::make_shared<ModelStage<M>>(name, task, with_where(a.config, [&] { return fit(a.train, params); }));
  };
  k.check = [name, read](const io::StageConfig& config) {
    P params{};
    ParamReader reader(config.params, name);
    read(reader, params);
    reader.finish();
  };
  k.load = [name, task, load](const H5File& file, const std::string& group) -> std::shared_ptr<const Stage> {
    return std::make_shared<ModelStage<M>>(name, task, load(file, group));
  };
  return k;
}

}  // namespace lockstep::ml
