// `lockstep fit CONFIG` fits the config's pipeline (optionally tuned by CrossValidator or
// TrainValidationSplit), reports its metrics and saves it to output.dir/model.h5;
// `lockstep transform` and `lockstep predict --model` apply a saved pipeline to a data file, each
// rank its split, the output in input order.
#include <chrono>
#include <cstdio>
#include <sstream>

#include "common.hpp"
#include "lockstep/core/log.hpp"
#include "lockstep/core/trace.hpp"
#include "lockstep/data/source.hpp"
#include "lockstep/io/checkpoint.hpp"
#include "lockstep/io/json_line.hpp"
#include "lockstep/ml/pipeline.hpp"
#include "lockstep/ml/tuning.hpp"
#include "lockstep/train/data_loading.hpp"
#include "lockstep/train/run_log.hpp"
#include "lockstep/train/trace_file.hpp"

namespace lockstep::app {
namespace {

// A data file as a Frame, read through data/'s source registry like every other command's data:
// CSV keeps its column names and its string_columns as text (for StringIndexer stages), LIBSVM
// stays CSR (the estimators take CSR blocks).
ml::Frame load_frame(comm::Communicator& comm, const io::Config& cfg, const std::string& path,
                     const std::string& labels, std::optional<data::SplitKind> split) {
  // A train or test split gets what every command's split gets (data.on_invalid, missing files).
  if (split) {
    const auto which = *split == data::SplitKind::kTrain ? train::Split::kTrain : train::Split::kTest;
    return ml::Frame::from_table(comm, train::read_split_table(comm, cfg.data, which));
  }
  data::SourceRequest req;
  req.split = data::SplitKind::kFile;
  req.features = path;
  req.labels = labels;
  const std::string what = path.empty() ? "synthetic data" : path;
  return ml::Frame::from_table(comm, data::read_source(comm, train::source_spec(cfg.data), req, what));
}

std::string json_metrics(const std::string& split, const std::map<std::string, double>& m, double extra_seconds,
                         int ranks) {
  io::JsonLine js;
  js.add("split", split);
  for (const auto& [k, v] : m) js.add(k, v);
  if (extra_seconds >= 0) js.add("fit_seconds", extra_seconds);
  return js.add("world_size", ranks).str();
}

std::string describe(const std::map<std::string, double>& m) {
  std::string s;
  char buf[64];
  for (const auto& [k, v] : m) {
    std::snprintf(buf, sizeof buf, "%s %.4f", k.c_str(), v);
    s += (s.empty() ? "" : ", ") + std::string(buf);
  }
  return s;
}

}  // namespace

int run_fit(comm::Communicator& comm, const ConfigArgs& args) {
  io::Config cfg = load_config_everywhere(comm, args);
  if (cfg.pipeline.empty())
    throw ConfigError(args.path +
                      ": pipeline: missing (lockstep fit needs a `pipeline:` list of stages; a config "
                      "with `model:` only is for lockstep train)");
  ml::check_pipeline(comm, cfg.pipeline);  // every stage's parameters, before any data is read
  // One run at a time in output.dir, held to the end of this function, however it ends.
  const auto lock = train::lock_output_dir(comm, cfg.output.dir, "lockstep fit");
  // output.trace: loading, each stage's fit and transform, each solver iteration (core/trace.hpp).
  if (cfg.output.trace) train::start_trace(comm);
  trace::Scope load_scope("load data", "setup");
  const std::string yaml = io::to_yaml(cfg);
  log::info("lockstep fit: " + args.path + " on " + std::to_string(comm.size()) + " rank(s), config hash " +
            io::hex64(io::config_hash(cfg)));
  const bool has_test = cfg.data.format == "synthetic" || !cfg.data.test.features.empty();
  const ml::Frame train =
      load_frame(comm, cfg, cfg.data.train.features, cfg.data.train.labels, data::SplitKind::kTrain);
  std::optional<ml::Frame> test;
  if (has_test) test = load_frame(comm, cfg, cfg.data.test.features, cfg.data.test.labels, data::SplitKind::kTest);
  log::info("data: train " + (cfg.data.format == "synthetic" ? std::string("synthetic") : cfg.data.train.features) +
            " (" + std::to_string(train.global_rows()) + " rows, " + std::to_string(train.num_features()) +
            " features)" +
            (test ? ", test " + std::to_string(test->global_rows()) + " rows" : std::string(", no test split")));
  load_scope.end();
  train::RunLog run_log(comm, cfg.output.dir);
  run_log.write("config.yaml", yaml);
  run_log.rotate({"metrics.jsonl"});
  std::string jsonl;
  ml::FitContext ctx{cfg.output.dir, cfg.output.progress, true};
  auto stages = cfg.pipeline;
  if (cfg.tuning.type != "none") {
    const auto t0 = std::chrono::steady_clock::now();
    const auto r = ml::tune(train, stages, cfg.tuning, ctx);
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    for (const auto& [label, v] : r.candidates)
      jsonl += io::JsonLine().add("tuning", cfg.tuning.type).add("params", label).add(r.metric, v).str();
    char buf[128];
    std::snprintf(buf, sizeof buf, " (best %s %.4f, %.1f s)", r.metric.c_str(), r.best, secs);
    std::string best;
    for (const auto& [k, v] : cfg.tuning.grid)
      for (const auto& s : r.best_stages) {
        const auto dot = k.find('.');
        if (s.type == k.substr(0, dot) && s.params.count(k.substr(dot + 1)))
          best += (best.empty() ? "" : ", ") + k + "=" + s.params.at(k.substr(dot + 1)).values[0];
      }
    log::info(cfg.tuning.type + " chose " + best + buf);
    stages = r.best_stages;
  }
  const auto t0 = std::chrono::steady_clock::now();
  const ml::PipelineModel model = ml::fit_pipeline(train, stages, ctx, test ? &*test : nullptr);
  const double fit_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  trace::Scope eval_scope("evaluate", "pipeline");
  if (model.has_predictor()) {
    const auto mtrain = model.evaluate(train);
    log::info("train: " + describe(mtrain));
    jsonl += json_metrics("train", mtrain, fit_seconds, comm.size());
    if (test) {
      const auto mtest = model.evaluate(*test);
      log::info("test: " + describe(mtest));
      jsonl += json_metrics("test", mtest, -1, comm.size());
    }
  }
  eval_scope.end();
  const std::string path = run_log.path("model.h5");
  trace::Scope save_scope("save model", "pipeline");
  model.save(comm, path, yaml);
  save_scope.end();
  run_log.append("metrics.jsonl", jsonl);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.2f", fit_seconds);
  log::info(std::string("done: pipeline fitted in ") + buf + " s; model " + path + ", metrics " +
            run_log.path("metrics.jsonl"));
  if (cfg.output.trace) train::write_trace(comm, run_log.path("trace.json"));
  return 0;
}

int run_transform(comm::Communicator& comm, const ConfigArgs& args, const std::string& model_path,
                  const std::string& input, const std::string& labels, const std::string& output) {
  io::Config cfg = load_config_everywhere(comm, args);
  const ml::PipelineModel model = ml::PipelineModel::load(comm, model_path);
  const ml::Frame f = load_frame(comm, cfg, input, labels, std::nullopt);
  const ml::Frame t = model.transform(f);
  const ml::RowMatrix x = t.to_dense();
  std::ostringstream os;
  char buf[32];
  for (std::int64_t i = 0; i < t.rows(); ++i) {
    os << (t.row_offset() + i);
    std::snprintf(buf, sizeof buf, ",%.9g", t.label()[i]);
    os << buf;
    for (std::int64_t j = 0; j < x.cols(); ++j) {
      std::snprintf(buf, sizeof buf, ",%.9g", static_cast<double>(x(i, j)));
      os << buf;
    }
    os << '\n';
  }
  std::string header = "index,label";
  for (const auto& n : t.feature_names()) header += "," + n;
  train::write_gathered(comm, output, header + "\n", os.str());
  log::info("wrote " + std::to_string(t.global_rows()) + " rows of " + std::to_string(t.num_features()) +
            " features to " + output);
  return 0;
}

int run_predict_pipeline(comm::Communicator& comm, const ConfigArgs& args, const std::string& model_path,
                         const std::string& input, const std::string& labels, const std::string& output) {
  io::Config cfg = load_config_everywhere(comm, args);
  const ml::PipelineModel model = ml::PipelineModel::load(comm, model_path);
  const ml::Frame f = load_frame(comm, cfg, input, labels, std::nullopt);
  const ml::Predictions p = model.predict(f);
  const std::int64_t k = p.probability.cols();
  std::ostringstream os;
  char buf[40];
  for (std::int64_t i = 0; i < f.rows(); ++i) {
    std::snprintf(buf, sizeof buf, "%lld,%.10g", static_cast<long long>(f.row_offset() + i), p.prediction[i]);
    os << buf;
    for (std::int64_t j = 0; j < k; ++j) {
      std::snprintf(buf, sizeof buf, ",%.6g", p.probability(i, j));
      os << buf;
    }
    os << '\n';
  }
  std::string header = "index,prediction";
  for (std::int64_t j = 0; j < k; ++j) header += ",probability_" + std::to_string(j);
  train::write_gathered(comm, output, header + "\n", os.str());
  log::info("wrote " + std::to_string(f.global_rows()) + " predictions to " + output);
  return 0;
}

}  // namespace lockstep::app
