// TiledStep: a data-parallel step on one node that tolerates a slow rank.
//
// The shared-window step (gradient_sync.hpp) gives each rank a fixed share of the work: its
// B/np rows, then its shard of the reduction and the update. A rank that loses its core for a
// moment (another process, the OS, a page fault storm) then holds every other rank for the whole
// of its delay, every step. Here the work of a step is cut into pieces that any rank of the node
// can take:
//
// - Tiles. The global batch is cut into tiles of `tile_rows` rows. Each rank copies its own rows of
//   the step (the epoch shuffle's slice, as before) into a staging area of the node-shared window,
//   up to `depth` steps ahead; then every rank takes tiles: its own queue from the front, the others' from the
//   back, until none is left. The owner of a queue sums its tiles' gradients in place in the
//   queue's first buffer (a running sum that stays in its cache, as the static step's one gradient
//   does); a tile another rank takes gets a buffer of its own. Loss scale 1/B.
// - Chunks. When every tile is done, the ranks take chunks of the parameter vector (their own
//   home chunks first): each sums its chunk over the tiles, tile order within a queue and queue
//   order across them, and applies the optimizer to it.
// - Waits. A rank waits only for what it needs next (a queue to be staged, the last tile, the last
//   chunk), spinning briefly and then sleeping on a futex in the window; a stalled rank is caught by
//   the collective watchdog (comm.timeout_s) like any other wait.
//
// - Backups. A rank that finds no tile left, and has waited one of its own tile times for the last
//   ones, recomputes a tile another rank holds (one that sits alone in its buffer, not an owner's
//   second or later tile summed in place) into a backup buffer of its own, at most one a step. The
//   first copy published (CAS on the tile's done word) is the tile's; the other is dropped, and a
//   buffer whose late copy lost is not reused until its writer is done with it. So a rank that
//   loses its core holding a tile costs the others about one tile time, not its whole absence.
//
// Adding a tile's gradient into a running sum rounds exactly as adding a separately computed one
// (dense layers: one K block, one rounding; layers that cannot write every tile to its own
// buffer), so the gradient of a step has the same bits whoever computed which tile: a run is
// bit-reproducible at a given number of ranks, and a resumed run matches an uninterrupted one.
// Across rank counts the queues differ, so results agree up to rounding. A slow rank costs the
// others at most the tile it holds; while it is descheduled the others take its staged rows, up
// to depth - 1 steps ahead of it. Layers with state the ranks must agree on (batch normalisation) keep the static
// step.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "lockstep/comm/communicator.hpp"
#include "lockstep/nn/optimizer.hpp"
#include "lockstep/nn/sequential.hpp"

namespace lockstep::train {

struct TileOptions {
  std::int64_t global_batch = 0;  // rows per step over all ranks
  std::int64_t tile_rows = 0;     // rows per tile; divides global_batch / np
  std::int64_t features = 0;      // floats per row
  std::int64_t labels = 1;        // label values per row
  std::int64_t chunk_floats = 1 << 16;  // at most this many parameters per reduction chunk
  std::int64_t depth = 8;               // steps of each rank's rows staged ahead (fewer, down to 2, past 64 MiB)
};

// training.tile_rows: auto: the largest divisor of the per-rank batch that is at most 32.
std::int64_t auto_tile_rows(std::int64_t local_batch);

// Why the tiled step cannot run for this model and these ranks, or nullopt when it can.
std::optional<std::string> tiled_step_unsupported(const comm::Communicator& comm, const nn::Sequential& model,
                                                  bool deterministic, std::int64_t local_batch,
                                                  std::int64_t tile_rows);  // -1: auto

class TiledStep {
 public:
  struct Tile {
    const float* x;            // [tile_rows, features]
    const float* labels;       // [tile_rows, labels]
    const std::int64_t* ids;   // each row's epoch position (dropout masks are keyed on it)
    std::int64_t index;        // the tile's place in the step, 0 .. B / tile_rows - 1
    bool backup;               // a copy of a tile another rank holds (tile_done says whose counts)
  };
  // Fills this rank's B/np rows of one step: features, labels, epoch positions.
  using Fill = std::function<void(float* x, float* labels, std::int64_t* ids)>;

  // Takes over the model's parameters and gradients and the optimizer's state (rank 0's values
  // seed the window). Collective over the node's ranks.
  TiledStep(comm::Communicator& comm, nn::Sequential& model, nn::Optimizer& opt, const TileOptions& options);
  ~TiledStep();
  TiledStep(const TiledStep&) = delete;
  TiledStep& operator=(const TiledStep&) = delete;

  std::int64_t tile_rows() const;
  // Opens step k (0, 1, ... in order): stages this rank's rows unless stage_ahead already did.
  // `stop` is this rank's stop request, which every rank reads back by stop_request().
  void begin(std::int64_t k, const Fill& fill, std::int32_t stop);
  // The next tile this rank computes, or nullopt when no tile of step k is left to take. Points
  // the model's gradients at the tile's buffer.
  // With none left, once the ranks still computing are late, a backup copy of a tile another rank
  // holds (see backups above).
  std::optional<Tile> claim();
  // Publishes the tile unless another copy of it was published first; true when this one was (its
  // loss and rows are the step's).
  bool tile_done();
  // Stages this rank's rows of the steps after k, up to depth - 1 of them and at most steps_left,
  // that are not staged yet; fill_ahead(j) fills step k + j. While this rank is descheduled the
  // others go on with its staged rows, up to depth - 1 steps ahead of it.
  void stage_ahead(std::int64_t steps_left, const std::function<Fill(std::int64_t)>& fill_ahead, std::int32_t stop);
  // Reduces and applies the update over chunks shared by the ranks; returns once the whole step
  // is applied on every chunk. Returns the seconds spent waiting for other ranks.
  double finish(double lr);
  // The largest stop request any rank staged for the finished step: the same on every rank.
  std::int32_t stop_request() const;
  // Rows this rank computed in the finished step.
  std::int64_t rows_computed() const;
  // Tiles this rank took from other ranks' queues since the last call.
  std::int64_t take_tiles_taken_over();
  // Tiles whose backup copy computed by this rank was published first, since the last call.
  std::int64_t take_tiles_backed_up();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace lockstep::train
