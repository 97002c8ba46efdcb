// The data-parallel training loop (see trainer.hpp for the story in brief).
#include "lockstep/train/trainer.hpp"

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <sstream>
#include <tuple>

#include "lockstep/backend/cuda_runtime.hpp"
#include "lockstep/backend/ops.hpp"
#include "lockstep/comm/gradient_buckets.hpp"
#include "lockstep/comm/nccl_communicator.hpp"
#include "lockstep/core/log.hpp"
#include "lockstep/core/rng.hpp"
#include "lockstep/train/progress.hpp"
#include "lockstep/train/schedule.hpp"

namespace lockstep::train {
namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// Fills x (rows x features), labels and ids from examples.
void fill_batch(const std::vector<const data::Example*>& rows, std::size_t begin, std::size_t count,
                const std::vector<std::int64_t>& positions, Tensor& x, Tensor& y, std::vector<std::int64_t>& ids) {
  const std::int64_t f = x.dim(1);
  float* px = x.data<float>();
  float* py = y.data<float>();
  ids.resize(count);
  for (std::size_t i = 0; i < count; ++i) {
    const data::Example& e = *rows[begin + i];
    LOCKSTEP_CHECK(static_cast<std::int64_t>(e.features.size()) == f, DataError, "training row at epoch position ",
                   positions[begin + i], ": expected ", f, " features, got ", e.features.size());
    std::copy(e.features.begin(), e.features.end(), px + static_cast<std::int64_t>(i) * f);
    py[i] = e.label;
    ids[i] = positions[begin + i];
  }
}

// What the loss compares the output with, on the output's device: the class indices themselves
// (cross-entropy) or their one-hot rows (the dense losses). labels is on the host.
Tensor loss_target(nn::LossKind loss, const Tensor& labels, std::int64_t rows, std::int64_t k, Device device) {
  Tensor t = labels.rows(0, rows);
  if (!nn::loss_takes_class_index(loss)) {
    Tensor dense({rows, k});
    nn::one_hot(labels, rows, dense);
    t = dense;
  }
  return device == Device::kCpu ? t : t.clone(device);
}

std::string json_number(double v) {
  if (!std::isfinite(v)) return "null";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.9g", v);
  return buf;
}

}  // namespace

std::unique_ptr<nn::Sequential> build_model(const io::Config& cfg, std::int64_t input_features) {
  std::vector<nn::LayerSpec> specs;
  for (const auto& l : cfg.model.layers) specs.push_back({l.type, l.units, l.rate, l.bias});
  auto model = std::make_unique<nn::Sequential>(input_features, specs);
  const auto dtype = [](const std::string& p) { return p == "bf16" ? DType::kBF16 : DType::kF32; };
  model->set_precision(dtype(cfg.training.precision), dtype(cfg.training.reduce_precision));
  return model;
}

std::vector<io::ParamInfo> param_layout(const nn::Sequential& model) {
  std::vector<io::ParamInfo> out;
  for (const auto& p : model.parameters()) out.push_back({p.name, p.value.shape(), p.offset});
  return out;
}

void forward_rows(nn::Sequential& model, const std::vector<data::Example>& rows, std::int64_t chunk,
                  const std::function<void(std::int64_t, std::int64_t, const Tensor&, const Tensor&)>& fn) {
  const std::int64_t n = static_cast<std::int64_t>(rows.size());
  const std::int64_t f = model.input_features();
  Tensor x({chunk, f}), y({chunk});
  Tensor xd = model.device() == Device::kCpu ? x : Tensor({chunk, f}, DType::kF32, model.device());
  Tensor out_f32;  // bf16 models: the outputs handed on in float32
  for (std::int64_t b = 0; b < n; b += chunk) {
    const std::int64_t m = std::min(chunk, n - b);
    if (m < chunk) {
      x.zero_();
      y.zero_();
    }
    for (std::int64_t i = 0; i < m; ++i) {
      const auto& e = rows[static_cast<std::size_t>(b + i)];
      LOCKSTEP_CHECK(static_cast<std::int64_t>(e.features.size()) == f, DataError, "row ", b + i, " of this rank has ",
                     e.features.size(), " features, the model expects ", f);
      std::copy(e.features.begin(), e.features.end(), x.data<float>() + i * f);
      y.data<float>()[i] = e.label;
    }
    if (xd.raw() != x.raw()) xd.copy_from(x);
    const Tensor& out = model.forward(xd, nn::ForwardContext{});
    if (out.dtype() == DType::kF32) {
      fn(b, m, out, y);
    } else {
      if (!out_f32.defined()) out_f32 = Tensor(out.shape(), DType::kF32, out.device());
      backend::cast(out, out_f32);
      fn(b, m, out_f32, y);
    }
  }
}

