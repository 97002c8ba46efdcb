// The epoch shuffle, batch assembly and host-to-device copies (see batch_stream.hpp).
#include "lockstep/train/batch_stream.hpp"
#include "lockstep/core/clock.hpp"

#include <algorithm>
#include <cstring>
#include <numeric>

#include "lockstep/backend/cuda_runtime.hpp"
#include "lockstep/core/rng.hpp"
#include "lockstep/data/image_folder.hpp"

namespace lockstep::train {
struct BatchStream::Stage {
  std::unique_ptr<void, void (*)(void*)> pinned{nullptr, [](void* p) { backend::cuda::free_pinned(p); }};
  Tensor host_x, dev_x, y;
  std::vector<std::int64_t> ids;
};

BatchStream::BatchStream(comm::Communicator& comm, Dataset& train, const Options& options)
    : comm_(comm), options_(options), num_rows_(train.num_rows) {
  local_batch_ = options.global_batch / comm.size();
  steps_per_epoch_ = num_rows_ / options.global_batch;
  table_ = std::move(train.table);  // the stream owns the rows now; the Dataset keeps its counts
  // The epoch shuffle's buffers, resident from the start: about (np-1)/np of this rank's rows leave
  // and as many arrive each epoch (a first touch of 4 KiB pages cost up to 0.5 s of the first
  // Fashion-MNIST epoch on a VM; here it is part of the setup, like loading the data). Only when
  // the scratch is one that start_epoch keeps (kKeepScratch): a larger one is freed after each
  // epoch, and writing it here would only hold the memory longer.
  const std::int64_t moving = table_.sparse ? 0 : table_.rows - table_.rows / comm.size();
  const std::size_t row_bytes =
      static_cast<std::size_t>(table_.num_features() + table_.num_labels) * sizeof(float) + sizeof(std::int64_t);
  if (2 * static_cast<std::size_t>(moving) * row_bytes <= kKeepScratch) {
    data::prepare_repartition(table_, moving, arrived_, scratch_);
  }
  num_labels_ = table_.num_labels;
  features_ = train.num_features;
  const std::int64_t mb = options.micro_batch, f = train.num_features;
  const data::Shape yshape = num_labels_ == 1 ? data::Shape{mb} : data::Shape{mb, num_labels_};
  if (options.pipelined) {
    copier_ = std::make_unique<backend::cuda::CopyStream>(2);
    for (auto& st : stages_) {
      st = std::make_unique<Stage>();
      st->pinned.reset(backend::cuda::allocate_pinned(static_cast<std::size_t>(mb * f) * sizeof(float)));
      st->host_x = Tensor::borrow(st->pinned.get(), {mb, f});
      st->dev_x = Tensor({mb, f}, DType::kF32, options.device);
      st->y = Tensor(yshape);
    }
  } else {
    x_ = Tensor({mb, f});
    y_ = Tensor(yshape);
    xd_ = options.device == Device::kCpu ? x_ : Tensor({mb, f}, DType::kF32, options.device);
  }
}

BatchStream::~BatchStream() = default;

void BatchStream::start_epoch(std::int64_t epoch, std::int64_t first_step) {
  const int rank = comm_.rank();
  const std::int64_t big_b = options_.global_batch, b = local_batch_;
  const std::int64_t n = num_rows_, used = steps_per_epoch_ * big_b;
  first_step_ = first_step;
  epoch_ = epoch;
  std::vector<std::int64_t> order(static_cast<std::size_t>(n));
  std::iota(order.begin(), order.end(), 0);
  CounterRng rng(options_.seed, RngStream::kPermutation, static_cast<std::uint64_t>(epoch));
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
  rows_.clear();
  labels_.clear();
  std::vector<int> dest(static_cast<std::size_t>(table_.rows));
  for (std::int64_t i = 0; i < table_.rows; ++i) {
    const int d = owner(table_.row_offset + i);
    dest[static_cast<std::size_t>(i)] = d == rank ? -1 : d;
  }
  std::vector<std::int64_t> arrived_ids;
  // Into last epoch's storage: memory that was written before is not faulted in again (a fault
  // per 4 KiB page made the first shuffles cost a third of a Fashion-MNIST epoch on a VM). The
  // scratch buffers (this rank's outgoing and incoming rows) are kept up to kKeepScratch bytes.
  data::repartition_rows_into(comm_, table_, dest, arrived_, &arrived_ids, scratch_);
  if (scratch_.send.capacity() + scratch_.recv.capacity() > kKeepScratch) scratch_ = {};
  // (epoch position, table, local row) of every row this rank trains on this epoch.
  struct Slot {
    std::int64_t pos;
    const data::Table* table;
    std::int64_t row;
    std::int64_t global;
  };
  std::vector<Slot> arrived;
  arrived.reserve(static_cast<std::size_t>(steps_per_epoch_ * b));
  for (std::int64_t i = 0; i < table_.rows; ++i) {
    const std::int64_t g = table_.row_offset + i;
    if (owner(g) == rank) arrived.push_back({pos_of[static_cast<std::size_t>(g)], &table_, i, g});
  }
  for (std::int64_t i = 0; i < arrived_.rows; ++i) {
    const std::int64_t g = arrived_ids[static_cast<std::size_t>(i)];
    arrived.push_back({pos_of[static_cast<std::size_t>(g)], &arrived_, i, g});
  }
  std::sort(arrived.begin(), arrived.end(), [](const Slot& a, const Slot& c) { return a.pos < c.pos; });
  positions_.clear();
  globals_.clear();
  for (const auto& a : arrived) {
    rows_.push_back(a.table->row(a.row));
    labels_.push_back(a.table->labels.data() + a.row * num_labels_);
    positions_.push_back(a.pos);
    globals_.push_back(a.global);
  }
  LOCKSTEP_CHECK(static_cast<std::int64_t>(rows_.size()) == steps_per_epoch_ * b, Error, "epoch shuffle delivered ",
                 rows_.size(), " rows to rank ", rank, ", expected ", steps_per_epoch_ * b);
}

// Rows [begin, begin + micro_batch) of this epoch's rows: features, labels and epoch positions.
void BatchStream::fill(std::int64_t begin, Tensor& x, Tensor& y, std::vector<std::int64_t>& ids) const {
  ids.resize(static_cast<std::size_t>(options_.micro_batch));
  fill_rows(begin, options_.micro_batch, x.data<float>(), y.data<float>(), ids.data());
}

void BatchStream::fill_step(std::int64_t step, float* x, float* labels, std::int64_t* ids) const {
  fill_rows(step * local_batch_, local_batch_, x, labels, ids);
}

void BatchStream::fill_rows(std::int64_t begin, std::int64_t count, float* px, float* py, std::int64_t* ids) const {
  const std::int64_t f = features_, l = num_labels_;
  for (std::int64_t i = 0; i < count; ++i) {
    const auto k = static_cast<std::size_t>(begin + i);
    // Image sources' random crop and flip (data::Table::augment), keyed by (seed, epoch, global row).
    if (table_.augment.active()) {
      data::augment_row(table_, rows_[k], px + i * f, options_.seed, epoch_, globals_[k]);
    } else {
      std::memcpy(px + i * f, rows_[k], static_cast<std::size_t>(f) * sizeof(float));
    }
    std::memcpy(py + i * l, labels_[k], static_cast<std::size_t>(l) * sizeof(float));
    ids[i] = positions_[k];
  }
}

void BatchStream::stage(std::int64_t step, int slot) {
  const auto t0 = Clock::now();
  auto& st = *stages_[static_cast<std::size_t>(slot)];
  fill(step * local_batch_, st.host_x, st.y, st.ids);
  copier_->copy_async(slot, st.dev_x.raw(), st.host_x.raw(), st.host_x.bytes());
  copy_seconds_ += seconds_since(t0);
}

Batch BatchStream::get(std::int64_t step, std::int64_t chunk) {
  if (copier_) {  // micro_batch == local batch in pipelined mode
    const int slot = static_cast<int>(step % 2);
    if (step == first_step_) stage(step, slot);
    copier_->compute_waits_for(slot);
    const auto& st = *stages_[static_cast<std::size_t>(slot)];
    return {&st.dev_x, &st.y, st.ids.data()};
  }
  fill(step * local_batch_ + chunk * options_.micro_batch, x_, y_, ids_);
  if (xd_.raw() != x_.raw()) {
    const auto t0 = Clock::now();
    xd_.copy_from(x_);
    copy_seconds_ += seconds_since(t0);
  }
  return {&xd_, &y_, ids_.data()};
}

void BatchStream::prefetch_after(std::int64_t step) {
  // The other slot's last use (step - 1) has finished: the loss read-back of `step` synchronised
  // the compute stream.
  if (copier_ && step + 1 < steps_per_epoch_) stage(step + 1, static_cast<int>((step + 1) % 2));
}

double BatchStream::take_copy_seconds() {
  return std::exchange(copy_seconds_, 0.0);
}

}  // namespace lockstep::train
