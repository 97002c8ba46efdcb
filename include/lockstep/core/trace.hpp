// A per-process timeline for `output.trace: true`: scopes and complete events recorded from any
// thread into per-thread buffers, later written as Chrome trace JSON ("X" events) that loads in
// Perfetto (ui.perfetto.dev) and chrome://tracing. train/trace_file.hpp gathers the ranks' events
// into one file.
//
// Off by default: a scope then costs one predictable branch on a relaxed atomic load and touches
// no memory. On: an event is one 64-byte slot in its thread's buffer (chunks of 64K slots, so an
// allocation every 64K events, none per event), at most max_events per process; further events are
// dropped and counted, and the first drop is logged once.
//
// Names, categories and argument keys must be string literals (or otherwise outlive the trace):
// only the pointers are stored.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>

namespace lockstep::trace {

namespace detail {
inline std::atomic<bool> g_enabled{false};
}

inline bool enabled() {
  return detail::g_enabled.load(std::memory_order_relaxed);
}

// Starts recording (clearing anything recorded before); times are measured from now, so call it
// right after a barrier for the ranks' tracks to line up. The calling thread is named "main".
void enable(std::int64_t max_events = 2'000'000);
// Stops recording; recorded events stay until clear() or the next enable().
void disable();
void clear();

// Microseconds since enable() (steady_clock).
double now_us();
// Names the calling thread's track ("progress"); takes effect when tracing is on or turns on later.
void set_thread_name(const char* name);

struct Arg {
  const char* key = nullptr;  // nullptr: no argument
  std::int64_t value = 0;
};

// One complete event from begin_us to end_us (now_us() values) on the calling thread's track.
void complete(const char* name, const char* cat, double begin_us, double end_us, Arg a = {}, Arg b = {});

// RAII: an event from construction to destruction, on the constructing thread's track.
class Scope {
 public:
  Scope(const char* name, const char* cat, Arg a = {}, Arg b = {}) {
    if (enabled()) {
      name_ = name, cat_ = cat, a_ = a, b_ = b;
      begin_ = now_us();
    }
  }
  Scope(const char* name, const char* cat, const char* key, std::int64_t value)
      : Scope(name, cat, Arg{key, value}) {}
  Scope(const Scope&) = delete;
  Scope& operator=(const Scope&) = delete;
  ~Scope() { end(); }
  // Ends the event now (once; the destructor then records nothing), for a scope that ends before
  // its block does.
  void end() {
    if (begin_ >= 0) complete(name_, cat_, begin_, now_us(), a_, b_);
    begin_ = -1.0;
  }
  // Sets or replaces the second argument (a value known only at the end, e.g. bytes).
  void arg(const char* key, std::int64_t value) { b_ = {key, value}; }

 private:
  const char* name_ = nullptr;
  const char* cat_ = nullptr;
  Arg a_, b_;
  double begin_ = -1.0;
};

// A lasting copy of prefix + name, for names made at run time ("fit LogisticRegression"): kept
// until the process ends, one copy per distinct name. "" when tracing is off (nothing allocated).
const char* intern(const char* prefix, const std::string& name);

// An argument for the next asynchronous operation the calling thread starts, recorded by the
// thread that runs it: GradientBuckets sets {"bucket", k} before its iallreduce, and the MPI
// communicator takes it into the progress thread's "allreduce" event. take_pending_arg() returns
// it and clears it; {} when none.
void set_pending_arg(Arg a);
Arg take_pending_arg();

// What was recorded, for the writer and tests.
struct Stats {
  std::int64_t events = 0;   // kept
  std::int64_t dropped = 0;  // over the cap
  std::int64_t max_events = 0;
  int threads = 0;
};
Stats stats();

// This process's events as Chrome trace JSON objects separated by ",\n" (no enclosing brackets):
// metadata events naming the process "rank <pid> (<host>)" and each thread, then one "X" event
// per recorded event. Call when no thread is recording (after the run).
std::string events_json(int pid, const std::string& host);

}  // namespace lockstep::trace

#define LOCKSTEP_TRACE_CAT2(a, b) a##b
#define LOCKSTEP_TRACE_CAT(a, b) LOCKSTEP_TRACE_CAT2(a, b)
// A scope to the end of the enclosing block: LOCKSTEP_TRACE_SCOPE("forward", "step") or
// LOCKSTEP_TRACE_SCOPE("iteration", "lbfgs", "iter", it).
#define LOCKSTEP_TRACE_SCOPE(...) ::lockstep::trace::Scope LOCKSTEP_TRACE_CAT(lockstep_trace_, __LINE__)(__VA_ARGS__)
