// The straggler-tolerant step over a node-shared window (see tiled_step.hpp).
#include "lockstep/train/tiled_step.hpp"

#include <algorithm>
#include <sched.h>

#include <atomic>
#include <utility>
#include <vector>

#include "lockstep/comm/shared_futex.hpp"
#include "lockstep/comm/watchdog.hpp"
#include "lockstep/core/clock.hpp"
#include "lockstep/core/error.hpp"
#include "lockstep/core/trace.hpp"

namespace lockstep::train {
namespace {

constexpr std::size_t kLine = 64;  // bytes: each counter on a cache line of its own
constexpr std::int64_t kLineInts = kLine / sizeof(std::int64_t);
// A wait spins kPureSpinSeconds, then spins yielding the core (sched_yield: returns at once when
// no other thread wants it) up to kSpinSeconds, then sleeps on the futex. With a competing busy
// process on a 2-core node, np=2, 200 us of plain spinning took the core the rank being waited for
// needed: 42k samples/s, against 51k with this (and the same ~73-77k on a quiet node).
constexpr double kPureSpinSeconds = 20e-6;
constexpr double kSpinSeconds = 200e-6;
// A rank with no tile left backs up a tile another rank holds once it has waited this many of its
// own tile times for it: a rank running normally is rarely that late, one that lost its core is.
constexpr double kBackupAfterTiles = 1.0;
constexpr int kTagShift = 20;
constexpr std::int64_t kFuseFloats = 2048;  // reduce_chunk: floats summed and updated at a time  // tile words: (step + 1) << kTagShift | payload

// The control block at the start of the window, in cache lines of 8 int64.
enum Line : std::int64_t { kTilesDone, kChunksDone, kSeq, kWaiters, kQueues };
// Within a queue's line.
enum QueueSlot : std::int64_t { kClaim, kStaged, kChunkClaim };
// Each tile's line: who claimed it ((step + 1) << kTagShift | claimer << 1 | its buffer holds it
// alone), who published it first ((step + 1) << kTagShift | 0 for the claimer's buffer, 1 + r for
// rank r's backup buffer), and, indexed by buffer, the step + 1 of a claimer still writing it.
enum TileSlot : std::int64_t { kClaimedBy, kDone, kBusy };

std::size_t aligned(std::size_t bytes) {
  return (bytes + kLine - 1) / kLine * kLine;
}

void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

}  // namespace

std::int64_t auto_tile_rows(std::int64_t local_batch) {
  // The largest tile of at most 32 rows that divides the per-rank batch. Smaller tiles share a
  // slow rank's rows out more finely, but cost more than they win: each product over fewer rows
  // repacks the same weights, and at np=2, batch 64, on a node with one competing busy process,
  // whole 32-row tiles (a rank that loses its core at a step's start loses its tile to the
  // other) ran 1.15x faster than 16-row ones, and as fast as the static step on a quiet node.
  for (std::int64_t rows = std::min<std::int64_t>(32, local_batch); rows > 1; --rows)
    if (local_batch % rows == 0) return rows;
  return local_batch > 0 ? 1 : 0;
}

std::optional<std::string> tiled_step_unsupported(const comm::Communicator& comm, const nn::Sequential& model,
                                                  bool deterministic, std::int64_t local_batch,
                                                  std::int64_t tile_rows) {
  if (tile_rows == 0) return "training.tile_rows is 0";
  if (deterministic) return "deterministic mode sums micro-batches exactly instead";
  if (tile_rows < 0 && comm.size() < 2) return "one rank";
  if (tile_rows < 0) tile_rows = auto_tile_rows(local_batch);
  if (comm.local_size() != comm.size()) return "the ranks span several nodes";
  if (model.device() != Device::kCpu) return "the model is on a GPU";
  if (model.compute_dtype() != DType::kF32) return "precision bf16";
  if (model.num_buffers() > 0) return "layers with running statistics (batch normalisation) need every rank's own batch";
  if (local_batch % tile_rows != 0)
    return "training.tile_rows (" + std::to_string(tile_rows) + ") does not divide the per-rank batch (" +
           std::to_string(local_batch) + ")";
  return std::nullopt;
}

struct TiledStep::Impl {
  comm::Communicator& comm;
  nn::Sequential& model;
  nn::Optimizer& opt;
  TileOptions o;
  int np = 1, rank = 0;
  std::int64_t n_params = 0, n_train = 0, local_batch = 0, per_queue = 0, tiles = 0, chunks = 0, chunk_floats = 0;
  std::unique_ptr<comm::SharedWindow> window;
  std::int64_t* ctrl = nullptr;
  std::int64_t* stops = nullptr;  // [queue][stop_ring]: each staged step's stop request
  std::int64_t stop_ring = 0;     // 2 * depth: a rank stages at most 2 * depth - 1 steps past one still reading
  float* params = nullptr;
  float* grads = nullptr;  // tile t's gradient at grads + t * grad_stride
  std::int64_t grad_stride = 0;
  char* staging = nullptr;  // [step % depth][queue] slots of slot_bytes
  std::size_t slot_bytes = 0, x_bytes = 0, y_bytes = 0;
  std::int64_t* tile_lines = nullptr;  // [tile] lines of TileSlot words
  std::vector<float*> sums;                             // reduce_chunk: each queue's sum
  std::vector<std::pair<int, const float*>> addends;    // reduce_chunk: (queue, tile) added to it
  std::int64_t k = -1, staged_upto = -1, rows = 0, taken_over = 0, backed_up = 0;
  std::int64_t cur_tile = -1, cur_buf = -1;  // the tile being computed and its buffer
  bool cur_backup = false, backup_taken = false;  // a backup this step: at most one, in its own buffer
  double tile_seconds = 0.0;                       // this rank's recent time per tile
  Clock::time_point cur_start{};
  std::int32_t stop = 0;
  bool accumulate = false;  // every layer can add to its gradients: owners sum their tiles in place

