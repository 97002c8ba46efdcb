// image_folder: a folder of images as a data source, laid out as torchvision's ImageFolder: one
// sub-folder per class (class k is the k-th name in byte order), the images under it (sub-folders
// walked, symbolic links to folders not followed) sorted by path in byte order. Rank 0 lists and
// sorts the files and broadcasts the list; each rank decodes its own contiguous block of it, so the
// rows and their global order are the same at any number of ranks. PNG and JPEG are told apart by
// content; hidden files (a name starting with '.') are ignored, every other file is a sample.
//
// Each image becomes one float32 row of C x H x W (channel-major): converted to `channels`,
// resized to `size` (bilinear, half-pixel centres, no antialiasing: the value at an output pixel
// interpolates the four nearest input pixels, as torch's interpolate(antialias=False)), cropped
// (centre, or random at batch assembly for training rows), then value * scale, then
// (value - mean[c]) / std[c]. Random crop and horizontal flip change every epoch and are keyed
// by (seed, epoch, global row): a training table carries them in Table::augment and the trainer
// applies them to each batch; test and prediction rows get the centre crop and no flip.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "lockstep/comm/communicator.hpp"
#include "lockstep/core/param_reader.hpp"
#include "lockstep/data/table.hpp"

namespace lockstep::data {

struct ImageFolderOptions {
  int channels = 3;                     // 1 or 3
  std::int64_t height = 0, width = 0;   // resize to this (0: keep; then every image must agree)
  std::string crop = "none";            // none | center | random
  std::int64_t crop_h = 0, crop_w = 0;  // for center and random
  float scale = 1.0f / 255.0f;
  std::vector<float> mean, std;  // one per channel, or empty (0 and 1)
  bool horizontal_flip = false;  // random, training rows only
  bool drop_invalid = false;     // skip (and count) files that do not decode instead of failing
  bool training = false;         // random crop and flip as Table::augment; else centre crop, no flip
  // The training folder's classes (a test, evaluation or prediction folder): class folder `c` is
  // labelled by its position in this list, and a class folder not in it is a DataError naming
  // this folder, `classes_from` and the class. A class of the list with no folder here is simply
  // absent (the others keep their indices). Empty: the folder's own sorted classes.
  std::vector<std::string> classes;
  std::string classes_from;
};

// The folder's rows, this rank's block of them. Labels are class indices; class_names, when
// given, receives the class names the labels index (options.classes when given, else the sorted
// class folder names; the same on every rank; also in Table::class_names). Collective; every
// error (an unreadable folder, a bad file without drop_invalid) is the same DataError on every
// rank, naming the folder or file.
Table read_image_folder_table(comm::Communicator& comm, const std::string& root, const ImageFolderOptions& options,
                              std::vector<std::string>* class_names = nullptr);

// The sorted class folder names of an image folder (what its labels index), without reading any
// image: rank 0 lists, every rank receives them. Collective; errors agreed, naming the folder.
std::vector<std::string> image_folder_classes(comm::Communicator& comm, const std::string& root);

// The shape the model sees for rows of `t`: sample_shape, or C x crop_h x crop_w under a crop.
Shape augmented_shape(const Table& t);

// One row of `t.augment` applied: `src` is a row of shape t.sample_shape (C x H x W), `dst`
// receives augmented_shape(t). The crop offset and the flip come from (seed, epoch, global_row)
// alone.
void augment_row(const Table& t, const float* src, float* dst, std::uint64_t seed, std::int64_t epoch,
                 std::int64_t global_row);

// The table's rows as test rows: a random crop becomes the centre crop, the flip is dropped, and
// `augment` is cleared (for readers of a training table other than the trainer's batches).
Table without_augment(const Table& t);

// The data.<key>s of format image_folder (channels, size, crop, crop_size, scale, mean, std,
// horizontal_flip, drop_invalid) from a config's data parameters, checked as a split's are
// (a ConfigError at the key); `owner` names them in the unknown-key message. training is false.
ImageFolderOptions image_folder_options(const std::map<std::string, Param>& params, const std::string& owner);

// One image file as a test row (C x H x W, crop_h x crop_w under a crop: the centre crop, no flip),
// its shape in `shape`. Any problem is a DataError naming the file.
std::vector<float> read_image_row(const std::string& path, const ImageFolderOptions& options, Shape& shape);

// Every file under `root`, recursively (hidden names skipped, links to folders not followed), as
// paths relative to root sorted in byte order; class sub-folders are walked like any other. At
// least one file, else a DataError naming the folder. Not collective: one rank lists.
std::vector<std::string> list_image_files(const std::string& root);

// Whether the file at `path` starts as a PNG or a JPEG does (the decoder's test); false when it
// cannot be read.
bool is_image_file(const std::string& path);

}  // namespace lockstep::data
