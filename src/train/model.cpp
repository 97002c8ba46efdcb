// Building the configured model and running it over a rank's rows (see model.hpp).
#include "lockstep/train/model.hpp"
#include "lockstep/core/fault.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <optional>
#include <sstream>

#include "lockstep/backend/ops.hpp"
#include "lockstep/core/checked_size.hpp"
#include "lockstep/nn/layer_registry.hpp"

namespace lockstep::train {

TrainerOptions trainer_options(const io::Config& cfg) {
  return TrainerOptions{cfg.model,  cfg.optimizer, cfg.schedule,     cfg.training,        cfg.checkpoint,
                        cfg.output, cfg.source,    io::to_yaml(cfg), io::config_hash(cfg), {}};
}

namespace {
// nn's parsers list the known names; the place in the file is ours to add.
template <typename F>
auto at_place(const std::string& where, F&& parse) {
  try {
    return parse();
  } catch (const ConfigError& e) {
    throw ConfigError(where + ": " + e.what());
  }
}
}  // namespace

namespace {
// A config without a model section parses (predict --model takes the network from its file); a
// command that builds the configured model needs its layers.
void check_has_layers(const TrainerOptions& o) {
  LOCKSTEP_CHECK(!o.model.layers.empty(), ConfigError, o.source,
                 ": model.layers: expected a non-empty list of layers (or model.init_from: a pretrained network)");
}
}  // namespace

nn::LossKind model_loss(const TrainerOptions& o) {
  return at_place(o.training.loss_where, [&] { return nn::parse_loss(o.training.loss); });
}

nn::Init model_init(const TrainerOptions& o) {
  return at_place(o.model.init_where, [&] { return nn::parse_init(o.model.init); });
}

void check_network(const io::Config& cfg) {
  const TrainerOptions o = trainer_options(cfg);
  check_has_layers(o);
  model_loss(o);
  model_init(o);
  for (std::size_t i = 0; i < o.model.layers.size(); ++i)
    nn::make_layer(o.model.layers[i], static_cast<std::uint32_t>(i));
}

std::unique_ptr<nn::Sequential> build_model(const TrainerOptions& o, const Shape& input) {
  check_has_layers(o);
  model_init(o);
  auto model = std::make_unique<nn::Sequential>(input, o.model.layers);
  const auto dtype = [](const std::string& p) { return p == "bf16" ? DType::kBF16 : DType::kF32; };
  model->set_precision(dtype(o.training.precision), dtype(o.training.reduce_precision));
  return model;
}

std::unique_ptr<nn::Sequential> build_model(const io::Config& cfg, const Shape& input) {
  return build_model(trainer_options(cfg), input);
}

nn::Head model_head(const TrainerOptions& o, const nn::Sequential& model, std::int64_t label_columns) {
  return nn::Head(model_loss(o), model.output_features(), label_columns);
}

std::vector<io::ParamInfo> param_layout(const nn::Sequential& model) {
  std::vector<io::ParamInfo> out;
  for (const auto& p : model.parameters()) out.push_back({p.name, p.value.shape(), p.offset});
  return out;
}

std::vector<io::ParamInfo> buffer_layout(const nn::Sequential& model) {
  std::vector<io::ParamInfo> out;
  for (const auto& b : model.buffers()) out.push_back({b.name, b.value.shape(), b.offset});
  return out;
}

void check_batch_fits(const nn::Sequential& model, std::int64_t rows, const std::string& what) {
  std::ostringstream sizing;  // not operator+ chains: GCC 12 warns falsely on them (-Wrestrict)
  sizing << what << ": a batch of " << rows << " rows of " << model.input_features()
         << " features, with every layer's output";
  std::int64_t values = model.input_features();
  for (std::size_t i = 0; i < model.num_layers(); ++i)
    values = checked_add<ConfigError>(values, shape_numel(model.layer_shape(i)), sizing.str());
  check_fits_memory<ConfigError>(checked_product<ConfigError>({rows, values, 4}, sizing.str()), sizing.str());
}

void forward_rows(nn::Sequential& model, const data::Table& rows, std::int64_t chunk,
                  const std::function<void(std::int64_t, std::int64_t, const Tensor&, const Tensor&)>& fn) {
  const std::int64_t n = rows.rows;
  const std::int64_t f = model.input_features(), l = rows.num_labels;
  LOCKSTEP_CHECK(n == 0 || rows.num_features() == f, DataError, "rows of this rank have ", rows.num_features(),
                 " features, the model expects ", f);
  // chunk and the model are the same on every rank, so each rank finds the same answer here.
  check_batch_fits(model, chunk, "training.eval_batch");
  Tensor x({chunk, f}), y(l == 1 ? Shape{chunk} : Shape{chunk, l});
  Tensor xd = model.device() == Device::kCpu ? x : Tensor({chunk, f}, DType::kF32, model.device());
  Tensor out_f32;  // bf16 models: the outputs handed on in float32
  for (std::int64_t b = 0; b < n; b += chunk) {
    const std::int64_t m = std::min(chunk, n - b);
    if (m < chunk) {
      x.zero_();
      y.zero_();
    }
    // The chunk is a contiguous slice of the table's blocks: two copies, no per-row work.
    std::copy_n(rows.row(b), m * f, x.data<float>());
    std::copy_n(rows.labels.data() + b * l, m * l, y.data<float>());
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

namespace {

// Exact ROC AUC (ties count one half) of every rank's (score, label) pairs. The test split of a
// binary head is small beside its training set, so the pairs are gathered whole.
double roc_auc(comm::Communicator& comm, const std::vector<std::pair<float, float>>& mine) {
  std::string bytes(reinterpret_cast<const char*>(mine.data()), mine.size() * sizeof(mine[0]));
  std::vector<std::pair<float, float>> all;
  for (const auto& part : comm.allgather_strings(bytes)) {
    const auto* p = reinterpret_cast<const std::pair<float, float>*>(part.data());
    all.insert(all.end(), p, p + part.size() / sizeof(mine[0]));
  }
  std::sort(all.begin(), all.end());
  double positives = 0.0, negatives = 0.0, rank_sum = 0.0;
  for (std::size_t i = 0; i < all.size();) {
    std::size_t j = i;
    while (j < all.size() && all[j].first == all[i].first) ++j;
    const double mid_rank = 0.5 * static_cast<double>(i + 1 + j);  // 1-based average rank of the tie
    for (std::size_t k = i; k < j; ++k) {
      if (all[k].second > 0.5f) {
        positives += 1.0;
        rank_sum += mid_rank;
      } else {
        negatives += 1.0;
      }
    }
    i = j;
  }
  if (positives == 0.0 || negatives == 0.0) return std::nan("");
  return (rank_sum - positives * (positives + 1.0) / 2.0) / (positives * negatives);
}

}  // namespace

EvalResult evaluate(comm::Communicator& comm, nn::Sequential& model, const nn::Head& head, const Dataset& data,
                    std::int64_t eval_batch) {
  const auto& rows = data.table;
  // loss, correct, rows; then per target column: squared error, sum of targets, sum of squares.
  const std::int64_t columns = head.task() == nn::Task::kRegression ? head.target_columns() : 0;
  std::vector<double> sums(static_cast<std::size_t>(3 + 3 * columns), 0.0);
  std::vector<std::pair<float, float>> scored;  // binary: (logit, label)
  std::optional<std::string> err;
  fault::point("eval", comm.rank());
  try {
    forward_rows(model, rows, eval_batch, [&](std::int64_t, std::int64_t m, const Tensor& full, const Tensor& labels) {
      const Tensor out = full.rows(0, m);
      const Tensor target = head.target(labels, m, out.device());
      const auto r = nn::compute_loss(head.loss(), out, target, 1.0f, nullptr);
      sums[0] += r.loss;
      sums[1] += static_cast<double>(r.correct);
      sums[2] += static_cast<double>(m);
      if (head.task() == nn::Task::kClassification) return;
      const Tensor host = out.device() == Device::kCpu ? out : out.clone(Device::kCpu);
      const float* z = host.data<float>();
      const float* y = labels.data<float>();
      for (std::int64_t i = 0; i < m; ++i) {
        if (head.task() == nn::Task::kBinary) {
          scored.emplace_back(z[i], y[i]);
          continue;
        }
        for (std::int64_t j = 0; j < columns; ++j) {
          const double t = y[i * columns + j], e = static_cast<double>(z[i * columns + j]) - t;
          double* col = sums.data() + 3 + 3 * j;
          col[0] += e * e;
          col[1] += t;
          col[2] += t * t;
        }
      }
    });
  } catch (const std::exception& e) {
    err = data.description + ": " + e.what();
  }
  comm.agree(err);
  comm.allreduce(std::span<double>(sums), comm::ReduceOp::kSum);
  EvalResult res;
  res.task = head.task();
  const double n = sums[2];
  res.rows = static_cast<std::int64_t>(n);
  if (n <= 0) return res;
  res.loss = sums[0] / n;
  res.accuracy = sums[1] / n;
  if (head.task() == nn::Task::kBinary) res.auc = roc_auc(comm, scored);
  if (head.task() == nn::Task::kRegression) {
    double sse = 0.0, r2 = 0.0;
    for (std::int64_t j = 0; j < columns; ++j) {
      const double* col = sums.data() + 3 + 3 * j;
      const double about_mean = col[2] - col[1] * col[1] / n;  // sum of squares about the column's mean
      sse += col[0];
      r2 += about_mean > 0 ? 1.0 - col[0] / about_mean : std::nan("");
    }
    res.rmse = std::sqrt(sse / (n * static_cast<double>(columns)));
    res.r2 = r2 / static_cast<double>(columns);
  }
  return res;
}

std::string EvalResult::describe(const std::string& prefix, bool compact) const {
  const char* p = prefix.c_str();
  char buf[200];
  if (task == nn::Task::kRegression) {
    std::snprintf(buf, sizeof buf, "%s_loss %.6g  %s_rmse %.6g  %s_r2 %.4f", p, loss, p, rmse, p, r2);
  } else if (task == nn::Task::kBinary) {
    std::snprintf(buf, sizeof buf,
                  compact ? "%s_loss %.4f  %s_acc %.4f  %s_auc %.4f" : "%s_loss %.6f  %s_accuracy %.6f  %s_auc %.6f", p,
                  loss, p, accuracy, p, auc);
  } else {
    std::snprintf(buf, sizeof buf, compact ? "%s_loss %.4f  %s_acc %.4f" : "%s_loss %.6f  %s_accuracy %.6f", p, loss, p,
                  accuracy);
  }
  return buf;
}

}  // namespace lockstep::train