  Impl(comm::Communicator& c, nn::Sequential& m, nn::Optimizer& op, const TileOptions& opts)
      : comm(c), model(m), opt(op), o(opts), np(c.size()), rank(c.rank()) {}

  std::atomic_ref<std::int64_t> at(std::int64_t line, std::int64_t slot = 0) {
    return std::atomic_ref<std::int64_t>(ctrl[line * kLineInts + slot]);
  }
  std::atomic_ref<std::int64_t> queue(int q, std::int64_t slot) { return at(kQueues + q, slot); }
  std::atomic_ref<std::int64_t> tile_word(std::int64_t t, std::int64_t slot) {
    return std::atomic_ref<std::int64_t>(tile_lines[t * kLineInts + slot]);
  }
  std::int64_t tag() const { return (k + 1) << kTagShift; }
  // Where tile t's published gradient is: its claimer's buffer or the backup buffer of the rank
  // that published it.
  std::int64_t winner_buffer(std::int64_t t) {
    const std::int64_t src = tile_word(t, kDone).load(std::memory_order_acquire) & ((1 << kTagShift) - 1);
    return src == 0 ? t : tiles + src - 1;
  }
  std::uint32_t* seq_word() { return reinterpret_cast<std::uint32_t*>(ctrl + kSeq * kLineInts); }
  float* tile_grads(std::int64_t t) { return grads + t * grad_stride; }
  char* slot(std::int64_t step, int q) {
    return staging +
           (static_cast<std::size_t>(step % o.depth) * static_cast<std::size_t>(np) + static_cast<std::size_t>(q)) *
               slot_bytes;
  }

