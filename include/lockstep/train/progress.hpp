// Progress on rank 0: a live line redrawn in place on a terminal, plain lines (every N steps)
// when stdout is a file such as a Slurm log, or nothing.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace lockstep::train {

class Progress {
 public:
  Progress(bool enabled, const std::string& mode, std::int64_t log_every);
  void start_epoch(std::int64_t epoch, std::int64_t epochs, std::int64_t steps);
  void step(std::int64_t step, double loss, double samples_per_sec);
  void end_epoch();                    // clears the live line
  void line(const std::string& text);  // a finished line (also appended to the log file)
  void set_log_file(const std::string& path);

 private:
  bool enabled_;
  bool live_;
  std::int64_t log_every_;
  std::int64_t epoch_ = 0, epochs_ = 0, steps_ = 0;
  std::chrono::steady_clock::time_point last_draw_{};
  std::string log_path_;
  bool drawn_ = false;
};

}  // namespace lockstep::train
