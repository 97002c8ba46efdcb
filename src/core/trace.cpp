// The tracer behind trace.hpp: per-thread chunked event buffers, a per-process cap, and the
// Chrome trace JSON of what was recorded.
#include "lockstep/core/trace.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <mutex>
#include <set>
#include <vector>

#include "lockstep/core/log.hpp"

namespace lockstep::trace {
namespace {

struct Event {
  const char* name;
  const char* cat;
  double begin_us, dur_us;
  Arg a, b;
};

constexpr std::int64_t kChunk = 65536;  // events per allocation

// One thread's events. Only its thread appends; the writer reads after recording has stopped.
struct ThreadBuffer {
  int tid = 0;
  std::string name;
  std::vector<std::unique_ptr<Event[]>> chunks;
  std::atomic<std::int64_t> size{0};
};

struct State {
  std::mutex mutex;  // registration, enable/clear, reading
  std::vector<std::unique_ptr<ThreadBuffer>> threads;
  std::atomic<std::int64_t> generation{0};  // bumped by enable()/clear(): threads register again
  std::atomic<std::int64_t> count{0}, dropped{0};
  std::int64_t max_events = 0;
  std::chrono::steady_clock::time_point start = std::chrono::steady_clock::now();
};

State& state() {
  static State* s = new State;  // never destroyed: threads may outlive static destruction
  return *s;
}

thread_local ThreadBuffer* t_buffer = nullptr;
thread_local std::int64_t t_generation = -1;
thread_local const char* t_name = nullptr;
thread_local Arg t_pending;

ThreadBuffer& my_buffer() {
  State& s = state();
  const std::int64_t gen = s.generation.load(std::memory_order_acquire);
  if (t_buffer && t_generation == gen) return *t_buffer;
  std::lock_guard<std::mutex> lock(s.mutex);
  auto b = std::make_unique<ThreadBuffer>();
  b->tid = static_cast<int>(s.threads.size()) + 1;
  b->name = t_name ? std::string(t_name) : std::string("thread ");
  if (!t_name) b->name += std::to_string(b->tid);
  t_buffer = b.get();
  t_generation = s.generation.load(std::memory_order_relaxed);
  s.threads.push_back(std::move(b));
  return *t_buffer;
}

void reset_locked(State& s) {
  s.threads.clear();
  s.count = 0;
  s.dropped = 0;
  s.generation.fetch_add(1, std::memory_order_acq_rel);
}

std::string escaped(const std::string& v) {
  std::string out;
  for (const char c : v) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      out += ' ';
    } else {
      out += c;
    }
  }
  return out;
}

void append_event(std::string& out, int pid, int tid, const Event& e) {
  char buf[512];
  int n = std::snprintf(buf, sizeof buf, ",\n{\"ph\":\"X\",\"pid\":%d,\"tid\":%d,\"ts\":%.3f,\"dur\":%.3f,\"name\":\"%s\",\"cat\":\"%s\"",
                        pid, tid, e.begin_us, e.dur_us, e.name, e.cat);
  out.append(buf, static_cast<std::size_t>(std::min<int>(n, static_cast<int>(sizeof buf) - 1)));
  if (e.a.key || e.b.key) {
    out += ",\"args\":{";
    bool first = true;
    for (const Arg* a : {&e.a, &e.b}) {
      if (!a->key) continue;
      n = std::snprintf(buf, sizeof buf, "%s\"%s\":%lld", first ? "" : ",", a->key, static_cast<long long>(a->value));
      out.append(buf, static_cast<std::size_t>(std::min<int>(n, static_cast<int>(sizeof buf) - 1)));
      first = false;
    }
    out += '}';
  }
  out += '}';
}

