// `lockstep predict CONFIG (--checkpoint F | --model net.onnx|checkpoint.h5) --input DATA --output OUT`.
// Streams: an image folder (or one image file) is listed by rank 0 in sorted order and each rank
// decodes, scores and writes its own contiguous block of it, --batch images at a time, so memory
// does not grow with the number of images; a tabular file is read as the rank's split. Every chunk
// goes through the network at exactly --batch rows (the last one zero-padded), so a row's bits
// do not depend on the number of ranks. Rows go to a part per rank, combined at the end
// (predict_output.hpp). Columns: origin (the image's path relative to the folder, or the row
// index), prediction, class (when the model has class names), then the head's scores.
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <optional>

#include "common.hpp"
#include "lockstep/backend/ops.hpp"
#include "lockstep/core/log.hpp"
#include "lockstep/data/detail/codec.hpp"
#include "lockstep/data/image_folder.hpp"
#include "lockstep/data/partitioned.hpp"
#include "lockstep/io/checkpoint.hpp"
#include "lockstep/io/json_line.hpp"
#include "lockstep/train/checkpointing.hpp"
#include "lockstep/train/network_file.hpp"
#include "lockstep/train/run_log.hpp"
#include "predict_output.hpp"

namespace lockstep::app {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

// The model and what its outputs mean.
struct Scoring {
  std::unique_ptr<nn::Sequential> model;
  std::optional<nn::Head> head;
  std::vector<std::string> classes;  // a `class` column when the model has class names
  std::optional<std::size_t> feature_layer;
  std::string feature_name;
};

enum class InputKind : int { kFolder, kImage, kTable };

// A folder, an image file (PNG or JPEG by content), or anything else: a file in data.format
// (whose reader names it if it is missing). Rank 0 looks; every rank gets its answer.
InputKind input_kind(comm::Communicator& comm, const std::string& input) {
  int kind = static_cast<int>(InputKind::kTable);
  if (comm.rank() == 0) {
    std::error_code ec;
    if (fs::is_directory(input, ec)) kind = static_cast<int>(InputKind::kFolder);
    else if (data::is_image_file(input)) kind = static_cast<int>(InputKind::kImage);
  }
  comm.broadcast(kind, 0);
  return static_cast<InputKind>(kind);
}

// The layer called `name` ("conv2d3", "dense6"); a ConfigError listing the names otherwise.
std::size_t find_layer(const nn::Sequential& model, const std::string& name) {
  std::string list;
  for (std::size_t i = 0; i < model.num_layers(); ++i) {
    const std::string n = model.layer(i).type() + std::to_string(i);
    if (n == name) return i;
    list += (i ? ", " : "") + n;
  }
  throw ConfigError("--features: no layer \"" + name + "\" in the model (its layers: " + list + ")");
}

Scoring load_scoring(comm::Communicator& comm, const io::Config& cfg, const PredictArgs& a, const Shape& input) {
  const train::TrainerOptions options = train::trainer_options(cfg);
  Scoring s;
  if (!a.network.empty()) {
    io::NetworkFile net = train::read_network(comm, a.network);
    train::fold_final_softmax(net, options.training.loss);  // the head applies it
    comm.collectively([&] {
      if (shape_numel(net.input) == shape_numel(input)) return;
      throw DataError(a.network + ": the network takes inputs of shape " + shape_str(net.input) + ", the data gives " +
                      shape_str(input) + " (set data.size, data.crop or data.channels to match)");
    }, comm::Communicator::ErrorKind::kData);
    s.model = train::build_network(net);
    s.classes = net.class_names;
  } else {
    s.model = train::build_model(options, input);
    train::load_parameters(comm, a.checkpoint, *s.model);
    s.classes = train::checkpoint_class_names(comm, a.checkpoint);
  }
  s.head.emplace(train::model_head(options, *s.model, label_columns(cfg)));
  if (s.head->task() != nn::Task::kClassification) s.classes.clear();
  if (!a.features.empty()) {
    comm.collectively([&] { s.feature_layer = find_layer(*s.model, a.features); }, comm::Communicator::ErrorKind::kConfig);
    s.feature_name = a.features;
  }
  return s;
}

std::string csv_header(const Scoring& s) {
  std::string h = "origin,prediction";
  if (!s.classes.empty()) h += ",class";
  const bool probabilities = s.head->task() != nn::Task::kRegression;
  for (std::int64_t j = 0; j < s.model->output_features(); ++j) {
    h += probabilities ? ",probability_" : ",output_";
    h += std::to_string(j);
  }
  return h + "\n";
}

Tensor host_f32(const Tensor& t) {
  Tensor f = t;
  if (t.dtype() != DType::kF32) {
    f = Tensor(t.shape(), DType::kF32, t.device());
    backend::cast(t, f);
  }
  return f.device() == Device::kCpu ? f : f.clone(Device::kCpu);
}

// One chunk's first m rows: the CSV rows, and the named layer's outputs.
void emit_rows(const Scoring& s, const Tensor& device_out, std::int64_t m, const std::vector<std::string>& origins,
               CsvOutput& csv, FeatureOutput* feats) {
  const Tensor out = host_f32(device_out);
  const std::int64_t k = s.model->output_features();
  std::vector<double> scores;
  std::string text;
  char buf[32];
  for (std::int64_t i = 0; i < m; ++i) {
    const double prediction = s.head->predict(out.data<float>() + i * k, scores);
    text += csv_field(origins[static_cast<std::size_t>(i)]);
    std::snprintf(buf, sizeof buf, ",%.9g", prediction);
    text += buf;
    if (!s.classes.empty()) {
      const auto c = static_cast<std::size_t>(prediction);
      text += ',';
      text += csv_field(c < s.classes.size() ? s.classes[c] : std::string());
    }
    for (double v : scores) {
      std::snprintf(buf, sizeof buf, ",%.6g", v);
      text += buf;
    }
    text += '\n';
  }
  csv.append(text);
  if (!feats) return;
  const Tensor f = host_f32(s.model->layer_output(*s.feature_layer));
  const std::int64_t d = shape_numel(s.model->layer_shape(*s.feature_layer));
  for (std::int64_t i = 0; i < m; ++i) feats->append(origins[static_cast<std::size_t>(i)], f.data<float>() + i * d);
}

// Rank 0's progress: a live line on a terminal, a plain line every 10% otherwise, or nothing.
class Reporter {
 public:
  Reporter(comm::Communicator& comm, const io::OutputConfig& o, std::int64_t total)
      : on_(comm.rank() == 0 && o.progress != "none"),
        live_(o.progress == "bar" || (o.progress == "auto" && log::stdout_is_terminal())),
        total_(total) {}
  void update(std::int64_t done) {
    if (!on_) return;
    const double secs = std::chrono::duration<double>(Clock::now() - start_).count();
    const double rate = secs > 0 ? static_cast<double>(done) / secs : 0.0;
    if (live_) {
      if (done != total_ && Clock::now() - last_ < std::chrono::milliseconds(100)) return;
      last_ = Clock::now();
      std::fprintf(stdout, "\r\033[2Kpredict %lld/%lld images %.0f images/s", static_cast<long long>(done),
                   static_cast<long long>(total_), rate);
      if (done == total_) std::fprintf(stdout, "\r\033[2K");
    } else if (total_ > 0 && done * 10 / total_ > tenth_) {
      tenth_ = done * 10 / total_;
      std::fprintf(stdout, "predict %lld/%lld images %.0f images/s\n", static_cast<long long>(done),
                   static_cast<long long>(total_), rate);
    }
    std::fflush(stdout);
  }

