// The collective watchdog (see watchdog.hpp). Its state is never destroyed: the thread is detached
// and may look at it until the process is gone.
#include "lockstep/comm/watchdog.hpp"

#include <unistd.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <thread>

namespace lockstep::comm {
namespace {

using Clock = std::chrono::steady_clock;

struct Mark {
  const char* what = nullptr;  // null: a free slot
  Clock::time_point since;
};

struct State {
  std::mutex mu;
  std::array<Mark, 16> marks;  // at most the owner thread and the progress thread wait at once
  double timeout = kDefaultTimeoutSeconds;
  int rank = 0, size = 1;
  std::string host;
  std::once_flag started;
};
State& state() {
  static State* s = new State;
  return *s;
}

[[noreturn]] void expire(const State& s, const Mark& m, double waited) {
  std::fprintf(stderr,
               "error: [rank %d of %d, host %s] no progress for %.0f s in %s (comm.timeout_s: %g): another rank "
               "has stalled, died or fallen far behind; ending the job. If one rank legitimately works that "
               "long while the others wait (a very large file read or written by rank 0), raise comm.timeout_s\n",
               s.rank, s.size, s.host.c_str(), waited, m.what, s.timeout);
  std::fflush(stderr);
  std::_Exit(1);  // not exit(): no destructors, no atexit handlers, nothing that could wait for MPI
}

// Once per tick: the oldest wait against the deadline. A tick that came far later than asked means
// this thread did not run (the job was suspended, or the machine hibernated): that time is given
// back to every wait rather than counted as a stall.
void watch() {
  State& s = state();
  auto last = Clock::now();
  while (true) {
    double timeout;
    {
      std::lock_guard<std::mutex> lock(s.mu);
      timeout = s.timeout;
    }
    const auto tick = std::chrono::duration<double>(timeout > 0 ? std::min(1.0, std::max(0.05, timeout / 4)) : 1.0);
    std::this_thread::sleep_for(tick);
    const auto now = Clock::now();
    const auto late = now - last - std::chrono::duration_cast<Clock::duration>(tick);
    last = now;
    std::lock_guard<std::mutex> lock(s.mu);
    const Mark* oldest = nullptr;
    for (auto& m : s.marks) {
      if (!m.what) continue;
      if (late > std::chrono::seconds(2)) m.since += late;
      if (!oldest || m.since < oldest->since) oldest = &m;
    }
    if (!oldest || s.timeout <= 0) continue;
    const double waited = std::chrono::duration<double>(now - oldest->since).count();
    if (waited > s.timeout) expire(s, *oldest, waited);
  }
}

}  // namespace

void set_watchdog_timeout(double seconds) {
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mu);
  s.timeout = seconds;
}

double watchdog_timeout() {
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mu);
  return s.timeout;
}

void set_watchdog_identity(int rank, int size, const std::string& host) {
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mu);
  s.rank = rank;
  s.size = size;
  s.host = host;
}

WatchdogWait::WatchdogWait(const char* what) : slot_(-1) {
  State& s = state();
  std::call_once(s.started, [] { std::thread(watch).detach(); });
  std::lock_guard<std::mutex> lock(s.mu);
  for (std::size_t i = 0; i < s.marks.size(); ++i) {
    if (s.marks[i].what) continue;
    s.marks[i] = Mark{what, Clock::now()};
    slot_ = static_cast<int>(i);
    return;
  }
}

WatchdogWait::~WatchdogWait() {
  if (slot_ < 0) return;
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mu);
  s.marks[static_cast<std::size_t>(slot_)].what = nullptr;
}

}  // namespace lockstep::comm
