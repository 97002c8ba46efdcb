#!/usr/bin/env bash
# Core-to-core latency: two threads pinned to cores A and B (default 0 and 1) pass one cache line
# back and forth; prints nanoseconds per round trip, REPEAT times (default 5). On a VM the host may
# place two vCPUs on one die (about 50 ns here) or on two (about 330 ns), and change that while the
# guest runs: lockstep's node-local step moves about 1 MB of parameters and gradients between its
# ranks' caches every step, and runs at half speed in the second case (bench/README.md, "an AMD EPYC").
# Usage: bench/core_pingpong.sh [A B [REPEAT]]
set -euo pipefail
A="${1:-0}" B="${2:-1}" REPEAT="${3:-5}"
dir=$(mktemp -d); trap 'rm -rf "$dir"' EXIT
cat >"$dir/pp.cpp" <<'CPP'
#include <pthread.h>
#include <sched.h>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>
alignas(64) static std::atomic<int> flag{0};
static void pin(int c) {
  cpu_set_t s;
  CPU_ZERO(&s);
  CPU_SET(c, &s);
  if (pthread_setaffinity_np(pthread_self(), sizeof s, &s) != 0) { std::fprintf(stderr, "cannot pin to core %d\n", c); std::exit(1); }
}
int main(int argc, char** argv) {
  const int a = std::atoi(argv[1]), b = std::atoi(argv[2]), n = 200000;
  flag = 0;
  std::thread t([&] {
    pin(b);
    for (int i = 0; i < n; ++i) {
      while (flag.load(std::memory_order_acquire) != 2 * i + 1) {}
      flag.store(2 * i + 2, std::memory_order_release);
    }
  });
  pin(a);
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < n; ++i) {
    flag.store(2 * i + 1, std::memory_order_release);
    while (flag.load(std::memory_order_acquire) != 2 * i + 2) {}
  }
  const auto t1 = std::chrono::steady_clock::now();
  t.join();
  std::printf("core %d <-> core %d: %.0f ns per round trip\n", a, b, std::chrono::duration<double, std::nano>(t1 - t0).count() / n);
}
CPP
g++ -O2 -pthread "$dir/pp.cpp" -o "$dir/pp"
for _ in $(seq 1 "$REPEAT"); do "$dir/pp" "$A" "$B"; sleep 1; done
