// Checkpoints and saved models in HDF5 (layout in docs/checkpoint-format.md, readable with h5py).
// Writes go through an AtomicFile (io/atomic_file.hpp: a temporary of this process, flushed,
// fsynced, renamed over <path>), so a crash never leaves a partial file under the final name.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "lockstep/core/tensor.hpp"
#include "lockstep/io/atomic_file.hpp"  // write_file_atomically, for the callers of this header

namespace lockstep::io {

struct ParamInfo {
  std::string name;  // "dense0.weight"
  Shape shape;
  std::int64_t offset = 0;  // in the flat buffer, elements
};

struct CheckpointState {
  static constexpr std::int64_t kFormatVersion = 1;
  std::vector<float> params;                                   // flat
  std::map<std::string, std::vector<float>> optimizer_state;   // flat, same length as params
  std::string optimizer_type;
  std::int64_t optimizer_steps = 0;
  std::int64_t epoch = 0;          // epoch to run next (0-based)
  std::int64_t step_in_epoch = 0;  // step within that epoch to run next
  std::int64_t global_step = 0;
  double epoch_loss_sum = 0.0;     // running training loss of the interrupted epoch
  std::int64_t epoch_loss_count = 0;
  std::uint64_t config_hash = 0;
  std::uint64_t seed = 0;
  std::int64_t world_size = 0;
  bool deterministic = false;
  std::string config_yaml;
  std::vector<ParamInfo> layout;  // on load: names and shapes from /params, sorted by name, offset -1
};

void save_checkpoint(const std::string& path, const CheckpointState& state);
CheckpointState load_checkpoint(const std::string& path);

}  // namespace lockstep::io
