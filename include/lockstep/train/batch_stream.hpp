// BatchStream: where the trainer's batches come from. It owns the epoch shuffle (a global
// permutation from (seed, epoch); step s is positions [s*B, (s+1)*B) of it and rank r takes its
// B/np slice, delivered by a row-wise repartition of the training table that moves contiguous
// bytes), the host assembly of each micro-batch (a memcpy per row from the table's blocks, or the
// image source's per-epoch random crop and flip when the table asks for them), and
// its copy to the model's device. On a GPU in default mode the copies are
// pipelined: two pinned host buffers feed two device buffers, and the batch of step s+1 is
// assembled and copied on a copy stream while step s's backward and reduction run.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <utility>
#include <vector>

#include "lockstep/core/tensor.hpp"
#include "lockstep/data/table.hpp"
#include "lockstep/train/data_loading.hpp"

namespace lockstep::backend::cuda {
class CopyStream;
}

namespace lockstep::train {

// One micro-batch on the model's device, with its host labels and the global epoch position of
// each row (dropout masks are keyed on it).
struct Batch {
  const Tensor* x;
  const Tensor* labels;
  const std::int64_t* ids;
};

class BatchStream {
 public:
  struct Options {
    std::int64_t global_batch = 0;
    std::int64_t micro_batch = 0;  // rows per forward pass; divides global_batch / np
    std::uint64_t seed = 0;
    Device device = Device::kCpu;
    bool pipelined = false;  // device only: double-buffered asynchronous copies
  };
  // Takes the training rows over (the indexed, cached copy replaces them). Collective.
  BatchStream(comm::Communicator& comm, Dataset& train, const Options& options);
  ~BatchStream();

  std::int64_t steps_per_epoch() const { return steps_per_epoch_; }
  std::int64_t local_batch() const { return local_batch_; }
  std::int64_t micro_batches() const { return local_batch_ / options_.micro_batch; }

  // Shuffles and moves this epoch's rows to the ranks that train on them. Collective.
  void start_epoch(std::int64_t epoch, std::int64_t first_step);
  // Micro-batch `chunk` of step `step`, on the device.
  Batch get(std::int64_t step, std::int64_t chunk);
  // Pipelined mode: starts assembling and copying the batch after `step` (call once the current
  // step's batch has been consumed by the forward pass). A no-op otherwise.
  void prefetch_after(std::int64_t step);
  // This rank's rows of `step` (local_batch() of them, host memory) into x [rows, features], labels
  // [rows, labels] and ids (epoch positions): the tiled step stages them in a shared window.
  void fill_step(std::int64_t step, float* x, float* labels, std::int64_t* ids) const;
  // Host-to-device time (with host assembly when pipelined) since the last call.
  double take_copy_seconds();

 private:
  struct Stage;
  void fill(std::int64_t begin, Tensor& x, Tensor& y, std::vector<std::int64_t>& ids) const;
  void fill_rows(std::int64_t begin, std::int64_t count, float* px, float* py, std::int64_t* ids) const;
  void stage(std::int64_t step, int slot);

  comm::Communicator& comm_;
  Options options_;
  std::int64_t num_rows_, local_batch_, steps_per_epoch_;
  data::Table table_;    // the training rows this rank read (taken over from the Dataset)
  data::Table arrived_;  // this epoch's rows that came from other ranks
  data::RepartitionScratch scratch_;  // the shuffle's buffers, kept between epochs up to:
  static constexpr std::size_t kKeepScratch = std::size_t{1} << 30;
  // This epoch's rows on this rank, in step order: their features and labels, in table_ or arrived_.
  std::vector<const float*> rows_, labels_;
  std::int64_t num_labels_ = 1;
  std::int64_t features_ = 0;  // floats per delivered row (after any crop)
  std::vector<std::int64_t> positions_;
  std::vector<std::int64_t> globals_;  // each row's global index in the training set (augmentation key)
  std::int64_t first_step_ = 0, epoch_ = 0;
  // Plain mode: host buffers (and their device copy on a GPU).
  Tensor x_, y_, xd_;
  std::vector<std::int64_t> ids_;
  // Pipelined mode.
  std::unique_ptr<backend::cuda::CopyStream> copier_;
  std::array<std::unique_ptr<Stage>, 2> stages_;
  double copy_seconds_ = 0.0;
};

}  // namespace lockstep::train
