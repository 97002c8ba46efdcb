// The run configuration: YAML turned into typed, validated structs at one boundary. Unknown keys,
// wrong types and out-of-range values are ConfigErrors that name the file, the line and the key
// path. `--set key.path=value` overrides are applied to the YAML before validation, so they are
// checked the same way. The resolved config is printed back as canonical YAML; its hash goes into
// every checkpoint and is compared across ranks at start-up.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "lockstep/core/error.hpp"  // ConfigError, which every function here throws
#include "lockstep/core/optimizer_options.hpp"
#include "lockstep/core/param_reader.hpp"  // Param, Spec

namespace lockstep::io {

struct DataSplitConfig {
  std::string features;  // idx: images file; csv/libsvm/hdf5: the file
  std::string labels;    // idx only: labels file
};

// The `data:` section. io/ knows no format's vocabulary: the format's own keys (idx's scale,
// csv's label_column, hdf5's features_dataset, synthetic.samples, ...) are kept as Param records
// with their place in the file, and data/'s source registry reads and checks them (an unknown key
// is an error there, naming `file:line: data.<key>` and the format's known keys). Nested
// mappings are flattened one level: `synthetic: {samples: 10}` is the parameter
// "synthetic.samples".
struct DataConfig {
  std::string format = "idx";  // a name in data/'s source registry
  std::string format_where;    // "file.yaml:3: data.format"
  DataSplitConfig train, test;
  std::map<std::string, lockstep::Param> params;
  // Keep only rows with these class labels, relabelled 0, 1, ... in this order (a binary or
  // smaller problem from a multi-class set, e.g. [0, 6] for T-shirt against shirt). Empty: all.
  std::vector<std::int64_t> classes;
  std::string classes_where = "data.classes";  // "file.yaml:9: data.classes", for messages
  // Keep a pseudo-random fraction (0, 1] of the training split (after `classes`): row i is kept when
  // a hash of (fraction_seed, i) falls below it, i its global index, so the same rows at any np.
  double train_fraction = 1.0;
  std::uint64_t fraction_seed = 1;
  std::string train_fraction_where = "data.train_fraction";
  // Several real-valued targets (csv columns; hdf5: a 2-D labels dataset), for regression heads
  // with several outputs. Empty: one label.
  std::vector<std::string> label_columns;
};

// io/ depends on core/ only: these are plain records; train/ turns them into nn/ objects, and the
// registries there (layer types, losses, initialisers) validate the names and parameters, so this
// reader keeps no list of them.
struct ModelConfig {
  std::vector<Spec> layers;  // {type, parameters with their places}: nn's layer registry reads them
  std::string init = "he_uniform";
  std::string init_where = "model.init";  // "file.yaml:20: model.init", for nn's errors
  // Transfer learning (docs/config.md): start from a pretrained network's layers. train's
  // resolve_init_from turns these into the full layer list when a run loads its config.
  std::string init_from;  // a lockstep checkpoint or an .onnx file; empty: none
  std::string init_from_where = "model.init_from";
  std::string replace_from;  // the source's layer ("dense6") where `layers` (the new head) take over
  std::string replace_from_where = "model.replace_from";
  bool base_trainable = true;  // false: the source's layers get trainable: false
  // Resolved: `layers` is the full list and its first init_layers take their parameters from
  // init_from at the start of a fresh run. -1: not resolved yet.
  std::int64_t init_layers = -1;
};

struct ScheduleConfig {
  std::string type = "constant";  // constant | step | cosine
  std::int64_t warmup_steps = 0;  // linear warm-up from 0, composes with any type
  std::int64_t step_size = 1;     // step: decay every step_size epochs
  double gamma = 0.1;             // step: multiplier
  double min_lr = 0.0;            // cosine: floor
};

struct TrainingConfig {
  std::int64_t epochs = 10;
  std::int64_t batch_size = 64;  // global
  std::uint64_t seed = 42;
  std::string loss = "softmax_cross_entropy";
  std::string loss_where = "training.loss";  // "file.yaml:31: training.loss", for nn's errors
  std::string device = "cpu";
  bool deterministic = false;
  std::int64_t micro_batch = 16;          // deterministic mode: fixed shape of every gradient computation
  double bucket_mb = 1.0;                 // gradient bucket size in MiB
  bool overlap = true;                    // start each bucket's allreduce during backward
  bool shared_memory = true;              // one node: reduce through a shared window, shard the update
  std::int64_t tile_rows = -1;            // rows per tile any rank may take; 0: static shares; -1: auto
  std::string precision = "fp32";         // fp32 | bf16: forward/backward in bf16, fp32 master weights
  std::string reduce_precision = "fp32";  // fp32 | bf16: the dtype gradients are reduced in
  std::int64_t eval_batch = 1000;
};

struct CheckpointConfig {
  std::int64_t every_steps = 0;  // 0: only at epoch end
  bool at_epoch_end = true;
  std::int64_t keep = 2;  // checkpoint generations kept: checkpoint.h5 and checkpoint.1.h5 .. keep-1
};

// How ranks wait for each other.
struct CommConfig {
  // A wait in any collective longer than this ends the job (the watchdog, comm/watchdog.hpp);
  // 0 disables it.
  double timeout_s = 300.0;
};

struct OutputConfig {
  std::string dir = "runs/default";
  std::string progress = "auto";       // auto | bar | lines | none
  std::int64_t log_every_steps = 100;  // plain progress lines (non-terminal)
  bool trace = false;                  // <dir>/trace.json: a Chrome trace of the run (core/trace.hpp)
};

// ML pipelines (`lockstep fit`). io/ keeps stage parameters as YAML scalars; ml/ converts and
// validates them, naming `where` (file:line: key path) in its errors.
using StageParam = lockstep::Param;
struct Config;
struct StageConfig {
  std::string type;   // LogisticRegression, StandardScaler, ..., NeuralNetwork, FeatureSelector
  std::string where;  // "file.yaml:10: pipeline[1].LogisticRegression"
  std::map<std::string, StageParam> params;
  std::shared_ptr<Config> nn;      // NeuralNetwork: its model, optimizer, schedule and training
  std::vector<StageConfig> inner;  // FeatureSelector: the estimator whose importances select
};
struct TuningConfig {
  std::string type = "none";  // none | CrossValidator | TrainValidationSplit
  std::int64_t num_folds = 3;
  double train_ratio = 0.75;
  std::uint64_t seed = 42;
  std::string metric;  // empty: accuracy (classifiers), rmse (regressors), cost (KMeans)
  std::vector<std::pair<std::string, StageParam>> grid;  // "Stage.param" -> candidate values
  std::string where;
};

struct Config {
  DataConfig data;
  ModelConfig model;
  OptimizerOptions optimizer;
  ScheduleConfig schedule;
  TrainingConfig training;
  CheckpointConfig checkpoint;
  CommConfig comm;
  OutputConfig output;
  std::vector<StageConfig> pipeline;
  std::string pipeline_yaml;  // the pipeline and tuning sections as given (config.yaml, the hash)
  TuningConfig tuning;
  std::string source;  // file it came from, for messages
};

// Loads and validates; overrides are "key.path=value" strings (value parsed as YAML).
Config load_config(const std::string& path, const std::vector<std::string>& overrides = {});
Config parse_config(const std::string& yaml_text, const std::string& source_name,
                    const std::vector<std::string>& overrides = {});
// Canonical YAML of the resolved config (every key, defaults included, fixed order).
std::string to_yaml(const Config& c);
// FNV-1a 64 of to_yaml(c).
std::uint64_t config_hash(const Config& c);
std::string hex64(std::uint64_t v);

}  // namespace lockstep::io