  void layout();
  void notify() {
    std::atomic_ref<std::uint32_t>(*seq_word()).fetch_add(1);
    if (at(kWaiters).load() > 0) comm::shared_futex_wake_all(seq_word());
  }
  template <class Ready>
  double wait(const char* what, Ready ready);
  void stage(std::int64_t step, const Fill& fill, std::int32_t stop_request);
  bool try_claim(int q, Tile* tile);
  void point_at(std::int64_t t, Tile* tile);
  bool try_backup(Tile* tile);
  void reduce_chunk(std::int64_t c, double lr, std::int64_t steps_before);
};

void TiledStep::Impl::layout() {
  n_params = model.num_params();
  n_train = model.num_trainable_params();
  local_batch = o.global_batch / np;
  per_queue = local_batch / o.tile_rows;
  LOCKSTEP_CHECK(per_queue < 0x8000, Error, "TiledStep: ", per_queue, " tiles a rank; at most 32767");
  accumulate = model.can_accumulate_grads();
  tiles = per_queue * np;
  // Chunks of at most chunk_floats, and at least four a rank when the model is large enough.
  chunks = std::max<std::int64_t>((n_train + o.chunk_floats - 1) / o.chunk_floats,
                                  std::min<std::int64_t>(4 * np, (n_train + 1023) / 1024));
  chunks = std::max<std::int64_t>(chunks, 1);
  chunk_floats = ((n_train + chunks - 1) / chunks + 15) / 16 * 16;
  chunks = std::max<std::int64_t>(1, (n_train + chunk_floats - 1) / chunk_floats);
  auto state = opt.state();
  grad_stride = (n_train + 15) / 16 * 16;
  x_bytes = aligned(static_cast<std::size_t>(local_batch * o.features) * sizeof(float));
  y_bytes = aligned(static_cast<std::size_t>(local_batch * o.labels) * sizeof(float));
  slot_bytes = x_bytes + y_bytes + aligned(static_cast<std::size_t>(local_batch) * sizeof(std::int64_t));
  // The staging ring holds depth steps of every rank's rows: at most 64 MiB of them, but never
  // fewer than two steps (a batch of 128 rows of 200,000 features at np=2 would otherwise stage
  // 1.6 GB, doubling the job's memory).
  const std::size_t ring_budget = std::size_t{64} << 20, per_step = static_cast<std::size_t>(np) * slot_bytes;
  o.depth = std::clamp<std::int64_t>(static_cast<std::int64_t>(ring_budget / per_step), 2, o.depth);
  stop_ring = 2 * o.depth;
  LOCKSTEP_CHECK(np < (1 << (kTagShift - 2)), Error, "TiledStep: ", np, " ranks on a node");
  const std::size_t stops_bytes = aligned(static_cast<std::size_t>(np * stop_ring) * sizeof(std::int64_t));
  const std::size_t ctrl_bytes = static_cast<std::size_t>(kQueues + np + tiles) * kLine + stops_bytes;
  const std::size_t param_bytes = aligned(static_cast<std::size_t>(std::max(n_params, n_train)) * sizeof(float));
  const std::size_t state_bytes = state.size() * aligned(static_cast<std::size_t>(n_train) * sizeof(float));
  // One buffer a tile, then one backup buffer a rank.
  const std::size_t grad_bytes = static_cast<std::size_t>((tiles + np) * grad_stride) * sizeof(float);
  const std::size_t staging_bytes = static_cast<std::size_t>(o.depth * np) * slot_bytes;
  window = comm.allocate_shared(ctrl_bytes + param_bytes + state_bytes + grad_bytes + staging_bytes);
  char* base = static_cast<char*>(window->data());  // zeroed by rank 0
  ctrl = reinterpret_cast<std::int64_t*>(base);
  stops = ctrl + (kQueues + np) * kLineInts;
  tile_lines = reinterpret_cast<std::int64_t*>(reinterpret_cast<char*>(stops) + stops_bytes);
  params = reinterpret_cast<float*>(base + ctrl_bytes);
  char* p = base + ctrl_bytes + param_bytes;
  const bool seed = rank == 0;  // rank 0's values (identical everywhere) seed the window
  for (auto& [name, tensor] : state) {
    auto* dst = reinterpret_cast<float*>(p);
    if (seed) std::copy(tensor->data<float>(), tensor->data<float>() + n_train, dst);
    *tensor = Tensor::borrow(dst, {n_train});
    p += aligned(static_cast<std::size_t>(n_train) * sizeof(float));
  }
  grads = reinterpret_cast<float*>(p);
  staging = p + grad_bytes;
  model.relocate(params, tile_grads(0), seed);
}

template <class Ready>
double TiledStep::Impl::wait(const char* what, Ready ready) {
  if (ready()) return 0.0;
  LOCKSTEP_TRACE_SCOPE("wait", what);
  const auto t0 = Clock::now();
  comm::WatchdogWait mark(what);
  for (;;) {  // spin: the rank we wait for is usually a few microseconds away
    for (int i = 0; i < 64; ++i) {
      if (ready()) return seconds_since(t0);
      cpu_relax();
    }
    if (seconds_since(t0) > kPureSpinSeconds) sched_yield();
    if (seconds_since(t0) > kSpinSeconds) break;
  }
  // Then sleep, so a rank that waits gives its core away instead of competing for it.
  auto seq = std::atomic_ref<std::uint32_t>(*seq_word());
  for (;;) {
    at(kWaiters).fetch_add(1);
    const std::uint32_t v = seq.load();
    const bool done = ready();
    if (!done) comm::shared_futex_wait(seq_word(), v, 2'000'000);
    at(kWaiters).fetch_sub(1);
    if (done || ready()) return seconds_since(t0);
  }
}

void TiledStep::Impl::stage(std::int64_t step, const Fill& fill, std::int32_t stop_request) {
  LOCKSTEP_TRACE_SCOPE("data", "step", "step", step);
  char* s = slot(step, rank);
  fill(reinterpret_cast<float*>(s), reinterpret_cast<float*>(s + x_bytes),
       reinterpret_cast<std::int64_t*>(s + x_bytes + y_bytes));
  std::atomic_ref<std::int64_t>(stops[rank * stop_ring + step % stop_ring]).store(stop_request, std::memory_order_relaxed);
  queue(rank, kStaged).store(step + 1, std::memory_order_release);
  staged_upto = step;
  notify();
}

// Points tile at tile t's staged rows of step k.
void TiledStep::Impl::point_at(std::int64_t t, Tile* tile) {
  const int q = static_cast<int>(t / per_queue);
  const std::int64_t first = (t % per_queue) * o.tile_rows;
  const char* s = slot(k, q);
  tile->x = reinterpret_cast<const float*>(s) + first * o.features;
  tile->labels = reinterpret_cast<const float*>(s + x_bytes) + first * o.labels;
  tile->ids = reinterpret_cast<const std::int64_t*>(s + x_bytes + y_bytes) + first;
  tile->index = t;
  tile->backup = false;
}

// A queue's claim word: (step << 32) | (tiles its owner took from the front << 16) | (tiles
// others took from the back); a word of an earlier step reads as no tile taken yet, a word of a
// later step as none left.
bool TiledStep::Impl::try_claim(int q, Tile* tile) {
  const bool own = q == rank;
  auto word = queue(q, kClaim);
  std::int64_t v = word.load(std::memory_order_acquire);
  for (;;) {
    // Another rank may already be a step ahead (it took the rest of this step's tiles and every
    // chunk while this one was between its last tile and its wait): never move a word back.
    if ((v >> 32) > k) return false;
    const bool this_step = (v >> 32) == k;
    const std::int64_t front = this_step ? (v >> 16) & 0xffff : 0, back = this_step ? v & 0xffff : 0;
    if (front + back >= per_queue) return false;
    const std::int64_t next = (k << 32) | ((front + (own ? 1 : 0)) << 16) | (back + (own ? 0 : 1));
    if (!word.compare_exchange_weak(v, next, std::memory_order_acq_rel)) continue;
    const std::int64_t j = own ? front : per_queue - 1 - back, t = q * per_queue + j;
    point_at(t, tile);
    // The owner sums its own tiles, in order, into its queue's first buffer (it stays in cache);
    // a tile taken by another rank gets its own buffer. A tile alone in its buffer may be backed up.
    if (!own) ++taken_over;
    const bool add = own && accumulate && front > 0;
    cur_tile = t;
    cur_buf = own && accumulate ? q * per_queue : t;
    cur_backup = false;
    cur_start = Clock::now();
    // A rank whose copy of a tile lost to a backup may still be writing this buffer (it lost its
    // core): wait until it is done with it. Rare: it has to be a whole step late.
    auto busy = tile_word(cur_buf, kBusy);
    wait("TiledStep: a late rank's tile buffer", [&] {
      std::int64_t idle = 0;
      return busy.compare_exchange_strong(idle, k + 1, std::memory_order_acq_rel);
    });
    tile_word(t, kClaimedBy).store(tag() | (rank << 1) | (add ? 0 : 1), std::memory_order_release);
    model.relocate(params, tile_grads(cur_buf), false);
    model.set_accumulate_grads(add);
    return true;
  }
}

// With no tile of step k left to take: once the ranks still computing tiles are late by
// kBackupAfterTiles of this rank's tile times, recompute one of their tiles that sits alone in its
// buffer into this rank's backup buffer. The first copy published is the tile's (the same bits
// either way); the other is dropped.
bool TiledStep::Impl::try_backup(Tile* tile) {
  if (np < 2 || backup_taken) return false;
  const auto t0 = Clock::now();
  const double patience = kBackupAfterTiles * tile_seconds;
  const auto all_done = [&] { return at(kTilesDone).load(std::memory_order_acquire) >= (k + 1) * tiles; };
  while (seconds_since(t0) < patience) {
    for (int i = 0; i < 64; ++i) {
      if (all_done()) return false;
      cpu_relax();
    }
    sched_yield();  // the late rank may be waiting for a core
  }
  // Every tile of the step is claimed by now, so the candidates can only become fewer.
  for (std::int64_t i = 1; i <= tiles; ++i) {
    const std::int64_t t = (rank * per_queue + tiles - i) % tiles;  // the previous rank's last tile first
    const std::int64_t c = tile_word(t, kClaimedBy).load(std::memory_order_acquire);
    if ((c >> kTagShift) != k + 1 || (c & 1) == 0 || ((c >> 1) & ((1 << (kTagShift - 2)) - 1)) == rank) continue;
    if ((tile_word(t, kDone).load(std::memory_order_acquire) >> kTagShift) == k + 1) continue;
    point_at(t, tile);
    tile->backup = true;
    cur_tile = t;
    cur_buf = tiles + rank;
    cur_backup = backup_taken = true;
    model.relocate(params, tile_grads(cur_buf), false);
    model.set_accumulate_grads(false);
    return true;
  }
  return false;
}

// Tiles [0, s) of queue q are summed in its owner's first buffer, where s >= 2 is the number its
// owner took; else tile 0 is alone in the buffer of whoever published it. The rest are each alone
// in theirs. The queue's sum is their sum in tile order, and the gradient the sum of the queues' in
// queue order: the same bits whoever took or backed up which tile. The sums go in place into
// published buffers, which nobody writes again before the step ends.
void TiledStep::Impl::reduce_chunk(std::int64_t c, double lr, std::int64_t steps_before) {
  LOCKSTEP_TRACE_SCOPE("reduce+optimizer", "step", "chunk", c);
  const std::int64_t begin = c * chunk_floats, end = std::min(n_train, begin + chunk_floats);
  // Where each queue's sum goes and what is added to it, read once for the chunk.
  sums.clear();
  addends.clear();
  for (int q = 0; q < np; ++q) {
    const std::int64_t v = queue(q, kClaim).load(std::memory_order_acquire);
    const std::int64_t owned = accumulate && (v >> 32) == k ? (v >> 16) & 0xffff : 0;
    sums.push_back(tile_grads(owned >= 2 ? q * per_queue : winner_buffer(q * per_queue)));
    for (std::int64_t j = std::max<std::int64_t>(owned, 1); j < per_queue; ++j)
      addends.emplace_back(q, tile_grads(winner_buffer(q * per_queue + j)));
  }
  float* g0 = sums[0];
  const Tensor grad = Tensor::borrow(g0, {n_train});
  // The sum and the update run block by block, so the update finds the summed gradient in L1
  // instead of streaming it again (the update is elementwise: the same bits as one call).
  for (std::int64_t b = begin; b < end; b += kFuseFloats) {
    const std::int64_t e = std::min(end, b + kFuseFloats);
    for (const auto& [q, g] : addends) {
      float* sum = sums[static_cast<std::size_t>(q)];
      for (std::int64_t i = b; i < e; ++i) sum[i] += g[i];
    }
    for (int q = 1; q < np; ++q) {
      const float* sum = sums[static_cast<std::size_t>(q)];
      for (std::int64_t i = b; i < e; ++i) g0[i] += sum[i];
    }
    opt.set_steps(steps_before);  // every block is part of the same step
    opt.step_range(model.flat_params(), grad, lr, 1.0, b, e);
  }
}

TiledStep::TiledStep(comm::Communicator& comm, nn::Sequential& model, nn::Optimizer& opt, const TileOptions& options)
    : impl_(std::make_unique<Impl>(comm, model, opt, options)) {
  LOCKSTEP_CHECK(options.tile_rows > 0 && options.global_batch % (options.tile_rows * comm.size()) == 0, Error,
                 "TiledStep: tiles of ", options.tile_rows, " rows do not divide the per-rank batch");
  impl_->layout();
  impl_->window->fence();
}

TiledStep::~TiledStep() = default;

std::int64_t TiledStep::tile_rows() const {
  return impl_->o.tile_rows;
}

void TiledStep::begin(std::int64_t k, const Fill& fill, std::int32_t stop) {
  auto& m = *impl_;
  LOCKSTEP_CHECK(k == m.k + 1, Error, "TiledStep: step ", k, " after step ", m.k);
  m.k = k;
  m.rows = 0;
  m.backup_taken = false;
  if (m.staged_upto < k) m.stage(k, fill, stop);
}

std::optional<TiledStep::Tile> TiledStep::claim() {
  auto& m = *impl_;
  for (;;) {
    bool unstaged = false;
    Tile tile{};
    for (int i = 0; i < m.np; ++i) {  // this rank's own rows first, then the others'
      const int q = (m.rank + i) % m.np;
      if (m.queue(q, kStaged).load(std::memory_order_acquire) < m.k + 1) {
        unstaged = true;
        continue;
      }
      if (m.try_claim(q, &tile)) return tile;
    }
    if (!unstaged) return m.try_backup(&tile) ? std::optional<Tile>(tile) : std::nullopt;
    m.wait("TiledStep: rows", [&] {
      for (int q = 0; q < m.np; ++q)
        if (m.queue(q, kStaged).load(std::memory_order_acquire) < m.k + 1) return false;
      return true;
    });
  }
}

bool TiledStep::tile_done() {
  auto& m = *impl_;
  auto done = m.tile_word(m.cur_tile, kDone);
  const std::int64_t mine = m.tag() | (m.cur_backup ? m.rank + 1 : 0);
  std::int64_t v = done.load(std::memory_order_acquire);
  bool won = false;
  while (!won && (v >> kTagShift) < m.k + 1) won = done.compare_exchange_weak(v, mine, std::memory_order_acq_rel);
  if (!m.cur_backup) {
    m.tile_word(m.cur_buf, kBusy).store(0, std::memory_order_release);
    // A tile during which this rank lost its core counts at most twice the usual time.
    const double s = std::min(seconds_since(m.cur_start), m.tile_seconds > 0.0 ? 2.0 * m.tile_seconds : 1.0);
    m.tile_seconds = m.tile_seconds > 0.0 ? 0.875 * m.tile_seconds + 0.125 * s : s;
  }
  if (won) {
    m.rows += m.o.tile_rows;
    if (m.cur_backup) ++m.backed_up;
    m.at(kTilesDone).fetch_add(1, std::memory_order_acq_rel);
  }
  m.notify();
  return won;
}

void TiledStep::stage_ahead(std::int64_t steps_left, const std::function<Fill(std::int64_t)>& fill_ahead,
                            std::int32_t stop) {
  auto& m = *impl_;
  // Slot (k + depth - 1) % depth was step k - 1's, which every rank has finished.
  const std::int64_t last = m.k + std::min(m.o.depth - 1, steps_left);
  for (std::int64_t step = m.staged_upto + 1; step <= last; ++step) m.stage(step, fill_ahead(step - m.k), stop);
}

double TiledStep::finish(double lr) {
  auto& m = *impl_;
  const std::int64_t k = m.k;
  m.model.set_accumulate_grads(false);
  double waited = m.wait("TiledStep: tiles",
                         [&] { return m.at(kTilesDone).load(std::memory_order_acquire) >= (k + 1) * m.tiles; });
  // Every queue was staged for step k before its tiles were taken: the stop requests are final.
  m.stop = 0;
  for (int q = 0; q < m.np; ++q)
    m.stop = std::max(m.stop, static_cast<std::int32_t>(std::atomic_ref<std::int64_t>(m.stops[q * m.stop_ring + k % m.stop_ring])
                                                            .load(std::memory_order_relaxed)));
  const std::int64_t steps_before = m.opt.steps();
  // Each rank's home chunks first (their optimizer state stays in its cache from step to step),
  // then whatever the others have not taken.
  for (int i = 0; i < m.np; ++i) {
    const int q = (m.rank + i) % m.np;
    const std::int64_t first = m.chunks * q / m.np, count = m.chunks * (q + 1) / m.np - first;
    auto claim = m.queue(q, kChunkClaim);
    std::int64_t v = claim.load(std::memory_order_relaxed);
    while (v < (k + 1) * count) {
      if (!claim.compare_exchange_weak(v, v + 1, std::memory_order_acq_rel)) continue;
      m.reduce_chunk(first + v - k * count, lr, steps_before);
      m.at(kChunksDone).fetch_add(1, std::memory_order_acq_rel);
      m.notify();
      v = claim.load(std::memory_order_relaxed);
    }
  }
  m.opt.set_steps(steps_before + 1);
  waited += m.wait("TiledStep: chunks",
                   [&] { return m.at(kChunksDone).load(std::memory_order_acquire) >= (k + 1) * m.chunks; });
  return waited;
}

std::int32_t TiledStep::stop_request() const {
  return impl_->stop;
}

std::int64_t TiledStep::rows_computed() const {
  return impl_->rows;
}

std::int64_t TiledStep::take_tiles_taken_over() {
  return std::exchange(impl_->taken_over, 0);
}

std::int64_t TiledStep::take_tiles_backed_up() {
  return std::exchange(impl_->backed_up, 0);
}

}  // namespace lockstep::train
