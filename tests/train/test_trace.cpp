// The timeline (core/trace.hpp, train/trace_file.hpp): nothing recorded when off; scopes nest on
// their thread's track; every thread has its own tid and name; the bucket allreduce runs on the
// progress thread with its bucket and bytes; the cap drops and says so; one Chrome trace JSON with
// a process per rank that Python's json module reads.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <thread>

#include "lockstep/core/trace.hpp"
#include "lockstep/train/trace_file.hpp"
#include "support/test_comm.hpp"

namespace lockstep {
namespace {

bool have_python() {
  return std::system("/usr/bin/python3 -c 'import json' >/dev/null 2>&1") == 0;
}

// Runs a Python check of `path` on rank 0 (assertions against the parsed trace `d`, with `np` the
// rank count); every rank gets its verdict.
bool python_check(const std::filesystem::path& path, const std::string& body) {
  auto& c = testing::world();
  std::int32_t ok = 0;
  if (c.rank() == 0) {
    const auto script = path.parent_path() / "check.py";
    std::ofstream(script) << "import json, sys\nd = json.load(open(sys.argv[1]))\nnp = int(sys.argv[2])\n"
                          << "X = [e for e in d['traceEvents'] if e['ph'] == 'X']\n"
                          << "names = {(e['pid'], e['tid']): e['args']['name'] for e in d['traceEvents'] "
                          << "if e['ph'] == 'M' and e['name'] == 'thread_name'}\n"
                          << body;
    std::string cmd = "/usr/bin/python3 ";
    cmd += script.string();
    cmd += " ";
    cmd += path.string();
    cmd += " ";
    cmd += std::to_string(c.size());
    ok = std::system(cmd.c_str()) == 0 ? 1 : 0;
  }
  c.broadcast(ok, 0);
  return ok == 1;
}

TEST(Trace, OffRecordsNothing) {
  trace::disable();
  trace::clear();
  {
    trace::Scope s("x", "test");
    LOCKSTEP_TRACE_SCOPE("y", "test", "k", 1);
    trace::complete("z", "test", 0.0, 1.0);
  }
  const auto st = trace::stats();
  EXPECT_EQ(st.events, 0);
  EXPECT_EQ(st.threads, 0);  // no thread even registered a buffer
  EXPECT_STREQ(trace::intern("fit ", "Stage"), "");
}

TEST(Trace, OneChromeTraceWithNestingThreadsAndTheBucketAllreduce) {
  if (!have_python()) GTEST_SKIP() << "no /usr/bin/python3 to parse the JSON";
  auto& c = testing::world();
  const auto dir = testing::shared_temp_dir("trace");
  train::start_trace(c);
  {
    LOCKSTEP_TRACE_SCOPE("outer", "test", "rank", c.rank());
    LOCKSTEP_TRACE_SCOPE("inner", "test");
  }
  std::thread worker([] {
    trace::set_thread_name("worker");
    LOCKSTEP_TRACE_SCOPE("on worker", "test");
  });
  worker.join();
  float v[4] = {1, 2, 3, 4};
  trace::set_pending_arg({"bucket", 7});
  c.iallreduce(v, 4, comm::CommType::kF32, comm::ReduceOp::kSum)->wait();
  EXPECT_EQ(trace::stats().events, 4);
  train::write_trace(c, (dir / "trace.json").string());
  EXPECT_FALSE(trace::enabled());
  EXPECT_TRUE(python_check(dir / "trace.json", R"(
assert d['displayTimeUnit'] == 'ms' and d['otherData']['ranks'] == np and d['otherData']['dropped_events'] == 0
assert sorted({e['pid'] for e in X}) == list(range(np)), 'one process per rank'
procs = {e['pid']: e['args']['name'] for e in d['traceEvents'] if e['name'] == 'process_name'}
assert all(procs[r].startswith('rank %d (' % r) for r in range(np)), procs
for r in range(np):
    ev = {e['name']: e for e in X if e['pid'] == r}
    o, i, w, a = ev['outer'], ev['inner'], ev['on worker'], ev['allreduce']
    assert o['args']['rank'] == r and o['cat'] == 'test'
    assert o['tid'] == i['tid'] and o['ts'] <= i['ts'] and i['ts'] + i['dur'] <= o['ts'] + o['dur'] + 1e-3, 'nested'
    assert names[(r, o['tid'])] == 'main' and names[(r, w['tid'])] == 'worker' and w['tid'] != o['tid']
    assert a['args'] == {'bucket': 7, 'bytes': 16}, a
    # np > 1: the progress thread ran it; one rank runs it inline on the main thread
    assert names[(r, a['tid'])] == ('progress' if np > 1 else 'main'), names
)"));
  if (c.rank() == 0) std::filesystem::remove_all(dir);
}

TEST(Trace, TheCapDropsLaterEventsAndSaysSo) {
  if (!have_python()) GTEST_SKIP() << "no /usr/bin/python3 to parse the JSON";
  auto& c = testing::world();
  const auto dir = testing::shared_temp_dir("trace-cap");
  train::start_trace(c, 5);
  for (int i = 0; i < 12; ++i) LOCKSTEP_TRACE_SCOPE("tick", "test", "i", i);
  const auto st = trace::stats();
  EXPECT_EQ(st.events, 5);
  EXPECT_EQ(st.dropped, 7);
  train::write_trace(c, (dir / "trace.json").string());
  EXPECT_TRUE(python_check(dir / "trace.json", R"(
assert d['otherData']['dropped_events'] == 7 * np and d['otherData']['max_events_per_rank'] == 5
for r in range(np):
    ticks = [e['args']['i'] for e in X if e['pid'] == r]
    assert ticks == [0, 1, 2, 3, 4], ticks  # the first five kept
)"));
  if (c.rank() == 0) std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace lockstep