 private:
  bool on_, live_;
  std::int64_t total_, tenth_ = 0;
  Clock::time_point start_ = Clock::now(), last_{};
};

// This rank's block of the image list: rank 0 lists the folder (or takes the one file) and sends
// each rank only its own block, so no rank but 0 holds the whole list.
struct ImageBlock {
  std::string root;                // "" for a single file
  std::vector<std::string> files;  // relative to root: the origins
  std::int64_t first = 0, total = 0;
};

ImageBlock scatter_listing(comm::Communicator& comm, const std::string& input, InputKind kind) {
  ImageBlock b;
  b.root = kind == InputKind::kFolder ? input : std::string();
  std::vector<std::string> all;
  comm.collectively([&] {
    if (comm.rank() == 0) all = kind == InputKind::kFolder ? data::list_image_files(input) : std::vector{input};
  }, comm::Communicator::ErrorKind::kData);
  b.total = static_cast<std::int64_t>(all.size());
  comm.broadcast(b.total, 0);
  const int p = comm.size();
  std::string send;
  std::vector<std::size_t> send_counts(static_cast<std::size_t>(p), 0), recv_counts(static_cast<std::size_t>(p), 0);
  for (int r = 0; r < p && comm.rank() == 0; ++r) {
    const data::Range range = data::split_range(b.total, r, p);
    const std::size_t before = send.size();
    data::Codec<std::vector<std::string>>::encode(
        std::vector<std::string>(all.begin() + range.begin, all.begin() + range.end), send);
    send_counts[static_cast<std::size_t>(r)] = send.size() - before;
  }
  std::vector<std::int64_t> sizes(send_counts.begin(), send_counts.end());
  comm.broadcast(sizes.data(), sizes.size() * sizeof(std::int64_t), 0);
  recv_counts[0] = static_cast<std::size_t>(sizes[static_cast<std::size_t>(comm.rank())]);
  std::string recv(recv_counts[0], '\0');
  comm.alltoallv(send.data(), send_counts, recv.data(), recv_counts);
  const char* ptr = recv.data();
  b.files = data::Codec<std::vector<std::string>>::decode(ptr);
  b.first = data::split_range(b.total, comm.rank(), p).begin;
  return b;
}

std::string image_path(const ImageBlock& b, const std::string& f) { return b.root.empty() ? f : b.root + "/" + f; }

// The rows' shape: from data.crop_size or data.size, else the first image that decodes (looked at
// by the rank whose block holds the first image).
Shape image_shape(comm::Communicator& comm, const ImageBlock& b, const data::ImageFolderOptions& o) {
  if (o.crop != "none") return {o.channels, o.crop_h, o.crop_w};
  if (o.height > 0) return {o.channels, o.height, o.width};
  int owner = 0;
  while (data::split_range(b.total, owner, comm.size()).size() == 0) ++owner;  // total >= 1
  std::array<std::int64_t, 3> s{};
  comm.collectively([&] {
    for (std::size_t i = 0; comm.rank() == owner && s[0] == 0 && i < b.files.size(); ++i) {
      Shape shape;
      try {
        data::read_image_row(image_path(b, b.files[i]), o, shape);
        std::copy(shape.begin(), shape.end(), s.begin());
      } catch (const DataError&) {
        if (!o.drop_invalid) throw;
      }
    }
  }, comm::Communicator::ErrorKind::kData);
  comm.broadcast(s, owner);
  comm.collectively([&] {
    LOCKSTEP_CHECK(s[0] > 0, DataError, b.root.empty() ? std::string("--input") : b.root, ": no image of rank ", owner,
                   "'s block decodes, so the images' size is unknown; set data.size");
  }, comm::Communicator::ErrorKind::kData);
  return {s[0], s[1], s[2]};
}

struct Dropped {
  std::int64_t count = 0;
  std::string first;  // the first few messages
};

// Decodes files [i0, i1) of the block into x's rows; returns the rows filled and their origins.
std::int64_t decode_chunk(const ImageBlock& b, std::int64_t i0, std::int64_t i1, const data::ImageFolderOptions& o,
                          const Shape& shape, Tensor& x, std::vector<std::string>& origins, Dropped& dropped) {
  const std::int64_t f = shape_numel(shape);
  std::int64_t m = 0;
  origins.clear();
  for (std::int64_t i = i0; i < i1; ++i) {
    const std::string& name = b.files[static_cast<std::size_t>(i)];
    const std::string path = image_path(b, name);
    Shape got;
    std::vector<float> row;
    try {
      row = data::read_image_row(path, o, got);
      LOCKSTEP_CHECK(got == shape, DataError, path, ": decodes to ", shape_str(got), ", the model takes ",
                     shape_str(shape), " (set data.size to resize every image to one size)");
    } catch (const DataError& e) {
      if (!o.drop_invalid) throw;
      if (++dropped.count <= 5) dropped.first += std::string("\n  ") + e.what();
      continue;
    }
    std::copy(row.begin(), row.end(), x.data<float>() + m * f);
    origins.push_back(name);
    ++m;
  }
  std::fill(x.data<float>() + m * f, x.data<float>() + x.numel(), 0.0f);
  return m;
}

void report_dropped(comm::Communicator& comm, const std::string& input, const Dropped& d) {
  const std::int64_t total = comm.allreduce<std::int64_t>(d.count, comm::ReduceOp::kSum);
  const auto all = comm.allgather_strings(d.first);
  if (total == 0) return;
  std::string named;
  for (const auto& s : all) named += s;
  log::info(input + ": drop_invalid skipped " + std::to_string(total) + (total == 1 ? " file" : " files") +
            " that did not decode (no output row for them); the first:" + named);
}

std::int64_t predict_images(comm::Communicator& comm, const io::Config& cfg, const PredictArgs& a, InputKind kind) {
  comm.collectively([&] {
    if (cfg.data.format == "image_folder") return;
    throw ConfigError(a.input + ": an image input is decoded as data.format image_folder says (channels, size, " +
                      "scale, mean, std, crop), and the config's data.format is " + cfg.data.format +
                      "; set data.format: image_folder (e.g. --set data.format=image_folder --set data.channels=1)");
  }, comm::Communicator::ErrorKind::kConfig);
  data::ImageFolderOptions o;
  comm.collectively([&] { o = data::image_folder_options(cfg.data.params, "data (format image_folder)"); },
                    comm::Communicator::ErrorKind::kConfig);
  const ImageBlock b = scatter_listing(comm, a.input, kind);
  const Shape shape = image_shape(comm, b, o);
  Scoring s = load_scoring(comm, cfg, a, shape);
  comm.collectively([&] { train::check_batch_fits(*s.model, a.batch, "--batch"); },
                    comm::Communicator::ErrorKind::kConfig);
  CsvOutput csv(comm, a.output, csv_header(s));
  std::optional<FeatureOutput> feats;
  if (s.feature_layer)
    feats.emplace(comm, a.features_output, shape_numel(s.model->layer_shape(*s.feature_layer)), s.feature_name);
  const std::int64_t chunk = a.batch, mine = static_cast<std::int64_t>(b.files.size());
  const std::int64_t rounds = comm.allreduce<std::int64_t>((mine + chunk - 1) / chunk, comm::ReduceOp::kMax);
  Tensor x({chunk, shape_numel(shape)});
  Tensor xd = s.model->device() == Device::kCpu ? x : Tensor(x.shape(), DType::kF32, s.model->device());
  Reporter progress(comm, cfg.output, b.total);
  Dropped dropped;
  std::vector<std::string> origins;
  for (std::int64_t r = 0; r < rounds; ++r) {
    comm.collectively([&] {
      if (r * chunk >= mine) return;
      const std::int64_t m = decode_chunk(b, r * chunk, std::min(mine, (r + 1) * chunk), o, shape, x, origins, dropped);
      if (m == 0) return;
      if (xd.raw() != x.raw()) xd.copy_from(x);
      emit_rows(s, s.model->forward(xd, nn::ForwardContext{}), m, origins, csv, feats ? &*feats : nullptr);
    }, comm::Communicator::ErrorKind::kData);
    std::int64_t done = 0;  // every rank's files so far: each has done min(its block, (r + 1) chunks)
    for (int q = 0; q < comm.size(); ++q) done += std::min(data::split_range(b.total, q, comm.size()).size(), (r + 1) * chunk);
    progress.update(done);
  }
  if (o.drop_invalid) report_dropped(comm, a.input, dropped);
  const std::string where = csv.finish();
  if (feats) feats->finish();
  log::info("wrote predictions for " + std::to_string(b.total - comm.allreduce<std::int64_t>(dropped.count, comm::ReduceOp::kSum)) +
            " images to " + where);
  return b.total;
}

// A tabular file in data.format: the rank's split, read as a table (origin: the global row index).
std::int64_t predict_table(comm::Communicator& comm, const io::Config& cfg, const PredictArgs& a) {
  std::vector<std::string> names;
  if (!a.checkpoint.empty()) names = train::checkpoint_class_names(comm, a.checkpoint);
  const train::ClassNames classes{names, a.checkpoint};
  auto data = train::load_file(comm, cfg.data, a.input, a.labels, &classes);
  Scoring s = load_scoring(comm, cfg, a, data.sample_shape);
  comm.collectively([&] { train::check_batch_fits(*s.model, a.batch, "--batch"); },
                    comm::Communicator::ErrorKind::kConfig);
  CsvOutput csv(comm, a.output, csv_header(s));
  std::optional<FeatureOutput> feats;
  if (s.feature_layer)
    feats.emplace(comm, a.features_output, shape_numel(s.model->layer_shape(*s.feature_layer)), s.feature_name);
  const std::int64_t first = data.table.row_offset;
  std::vector<std::string> origins;
  comm.collectively([&] {
    train::forward_rows(*s.model, data.table, a.batch,
                        [&](std::int64_t b, std::int64_t m, const Tensor& out, const Tensor&) {
                          origins.clear();
                          for (std::int64_t i = 0; i < m; ++i) origins.push_back(std::to_string(first + b + i));
                          emit_rows(s, out, m, origins, csv, feats ? &*feats : nullptr);
                        });
  });
  const std::string where = csv.finish();
  if (feats) feats->finish();
  log::info("wrote " + std::to_string(data.num_rows) + " predictions to " + where);
  return data.num_rows;
}

double max_rss_mb(comm::Communicator& comm) {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return comm.allreduce<double>(static_cast<double>(u.ru_maxrss) / 1024.0, comm::ReduceOp::kMax);
}

}  // namespace

bool is_network_file(comm::Communicator& comm, const std::string& path) {
  int yes = 0;
  if (comm.rank() == 0) yes = io::is_onnx_path(path) || io::is_checkpoint_file(path) ? 1 : 0;
  comm.broadcast(yes, 0);
  return yes != 0;
}

int run_predict(comm::Communicator& comm, const ConfigArgs& args, const PredictArgs& a) {
  io::Config cfg = load_config_everywhere(comm, args);
  const auto start = Clock::now();
  const InputKind kind = input_kind(comm, a.input);
  const std::int64_t rows = kind == InputKind::kTable ? predict_table(comm, cfg, a) : predict_images(comm, cfg, a, kind);
  const double secs = std::chrono::duration<double>(Clock::now() - start).count();
  io::JsonLine js;
  js.add("predict_seconds", secs).add("images", rows).add("images_per_sec", secs > 0 ? static_cast<double>(rows) / secs : 0.0);
  js.add("world_size", comm.size()).add("max_rss_mb", max_rss_mb(comm)).add("input", a.input).add("output", a.output);
  train::RunLog(comm, cfg.output.dir).append("predict.jsonl", js.str());
  return 0;
}

}  // namespace lockstep::app
