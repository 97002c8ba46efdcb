// The monotonic clock the timings in metrics.jsonl are measured with.
#pragma once

#include <chrono>

namespace lockstep {

using Clock = std::chrono::steady_clock;
inline double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

}  // namespace lockstep
