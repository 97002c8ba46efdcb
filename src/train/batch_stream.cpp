// The epoch shuffle, batch assembly and host-to-device copies (see batch_stream.hpp).
#include "lockstep/train/batch_stream.hpp"

#include <algorithm>
#include <chrono>
#include <numeric>

#include "lockstep/backend/cuda_runtime.hpp"
#include "lockstep/core/rng.hpp"

namespace lockstep::train {
namespace {
using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}
}  // namespace

struct BatchStream::Stage {
  std::unique_ptr<void, void (*)(void*)> pinned{nullptr, [](void* p) { backend::cuda::free_pinned(p); }};
  Tensor host_x, dev_x, y;
  std::vector<std::int64_t> ids;
};

BatchStream::BatchStream(comm::Communicator& comm, Dataset& train, const Options& options)
    : comm_(comm), options_(options), num_rows_(train.num_rows) {
  local_batch_ = options.global_batch / comm.size();
  steps_per_epoch_ = num_rows_ / options.global_batch;
  indexed_ = train.rows.zip_with_index().cache();
  train.rows = data::Partitioned<data::Example>::from_local(comm, {});  // the indexed copy replaces it
  const std::int64_t mb = options.micro_batch, f = train.num_features;
  if (options.pipelined) {
    copier_ = std::make_unique<backend::cuda::CopyStream>(2);
    for (auto& st : stages_) {
      st = std::make_unique<Stage>();
      st->pinned.reset(backend::cuda::allocate_pinned(static_cast<std::size_t>(mb * f) * sizeof(float)));
      st->host_x = Tensor::borrow(st->pinned.get(), {mb, f});
      st->dev_x = Tensor({mb, f}, DType::kF32, options.device);
      st->y = Tensor({mb});
    }
  } else {
    x_ = Tensor({mb, f});
    y_ = Tensor({mb});
    xd_ = options.device == Device::kCpu ? x_ : Tensor({mb, f}, DType::kF32, options.device);
  }
}

BatchStream::~BatchStream() = default;

void BatchStream::start_epoch(std::int64_t epoch, std::int64_t first_step) {
  const int rank = comm_.rank();
  const std::int64_t big_b = options_.global_batch, b = local_batch_;
  const std::int64_t n = num_rows_, used = steps_per_epoch_ * big_b;
  first_step_ = first_step;
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
  epoch_data_.reset();  // free last epoch's rows first, so the allocator reuses their memory
  epoch_data_ = indexed_->repartition([&](const std::pair<std::int64_t, data::Example>& r) {
    const int dest = owner(r.first);
    return dest == rank ? -1 : dest;
  });
  std::vector<std::pair<std::int64_t, const data::Example*>> arrived;
  arrived.reserve(static_cast<std::size_t>(steps_per_epoch_ * b));
  for (const auto& r : *indexed_->cached_local()) {
    if (owner(r.first) == rank) arrived.emplace_back(pos_of[static_cast<std::size_t>(r.first)], &r.second);
  }
  for (const auto& r : *epoch_data_->cached_local()) {
    arrived.emplace_back(pos_of[static_cast<std::size_t>(r.first)], &r.second);
  }
  std::sort(arrived.begin(), arrived.end(), [](const auto& a, const auto& c) { return a.first < c.first; });
  positions_.clear();
  for (const auto& [pos, row] : arrived) {
    rows_.push_back(row);
    positions_.push_back(pos);
  }
  LOCKSTEP_CHECK(static_cast<std::int64_t>(rows_.size()) == steps_per_epoch_ * b, Error, "epoch shuffle delivered ",
                 rows_.size(), " rows to rank ", rank, ", expected ", steps_per_epoch_ * b);
}

// Rows [begin, begin + micro_batch) of this epoch's rows: features, labels and epoch positions.
void BatchStream::fill(std::int64_t begin, Tensor& x, Tensor& y, std::vector<std::int64_t>& ids) const {
  const std::int64_t f = x.dim(1), count = options_.micro_batch;
  float* px = x.data<float>();
  float* py = y.data<float>();
  ids.resize(static_cast<std::size_t>(count));
  for (std::int64_t i = 0; i < count; ++i) {
    const auto k = static_cast<std::size_t>(begin + i);
    const data::Example& e = *rows_[k];
    LOCKSTEP_CHECK(static_cast<std::int64_t>(e.features.size()) == f, DataError, "training row at epoch position ",
                   positions_[k], ": expected ", f, " features, got ", e.features.size());
    std::copy(e.features.begin(), e.features.end(), px + i * f);
    py[i] = e.label;
    ids[static_cast<std::size_t>(i)] = positions_[k];
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
