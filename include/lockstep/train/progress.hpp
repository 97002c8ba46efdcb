// Progress on rank 0: a live line redrawn in place on a terminal, plain lines (every N steps)
// when stdout is a file such as a Slurm log, or nothing.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include "lockstep/train/run_log.hpp"

namespace lockstep::train {

class Progress {
 public:
  Progress(bool enabled, const std::string& mode, std::int64_t log_every);
  void start_epoch(std::int64_t epoch, std::int64_t epochs, std::int64_t steps);
  void step(std::int64_t step, double loss, double samples_per_sec);
  void end_epoch();                    // clears the live line
  // A finished line, also appended to the log file. Collective when a log is set: every rank
  // calls it at the same point, and a failed append is an error on every rank.
  void line(const std::string& text);
  void set_log(RunLog* log, const std::string& file);  // on every rank

 private:
  bool enabled_;
  bool live_;
  std::int64_t log_every_;
  std::int64_t epoch_ = 0, epochs_ = 0, steps_ = 0;
  std::chrono::steady_clock::time_point last_draw_{};
  RunLog* log_ = nullptr;
  std::string log_file_;
  bool drawn_ = false;
};

}  // namespace lockstep::train
