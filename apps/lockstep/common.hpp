// What every subcommand shares: loading the config on every rank and checking that all ranks
// resolved the same one.
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "lockstep/comm/communicator.hpp"
#include "lockstep/io/config.hpp"

namespace lockstep::app {

struct ConfigArgs {
  std::string path;
  std::vector<std::string> overrides;
};

// `s` quoted for a POSIX shell: as it is when it holds only characters no shell treats specially,
// else in single quotes (a single quote inside becomes '\'').
std::string shell_quote(const std::string& s);
// The command that resumes this run: `lockstep train CONFIG --set k=v ... --resume`, with the same
// overrides in the same order, each argument shell-quoted, so that pasting it continues the same
// run (the same output.dir and config hash).
std::string resume_command(const ConfigArgs& args);

// Parses and validates on every rank (errors agreed), then compares the hash of the resolved
// config across ranks and refuses to go on if any rank differs.
io::Config load_config_everywhere(comm::Communicator& comm, const ConfigArgs& args);

// How many label columns the config's targets have (data.label_columns, or one): a regression head
// has one output per column. From the config, not the data, so that predict reads unlabelled rows
// with the head the model was trained with.
inline std::int64_t label_columns(const io::Config& cfg) {
  return std::max<std::int64_t>(1, static_cast<std::int64_t>(cfg.data.label_columns.size()));
}

// --resume (the checkpoint must exist), --auto-resume (use it if it exists), or neither.
enum class Resume { kNo, kRequired, kIfAny };
int run_train(comm::Communicator& comm, const ConfigArgs& args, Resume resume, std::int64_t max_steps);
int run_evaluate(comm::Communicator& comm, const ConfigArgs& args, const std::string& checkpoint);
// predict's files: a checkpoint with the config's model, or a network file (an ONNX model, or a
// lockstep checkpoint carrying its own model), and the optional features of a named layer.
// predict's default images per forward call: at np 2 over Fashion-MNIST's 28x28 PNGs and the CNN
// of configs/fmnist_folder_cnn.yaml, 256 runs about as fast as 1000 and takes 400 MB a rank, not
// 1 GB (docs/running.md).
inline constexpr std::int64_t kPredictBatch = 256;
struct PredictArgs {
  std::string checkpoint, network, input, labels, output, features, features_output;
  std::int64_t batch = kPredictBatch;  // --batch: rows per forward call
};
int run_predict(comm::Communicator& comm, const ConfigArgs& args, const PredictArgs& predict);
// Whether `path` is a network for predict --model (.onnx, or a lockstep checkpoint by content)
// rather than a pipeline model written by lockstep fit. Rank 0 looks. Collective.
bool is_network_file(comm::Communicator& comm, const std::string& path);
int run_info(comm::Communicator& comm, const std::string& checkpoint);
// export's files: a checkpoint, or a pipeline model and the index of its network stage (-1: the
// only one), and the ONNX file to write.
struct ExportArgs {
  std::string checkpoint, model;
  std::int64_t stage = -1;
  std::string output;
};
int run_export(comm::Communicator& comm, const ExportArgs& args);
int run_fit(comm::Communicator& comm, const ConfigArgs& args);
int run_transform(comm::Communicator& comm, const ConfigArgs& args, const std::string& model, const std::string& input,
                  const std::string& labels, const std::string& output);
int run_predict_pipeline(comm::Communicator& comm, const ConfigArgs& args, const std::string& model,
                         const std::string& input, const std::string& labels, const std::string& output);

}  // namespace lockstep::app
