// Reading, sharing and writing training checkpoints, and the resume policy (see checkpointing.hpp).
#include "lockstep/train/checkpointing.hpp"

#include <algorithm>
#include <sstream>
#include <tuple>

#include "lockstep/core/log.hpp"

namespace lockstep::train {
namespace {

// The parameters must be this model's, by name and shape, not merely by count.
void check_layout(const std::string& path, const nn::Sequential& model, const io::CheckpointState& st) {
  auto mine = param_layout(model);
  std::sort(mine.begin(), mine.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
  std::ostringstream diff;
  if (mine.size() != st.layout.size()) diff << mine.size() << " tensors in the model, " << st.layout.size() << " saved";
  for (std::size_t i = 0; diff.str().empty() && i < mine.size(); ++i) {
    if (mine[i].name != st.layout[i].name || mine[i].shape != st.layout[i].shape) {
      diff << "the model has " << mine[i].name << " " << shape_str(mine[i].shape) << ", the checkpoint "
           << st.layout[i].name << " " << shape_str(st.layout[i].shape);
    }
  }
  auto buffers = buffer_layout(model);
  std::sort(buffers.begin(), buffers.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
  if (diff.str().empty() && !buffers.empty() && st.buffer_layout.empty())
    diff << "the model has " << buffers.size() << " buffers (" << buffers[0].name
         << ", ...), the checkpoint none (no /buffers group)";
  for (std::size_t i = 0; diff.str().empty() && i < buffers.size(); ++i) {
    if (i >= st.buffer_layout.size() || buffers[i].name != st.buffer_layout[i].name ||
        buffers[i].shape != st.buffer_layout[i].shape)
      diff << "the model has buffer " << buffers[i].name << " " << shape_str(buffers[i].shape) << ", the checkpoint "
           << (i < st.buffer_layout.size() ? st.buffer_layout[i].name + " " + shape_str(st.buffer_layout[i].shape)
                                           : std::string("no more buffers"));
  }
  if (diff.str().empty() && st.buffer_layout.size() > buffers.size())
    diff << "the checkpoint has buffer " << st.buffer_layout[buffers.size()].name << ", the model has none such";
  if (!diff.str().empty())
    throw CheckpointError(path + ": written for a different model: " + diff.str() + " (check model.layers)");
}

// Rank 0 reads the first of `paths` that loads: a damaged or missing one is a warning naming it
// when an older generation follows, else the error. Returns the state; `chosen` is its path.
io::CheckpointState read_first_intact(const std::vector<std::string>& paths, std::string& chosen) {
  std::string newest_error;
  for (std::size_t i = 0;; ++i) {
    try {
      io::CheckpointState st = io::load_checkpoint(paths[i]);
      chosen = paths[i];
      return st;
    } catch (const CheckpointError& e) {
      if (i + 1 == paths.size()) {
        if (i == 0) throw;
        throw CheckpointError(newest_error + " (and no older checkpoint is intact; the oldest: " + e.what() + ")");
      }
      if (i == 0) newest_error = e.what();
      log::warn(std::string(e.what()) + "; using the previous checkpoint " + paths[i + 1] + " instead");
    }
  }
}

// Rank 0 reads the checkpoint (with `fallback`, the newest intact generation of it); every rank
// receives it and the path it came from. A failure on rank 0 is everyone's error.
io::CheckpointState read_and_share(comm::Communicator& comm, const std::string& path, const nn::Sequential& model,
                                   bool fallback, std::string& chosen) {
  io::CheckpointState st;
  comm.collectively([&] {
    if (comm.rank() != 0) return;
    st = read_first_intact(fallback ? io::checkpoint_generations(path) : std::vector<std::string>{path}, chosen);
    check_layout(chosen, model, st);
  });
  comm.broadcast(chosen, 0);
  std::uint64_t sizes[3] = {st.params.size(), st.optimizer_state.size(), st.buffers.size()};
  comm.broadcast(sizes, sizeof sizes, 0);
  st.params.resize(sizes[0]);
  comm.broadcast(st.params.data(), st.params.size() * sizeof(float), 0);
  st.buffers.resize(sizes[2]);
  if (sizes[2] > 0) comm.broadcast(st.buffers.data(), st.buffers.size() * sizeof(float), 0);
  std::vector<std::string> keys;
  for (auto& kv : st.optimizer_state) keys.push_back(kv.first);
  keys.resize(sizes[1]);
  for (std::size_t i = 0; i < sizes[1]; ++i) {
    comm.broadcast(keys[i], 0);
    auto& buf = st.optimizer_state[keys[i]];
    buf.resize(sizes[0]);
    comm.broadcast(buf.data(), buf.size() * sizeof(float), 0);
  }
  std::int64_t ints[7] = {st.optimizer_steps,  st.epoch,      st.step_in_epoch, st.global_step,
                          st.epoch_loss_count, st.world_size, st.deterministic};
  comm.broadcast(ints, sizeof ints, 0);
  st.optimizer_steps = ints[0];
  st.epoch = ints[1];
  st.step_in_epoch = ints[2];
  st.global_step = ints[3];
  st.epoch_loss_count = ints[4];
  st.world_size = ints[5];
  st.deterministic = ints[6] != 0;
  comm.broadcast(st.epoch_loss_sum, 0);
  comm.broadcast(st.config_hash, 0);
  comm.broadcast(st.seed, 0);
  comm.broadcast(st.optimizer_type, 0);
  comm.broadcast(st.config_yaml, 0);
  return st;
}

// The keys of `now` that a resumed run may not change from `old`.
std::vector<std::string> resume_conflicts(const io::Config& old, const io::Config& now) {
  std::vector<std::string> changed;
  auto check = [&](const char* key, const auto& a, const auto& b) {
    if (!(a == b)) changed.push_back(key);
  };
  check("training.batch_size", old.training.batch_size, now.training.batch_size);
  check("training.seed", old.training.seed, now.training.seed);
  check("training.deterministic", old.training.deterministic, now.training.deterministic);
  check("training.loss", old.training.loss, now.training.loss);
  if (now.training.deterministic) check("training.micro_batch", old.training.micro_batch, now.training.micro_batch);
  check("data.format", old.data.format, now.data.format);
  check("data.train.features", old.data.train.features, now.data.train.features);
  check("data.train.labels", old.data.train.labels, now.data.train.labels);
  // The format's parameters are text (data/'s sources give them meaning): compared as written.
  const auto param = [](const io::DataConfig& d, const std::string& name) {
    const auto it = d.params.find(name);
    return it == d.params.end() ? std::vector<std::string>{} : it->second.values;
  };
  check("data.scale", param(old.data, "scale"), param(now.data, "scale"));
  check("optimizer.type", old.optimizer.type, now.optimizer.type);
  if (now.data.format == "synthetic") {
    for (const char* k :
         {"synthetic.samples", "synthetic.features", "synthetic.classes", "synthetic.seed", "synthetic.noise"})
      if (param(old.data, k) != param(now.data, k)) {
        changed.push_back("data.synthetic");
        break;
      }
  }
  return changed;
}

}  // namespace

namespace {

io::CheckpointState load_into(comm::Communicator& comm, const std::string& path, nn::Sequential& model, bool fallback,
                              std::string& chosen) {
  io::CheckpointState st = read_and_share(comm, path, model, fallback, chosen);
  LOCKSTEP_CHECK(static_cast<std::int64_t>(st.params.size()) == model.num_params(), CheckpointError, path, ": holds ",
                 st.params.size(), " parameters, the configured model has ", model.num_params(),
                 " (was it written for a different model?)");
  model.flat_params().copy_from(Tensor::borrow(st.params.data(), {static_cast<std::int64_t>(st.params.size())}));
  // check_layout made the buffers this model's on rank 0, so the sizes agree.
  if (model.num_buffers() > 0)
    model.flat_buffers().copy_from(Tensor::borrow(st.buffers.data(), {static_cast<std::int64_t>(st.buffers.size())}));
  return st;
}

// The position must be one this run has: a step inside an epoch, the configured seed.
void check_position(comm::Communicator& comm, const std::string& path, const io::CheckpointState& st,
                    const TrainerOptions& o, std::int64_t steps_per_epoch) {
  comm.collectively([&] {
    LOCKSTEP_CHECK(st.step_in_epoch < steps_per_epoch, CheckpointError, path,
                   ": attribute step_in_epoch: expected an integer in [0, ", steps_per_epoch - 1,
                   "] (an epoch has ", steps_per_epoch, " steps at this batch size and data), found ", st.step_in_epoch);
    LOCKSTEP_CHECK(st.seed == o.training.seed, CheckpointError, path, ": attribute seed: ", io::hex64(st.seed),
                   ", but training.seed is ", io::hex64(o.training.seed), " (resume with the seed that wrote it)");
  });
}

}  // namespace

io::CheckpointState load_parameters(comm::Communicator& comm, const std::string& path, nn::Sequential& model) {
  std::string chosen;
  return load_into(comm, path, model, false, chosen);
}

std::vector<std::string> checkpoint_class_names(comm::Communicator& comm, const std::string& path) {
  std::vector<std::string> names;
  comm.collectively([&] {
    if (comm.rank() == 0) names = io::read_checkpoint_class_names(path);
  });
  std::string wire;  // one name a line (a name has no newline)
  for (const auto& n : names) wire += n + "\n";
  comm.broadcast(wire, 0);
  names.clear();
  for (std::size_t pos = 0, end; (end = wire.find('\n', pos)) != std::string::npos; pos = end + 1)
    names.push_back(wire.substr(pos, end - pos));
  return names;
}

void save_training_checkpoint(comm::Communicator& comm, const std::string& path, const nn::Sequential& model,
                              nn::Optimizer& optimizer, const TrainingPosition& pos, const TrainerOptions& o) {
  // The running loss is a sum over ranks; only rank 0 writes, so agree on it first.
  double sums[2] = {pos.loss_sum, static_cast<double>(pos.loss_count)};
  comm.allreduce(std::span<double>(sums, 2), comm::ReduceOp::kSum);
  comm.collectively([&] {
    if (comm.rank() != 0) return;
    io::CheckpointState st;
    auto host = [](const Tensor& t) {
      const Tensor h = t.device() == Device::kCpu ? t : t.clone(Device::kCpu);
      return std::vector<float>(h.data<float>(), h.data<float>() + h.numel());
    };
    st.params = host(const_cast<nn::Sequential&>(model).flat_params());
    for (auto& [name, tensor] : optimizer.state()) st.optimizer_state[name] = host(*tensor);
    st.optimizer_type = o.optimizer.type;
    st.optimizer_steps = optimizer.steps();
    st.epoch = pos.epoch;
    st.step_in_epoch = pos.step_in_epoch;
    st.global_step = pos.global_step;
    st.epoch_loss_sum = sums[0];
    st.epoch_loss_count = static_cast<std::int64_t>(sums[1]);
    st.config_hash = o.run_hash;
    st.seed = o.training.seed;
    st.world_size = comm.size();
    st.deterministic = o.training.deterministic;
    st.config_yaml = o.run_yaml;
    st.class_names = o.class_names;
    st.input_shape = model.input_shape();
    st.layout = param_layout(model);
    st.buffers = host(const_cast<nn::Sequential&>(model).flat_buffers());
    st.buffer_layout = buffer_layout(model);
    io::rotate_checkpoints(path, o.checkpoint.keep);
    io::save_checkpoint(path, st);
  });
}

TrainingPosition resume_training(comm::Communicator& comm, const std::string& newest, nn::Sequential& model,
                                 nn::Optimizer& optimizer, const TrainerOptions& o, std::int64_t steps_per_epoch) {
  std::string path;
  io::CheckpointState st = load_into(comm, newest, model, true, path);
  check_position(comm, path, st, o, steps_per_epoch);
  comm.collectively([&] {
    LOCKSTEP_CHECK(st.optimizer_type == o.optimizer.type, CheckpointError, path, ": optimizer \"", st.optimizer_type,
                   "\" in the checkpoint, \"", o.optimizer.type, "\" in the config");
  });
  for (auto& [name, tensor] : optimizer.state()) {
    auto it = st.optimizer_state.find(name);
    comm.collectively([&] {
      LOCKSTEP_CHECK(it != st.optimizer_state.end(), CheckpointError, path, ": optimizer state \"", name,
                     "\" is missing");
      LOCKSTEP_CHECK(static_cast<std::int64_t>(it->second.size()) == tensor->numel(), CheckpointError, path,
                     ": optimizer state \"", name, "\" holds ", it->second.size(), " values, this model has ",
                     tensor->numel(), " trainable parameters (did a layer's trainable flag change?)");
    });
    tensor->copy_from(Tensor::borrow(it->second.data(), {static_cast<std::int64_t>(it->second.size())}));
  }
  optimizer.set_steps(st.optimizer_steps);
  if (st.config_hash != o.run_hash) {
    const auto changed =
        resume_conflicts(io::parse_config(st.config_yaml, path + ":/config"), io::parse_config(o.run_yaml, o.source));
    if (!changed.empty()) {
      std::string keys;
      for (const auto& k : changed) keys += (keys.empty() ? "" : ", ") + k;
      throw_agreed<CheckpointError>(path + ": cannot resume: the config differs from the checkpoint's in " + keys +
                                    " (start a new run in another output.dir, or restore those keys)");
    }
    log::info("note: " + path + " was written with a different config (hash " + io::hex64(st.config_hash) + ", now " +
              io::hex64(o.run_hash) + "); the keys that matter for resuming agree, continuing");
  }
  if (st.world_size != comm.size() && !o.training.deterministic) {
    log::info("note: the checkpoint was written by " + std::to_string(st.world_size) + " ranks, this run has " +
              std::to_string(comm.size()) + "; results match an uninterrupted run only up to rounding");
  }
  log::info("resumed from " + path + " at epoch " + std::to_string(st.epoch + 1) + ", step " +
            std::to_string(st.step_in_epoch) + " (global step " + std::to_string(st.global_step) + ")");
  const bool first = comm.rank() == 0;
  return {st.epoch, st.step_in_epoch, st.global_step, first ? st.epoch_loss_sum : 0.0, first ? st.epoch_loss_count : 0};
}

}  // namespace lockstep::train
