// The image_folder source (see image_folder.hpp): rank 0 lists the folder, every rank decodes its
// block of the sorted list, and drop_invalid's counts are gathered for rank 0's log.
#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <filesystem>

#include "data/image_decode.hpp"
#include "data/image_transform.hpp"
#include "data/source_util.hpp"
#include "lockstep/core/log.hpp"
#include "lockstep/data/detail/codec.hpp"
#include "lockstep/data/image_folder.hpp"
#include "lockstep/data/partitioned.hpp"
#include "lockstep/data/source.hpp"

namespace lockstep::data {
namespace {

namespace fs = std::filesystem;
using detail::collectively;

struct Listing {
  std::vector<std::string> classes;
  std::vector<std::string> files;
  std::vector<std::int32_t> labels;
};

bool hidden(const fs::path& p) {
  const std::string n = p.filename().string();
  return !n.empty() && n[0] == '.';
}

// The samples under one class folder, sorted by path in byte order. Sub-folders are walked;
// symbolic links to folders are not followed (so a link loop cannot make the walk endless), and
// anything else that is not a folder, broken links included, is a sample (and fails to decode).
std::vector<std::string> list_class(const fs::path& dir, bool allow_empty = false) {
  std::vector<std::string> files;
  std::error_code ec;
  fs::recursive_directory_iterator it(dir, fs::directory_options::none, ec), end;
  for (; !ec && it != end; it.increment(ec)) {
    const fs::directory_entry& e = *it;
    if (hidden(e.path())) {
      if (e.is_directory(ec)) it.disable_recursion_pending();
      ec.clear();
      continue;
    }
    std::error_code type_ec;
    if (e.is_directory(type_ec)) continue;  // walked (a real folder) or skipped (a link to one)
    files.push_back(e.path().string());
  }
  if (ec) throw DataError(dir.string() + ": cannot list the folder: " + ec.message());
  std::sort(files.begin(), files.end());
  if (files.empty() && !allow_empty) {
    throw DataError(dir.string() +
                    ": empty class folder (no image files); every class folder needs at least one image");
  }
  return files;
}

// The sorted class folder names of root (hidden ones skipped); at least one.
std::vector<std::string> list_classes(const std::string& root) {
  std::error_code ec;
  if (!fs::is_directory(root, ec)) {
    throw DataError(root + ": not a folder (format image_folder reads a folder with one sub-folder per class" +
                    (ec ? std::string(": ") + ec.message() : std::string()) + ")");
  }
  std::vector<std::string> classes;
  fs::directory_iterator it(root, ec), end;
  for (; !ec && it != end; it.increment(ec)) {
    std::error_code type_ec;
    if (!hidden(it->path()) && it->is_directory(type_ec)) classes.push_back(it->path().filename().string());
  }
  if (ec) throw DataError(root + ": cannot list the folder: " + ec.message());
  if (classes.empty()) {
    throw DataError(root + ": no class folders (image_folder expects one sub-folder per class, e.g. " + root +
                    "/cat/001.png)");
  }
  std::sort(classes.begin(), classes.end());
  for (const auto& c : classes) {
    if (c.find('\n') != std::string::npos)  // checkpoints keep class names one a line
      throw DataError(root + ": a class folder name with a newline in it; rename it");
  }
  return classes;
}

// The label of each class folder: its position in `reference` (the training folder's classes),
// or its own when there is none. A class the training data lacks is an error naming both.
std::vector<std::int32_t> class_labels(const std::string& root, const std::vector<std::string>& classes,
                                       const ImageFolderOptions& o) {
  std::vector<std::int32_t> labels(classes.size());
  for (std::size_t k = 0; k < classes.size(); ++k) {
    if (o.classes.empty()) {
      labels[k] = static_cast<std::int32_t>(k);
      continue;
    }
    const auto it = std::find(o.classes.begin(), o.classes.end(), classes[k]);
    if (it == o.classes.end()) {
      std::string known;
      for (std::size_t j = 0; j < o.classes.size() && j < 10; ++j) known += (j ? ", " : "") + o.classes[j];
      if (o.classes.size() > 10) known += ", ...";
      throw DataError(root + "/" + classes[k] + ": class folder \"" + classes[k] + "\" is not one of the " +
                      std::to_string(o.classes.size()) + " classes of the training data " + o.classes_from + " (" +
                      known + "); the labels are the training classes' indices, so every class folder here " +
                      "must also be one there");
    }
    labels[k] = static_cast<std::int32_t>(it - o.classes.begin());
  }
  return labels;
}

Listing list_folder(const std::string& root, const ImageFolderOptions& o) {
  Listing l;
  l.classes = list_classes(root);
  const std::vector<std::int32_t> labels = class_labels(root, l.classes, o);
  for (std::size_t k = 0; k < l.classes.size(); ++k) {
    for (auto& f : list_class(fs::path(root) / l.classes[k])) {
      l.files.push_back(std::move(f));
      l.labels.push_back(labels[k]);
    }
  }
  if (!o.classes.empty()) l.classes = o.classes;  // what the labels index
  return l;
}

// Rank 0's listing on every rank (one broadcast of the encoded lists). Collective.
Listing shared_listing(comm::Communicator& comm, const std::string& root, const ImageFolderOptions& o) {
  Listing l;
  collectively(comm, [&] {
    if (comm.rank() == 0) l = list_folder(root, o);
  });
  std::string wire;
  if (comm.rank() == 0) {
    Codec<std::vector<std::string>>::encode(l.classes, wire);
    Codec<std::vector<std::string>>::encode(l.files, wire);
    Codec<std::vector<std::int32_t>>::encode(l.labels, wire);
  }
  comm.broadcast(wire, 0);
  const char* p = wire.data();
  l.classes = Codec<std::vector<std::string>>::decode(p);
  l.files = Codec<std::vector<std::string>>::decode(p);
  l.labels = Codec<std::vector<std::int32_t>>::decode(p);
  return l;
}

// One file as a row of the stored shape (C x H x W, the crop applied unless it is left to the trainer).
std::vector<float> image_row(const std::string& path, const ImageFolderOptions& o, Shape& shape) {
  const detail::DecodedImage img = detail::decode_image_file(path, o.channels);
  std::vector<float> v = detail::to_chw(img, o.height, o.width);
  const std::int64_t c = o.channels, h = o.height > 0 ? o.height : img.height, w = o.width > 0 ? o.width : img.width;
  const bool crop_now = o.crop == "center" || (o.crop == "random" && !o.training);
  if (o.crop != "none" && (o.crop_h > h || o.crop_w > w)) {
    throw DataError(path + ": crop_size " + std::to_string(o.crop_h) + " x " + std::to_string(o.crop_w) +
                    " is larger than the image, " + std::to_string(h) + " x " + std::to_string(w) +
                    " (set data.size to resize first)");
  }
  if (crop_now) {
    std::vector<float> out(static_cast<std::size_t>(c * o.crop_h * o.crop_w));
    detail::crop_chw(v.data(), c, h, w, (h - o.crop_h) / 2, (w - o.crop_w) / 2, o.crop_h, o.crop_w, false, out.data());
    v = std::move(out);
    shape = {c, o.crop_h, o.crop_w};
  } else {
    shape = {c, h, w};
  }
  detail::normalize_chw(v, c, o.scale, o.mean, o.std);
  return v;
}

struct Dropped {
  std::int64_t count = 0;
  std::vector<std::string> first;  // the first few messages
};
constexpr std::size_t kDroppedNamed = 5;

// This rank's block of the listing into t (labels, features); bad files fail, or are dropped.
void decode_block(comm::Communicator& comm, const Listing& l, const ImageFolderOptions& o, Table& t, Dropped& dropped) {
  const Range r = split_range(static_cast<std::int64_t>(l.files.size()), comm.rank(), comm.size());
  Shape first_shape;
  for (std::int64_t i = r.begin; i < r.end; ++i) {
    const std::string& path = l.files[static_cast<std::size_t>(i)];
    Shape shape;
    std::vector<float> row;
    try {
      row = image_row(path, o, shape);
    } catch (const DataError& e) {
      if (!o.drop_invalid) throw;
      if (dropped.first.size() < kDroppedNamed) dropped.first.emplace_back(e.what());
      ++dropped.count;
      continue;
    }
    if (first_shape.empty()) {
      first_shape = shape;
    } else if (shape != first_shape) {
      throw DataError(path + ": decodes to " + std::to_string(shape[1]) + " x " + std::to_string(shape[2]) +
                      " pixels, while " + l.files[static_cast<std::size_t>(r.begin)] + " decodes to " +
                      std::to_string(first_shape[1]) + " x " + std::to_string(first_shape[2]) +
                      " (set data.size to resize every image to one size)");
    }
    t.features.insert(t.features.end(), row.begin(), row.end());
    t.labels.push_back(static_cast<float>(l.labels[static_cast<std::size_t>(i)]));
    ++t.rows;
  }
  t.sample_shape = first_shape;
}

// drop_invalid's report: the global count, and the first messages in file order, on rank 0's log.
void report_dropped(comm::Communicator& comm, const std::string& root, const Dropped& d) {
  const std::int64_t total = comm.allreduce<std::int64_t>(d.count, comm::ReduceOp::kSum);
  std::string mine;
  for (const auto& m : d.first) mine += "\n  " + m;
  const auto all = comm.allgather_strings(mine);  // in rank order, so in file order
  if (total == 0) return;
  std::string named;
  std::size_t n = 0;
  for (const auto& s : all) {
    for (std::size_t pos = 0; pos < s.size() && n < kDroppedNamed; ++n) {
      const std::size_t next = std::min(s.find("\n  ", pos + 1), s.size());
      named += s.substr(pos, next - pos);
      pos = next;
    }
  }
  log::info(root + ": drop_invalid skipped " + std::to_string(total) + (total == 1 ? " file" : " files") +
            " that did not decode; the first:" + named);
}

// The decode's log line on rank 0: images, the slowest rank's seconds, and images/s per rank.
void report_decode(comm::Communicator& comm, const std::string& root, double seconds, std::int64_t images) {
  const double slowest = comm.allreduce<double>(seconds, comm::ReduceOp::kMax);
  const double per_rank = static_cast<double>(images) / comm.size();
  char buf[160];
  std::snprintf(buf, sizeof buf, ": decoded %lld images in %.2f s on %d rank(s) (%.0f images/s per rank)",
                static_cast<long long>(images), slowest, comm.size(), slowest > 0 ? per_rank / slowest : 0.0);
  log::info(root + buf);
}

}  // namespace

Table read_image_folder_table(comm::Communicator& comm, const std::string& root, const ImageFolderOptions& o,
                              std::vector<std::string>* class_names) {
  const Listing l = shared_listing(comm, root, o);
  Table t;
  Dropped dropped;
  const auto start = std::chrono::steady_clock::now();
  collectively(comm, [&] { decode_block(comm, l, o, t, dropped); });
  report_decode(comm, root, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(),
                static_cast<std::int64_t>(l.files.size()));
  if (o.drop_invalid) report_dropped(comm, root, dropped);
  if (o.training && o.crop == "random") t.augment.crop_h = o.crop_h, t.augment.crop_w = o.crop_w;
  if (o.training) t.augment.hflip = o.horizontal_flip;
  if (class_names) *class_names = l.classes;
  t.class_names = l.classes;
  // A rank without rows (more ranks than images, or all dropped) takes the first other rank's
  // shape, which only decoding tells when data.size is not given; finish_table checks the rest.
  std::array<std::int64_t, 3> mine{};
  if (t.rows > 0) std::copy(t.sample_shape.begin(), t.sample_shape.end(), mine.begin());
  for (const auto& s : comm.allgather(mine)) {
    if (t.rows > 0 || s[0] == 0) continue;
    t.sample_shape.assign(s.begin(), s.end());
    break;
  }
  finish_table(comm, t, root);
  return t;
}

std::vector<std::string> image_folder_classes(comm::Communicator& comm, const std::string& root) {
  std::vector<std::string> classes;
  collectively(comm, [&] {
    if (comm.rank() == 0) classes = list_classes(root);
  });
  std::string wire;
  if (comm.rank() == 0) Codec<std::vector<std::string>>::encode(classes, wire);
  comm.broadcast(wire, 0);
  const char* p = wire.data();
  return Codec<std::vector<std::string>>::decode(p);
}

namespace {

void get_per_channel(ParamReader& p, const std::string& key, std::vector<float>& out, int channels, bool positive) {
  std::vector<double> v;
  if (!p.get_list(key, v, positive ? greater_than(0.0) : ParamRange<double>{})) return;
  if (v.size() != 1 && v.size() != static_cast<std::size_t>(channels)) {
    ParamReader::fail(*p.find(key), "one value, or one per channel (" + std::to_string(channels) + ")",
                      std::to_string(v.size()) + " values");
  }
  out.assign(v.begin(), v.end());
}

ImageFolderOptions parse_options(ParamReader& p) {
  ImageFolderOptions o;
  p.get("channels", o.channels, ParamRange<int>{[](const int& c) { return c == 1 || c == 3; }, "1 or 3"});
  detail::get_hw(p, "size", o.height, o.width);
  p.get("crop", o.crop, one_of({"none", "center", "random"}));
  const bool has_crop_size = detail::get_hw(p, "crop_size", o.crop_h, o.crop_w);
  if (o.crop != "none" && !has_crop_size)
    throw ConfigError((p.find("crop") ? p.find("crop")->where : "data.crop") + ": crop " + o.crop + " needs data.crop_size");
  if (o.crop == "none" && has_crop_size)
    ParamReader::fail(*p.find("crop_size"), "no crop_size when data.crop is none (the default)", "one");
  if (has_crop_size && o.height > 0 && (o.crop_h > o.height || o.crop_w > o.width))
    ParamReader::fail(*p.find("crop_size"), "a crop no larger than data.size", "a larger one");
  double scale = 1.0 / 255.0;
  p.get("scale", scale, greater_than(0.0));
  o.scale = static_cast<float>(scale);
  get_per_channel(p, "mean", o.mean, o.channels, false);
  get_per_channel(p, "std", o.std, o.channels, true);
  p.get("horizontal_flip", o.horizontal_flip);
  p.get("drop_invalid", o.drop_invalid);
  p.finish();
  return o;
}

Table read_image_folder_source(comm::Communicator& comm, const SourceRequest& req, ParamReader& p) {
  ImageFolderOptions o = parse_options(p);
  if (!req.labels.empty())
    throw ConfigError("data.labels: format image_folder takes labels from the class folders; remove the labels path");
  o.training = req.split == SplitKind::kTrain;
  o.classes = req.class_names;
  o.classes_from = req.class_names_from;
  return read_image_folder_table(comm, req.features, o);
}

const SourceRegistrar kImageFolder{Source{"image_folder",
                                          {"size", "crop", "crop_size", "channels", "scale", "mean", "std",
                                           "horizontal_flip", "drop_invalid"},
                                          true, false, read_image_folder_source}};

}  // namespace

ImageFolderOptions image_folder_options(const std::map<std::string, Param>& params, const std::string& owner) {
  ParamReader p(params, owner);
  return parse_options(p);
}

std::vector<float> read_image_row(const std::string& path, const ImageFolderOptions& options, Shape& shape) {
  return image_row(path, options, shape);
}

bool is_image_file(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) return false;
  std::uint8_t b[8] = {};
  const std::size_t n = std::fread(b, 1, sizeof b, f);
  std::fclose(f);
  return detail::image_format(b, n) != detail::ImageFormat::kNone;
}

std::vector<std::string> list_image_files(const std::string& root) {
  std::error_code ec;
  if (!fs::is_directory(root, ec)) throw DataError(root + ": not a folder" + (ec ? ": " + ec.message() : std::string()));
  std::vector<std::string> files;
  const std::size_t skip = fs::path(root).string().size();
  for (auto& f : list_class(fs::path(root), true)) {
    std::string rel = f.substr(std::min(skip, f.size()));
    while (!rel.empty() && rel[0] == '/') rel.erase(0, 1);
    files.push_back(std::move(rel));
  }
  std::sort(files.begin(), files.end());
  if (files.empty()) throw DataError(root + ": no image files in the folder or its sub-folders");
  return files;
}

}  // namespace lockstep::data
