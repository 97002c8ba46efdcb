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

// The attribute beside every dataset of a checkpoint: the CRC-32 (zlib's) of its bytes as stored.
inline constexpr const char* kChecksumAttribute = "crc32";

struct CheckpointState {
  // 2: every dataset carries a crc32 attribute and the root an attributes_crc32. Version 1 files
  // (no checksums) are still read, unverified, with a warning.
  static constexpr std::int64_t kFormatVersion = 2;
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
  std::int64_t world_size = 1;  // ranks that wrote it (at least one)
  bool deterministic = false;
  std::string config_yaml;
  std::vector<ParamInfo> layout;  // on load: names and shapes from /params, sorted by name, offset -1
  // Non-trainable state (batch norm's running statistics): /flat/buffers and /buffers/<name>, an
  // optional group (absent when the model has none, and in files written before it existed).
  std::vector<float> buffers;
  std::vector<ParamInfo> buffer_layout;  // on load: names and shapes from /buffers, sorted, offset -1
  // The training data's class names (image_folder's class folders), what output k means; empty for
  // sources whose labels are numbers. The optional root attribute class_names, one name a line.
  std::vector<std::string> class_names;
  // The model's per-sample input shape ({784}, {1, 28, 28}), so that a checkpoint alone rebuilds its
  // network (init_from, export, featurizers). The optional root attribute input_shape, "1,28,28";
  // empty in files written before it existed.
  Shape input_shape;
  bool checksummed = true;        // on load: false for a version 1 file, whose contents were not verified
};

void save_checkpoint(const std::string& path, const CheckpointState& state);
// Only the class_names attribute (empty when the file has none), before the model is built; the
// whole file is verified when it is loaded.
std::vector<std::string> read_checkpoint_class_names(const std::string& path);
// Checks the format, every counter's range (a CheckpointError naming the file, the attribute, the
// range and the value), every dataset's size against the file's and its checksum (naming the
// dataset), and that /params and /flat agree in size.
CheckpointState load_checkpoint(const std::string& path);
// Whether `path` is an HDF5 file whose root says format "lockstep-checkpoint" (false for anything
// else: a pipeline model, an ONNX file, a missing file). Reads only the signature and one attribute.
bool is_checkpoint_file(const std::string& path);

// The i-th older generation kept beside `path`: runs/x/checkpoint.h5 -> runs/x/checkpoint.<i>.h5.
std::string rotated_checkpoint_path(const std::string& path, std::int64_t i);
// Before a new checkpoint replaces `path`: shifts checkpoint.<i>.h5 to <i+1> for i < keep - 1 and
// keeps the current `path` as checkpoint.1.h5 (a hard link, so `path` stays valid until it is
// replaced), so that with the new one `keep` generations exist; removes generations >= keep.
void rotate_checkpoints(const std::string& path, std::int64_t keep);
// `path` followed by the older generations that exist (checkpoint.1.h5, checkpoint.2.h5, ...).
std::vector<std::string> checkpoint_generations(const std::string& path);

}  // namespace lockstep::io
