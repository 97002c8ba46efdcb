// The data-parallel training loop (see trainer.hpp for the story in brief).
#include "lockstep/train/trainer.hpp"
#include "lockstep/core/clock.hpp"
#include "lockstep/core/fault.hpp"
#include "lockstep/core/stop_signal.hpp"
#include "lockstep/core/trace.hpp"

#include <algorithm>
#include <climits>
#include <cstdio>
#include <cstdlib>

#include "lockstep/backend/cuda_runtime.hpp"
#include "lockstep/comm/nccl_communicator.hpp"
#include "lockstep/core/log.hpp"
#include "lockstep/io/json_line.hpp"
#include "lockstep/train/batch_stream.hpp"
#include "lockstep/train/checkpointing.hpp"
#include "lockstep/train/comm_ranks.hpp"
#include "lockstep/train/gradient_sync.hpp"
#include "lockstep/train/network_file.hpp"
#include "lockstep/train/progress.hpp"
#include "lockstep/train/run_log.hpp"
#include "lockstep/train/schedule.hpp"
#include "lockstep/train/tiled_step.hpp"

namespace lockstep::train {

struct Trainer::Impl {
  Impl(Dataset tr, Dataset te) : train(std::move(tr)), test(std::move(te)) {}
  Dataset train, test;
  std::optional<nn::Head> head;
  std::unique_ptr<nn::Optimizer> opt;
  std::unique_ptr<comm::Communicator> nccl;  // device: cuda only
  std::unique_ptr<BatchStream> batches;
  std::unique_ptr<GradientSync> sync;  // made by run(), after any resume
  std::unique_ptr<TiledStep> tiled;    // instead of sync: one node, tiles any rank may take
  Tensor tile_dout;                    // d(loss)/d(output) of one tile
  std::int64_t tile_step = -1;         // the tiled step's own count, from 0 in this process
  std::int64_t step_rows = 0;          // rows this rank trained on in the last step
  std::string sync_note;               // train.log's line on how gradients are synchronised
  std::unique_ptr<RunLog> log;
  std::unique_ptr<Progress> progress;
  std::unique_ptr<CommRanks> ranks;
  Tensor dout;             // d(loss)/d(output) of one micro-batch
  TrainingPosition start;  // where run() begins
  std::int64_t global_step = 0, max_steps = 0;
  bool resumed = false, stopped = false;
  // A stop requested by signal: this rank's request, reduced (max) over the ranks during the step,
  // so that every rank sees the same value after it; the signal that stopped the run, or 0.
  std::int32_t stop_request = 0;
  std::unique_ptr<comm::Request> stop_reduction;
  int stopped_by = 0;
  // The running epoch: loss over this rank's rows, exposed communication, the last lr, and the
  // window of steps the progress line averages over.
  double loss_sum = 0.0, comm_seconds = 0.0, lr = 0.0, window_loss = 0.0;
  std::int64_t loss_count = 0, window_rows = 0;
  Clock::time_point loop_start;
};

namespace {
TrainerOptions with_class_names(TrainerOptions o, const Dataset& train) {
  if (o.class_names.empty()) o.class_names = train.table.class_names;
  return o;
}
}  // namespace

Trainer::Trainer(comm::Communicator& comm, TrainerOptions options, Dataset train, Dataset test)
    : comm_(comm), options_(with_class_names(std::move(options), train)), impl_(std::make_unique<Impl>(std::move(train), std::move(test))) {
  auto& m = *impl_;
  const auto& t = options_.training;
  setup_device();
  check_setup();
  check_labels(m.train);
  check_labels(m.test);
  // Rank 0 initialises, everyone receives: replicas start identical by construction.
  if (comm_.rank() == 0) model_->initialize(t.seed, model_init(options_));
  comm_.broadcast(model_->flat_params().raw(), model_->flat_params().bytes(), 0);
  if (model_->num_buffers() > 0) comm_.broadcast(model_->flat_buffers().raw(), model_->flat_buffers().bytes(), 0);
  m.ranks = std::make_unique<CommRanks>(comm_);
  m.opt = nn::make_optimizer(options_.optimizer, model_->num_trainable_params());  // frozen ones stay out
  const Device dev = t.device == "cuda" ? Device::kCuda : Device::kCpu;
  if (dev == Device::kCuda) {
    // The replica lives on this rank's GPU; gradient buckets are reduced by NCCL on its own stream.
    model_->to(Device::kCuda);
    for (auto& [name, tensor] : m.opt->state()) *tensor = tensor->clone(Device::kCuda);
    m.nccl = comm::make_nccl(comm_, comm_.local_rank());
  }
  const std::int64_t mb = t.deterministic ? t.micro_batch : t.batch_size / comm_.size();
  m.batches = std::make_unique<BatchStream>(
      comm_, m.train, BatchStream::Options{t.batch_size, mb, t.seed, dev, dev != Device::kCpu && !t.deterministic});
  m.dout = Tensor({mb, model_->output_features()}, model_->compute_dtype(), dev);
  m.log = std::make_unique<RunLog>(comm_, options_.output.dir);
  m.progress = std::make_unique<Progress>(comm_.rank() == 0, options_.output.progress, options_.output.log_every_steps);
  m.progress->set_log(m.log.get(), "train.log");
}

Trainer::~Trainer() = default;

// device: cuda: one rank per GPU, chosen by node-local rank; say exactly what is missing, on
// every rank.
void Trainer::setup_device() {
  const auto& src = options_.source;
  comm_.collectively([&] {
    if (options_.training.device != "cuda") return;
    LOCKSTEP_CHECK(backend::cuda::built(), ConfigError, src,
                   ": training.device: \"cuda\" needs the CUDA backend, which this build does not have "
                   "(see `lockstep info`); use device: cpu");
    const int gpus = backend::cuda::device_count();
    const char* visible = std::getenv("CUDA_VISIBLE_DEVICES");
    LOCKSTEP_CHECK(gpus > 0, ConfigError, src, ": training.device: \"cuda\", but rank ", comm_.rank(), " on host ",
                   comm_.host_name(), " sees no CUDA device (", backend::cuda::runtime_info().error,
                   "; CUDA_VISIBLE_DEVICES=", visible ? visible : "unset", ")");
    LOCKSTEP_CHECK(comm_.local_size() <= gpus, ConfigError, src, ": training.device: \"cuda\" with ",
                   comm_.local_size(), " ranks on host ", comm_.host_name(), " but only ", gpus,
                   " GPUs there; start one rank per GPU (e.g. srun --gpus-per-task=1)");
    backend::cuda::init_device(comm_.local_rank());
  });
}

// The options against the number of ranks and the data; builds the model and its head.
void Trainer::check_setup() {
  auto& m = *impl_;
  const auto& t = options_.training;
  const auto& src = options_.source;
  const int np = comm_.size();
  comm_.collectively([&] {
    LOCKSTEP_CHECK(t.batch_size % np == 0, ConfigError, src, ": training.batch_size: ", t.batch_size,
                   " is not divisible by the number of ranks (", np, "); every rank takes batch_size / np rows");
    if (t.deterministic) {
      LOCKSTEP_CHECK((t.batch_size / np) % t.micro_batch == 0, ConfigError, src,
                     ": training.micro_batch: ", t.micro_batch, " does not divide the per-rank batch ",
                     t.batch_size / np, " (batch_size ", t.batch_size, " / ", np,
                     " ranks); deterministic mode needs micro-batches of one fixed size");
    }
    if (t.reduce_precision == "bf16") {
      LOCKSTEP_CHECK(t.precision == "bf16", ConfigError, src,
                     ": training.reduce_precision: bf16 gradients need training.precision: bf16");
      LOCKSTEP_CHECK(t.device == "cuda" && !t.deterministic, ConfigError, src,
                     ": training.reduce_precision: bf16 gradients are reduced by NCCL, so they need device: cuda and "
                     "deterministic: false (MPI has no bfloat16 sum, and the exact sum is float32)");
    }
    LOCKSTEP_CHECK(m.train.num_rows >= t.batch_size, ConfigError, src, ": training.batch_size: ", t.batch_size,
                   " is larger than the training set (", m.train.num_rows, " rows)");
    model_ = build_model(options_, m.train.sample_shape);
    LOCKSTEP_CHECK(model_->num_params() == 0 || model_->num_trainable_params() > 0, ConfigError, src,
                   ": model.layers: every layer with parameters is frozen (trainable: false); nothing to train");
    m.head = model_head(options_, *model_, m.train.num_labels);
    // Several label columns (data.label_columns) are the targets of a regression with one output each.
    LOCKSTEP_CHECK(m.train.num_labels == 1 || m.head->task() == nn::Task::kRegression, ConfigError, src,
                   ": data.label_columns: ", m.train.num_labels,
                   " label columns need a regression head: loss mse, mae "
                   "or huber, and a last layer with ",
                   m.train.num_labels, " outputs (it has ", model_->output_features(), ")");
    LOCKSTEP_CHECK(m.test.num_labels == m.train.num_labels, DataError, m.test.description, ": ", m.test.num_labels,
                   " label columns, the training data has ", m.train.num_labels);
    // A classifier needs an output per class (the dense losses see class labels one-hot). A label
    // too large to be a class count (make_dataset caps it at 1e9) is left to check_labels, which
    // names its row.
    LOCKSTEP_CHECK(m.head->task() != nn::Task::kClassification || m.train.num_classes <= model_->output_features() ||
                       m.train.num_classes >= 1000000000,
                   ConfigError, src, ": model.layers: the last layer has ", model_->output_features(),
                   " outputs but the labels of ", m.train.description, " go up to ", m.train.num_classes - 1,
                   " (expected ", m.train.num_classes,
                   " outputs; for regression use loss mse, mae or huber with one "
                   "output, for a binary classifier bce_with_logits with one output)");
  });
}

// Every label against the head, when the data is loaded: a bad row on any rank is the same
// DataError on every rank, naming the lowest such row, instead of one rank failing mid-step while
// the others wait for it.
void Trainer::check_labels(const Dataset& d) {
  const auto& t = d.table;
  std::int64_t bad = INT64_MAX;
  std::string message;
  for (std::int64_t i = 0; i < t.rows && bad == INT64_MAX; ++i) {
    for (std::int64_t l = 0; l < t.num_labels; ++l) {
      if (const auto problem = impl_->head->label_problem(t.label(i, l))) {
        bad = t.row_offset + i;
        message = d.description + ": row " + std::to_string(bad) + ": " + *problem;
        break;
      }
    }
  }
  comm::agree_on_first_bad_row(comm_, bad, message);
}

void Trainer::set_max_steps(std::int64_t steps) {
  impl_->max_steps = steps;
}
bool Trainer::stopped_early() const {
  return impl_->stopped;
}
int Trainer::stopped_by_signal() const {
  return impl_->stopped_by;
}
std::int64_t Trainer::global_step() const {
  return impl_->global_step;
}
std::string Trainer::checkpoint_path() const {
  return impl_->log->path("checkpoint.h5");
}

void Trainer::resume_from(const std::string& path) {
  auto& m = *impl_;
  m.start = resume_training(comm_, path, *model_, *m.opt, options_, m.batches->steps_per_epoch());
  m.global_step = m.start.global_step;
  m.resumed = true;
  // metrics.jsonl keeps the epochs the checkpoint has finished; a line written after the
  // checkpoint (the job died between the two) would otherwise appear twice.
  m.log->keep_epochs("metrics.jsonl", m.start.epoch);
}

std::vector<EpochMetrics> Trainer::run() {
  auto& m = *impl_;
  const auto& t = options_.training;
  if (!m.sync && !m.tiled) {
    // A fresh run of a transfer config: the pretrained layers' parameters and buffers, on every rank
    // (each reads the same file), before the shared window or the device takes the buffers over.
    if (!m.resumed && m.start.epoch == 0 && m.start.step_in_epoch == 0) load_init_from(comm_, options_.model, *model_);
    make_sync();
    if (!m.resumed && m.start.epoch == 0) m.log->rotate({"metrics.jsonl", "train.log"});  // a new run
    m.log->append("train.log", m.sync_note + "\n");
  }
  std::vector<EpochMetrics> history;
  for (std::int64_t epoch = m.start.epoch; epoch < t.epochs; ++epoch) {
    const auto t_epoch = Clock::now();
    const std::int64_t first = epoch == m.start.epoch ? m.start.step_in_epoch : 0;
    {
      LOCKSTEP_TRACE_SCOPE("shuffle", "data", "epoch", epoch);
      m.batches->start_epoch(epoch, first);
    }
    const double data_seconds = seconds_since(t_epoch);
    m.loss_sum = epoch == m.start.epoch ? m.start.loss_sum : 0.0;
    m.loss_count = epoch == m.start.epoch ? m.start.loss_count : 0;
    m.comm_seconds = m.window_loss = 0.0;
    m.window_rows = 0;
    m.progress->start_epoch(epoch + 1, t.epochs, m.batches->steps_per_epoch());
    m.loop_start = Clock::now();
    for (std::int64_t s = first; s < m.batches->steps_per_epoch(); ++s) {
      LOCKSTEP_TRACE_SCOPE("step", "train", "step", m.global_step);
      step(epoch, s);
      if (after_step(epoch, s)) return history;
    }
    history.push_back(finish_epoch(epoch, first, data_seconds, seconds_since(m.loop_start)));
    const bool stop_here = m.stopped_by != 0 || (m.max_steps > 0 && m.global_step >= m.max_steps);
    if (options_.checkpoint.at_epoch_end || stop_here) save(epoch + 1, 0);
    if (stop_here && epoch + 1 < t.epochs) {
      stop_here_at_step();
      return history;
    }
  }
  m.start = {t.epochs, 0, m.global_step, 0.0, 0};
  return history;
}

// The tiled step where it applies (tiled_step.hpp), else the gradient sync of the options; rank 0
// says which, and why not the tiled step.
void Trainer::make_sync() {
  auto& m = *impl_;
  const auto& t = options_.training;
  const std::int64_t local = m.batches->local_batch();
  const auto why_not = t.shared_memory ? tiled_step_unsupported(comm_, *model_, t.deterministic, local, t.tile_rows)
                                       : std::optional<std::string>("training.shared_memory is false");
  if (!why_not) {
    const std::int64_t rows = t.tile_rows > 0 ? t.tile_rows : auto_tile_rows(local);
    m.tiled = std::make_unique<TiledStep>(comm_, *model_, *m.opt,
                                          TileOptions{t.batch_size, rows, m.train.num_features, m.train.num_labels});
    m.tile_dout = Tensor({rows, model_->output_features()});
    m.sync_note = "gradient sync: shared window, tiles of " + std::to_string(rows) +
                  " rows that any rank takes (a slow rank's rows are shared out)";
    return;
  }
  m.sync = make_gradient_sync(
      comm_, m.nccl ? *m.nccl : comm_, *model_, *m.opt,
      SyncOptions{local, t.batch_size, t.deterministic, t.shared_memory, t.bucket_mb, t.overlap});
  m.sync_note = std::string("gradient sync: ") + m.sync->name() + " (no tiles: " + *why_not + ")";
}

// The tiled step: stage this rank's rows, take tiles until none is left, stage the next step's
// rows, then reduce and update chunks with the other ranks.
void Trainer::step_tiled(std::int64_t s, nn::ForwardContext& ctx) {
  auto& m = *impl_;
  auto& ts = *m.tiled;
  const std::int64_t rows = ts.tile_rows(), f = m.train.num_features, l = m.train.num_labels;
  auto fill = [&](std::int64_t step) {
    return [&m, step](float* x, float* y, std::int64_t* ids) { m.batches->fill_step(step, x, y, ids); };
  };
  ts.begin(++m.tile_step, fill(s), stop_signal());
  const float scale = 1.0f / static_cast<float>(options_.training.batch_size);
  while (const auto tile = ts.claim()) {
    ctx.sample_ids = tile->ids;
    const Tensor x = Tensor::borrow(const_cast<float*>(tile->x), {rows, f});
    const Tensor labels = Tensor::borrow(const_cast<float*>(tile->labels), l == 1 ? Shape{rows} : Shape{rows, l});
    trace::Scope fwd(tile->backup ? "forward (backup)" : "forward", "step", "tile", tile->index);
    const Tensor& out = model_->forward(x, ctx);
    fwd.end();
    if (!tile->backup) fault::point("tile", comm_.rank(), m.global_step);  // tile:R:slow: late inside tiles
    trace::Scope loss("loss", "step");
    const Tensor target = m.head->target(labels, rows, out.device());
    const auto r = nn::compute_loss(m.head->loss(), out, target, scale, &m.tile_dout);
    loss.end();
    trace::Scope bwd("backward", "step", "tile", tile->index);
    model_->backward(m.tile_dout);
    bwd.end();
    if (!ts.tile_done()) continue;  // another copy of this tile was published first
    m.loss_sum += r.loss;
    m.window_loss += r.loss;
    m.window_rows += rows;
  }
  ts.stage_ahead(m.batches->steps_per_epoch() - s - 1, [&](std::int64_t j) { return fill(s + j); }, stop_signal());
  m.comm_seconds += ts.finish(m.lr);
  m.stop_request = ts.stop_request();
  m.step_rows = ts.rows_computed();
}

// One optimizer step: every micro-batch's forward, loss and backward, then the agreed gradient.
void Trainer::step(std::int64_t epoch, std::int64_t s) {
  auto& m = *impl_;
  const auto& t = options_.training;
  m.lr = learning_rate(options_.schedule, options_.optimizer.lr, m.global_step, m.batches->steps_per_epoch(),
                       m.batches->steps_per_epoch() * t.epochs);
  nn::ForwardContext ctx{true, t.seed, static_cast<std::uint64_t>(epoch), nullptr, m.ranks.get(), t.deterministic};
  fault::point("step", comm_.rank(), m.global_step);
  if (m.tiled) return step_tiled(s, ctx);
  m.step_rows = m.batches->local_batch();
  const std::int64_t rows = m.dout.dim(0);
  trace::Scope begin_scope("begin", "step");  // the stop flag's reduction started, the sync readied
  // Any rank's stop request rides along with the step: started now, on the progress thread, so it
  // overlaps the forward pass; read in after_step().
  m.stop_request = stop_signal();
  if (comm_.size() > 1)
    m.stop_reduction = comm_.iallreduce(&m.stop_request, 1, comm::CommType::kI32, comm::ReduceOp::kMax);
  m.sync->begin_step();
  begin_scope.end();
  for (std::int64_t c = 0; c < m.batches->micro_batches(); ++c) {
    trace::Scope data_scope("data", "step", "micro_batch", c);
    const Batch batch = m.batches->get(s, c);
    data_scope.end();
    ctx.sample_ids = batch.ids;
    trace::Scope forward_scope("forward", "step");
    const Tensor& out = model_->forward(*batch.x, ctx);
    forward_scope.end();
    trace::Scope loss_scope("loss", "step");
    const Tensor target = m.head->target(*batch.labels, rows, out.device());
    const auto r = nn::compute_loss(m.head->loss(), out, target, m.sync->loss_scale(), &m.dout);
    loss_scope.end();
    m.loss_sum += r.loss;
    m.window_loss += r.loss;
    m.window_rows += rows;
    trace::Scope backward_scope("backward", "step");
    model_->backward(m.dout, [&](std::size_t layer) {
      const auto range = model_->layer_param_range(layer);
      if (range.second > range.first && model_->layer(layer).trainable()) m.sync->ready(range.second);
    });
    backward_scope.end();
    trace::Scope prefetch_scope("data", "step", "prefetch", 1);
    m.batches->prefetch_after(s);
    prefetch_scope.end();
    LOCKSTEP_TRACE_SCOPE("accumulate", "step");  // deterministic mode's fixed-point sum; else nothing
    m.sync->end_micro_batch();
  }
  {
    // The wait for the gradient reductions (shared window: the fence, then this rank's shard sum).
    LOCKSTEP_TRACE_SCOPE("wait", "reduce");
    m.comm_seconds += m.sync->finish();
  }
  {
    LOCKSTEP_TRACE_SCOPE("end_step", "step");
    model_->end_step(ctx);  // layer state the ranks must agree on (batch norm's running statistics)
  }
  {
    LOCKSTEP_TRACE_SCOPE("optimizer", "step");
    const auto u = m.sync->update();
    m.opt->step_range(model_->flat_params(), model_->flat_grads(), m.lr, u.grad_scale, u.begin, u.end);
  }
  LOCKSTEP_TRACE_SCOPE("wait", "update");  // shared window: every shard updated
  m.comm_seconds += m.sync->after_update();
}

// Progress, and the mid-epoch checkpoint or stop. Returns true when the run stops here.
bool Trainer::after_step(std::int64_t epoch, std::int64_t s) {
  auto& m = *impl_;
  const std::int64_t steps = m.batches->steps_per_epoch(), first = epoch == m.start.epoch ? m.start.step_in_epoch : 0;
  m.loss_count += m.step_rows;
  ++m.global_step;
  const double elapsed = seconds_since(m.loop_start);
  trace::Scope progress_scope("progress", "step");
  m.progress->step(s + 1, m.window_loss / static_cast<double>(std::max<std::int64_t>(m.window_rows, 1)),
                   static_cast<double>((s + 1 - first) * options_.training.batch_size) / std::max(elapsed, 1e-9));
  if ((s + 1) % options_.output.log_every_steps == 0) {
    m.window_loss = 0.0;
    m.window_rows = 0;
  }
  progress_scope.end();
  if (m.stop_reduction) {
    LOCKSTEP_TRACE_SCOPE("wait", "stop");
    m.stop_reduction->wait();
    m.stop_reduction.reset();
  }
  if (m.stop_request != 0 && m.stopped_by == 0) m.stopped_by = m.stop_request;
  const bool stop = m.stopped_by != 0 || (m.max_steps > 0 && m.global_step >= m.max_steps);
  const std::int64_t every = options_.checkpoint.every_steps;
  if (s + 1 < steps && (stop || (every > 0 && m.global_step % every == 0))) save(epoch, s + 1);
  if (!stop || s + 1 >= steps) return false;
  m.progress->end_epoch();
  stop_here_at_step();
  return true;
}

// Metrics over all ranks, the test evaluation, the summary line and the JSON line.
EpochMetrics Trainer::finish_epoch(std::int64_t epoch, std::int64_t first_step, double data_seconds,
                                   double loop_seconds) {
  auto& m = *impl_;
  const auto& t = options_.training;
  const int np = comm_.size();
  m.progress->end_epoch();
  double sums[7] = {m.loss_sum, static_cast<double>(m.loss_count), m.comm_seconds, loop_seconds + data_seconds,
                    m.batches->take_copy_seconds(),
                    m.tiled ? static_cast<double>(m.tiled->take_tiles_taken_over()) : 0.0,
                    m.tiled ? static_cast<double>(m.tiled->take_tiles_backed_up()) : 0.0};
  comm_.allreduce(std::span<double>(sums, 7), comm::ReduceOp::kSum);
  EpochMetrics em;
  em.epoch = epoch + 1;
  em.step = m.global_step;
  em.train_loss = sums[1] > 0 ? sums[0] / sums[1] : 0.0;
  em.comm_seconds = sums[2] / np;
  em.copy_seconds = sums[4] / np;
  em.data_seconds = comm_.allreduce<double>(data_seconds, comm::ReduceOp::kMax);
  em.epoch_seconds = comm_.allreduce<double>(loop_seconds + data_seconds, comm::ReduceOp::kMax);
  em.compute_seconds = std::max(0.0, em.epoch_seconds - em.comm_seconds - em.data_seconds - em.copy_seconds);
  em.samples_per_sec = static_cast<double>((m.batches->steps_per_epoch() - first_step) * t.batch_size) /
                       std::max(em.epoch_seconds, 1e-9);
  em.lr = m.lr;
  {
    LOCKSTEP_TRACE_SCOPE("evaluate", "epoch", "epoch", em.epoch);
    em.test = evaluate(comm_, *model_, *m.head, m.test, t.eval_batch);
  }
  LOCKSTEP_TRACE_SCOPE("log", "epoch", "epoch", em.epoch);

  char line[400];
  std::snprintf(line, sizeof line,
                "epoch %lld/%lld  train_loss %.4f  %s  %.0f samples/s  (compute %.2fs, comm %.2fs, "
                "shuffle %.2fs)",
                static_cast<long long>(em.epoch), static_cast<long long>(t.epochs), em.train_loss,
                em.test.describe("test", true).c_str(), em.samples_per_sec, em.compute_seconds, em.comm_seconds,
                em.data_seconds);
  m.progress->line(line);
  io::JsonLine js;
  js.add("epoch", em.epoch).add("step", em.step).add("task", nn::task_name(em.test.task));
  js.add("train_loss", em.train_loss).add("test_loss", em.test.loss);
  if (em.test.task == nn::Task::kRegression) {
    js.add("test_rmse", em.test.rmse).add("test_r2", em.test.r2);
  } else {
    js.add("test_accuracy", em.test.accuracy);
    if (em.test.task == nn::Task::kBinary) js.add("test_auc", em.test.auc);
  }
  js.add("samples_per_sec", em.samples_per_sec).add("comm_seconds", em.comm_seconds);
  js.add("compute_seconds", em.compute_seconds).add("data_seconds", em.data_seconds);
  js.add("copy_seconds", em.copy_seconds).add("epoch_seconds", em.epoch_seconds).add("lr", em.lr);
  // Tiled step: tiles a rank computed from another rank's rows this epoch (a straggler's, shared out).
  if (m.tiled) js.add("tiles_taken_over", static_cast<std::int64_t>(sums[5]));
  // Tiles whose backup copy (an idle rank recomputing a tile a late rank held) was published first.
  if (m.tiled) js.add("tiles_backed_up", static_cast<std::int64_t>(sums[6]));
  js.add("world_size", np).add("deterministic", t.deterministic).add("precision", t.precision);
  js.add("train_data", m.train.description);  // the features file, or "synthetic train"
  // Reading (and decoding) the data before the first epoch, train and test: once per run.
  js.add("load_seconds", m.train.load_seconds + m.test.load_seconds);
  m.log->append("metrics.jsonl", js.str());
  return em;
}

void Trainer::save(std::int64_t next_epoch, std::int64_t next_step) {
  auto& m = *impl_;
  const bool mid_epoch = next_step > 0;
  const TrainingPosition pos{next_epoch, next_step, m.global_step, mid_epoch ? m.loss_sum : 0.0,
                             mid_epoch ? m.loss_count : 0};
  fault::point("checkpoint", comm_.rank());
  LOCKSTEP_TRACE_SCOPE("checkpoint", "epoch", "step", m.global_step);
  save_training_checkpoint(comm_, checkpoint_path(), *model_, *m.opt, pos, options_);
}

void Trainer::stop_here_at_step() {
  auto& m = *impl_;
  const std::string why = m.stopped_by ? std::string("by ") + signal_name(m.stopped_by) : std::string("(max steps)");
  m.progress->line("stopped " + why + " at global step " + std::to_string(m.global_step) +
                   " with a checkpoint; continue with --resume");
  m.stopped = true;
}

}  // namespace lockstep::train