EvalResult evaluate(comm::Communicator& comm, nn::Sequential& model, nn::LossKind loss, const Dataset& data,
                    std::int64_t eval_batch) {
  const auto& rows = local_rows(data);
  double sums[3] = {0.0, 0.0, 0.0};  // loss, correct, rows
  std::optional<std::string> err;
  try {
    forward_rows(model, rows, eval_batch, [&](std::int64_t, std::int64_t m, const Tensor& full, const Tensor& labels) {
      const Tensor out = full.rows(0, m);
      const Tensor target = loss_target(loss, labels, m, out.dim(1), out.device());
      const auto r = nn::compute_loss(loss, out, target, 1.0f, nullptr);
      sums[0] += r.loss;
      sums[1] += static_cast<double>(r.correct);
      sums[2] += static_cast<double>(m);
    });
  } catch (const std::exception& e) {
    err = data.description + ": " + e.what();
  }
  comm.agree(err);
  comm.allreduce(std::span<double>(sums, 3), comm::ReduceOp::kSum);
  EvalResult res;
  res.rows = static_cast<std::int64_t>(sums[2]);
  res.loss = sums[2] > 0 ? sums[0] / sums[2] : 0.0;
  res.accuracy = sums[2] > 0 ? sums[1] / sums[2] : 0.0;
  return res;
}

