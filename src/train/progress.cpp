#include "lockstep/train/progress.hpp"

#include <cstdio>

#include "lockstep/core/log.hpp"

namespace lockstep::train {

Progress::Progress(bool enabled, const std::string& mode, std::int64_t log_every)
    : enabled_(enabled && mode != "none"),
      live_(mode == "bar" || (mode == "auto" && log::stdout_is_terminal())),
      log_every_(log_every) {}

void Progress::set_log(RunLog* log, const std::string& file) {
  log_ = log;
  log_file_ = file;
}

void Progress::start_epoch(std::int64_t epoch, std::int64_t epochs, std::int64_t steps) {
  epoch_ = epoch;
  epochs_ = epochs;
  steps_ = steps;
  drawn_ = false;
}

void Progress::step(std::int64_t step, double loss, double sps) {
  if (!enabled_) return;
  const auto now = std::chrono::steady_clock::now();
  if (live_) {
    // Redraw at most ten times a second: the terminal is not the bottleneck of a training step.
    if (step != steps_ && now - last_draw_ < std::chrono::milliseconds(100)) return;
    last_draw_ = now;
    const int width = 30;
    const int filled = steps_ > 0 ? static_cast<int>(width * step / steps_) : width;
    std::string bar(static_cast<std::size_t>(filled), '#');
    bar.resize(width, '.');
    std::fprintf(stdout, "\r\033[2Kepoch %lld/%lld [%s] %lld/%lld loss %.4f %.0f samples/s",
                 static_cast<long long>(epoch_), static_cast<long long>(epochs_), bar.c_str(),
                 static_cast<long long>(step), static_cast<long long>(steps_), loss, sps);
    std::fflush(stdout);
    drawn_ = true;
  } else if (step % log_every_ == 0 || step == steps_) {
    char buf[200];
    std::snprintf(buf, sizeof buf, "epoch %lld/%lld step %lld/%lld loss %.4f %.0f samples/s",
                  static_cast<long long>(epoch_), static_cast<long long>(epochs_), static_cast<long long>(step),
                  static_cast<long long>(steps_), loss, sps);
    std::fprintf(stdout, "%s\n", buf);
    std::fflush(stdout);
  }
}

void Progress::end_epoch() {
  if (enabled_ && live_ && drawn_) {
    std::fprintf(stdout, "\r\033[2K");
    std::fflush(stdout);
  }
  drawn_ = false;
}

void Progress::line(const std::string& text) {
  if (enabled_) {
    std::fprintf(stdout, "%s\n", text.c_str());
    std::fflush(stdout);
  }
  if (log_) log_->append(log_file_, text + "\n");
}

}  // namespace lockstep::train
