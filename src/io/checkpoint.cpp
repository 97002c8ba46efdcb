// Checkpoints in HDF5. Layout (format_version 1; see docs/checkpoint-format.md):
//   /                       attributes: format, format_version, epoch, step_in_epoch, global_step,
//                           optimizer_steps, optimizer, seed, config_hash, world_size,
//                           deterministic, epoch_loss_sum, epoch_loss_count, config (YAML)
//   /params/<name>          each parameter with its own shape, e.g. /params/dense0.weight [784, 256]
//   /flat/params            the flat buffer the trainer uses (float32)
//   /flat/optimizer/<state> optimizer state in the flat layout (velocity, exp_avg, exp_avg_sq)
// Written through an io::AtomicFile (a temporary of this process, fsynced, renamed): a reader sees
// the old file or the new one, never half.
#include "lockstep/io/checkpoint.hpp"

#include <filesystem>

#include "detail/hdf5.hpp"
#include "lockstep/io/atomic_file.hpp"
#include "lockstep/io/config.hpp"

namespace lockstep::io {
void save_checkpoint(const std::string& path, const CheckpointState& st) {
  AtomicFile out(path);  // removes the temporary if anything below fails
  {
    auto f = detail::H5File::create(out.temp(), /*exclusive=*/true);
    out.created();
    f.set_attr("/", "format", "lockstep-checkpoint");
    f.set_attr("/", "format_version", CheckpointState::kFormatVersion);
    f.set_attr("/", "epoch", st.epoch);
    f.set_attr("/", "step_in_epoch", st.step_in_epoch);
    f.set_attr("/", "global_step", st.global_step);
    f.set_attr("/", "optimizer_steps", st.optimizer_steps);
    f.set_attr("/", "optimizer", st.optimizer_type);
    f.set_attr("/", "seed", hex64(st.seed));
    f.set_attr("/", "config_hash", hex64(st.config_hash));
    f.set_attr("/", "world_size", st.world_size);
    f.set_attr("/", "deterministic", static_cast<std::int64_t>(st.deterministic));
    f.set_attr("/", "epoch_loss_sum", st.epoch_loss_sum);
    f.set_attr("/", "epoch_loss_count", st.epoch_loss_count);
    f.set_attr("/", "config", st.config_yaml);
    f.create_group("/params");
    for (const auto& p : st.layout) {
      f.write("/params/" + p.name, st.params.data() + p.offset, p.shape);
    }
    f.create_group("/flat/optimizer");
    f.write("/flat/params", st.params.data(), {static_cast<std::int64_t>(st.params.size())});
    for (const auto& [name, buf] : st.optimizer_state) {
      f.write("/flat/optimizer/" + name, buf.data(), {static_cast<std::int64_t>(buf.size())});
    }
    f.flush();
    f.close();
  }
  out.commit();
}

CheckpointState load_checkpoint(const std::string& path) {
  if (!std::filesystem::exists(path)) throw CheckpointError(path + ": no such checkpoint file");
  CheckpointState st;
  try {
    auto f = detail::H5File::open_read(path);
    if (!f.has_attr("/", "format") || f.attr_string("/", "format") != "lockstep-checkpoint")
      throw CheckpointError(path + ": not a lockstep checkpoint (attribute /format is missing or different)");
    const auto version = f.attr_int("/", "format_version");
    if (version != CheckpointState::kFormatVersion)
      throw CheckpointError(path + ": checkpoint format_version " + std::to_string(version) + ", this lockstep reads " +
                            std::to_string(CheckpointState::kFormatVersion));
    st.epoch = f.attr_int("/", "epoch");
    st.step_in_epoch = f.attr_int("/", "step_in_epoch");
    st.global_step = f.attr_int("/", "global_step");
    st.optimizer_steps = f.attr_int("/", "optimizer_steps");
    st.optimizer_type = f.attr_string("/", "optimizer");
    st.seed = std::stoull(f.attr_string("/", "seed"), nullptr, 16);
    st.config_hash = std::stoull(f.attr_string("/", "config_hash"), nullptr, 16);
    st.world_size = f.attr_int("/", "world_size");
    st.deterministic = f.attr_int("/", "deterministic") != 0;
    st.epoch_loss_sum = f.attr_double("/", "epoch_loss_sum");
    st.epoch_loss_count = f.attr_int("/", "epoch_loss_count");
    st.config_yaml = f.attr_string("/", "config");
    st.params = f.read<float>("/flat/params");
    // Names and shapes of the parameters (offsets are the flat layout's business: -1 here).
    for (const auto& name : f.list("/params")) st.layout.push_back({name, f.shape("/params/" + name), -1});
    for (const auto& name : f.list("/flat/optimizer")) {
      st.optimizer_state[name] = f.read<float>("/flat/optimizer/" + name);
      if (st.optimizer_state[name].size() != st.params.size())
        throw CheckpointError(path + ": /flat/optimizer/" + name + " has " +
                              std::to_string(st.optimizer_state[name].size()) + " values, expected " +
                              std::to_string(st.params.size()));
    }
  } catch (const IoError& e) {
    throw CheckpointError(std::string("cannot read checkpoint: ") + e.what());
  } catch (const std::logic_error& e) {  // std::stoull: invalid_argument or out_of_range
    throw CheckpointError(path + ": attribute seed or config_hash is not a 64-bit hex number (" + e.what() + ")");
  }
  return st;
}

}  // namespace lockstep::io