namespace {
// Rank 0 reads the checkpoint; every rank receives it. A failure on rank 0 is everyone's error.
io::CheckpointState read_and_share(comm::Communicator& comm, const std::string& path, const nn::Sequential& model) {
  io::CheckpointState st;
  comm.collectively([&] {
    if (comm.rank() != 0) return;
    st = io::load_checkpoint(path);
    // The parameters must be this model's, by name and shape, not merely by count.
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
    if (!diff.str().empty())
      throw CheckpointError(path + ": written for a different model: " + diff.str() + " (check model.layers)");
  });
  std::uint64_t sizes[2] = {st.params.size(), st.optimizer_state.size()};
  comm.broadcast(sizes, sizeof sizes, 0);
  st.params.resize(sizes[0]);
  comm.broadcast(st.params.data(), st.params.size() * sizeof(float), 0);
  std::vector<std::string> keys;
  for (auto& kv : st.optimizer_state) keys.push_back(kv.first);
  keys.resize(sizes[1]);
  for (std::size_t i = 0; i < sizes[1]; ++i) {
    comm.broadcast(keys[i], 0);
    auto& buf = st.optimizer_state[keys[i]];
    buf.resize(sizes[0]);
    comm.broadcast(buf.data(), buf.size() * sizeof(float), 0);
  }
  std::int64_t ints[7] = {st.optimizer_steps, st.epoch, st.step_in_epoch, st.global_step,
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
}  // namespace

io::CheckpointState load_parameters(comm::Communicator& comm, const std::string& path, nn::Sequential& model) {
  io::CheckpointState st = read_and_share(comm, path, model);
  LOCKSTEP_CHECK(static_cast<std::int64_t>(st.params.size()) == model.num_params(), CheckpointError, path,
                 ": holds ", st.params.size(), " parameters, the configured model has ", model.num_params(),
                 " (was it written for a different model?)");
  model.flat_params().copy_from(Tensor::borrow(st.params.data(), {static_cast<std::int64_t>(st.params.size())}));
  return st;
}

struct Trainer::Impl {
  Impl(Dataset tr, Dataset te) : train(std::move(tr)), test(std::move(te)) {}
  Dataset train, test;
  nn::LossKind loss{};
  std::unique_ptr<nn::Optimizer> opt;
  std::unique_ptr<comm::Communicator> nccl;  // device: cuda only
  double grad_scale = 1.0;                   // multiplies the reduced gradients in the update
  std::unique_ptr<comm::GradientBuckets> buckets;
  std::unique_ptr<comm::ExactGradientSum> exact;
  std::optional<data::Partitioned<std::pair<std::int64_t, data::Example>>> indexed;
  std::int64_t batch = 0, local_batch = 0, steps_per_epoch = 0;
  std::int64_t start_epoch = 0, start_step = 0, global_step = 0, max_steps = 0;
  double resume_loss_sum = 0.0;
  std::int64_t resume_loss_count = 0;
  std::uint64_t hash = 0;
  std::unique_ptr<Progress> progress;
  // Node-local mode: parameters, optimizer state and every rank's gradients in one shared window.
  bool use_shm = false;
  std::unique_ptr<comm::SharedWindow> shm;
  float* shm_grads_base = nullptr;  // rank r's gradients at shm_grads_base + r * stride
  std::int64_t shm_stride = 0;      // floats
  bool stopped = false;
  bool resumed = false;
  // The current epoch's rows on this rank, in step order.
  std::optional<data::Partitioned<std::pair<std::int64_t, data::Example>>> epoch_data;
  std::vector<const data::Example*> epoch_rows;
  std::vector<std::int64_t> epoch_positions;
};

Trainer::Trainer(comm::Communicator& comm, io::Config cfg, Dataset train, Dataset test)
    : impl_(std::make_unique<Impl>(std::move(train), std::move(test))), comm_(comm), cfg_(std::move(cfg)) {
  auto& m = *impl_;
  const auto& t = cfg_.training;
  const int np = comm_.size();
  comm_.collectively([&] {
    if (t.device == "cuda") {
      // One rank per GPU, chosen by node-local rank: say exactly what is missing, on every rank.
      LOCKSTEP_CHECK(backend::cuda::built(), ConfigError, cfg_.source,
                     ": training.device: \"cuda\" needs the CUDA backend, which this build does not have "
                     "(see `lockstep info`); use device: cpu");
      const int gpus = backend::cuda::device_count();
      LOCKSTEP_CHECK(gpus > 0, ConfigError, cfg_.source, ": training.device: \"cuda\", but rank ", comm_.rank(),
                     " on host ", comm_.host_name(), " sees no CUDA device (", backend::cuda::runtime_info().error,
                     "; CUDA_VISIBLE_DEVICES=", std::getenv("CUDA_VISIBLE_DEVICES") ? std::getenv("CUDA_VISIBLE_DEVICES")
                                                                                   : "unset", ")");
      LOCKSTEP_CHECK(comm_.local_size() <= gpus, ConfigError, cfg_.source, ": training.device: \"cuda\" with ",
                     comm_.local_size(), " ranks on host ", comm_.host_name(), " but only ", gpus,
                     " GPUs there; start one rank per GPU (e.g. srun --gpus-per-task=1)");
      backend::cuda::init_device(comm_.local_rank());  // one rank per GPU, by node-local rank
    }
    LOCKSTEP_CHECK(t.batch_size % np == 0, ConfigError, cfg_.source, ": training.batch_size: ", t.batch_size,
                   " is not divisible by the number of ranks (", np, "); every rank takes batch_size / np rows");
    if (t.deterministic) {
      LOCKSTEP_CHECK((t.batch_size / np) % t.micro_batch == 0, ConfigError, cfg_.source, ": training.micro_batch: ",
                     t.micro_batch, " does not divide the per-rank batch ", t.batch_size / np, " (batch_size ",
                     t.batch_size, " / ", np, " ranks); deterministic mode needs micro-batches of one fixed size");
    }
    m.loss = nn::parse_loss(t.loss);
    if (t.reduce_precision == "bf16") {
      LOCKSTEP_CHECK(t.precision == "bf16", ConfigError, cfg_.source,
                     ": training.reduce_precision: bf16 gradients need training.precision: bf16");
      LOCKSTEP_CHECK(t.device == "cuda" && !t.deterministic, ConfigError, cfg_.source,
                     ": training.reduce_precision: bf16 gradients are reduced by NCCL, so they need device: cuda and "
                     "deterministic: false (MPI has no bfloat16 sum, and the exact sum is float32)");
    }
  });
  m.batch = t.batch_size;
  m.local_batch = t.batch_size / np;
  m.steps_per_epoch = m.train.num_rows / m.batch;
  comm_.collectively([&] {
    LOCKSTEP_CHECK(m.steps_per_epoch > 0, ConfigError, cfg_.source, ": training.batch_size: ", t.batch_size,
                   " is larger than the training set (", m.train.num_rows, " rows)");
    model_ = build_model(cfg_, m.train.num_features);
    // Every loss takes class labels (the dense ones through a one-hot encoding).
    LOCKSTEP_CHECK(m.train.num_classes <= model_->output_features(), ConfigError, cfg_.source,
                   ": model.layers: the last layer has ", model_->output_features(), " outputs but the labels of ",
                   m.train.description, " go up to ", m.train.num_classes - 1, " (expected ", m.train.num_classes,
                   " outputs)");
  });
  // Rank 0 initialises, everyone receives: replicas start identical by construction.
  if (comm_.rank() == 0) model_->initialize(t.seed, nn::parse_init(cfg_.model.init));
  comm_.broadcast(model_->flat_params().raw(), model_->flat_params().bytes(), 0);

  const auto& o = cfg_.optimizer;
  m.opt = nn::make_optimizer({o.type, o.lr, o.momentum, o.nesterov, o.weight_decay, o.beta1, o.beta2, o.eps},
                             model_->num_params());
  comm::Communicator* grad_comm = &comm_;
  if (t.device == "cuda") {
    // The replica lives on this rank's GPU; gradient buckets are reduced by NCCL on its own stream.
    model_->to(Device::kCuda);
    for (auto& [name, tensor] : m.opt->state()) *tensor = tensor->clone(Device::kCuda);
    m.nccl = comm::make_nccl(comm_, comm_.local_rank());
    grad_comm = m.nccl.get();
  }
  std::vector<std::pair<std::int64_t, std::int64_t>> ranges;
  for (const auto& p : model_->parameters()) ranges.emplace_back(p.offset, p.offset + p.value.numel());
  // MPI buckets sum and the update divides by np on the way in (one pass fewer over the buffer);
  // NCCL averages in the reduction itself (ncclAvg), which also keeps bf16 sums in range.
  m.grad_scale = m.nccl ? 1.0 : 1.0 / np;
  m.buckets = std::make_unique<comm::GradientBuckets>(
      *grad_comm, model_->num_params(), ranges, static_cast<std::size_t>(t.bucket_mb * 1024 * 1024), t.overlap,
      m.nccl ? comm::ReduceOp::kAvg : comm::ReduceOp::kSum,
      model_->grad_dtype() == DType::kBF16 ? comm::CommType::kBF16 : comm::CommType::kF32);
  if (t.deterministic) m.exact = std::make_unique<comm::ExactGradientSum>(model_->num_params());
  m.use_shm = !t.deterministic && t.shared_memory && np > 1 && comm_.local_size() == np && t.device == "cpu";
  m.hash = io::config_hash(cfg_);

  m.indexed = m.train.rows.zip_with_index().cache();
  m.train.rows = data::Partitioned<data::Example>::from_local(comm_, {});  // the indexed copy replaces it

  comm_.collectively([&] {
    if (comm_.rank() == 0) std::filesystem::create_directories(cfg_.output.dir);
  });
  m.progress = std::make_unique<Progress>(comm_.rank() == 0, cfg_.output.progress, cfg_.output.log_every_steps);
  if (comm_.rank() == 0) m.progress->set_log_file((std::filesystem::path(cfg_.output.dir) / "train.log").string());
}

Trainer::~Trainer() = default;

bool Trainer::stopped_early() const { return impl_->stopped; }

void Trainer::set_max_steps(std::int64_t steps) { impl_->max_steps = steps; }

std::string Trainer::checkpoint_path() const {
  return (std::filesystem::path(cfg_.output.dir) / "checkpoint.h5").string();
}

void Trainer::resume_from(const std::string& path) {
  auto& m = *impl_;
  io::CheckpointState st = load_parameters(comm_, path, *model_);
  comm_.collectively([&] {
    LOCKSTEP_CHECK(st.optimizer_type == cfg_.optimizer.type, CheckpointError, path, ": optimizer \"",
                   st.optimizer_type, "\" in the checkpoint, \"", cfg_.optimizer.type, "\" in the config");
  });
  auto state = m.opt->state();
  for (auto& [name, tensor] : state) {
    auto it = st.optimizer_state.find(name);
    comm_.collectively([&] {
      LOCKSTEP_CHECK(it != st.optimizer_state.end(), CheckpointError, path, ": optimizer state \"", name,
                     "\" is missing");
    });
    tensor->copy_from(Tensor::borrow(it->second.data(), {static_cast<std::int64_t>(it->second.size())}));
  }
  m.opt->set_steps(st.optimizer_steps);
  m.start_epoch = st.epoch;
  m.start_step = st.step_in_epoch;
  m.resumed = true;
  // metrics.jsonl keeps the epochs the checkpoint has finished; a line written after the
  // checkpoint (the job died between the two) would otherwise appear twice.
  comm_.collectively([&] {
    if (comm_.rank() != 0) return;
    const auto path = std::filesystem::path(cfg_.output.dir) / "metrics.jsonl";
    std::ifstream in(path);
    if (!in) return;
    std::string kept, line;
    while (std::getline(in, line)) {
      const auto at = line.find("\"epoch\":");
      if (at != std::string::npos && std::stoll(line.substr(at + 8)) <= st.epoch) kept += line + '\n';
    }
    in.close();
    io::write_file_atomically(path.string(), kept);
  });
  m.global_step = st.global_step;
  m.resume_loss_sum = comm_.rank() == 0 ? st.epoch_loss_sum : 0.0;
  m.resume_loss_count = comm_.rank() == 0 ? st.epoch_loss_count : 0;
  if (st.config_hash != m.hash) {
    // Keys that decide which rows each step sees, or what the parameters mean, must not change
    // on resume; the rest (epochs, schedule, output, checkpointing) may.
    const io::Config old = io::parse_config(st.config_yaml, path + ":/config");
    std::vector<std::string> changed;
    auto check = [&](const char* key, const auto& a, const auto& b) {
      if (!(a == b)) changed.push_back(key);
    };
    check("training.batch_size", old.training.batch_size, cfg_.training.batch_size);
    check("training.seed", old.training.seed, cfg_.training.seed);
    check("training.deterministic", old.training.deterministic, cfg_.training.deterministic);
    check("training.loss", old.training.loss, cfg_.training.loss);
    if (cfg_.training.deterministic) check("training.micro_batch", old.training.micro_batch, cfg_.training.micro_batch);
    check("data.format", old.data.format, cfg_.data.format);
    check("data.train.features", old.data.train.features, cfg_.data.train.features);
    check("data.train.labels", old.data.train.labels, cfg_.data.train.labels);
    check("data.scale", old.data.scale, cfg_.data.scale);
    check("optimizer.type", old.optimizer.type, cfg_.optimizer.type);
    if (cfg_.data.format == "synthetic") {
      const auto &a = old.data.synthetic, &b = cfg_.data.synthetic;
      check("data.synthetic", std::tie(a.samples, a.features, a.classes, a.seed, a.noise),
            std::tie(b.samples, b.features, b.classes, b.seed, b.noise));
    }
    if (!changed.empty()) {
      std::string keys;
      for (const auto& k : changed) keys += (keys.empty() ? "" : ", ") + k;
      throw_agreed<CheckpointError>(path + ": cannot resume: the config differs from the checkpoint's in " + keys +
                                    " (start a new run in another output.dir, or restore those keys)");
    }
    log::info("note: " + path + " was written with a different config (hash " + io::hex64(st.config_hash) +
              ", now " + io::hex64(m.hash) + "); the keys that matter for resuming agree, continuing");
  }
  if (st.world_size != comm_.size() && !cfg_.training.deterministic) {
    log::info("note: the checkpoint was written by " + std::to_string(st.world_size) + " ranks, this run has " +
              std::to_string(comm_.size()) + "; results match an uninterrupted run only up to rounding");
  }
  log::info("resumed from " + path + " at epoch " + std::to_string(st.epoch + 1) + ", step " +
            std::to_string(st.step_in_epoch) + " (global step " + std::to_string(st.global_step) + ")");
}

void Trainer::setup_shared_window() {
  auto& m = *impl_;
  const int np = comm_.size(), rank = comm_.rank();
  // All ranks on one node: one copy of the parameters and the optimizer state, and each rank's
  // gradients, in a window every rank maps. A step then needs no message: each rank sums its
  // 1/np shard of the gradients across the ranks and applies the optimizer to that shard.
  // Rank 0's values (identical everywhere after the broadcast or resume) seed the window.
  const std::int64_t n = model_->num_params();
  const std::int64_t stride = (n + 15) / 16 * 16;  // 64-byte aligned sub-buffers
  auto state = m.opt->state();
  const std::size_t buffers = 1 + state.size() + static_cast<std::size_t>(np);
  m.shm = comm_.allocate_shared(buffers * static_cast<std::size_t>(stride) * sizeof(float));
  float* base = static_cast<float*>(m.shm->data());
  std::size_t k = 1;
  for (auto& [name, tensor] : state) {
    float* dst = base + k++ * static_cast<std::size_t>(stride);
    if (rank == 0) std::copy(tensor->data<float>(), tensor->data<float>() + n, dst);
    *tensor = Tensor::borrow(dst, {n});
  }
  m.shm_grads_base = base + k * static_cast<std::size_t>(stride);
  m.shm_stride = stride;
  model_->relocate(base, m.shm_grads_base + rank * stride, rank == 0);
  m.shm->fence();
}

void Trainer::save_checkpoint(std::int64_t next_epoch, std::int64_t next_step, double loss_sum,
                              std::int64_t loss_count) {
  auto& m = *impl_;
  const auto& t = cfg_.training;
  const int np = comm_.size(), rank = comm_.rank();
  // The running loss is a sum over ranks; only rank 0 writes, so agree on it first.
  double sums[2] = {loss_sum, static_cast<double>(loss_count)};
  comm_.allreduce(std::span<double>(sums, 2), comm::ReduceOp::kSum);
  comm_.collectively([&] {
    if (rank != 0) return;
    io::CheckpointState st;
    auto host = [](const Tensor& t) {
      const Tensor h = t.device() == Device::kCpu ? t : t.clone(Device::kCpu);
      return std::vector<float>(h.data<float>(), h.data<float>() + h.numel());
    };
    st.params = host(model_->flat_params());
    for (auto& [name, tensor] : m.opt->state()) st.optimizer_state[name] = host(*tensor);
    st.optimizer_type = cfg_.optimizer.type;
    st.optimizer_steps = m.opt->steps();
    st.epoch = next_epoch;
    st.step_in_epoch = next_step;
    st.global_step = m.global_step;
    st.epoch_loss_sum = sums[0];
    st.epoch_loss_count = static_cast<std::int64_t>(sums[1]);
    st.config_hash = m.hash;
    st.seed = t.seed;
    st.world_size = np;
    st.deterministic = t.deterministic;
    st.config_yaml = io::to_yaml(cfg_);
    st.layout = param_layout(*model_);
    io::save_checkpoint(checkpoint_path(), st);
  });
}

// This epoch's rows, moved to the ranks that train on them, in step order.
void Trainer::prepare_epoch(std::int64_t epoch) {
  auto& m = *impl_;
  const auto& t = cfg_.training;
  const int rank = comm_.rank();
  const std::int64_t big_b = m.batch, b = m.local_batch;
  const std::int64_t n = m.train.num_rows, used = m.steps_per_epoch * m.batch;
  std::vector<std::int64_t> order(static_cast<std::size_t>(n));
  std::iota(order.begin(), order.end(), 0);
  CounterRng rng(t.seed, RngStream::kPermutation, static_cast<std::uint64_t>(epoch));
  for (std::int64_t i = n - 1; i > 0; --i) {
    std::swap(order[static_cast<std::size_t>(i)], order[rng.below(static_cast<std::uint64_t>(i + 1))]);
  }
  std::vector<std::int64_t> pos_of(static_cast<std::size_t>(n));
  for (std::int64_t p = 0; p < n; ++p) pos_of[static_cast<std::size_t>(order[static_cast<std::size_t>(p)])] = p;
  // Only rows that change rank travel: the rows this rank keeps are used in place from the
  // cached partition, and rows past the last full batch (not trained on this epoch) are dropped.
  auto owner = [&](std::int64_t global_row) {
    const std::int64_t pos = pos_of[static_cast<std::size_t>(global_row)];
    return pos < used ? static_cast<int>((pos % big_b) / b) : -1;
  };
  m.epoch_rows.clear();
  m.epoch_data.reset();  // free last epoch's rows first, so the allocator reuses their memory
  m.epoch_data = m.indexed->repartition([&](const std::pair<std::int64_t, data::Example>& r) {
    const int dest = owner(r.first);
    return dest == rank ? -1 : dest;
  });
  std::vector<std::pair<std::int64_t, const data::Example*>> arrived;
  arrived.reserve(static_cast<std::size_t>(m.steps_per_epoch * b));
  for (const auto& r : *m.indexed->cached_local()) {
    if (owner(r.first) == rank) arrived.emplace_back(pos_of[static_cast<std::size_t>(r.first)], &r.second);
  }
  for (const auto& r : *m.epoch_data->cached_local()) {
    arrived.emplace_back(pos_of[static_cast<std::size_t>(r.first)], &r.second);
  }
  std::sort(arrived.begin(), arrived.end(),
            [](const auto& a, const auto& c) { return a.first < c.first; });
  m.epoch_positions.clear();
  for (const auto& [pos, row] : arrived) {
    m.epoch_rows.push_back(row);
    m.epoch_positions.push_back(pos);
  }
  LOCKSTEP_CHECK(static_cast<std::int64_t>(m.epoch_rows.size()) == m.steps_per_epoch * b, Error,
                 "epoch shuffle delivered ", m.epoch_rows.size(), " rows to rank ", rank, ", expected ",
                 m.steps_per_epoch * b);
}

// Rank 0: the summary line (terminal and train.log) and the JSON line of metrics.jsonl.
void Trainer::report_epoch(const EpochMetrics& em, const std::string& metrics_path) {
  if (comm_.rank() != 0) return;
  auto& m = *impl_;
  const auto& t = cfg_.training;
  const int np = comm_.size();
  char line[400];
  std::snprintf(line, sizeof line,
                "epoch %lld/%lld  train_loss %.4f  test_loss %.4f  test_acc %.4f  %.0f samples/s  "
                "(compute %.2fs, comm %.2fs, shuffle %.2fs)",
                static_cast<long long>(em.epoch), static_cast<long long>(t.epochs), em.train_loss, em.test_loss,
                em.test_accuracy, em.samples_per_sec, em.compute_seconds, em.comm_seconds, em.data_seconds);
  m.progress->line(line);
  std::ofstream js(metrics_path, std::ios::app);
  js << "{\"epoch\":" << em.epoch << ",\"step\":" << em.step << ",\"train_loss\":" << json_number(em.train_loss)
     << ",\"test_loss\":" << json_number(em.test_loss) << ",\"test_accuracy\":" << json_number(em.test_accuracy)
     << ",\"samples_per_sec\":" << json_number(em.samples_per_sec)
     << ",\"comm_seconds\":" << json_number(em.comm_seconds)
     << ",\"compute_seconds\":" << json_number(em.compute_seconds)
     << ",\"data_seconds\":" << json_number(em.data_seconds)
     << ",\"copy_seconds\":" << json_number(em.copy_seconds)
     << ",\"epoch_seconds\":" << json_number(em.epoch_seconds) << ",\"lr\":" << json_number(em.lr)
     << ",\"world_size\":" << np << ",\"deterministic\":" << (t.deterministic ? "true" : "false")
     << ",\"precision\":\"" << t.precision << "\"}\n";
}

std::vector<EpochMetrics> Trainer::run() {
  auto& m = *impl_;
  const auto& t = cfg_.training;
  const int np = comm_.size(), rank = comm_.rank();
  const std::int64_t total_steps = m.steps_per_epoch * t.epochs;
  const std::int64_t f = model_->input_features();
  const std::int64_t mb = t.deterministic ? t.micro_batch : m.local_batch;
  // Batches are assembled on the host; on a GPU they are copied to device buffers each step.
  const Device dev = model_->device();
  Tensor x({mb, f}), y({mb});
  Tensor xd = dev == Device::kCpu ? x : Tensor({mb, f}, DType::kF32, dev);
  Tensor dout({mb, model_->output_features()}, model_->compute_dtype(), dev);
  Tensor host_grads;  // deterministic mode on a GPU: the exact sum runs on the host
  if (t.deterministic && dev != Device::kCpu) host_grads = Tensor({model_->num_params()});

  // GPU input pipeline (default mode): two pinned host buffers feeding two device buffers. The
  // batch of step s+1 is assembled and its copy enqueued on the copy stream while step s's
  // backward and gradient reduction run; the compute stream waits for the copy through an event.
  struct Stage {
    std::unique_ptr<void, void (*)(void*)> pinned{nullptr, [](void* p) { backend::cuda::free_pinned(p); }};
    Tensor host_x, dev_x, y;
    std::vector<std::int64_t> ids;
  };
  const bool pipelined = dev != Device::kCpu && !t.deterministic;
  std::array<Stage, 2> stages;
  std::unique_ptr<backend::cuda::CopyStream> copier;
  if (pipelined) {
    copier = std::make_unique<backend::cuda::CopyStream>(2);
    for (auto& st : stages) {
      st.pinned.reset(backend::cuda::allocate_pinned(static_cast<std::size_t>(mb * f) * sizeof(float)));
      st.host_x = Tensor::borrow(st.pinned.get(), {mb, f});
      st.dev_x = Tensor({mb, f}, DType::kF32, dev);
      st.y = Tensor({mb});
    }
  }
  std::vector<std::int64_t> ids;
  std::vector<EpochMetrics> history;
  const std::int64_t big_b = m.batch, b = m.local_batch;
  const std::string metrics_path = (std::filesystem::path(cfg_.output.dir) / "metrics.jsonl").string();
  if (m.use_shm && !m.shm) setup_shared_window();
  if (!m.resumed && m.start_epoch == 0) {
    // A new run in a used output.dir: keep the previous run's metrics and log as *.prev rather
    // than mixing two runs in one file.
    comm_.collectively([&] {
      if (rank != 0) return;
      const auto dir = std::filesystem::path(cfg_.output.dir);
      for (const char* name : {"metrics.jsonl", "train.log"}) {
        std::error_code ec;
        if (std::filesystem::exists(dir / name))
          std::filesystem::rename(dir / name, dir / (std::string(name) + ".prev"), ec);
      }
    });
  }

  for (std::int64_t epoch = m.start_epoch; epoch < t.epochs; ++epoch) {
    const auto t_epoch = Clock::now();
    prepare_epoch(epoch);
    const double data_seconds = seconds_since(t_epoch);

    // ---- steps ----
    const std::int64_t first_step = epoch == m.start_epoch ? m.start_step : 0;
    double loss_sum = epoch == m.start_epoch ? m.resume_loss_sum : 0.0;
    std::int64_t loss_count = epoch == m.start_epoch ? m.resume_loss_count : 0;
    double comm_seconds = 0.0, copy_seconds = 0.0;
    double lr = 0.0;
    m.progress->start_epoch(epoch + 1, t.epochs, m.steps_per_epoch);
    const auto t_loop = Clock::now();
    double local_loss_window = 0.0;
    std::int64_t local_rows_window = 0;

    for (std::int64_t s = first_step; s < m.steps_per_epoch; ++s) {
      lr = learning_rate(cfg_.schedule, cfg_.optimizer.lr, m.global_step, m.steps_per_epoch, total_steps);
      nn::ForwardContext ctx{true, t.seed, static_cast<std::uint64_t>(epoch), nullptr};
      const std::size_t base = static_cast<std::size_t>(s * b);
      auto run_chunk = [&](std::size_t begin, float scale, const std::function<void(std::size_t)>& hook) {
        fill_batch(m.epoch_rows, begin, static_cast<std::size_t>(mb), m.epoch_positions, x, y, ids);
        if (xd.raw() != x.raw()) {
          const auto t_copy = Clock::now();
          xd.copy_from(x);
          copy_seconds += seconds_since(t_copy);
        }
        ctx.sample_ids = ids.data();
        const Tensor& out = model_->forward(xd, ctx);
        const Tensor target = loss_target(m.loss, y, mb, out.dim(1), dev);
        const auto r = nn::compute_loss(m.loss, out, target, scale, &dout);
        loss_sum += r.loss;
        local_loss_window += r.loss;
        local_rows_window += mb;
        model_->backward(dout, hook);
      };

      auto stage = [&](std::int64_t step, int slot) {  // host assembly + an asynchronous copy
        const auto t_copy = Clock::now();
        auto& st = stages[static_cast<std::size_t>(slot)];
        fill_batch(m.epoch_rows, static_cast<std::size_t>(step * b), static_cast<std::size_t>(mb), m.epoch_positions,
                   st.host_x, st.y, st.ids);
        copier->copy_async(slot, st.dev_x.raw(), st.host_x.raw(), st.host_x.bytes());
        copy_seconds += seconds_since(t_copy);
      };

      if (pipelined) {
        const int slot = static_cast<int>(s % 2);
        if (s == first_step) stage(s, slot);
        copier->compute_waits_for(slot);
        auto& st = stages[static_cast<std::size_t>(slot)];
        ctx.sample_ids = st.ids.data();
        const Tensor& out = model_->forward(st.dev_x, ctx);
        const Tensor target = loss_target(m.loss, st.y, mb, out.dim(1), dev);
        const auto r = nn::compute_loss(m.loss, out, target, 1.0f / static_cast<float>(b), &dout);
        loss_sum += r.loss;
        local_loss_window += r.loss;
        local_rows_window += mb;
        m.buckets->begin_step(model_->flat_grads().raw());
        model_->backward(dout, [&](std::size_t layer) {
          const auto range = model_->layer_param_range(layer);
          if (range.second > range.first) m.buckets->mark_ready(range.second);
        });
        // The other slot's last use (step s-1) finished: this step's loss read-back synchronised
        // the compute stream. Fill it for step s+1 while backward and NCCL run.
        if (s + 1 < m.steps_per_epoch) stage(s + 1, 1 - slot);
        comm_seconds += m.buckets->finish();
        m.opt->step(model_->flat_params(), model_->flat_grads(), lr, m.grad_scale);
      } else if (m.use_shm) {
        run_chunk(base, 1.0f / static_cast<float>(b), {});
        const auto t_wait = Clock::now();
        m.shm->fence();  // every rank's gradients are in the window
        comm_seconds += seconds_since(t_wait);
        // This rank's shard: the sum over ranks, in rank order (so the same bits on every run).
        const data::Range shard = data::split_range(model_->num_params(), rank, np);
        float* mine = m.shm_grads_base + rank * m.shm_stride;
        if (np == 2) {
          const float* g0 = m.shm_grads_base;
          const float* g1 = m.shm_grads_base + m.shm_stride;
          for (std::int64_t i = shard.begin; i < shard.end; ++i) mine[i] = g0[i] + g1[i];
        } else {
          for (std::int64_t i = shard.begin; i < shard.end; ++i) {
            float acc = m.shm_grads_base[i];
            for (int r = 1; r < np; ++r) acc += m.shm_grads_base[r * m.shm_stride + i];
            mine[i] = acc;
          }
        }
        m.opt->step_range(model_->flat_params(), model_->flat_grads(), lr, 1.0 / np, shard.begin, shard.end);
        const auto t_wait2 = Clock::now();
        m.shm->fence();  // every shard is updated before anyone's next forward pass
        comm_seconds += seconds_since(t_wait2);
      } else if (t.deterministic) {
        m.exact->reset();
        Tensor& grads = host_grads.defined() ? host_grads : model_->flat_grads();
        for (std::int64_t c = 0; c < b / mb; ++c) {
          run_chunk(base + static_cast<std::size_t>(c * mb), 1.0f, {});
          if (host_grads.defined()) host_grads.copy_from(model_->flat_grads());
          m.exact->add(grads.data<float>());
        }
        const auto t_comm = Clock::now();
        m.exact->allreduce_into(comm_, grads.data<float>(), 1.0 / static_cast<double>(big_b));
        comm_seconds += seconds_since(t_comm);
        if (host_grads.defined()) model_->flat_grads().copy_from(host_grads);
        m.opt->step(model_->flat_params(), model_->flat_grads(), lr);
      } else {
        m.buckets->begin_step(model_->flat_grads().raw());
        run_chunk(base, 1.0f / static_cast<float>(b), [&](std::size_t layer) {
          const auto range = model_->layer_param_range(layer);
          if (range.second > range.first) m.buckets->mark_ready(range.second);
        });
        comm_seconds += m.buckets->finish();
        // The buckets reduced a sum (MPI) or the mean (NCCL) of per-rank means.
        m.opt->step(model_->flat_params(), model_->flat_grads(), lr, m.grad_scale);
      }
      loss_count += b;
      ++m.global_step;

      const double elapsed = seconds_since(t_loop);
      m.progress->step(s + 1, local_loss_window / std::max<std::int64_t>(local_rows_window, 1),
                       static_cast<double>((s + 1 - first_step) * big_b) / std::max(elapsed, 1e-9));
      if ((s + 1) % cfg_.output.log_every_steps == 0) {
        local_loss_window = 0.0;
        local_rows_window = 0;
      }
      const bool stop = m.max_steps > 0 && m.global_step >= m.max_steps;
      if (s + 1 < m.steps_per_epoch &&
          (stop || (cfg_.checkpoint.every_steps > 0 && m.global_step % cfg_.checkpoint.every_steps == 0))) {
        save_checkpoint(epoch, s + 1, loss_sum, loss_count);
      }
      if (stop && s + 1 < m.steps_per_epoch) {
        m.progress->end_epoch();
        m.progress->line("stopped at global step " + std::to_string(m.global_step) + " (max steps); continue with --resume");
        m.stopped = true;
        return history;
      }
    }
    const double loop_seconds = seconds_since(t_loop);
    m.progress->end_epoch();

    // ---- end of epoch: metrics over all ranks, evaluation, checkpoint ----
    double sums[5] = {loss_sum, static_cast<double>(loss_count), comm_seconds, loop_seconds + data_seconds,
                      copy_seconds};
    comm_.allreduce(std::span<double>(sums, 5), comm::ReduceOp::kSum);
    const double epoch_seconds = comm_.allreduce<double>(loop_seconds + data_seconds, comm::ReduceOp::kMax);
    EpochMetrics em;
    em.epoch = epoch + 1;
    em.step = m.global_step;
    em.train_loss = sums[1] > 0 ? sums[0] / sums[1] : 0.0;
    em.comm_seconds = sums[2] / np;
    em.copy_seconds = sums[4] / np;
    em.data_seconds = comm_.allreduce<double>(data_seconds, comm::ReduceOp::kMax);
    em.epoch_seconds = epoch_seconds;
    em.compute_seconds = std::max(0.0, epoch_seconds - em.comm_seconds - em.data_seconds - em.copy_seconds);
    em.samples_per_sec = static_cast<double>((m.steps_per_epoch - first_step) * big_b) / std::max(epoch_seconds, 1e-9);
    em.lr = lr;
    const EvalResult ev = evaluate(comm_, *model_, m.loss, m.test, t.eval_batch);
    em.test_loss = ev.loss;
    em.test_accuracy = ev.accuracy;
    history.push_back(em);

    report_epoch(em, metrics_path);
    const bool stop_here = m.max_steps > 0 && m.global_step >= m.max_steps;
    if (cfg_.checkpoint.at_epoch_end || stop_here) save_checkpoint(epoch + 1, 0, 0.0, 0);
    if (stop_here && epoch + 1 < t.epochs) {
      m.progress->line("stopped at global step " + std::to_string(m.global_step) + " (max steps); continue with --resume");
      m.stopped = true;
      return history;
    }
  }
  m.start_epoch = t.epochs;
  m.start_step = 0;
  return history;
}

}  // namespace lockstep::train
