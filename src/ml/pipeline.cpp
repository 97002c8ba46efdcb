// PipelineModel: fitting a list of stages in order, applying them, and the pipeline file (one
// HDF5 group per stage under /pipeline). What each stage is — its parameters, its fit, its saved
// form — lives in its registry row beside its estimator (src/ml/*_stages.cpp, src/pipeline/); this
// file asks the registry and never names a stage.
#include "lockstep/ml/pipeline.hpp"
#include "lockstep/core/fault.hpp"

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <optional>

#include "detail/hdf5.hpp"
#include "lockstep/core/log.hpp"
#include "lockstep/core/trace.hpp"
#include "lockstep/io/atomic_file.hpp"

namespace lockstep::ml {

using detail::H5File;

PipelineModel::PipelineModel() = default;
PipelineModel::~PipelineModel() = default;
PipelineModel::PipelineModel(PipelineModel&&) noexcept = default;
PipelineModel& PipelineModel::operator=(PipelineModel&&) noexcept = default;

std::size_t PipelineModel::size() const {
  return stages_.size();
}
std::string PipelineModel::stage_type(std::size_t i) const {
  return stages_.at(i)->type();
}
const Stage& PipelineModel::stage(std::size_t i) const {
  return *stages_.at(i);
}
bool PipelineModel::has_predictor() const {
  return !stages_.empty() && stages_.back()->is_predictor();
}
std::string PipelineModel::task() const {
  return has_predictor() ? task_name(stages_.back()->task()) : "";
}

// Every stage but a last predictor (a predictor before the last place hands its outputs on).
Frame PipelineModel::transform(const Frame& f) const {
  Frame cur = f;
  for (std::size_t i = 0; i < stages_.size(); ++i)
    if (i + 1 < stages_.size() || !stages_[i]->is_predictor()) cur = stages_[i]->transform(cur);
  return cur;
}

Predictions PipelineModel::predict(const Frame& f) const {
  LOCKSTEP_CHECK(has_predictor(), ConfigError, "this pipeline has no predictor stage (its last stage is ",
                 stages_.empty() ? "missing" : stages_.back()->type(), ")");
  return stages_.back()->predict(transform(f));
}

std::map<std::string, double> PipelineModel::evaluate(const Frame& f) const {
  LOCKSTEP_CHECK(has_predictor(), ConfigError, "this pipeline has no predictor stage to evaluate (its last stage is ",
                 stages_.empty() ? "missing" : stages_.back()->type(), ")");
  const Frame t = stages_.back()->evaluation_rows(transform(f));
  return ml::evaluate(t, stages_.back()->predict(t), task());
}

Vec PipelineModel::feature_importances() const {
  return has_predictor() ? stages_.back()->importances() : Vec();
}

void PipelineModel::save(comm::Communicator& comm, const std::string& path, const std::string& config_yaml) const {
  comm.collectively(
      [&] {
        if (comm.rank() != 0) return;
        io::AtomicFile out(path);  // removes the temporary if anything below fails
        {
          H5File h = H5File::create(out.temp(), /*exclusive=*/true);
          out.created();
          h.create_group("/pipeline");
          h.set_attr("/pipeline", "format", kPipelineFormat);
          h.set_attr("/pipeline", "stages", static_cast<std::int64_t>(stages_.size()));
          h.set_attr("/pipeline", "config", config_yaml);
          for (std::size_t i = 0; i < stages_.size(); ++i)
            save_stage(*stages_[i], h, "/pipeline/stage" + std::to_string(i));
          h.close();
        }
        out.commit();
      },
      comm::Communicator::ErrorKind::kIo);
}

PipelineModel PipelineModel::load(comm::Communicator& comm, const std::string& path) {
  PipelineModel m;
  comm.collectively(
      [&] {
        if (!std::filesystem::exists(path)) throw IoError(path + ": no such model file (write one with lockstep fit)");
        H5File h = H5File::open_read(path);
        h.limit_reads_to_file_size();  // lockstep writes models uncompressed: a larger dataset is damage
        if (!h.exists("/pipeline"))
          throw IoError(
              path +
              ": not a lockstep pipeline model (no /pipeline group; a training checkpoint goes to --checkpoint)");
        const std::string format = h.has_attr("/pipeline", "format") ? h.attr_string("/pipeline", "format") : "";
        if (format != kPipelineFormat)
          throw IoError(path + ":/pipeline: format \"" + format + "\", but this build reads \"" + kPipelineFormat +
                        "\" (fit the pipeline again with this build, or use the build that wrote the file)");
        const auto n = h.attr_int("/pipeline", "stages");
        const auto groups = static_cast<std::int64_t>(h.list("/pipeline").size());
        if (n < 1 || n > groups)
          throw IoError(path + ":/pipeline: attribute stages: expected an integer in [1, " + std::to_string(groups) +
                        "] (the stage groups present), found " + std::to_string(n));
        for (std::int64_t i = 0; i < n; ++i) m.stages_.push_back(load_stage(h, "/pipeline/stage" + std::to_string(i)));
      },
      comm::Communicator::ErrorKind::kIo);
  return m;
}

void check_pipeline(comm::Communicator& comm, const std::vector<io::StageConfig>& stages) {
  comm.collectively(
      [&] {
        for (const auto& st : stages)
          if (const auto& kind = stage_kind(st.type, st.where); kind.check) kind.check(st);
      },
      comm::Communicator::ErrorKind::kConfig);
}

PipelineModel fit_pipeline(const Frame& train, const std::vector<io::StageConfig>& stages, const FitContext& ctx,
                           const Frame* validation) {
  LOCKSTEP_CHECK(!stages.empty(), ConfigError, "pipeline: no stages");
  check_pipeline(train.comm(), stages);
  PipelineModel model;
  Frame cur = train;
  std::optional<Frame> val;
  if (validation) val = *validation;
  for (std::size_t i = 0; i < stages.size(); ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    fault::point("fit", cur.comm().rank());
    trace::Scope fit_scope(trace::intern("fit ", stages[i].type), "pipeline", "stage", static_cast<std::int64_t>(i));
    auto s = fit_stage(stages[i], cur, val ? &*val : nullptr, ctx);
    fit_scope.end();
    const bool last = i + 1 == stages.size();
    if (!last && !s->inner_transform())
      throw ConfigError(stages[i].where +
                        ": a predictor must be the last stage of a pipeline (only a NeuralNetwork hands its outputs "
                        "on to later stages)");
    if (!last || !s->is_predictor()) {
      LOCKSTEP_TRACE_SCOPE(trace::intern("transform ", stages[i].type), "pipeline", "stage", static_cast<std::int64_t>(i));
      cur = s->transform(cur);
      if (val) val = s->transform(*val);
    }
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (ctx.verbose) {
      char buf[160];
      std::snprintf(buf, sizeof buf, "stage %zu/%zu %s fitted in %.2f s (%lld features out)", i + 1, stages.size(),
                    stages[i].type.c_str(), secs, static_cast<long long>(cur.num_features()));
      log::info(buf);
    }
    model.stages_.push_back(std::move(s));
  }
  return model;
}

}  // namespace lockstep::ml