std::string metadata(int pid, int tid, const char* what, const std::string& value) {
  std::string s = "{\"ph\":\"M\",\"pid\":";
  s += std::to_string(pid);
  s += ",\"tid\":";
  s += std::to_string(tid);
  s += ",\"name\":\"";
  s += what;
  s += "\",\"args\":{\"name\":\"";
  s += escaped(value);
  s += "\"}}";
  return s;
}

}  // namespace

void enable(std::int64_t max_events) {
  State& s = state();
  {
    std::lock_guard<std::mutex> lock(s.mutex);
    reset_locked(s);
    s.max_events = max_events;
    s.start = std::chrono::steady_clock::now();
  }
  if (!t_name) t_name = "main";
  my_buffer();  // the enabling thread's track comes first
  detail::g_enabled.store(true, std::memory_order_release);
}

void disable() {
  detail::g_enabled.store(false, std::memory_order_release);
}

void clear() {
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mutex);
  reset_locked(s);
}

double now_us() {
  const auto d = std::chrono::steady_clock::now() - state().start;
  return static_cast<double>(std::chrono::duration_cast<std::chrono::nanoseconds>(d).count()) * 1e-3;
}

void set_thread_name(const char* name) {
  t_name = name;
  if (t_buffer && t_generation == state().generation.load(std::memory_order_acquire)) t_buffer->name = name;
}

const char* intern(const char* prefix, const std::string& name) {
  if (!enabled()) return "";
  static std::mutex mutex;
  static auto* names = new std::set<std::string>;  // never destroyed, like the events
  std::string full = prefix;
  full += name;
  std::lock_guard<std::mutex> lock(mutex);
  return names->insert(std::move(full)).first->c_str();
}

void set_pending_arg(Arg a) {
  t_pending = a;
}
Arg take_pending_arg() {
  const Arg a = t_pending;
  t_pending = {};
  return a;
}

void complete(const char* name, const char* cat, double begin_us, double end_us, Arg a, Arg b) {
  if (!enabled()) return;
  State& s = state();
  if (s.count.fetch_add(1, std::memory_order_relaxed) >= s.max_events) {
    if (s.dropped.fetch_add(1, std::memory_order_relaxed) == 0)
      log::warn("trace: the cap of " + std::to_string(s.max_events) +
                " events per process is reached; later events are dropped (the trace's otherData says how many)");
    return;
  }
  ThreadBuffer& t = my_buffer();
  const std::int64_t i = t.size.load(std::memory_order_relaxed);
  if (i / kChunk >= static_cast<std::int64_t>(t.chunks.size())) t.chunks.emplace_back(new Event[kChunk]);
  t.chunks[static_cast<std::size_t>(i / kChunk)][i % kChunk] = Event{name, cat, begin_us, end_us - begin_us, a, b};
  t.size.store(i + 1, std::memory_order_release);
}

Stats stats() {
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mutex);
  Stats st;
  for (const auto& t : s.threads) st.events += t->size.load(std::memory_order_acquire);
  st.dropped = s.dropped.load();
  st.max_events = s.max_events;
  st.threads = static_cast<int>(s.threads.size());
  return st;
}

std::string events_json(int pid, const std::string& host) {
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mutex);
  std::string label = "rank ";
  label += std::to_string(pid);
  label += " (";
  label += host;
  label += ")";
  std::string out = metadata(pid, 0, "process_name", label);
  out += ",\n{\"ph\":\"M\",\"pid\":";
  out += std::to_string(pid);
  out += ",\"tid\":0,\"name\":\"process_sort_index\",\"args\":{\"sort_index\":";
  out += std::to_string(pid);
  out += "}}";
  for (const auto& t : s.threads) {
    out += ",\n";
    out += metadata(pid, t->tid, "thread_name", t->name);
    const std::int64_t n = t->size.load(std::memory_order_acquire);
    for (std::int64_t i = 0; i < n; ++i) append_event(out, pid, t->tid, t->chunks[static_cast<std::size_t>(i / kChunk)][i % kChunk]);
  }
  return out;
}

}  // namespace lockstep::trace
