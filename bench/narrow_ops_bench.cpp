// What a chain of narrow operations costs per element: Partitioned's lazy map/filter/flat_map
// compose std::function generators (one indirect call per element per stage), against the same
// work written as one loop that the compiler fuses and inlines. Decides whether compile-time
// composition of narrow operations would pay (issue 13): the gap per element, set beside what a
// real element costs (word count: ~200 ns a word, bench/wordcount_vs_unix.sh).
//   mpirun -np 1 build/bench/narrow_ops_bench
// GCC 12 warns falsely on appending to a std::string (-Wrestrict, PR 105329).
#pragma GCC diagnostic ignored "-Wrestrict"
#include <benchmark/benchmark.h>

#include <string>
#include <vector>

#include "lockstep/comm/communicator.hpp"
#include "lockstep/data/partitioned.hpp"

using namespace lockstep;

namespace {

comm::Communicator* g_world = nullptr;
constexpr std::int64_t kN = 1 << 22;

std::vector<std::int64_t> numbers() {
  std::vector<std::int64_t> v(kN);
  for (std::int64_t i = 0; i < kN; ++i) v[static_cast<std::size_t>(i)] = i * 2654435761LL % 1000003;
  return v;
}

// map -> filter -> map -> sum: three stages on 8-byte integers.
void BM_PartitionedChain(benchmark::State& state) {
  const auto base = data::Partitioned<std::int64_t>::from_local(*g_world, numbers());
  for (auto _ : state) {
    std::int64_t sum = 0;
    base.map([](std::int64_t x) { return x * 3; })
        .filter([](const std::int64_t& x) { return x % 2 == 0; })
        .map([](std::int64_t x) { return x + 1; })
        .for_each_local([&](std::int64_t&& x) { sum += x; });
    benchmark::DoNotOptimize(sum);
  }
  state.SetItemsProcessed(state.iterations() * kN);
}

void BM_FusedLoop(benchmark::State& state) {
  const auto v = numbers();
  for (auto _ : state) {
    std::int64_t sum = 0;
    for (std::int64_t x : v) {
      x *= 3;
      if (x % 2 == 0) sum += x + 1;
    }
    benchmark::DoNotOptimize(sum);
  }
  state.SetItemsProcessed(state.iterations() * kN);
}

// The same three stages on short strings (a word count's elements).
std::vector<std::string> words() {
  std::vector<std::string> v(kN / 4);
  for (std::size_t i = 0; i < v.size(); ++i) {
    v[i] = "w";
    v[i] += std::to_string(i * 2654435761ULL % 100003);
  }
  return v;
}

void BM_PartitionedChainStrings(benchmark::State& state) {
  const auto base = data::Partitioned<std::string>::from_local(*g_world, words());
  for (auto _ : state) {
    std::size_t n = 0;
    base.map([](std::string s) {
          s += 'x';
          return s;
        })
        .filter([](const std::string& s) { return s.size() % 2 == 0; })
        .map([](std::string s) { return s.size(); })
        .for_each_local([&](std::size_t&& x) { n += x; });
    benchmark::DoNotOptimize(n);
  }
  state.SetItemsProcessed(state.iterations() * (kN / 4));
}

void BM_FusedLoopStrings(benchmark::State& state) {
  const auto v = words();
  for (auto _ : state) {
    std::size_t n = 0;
    for (const std::string& w : v) {
      std::string s = w;  // the copy from_local's generator makes, then the map
      s += 'x';
      if (s.size() % 2 == 0) n += s.size();
    }
    benchmark::DoNotOptimize(n);
  }
  state.SetItemsProcessed(state.iterations() * (kN / 4));
}

BENCHMARK(BM_PartitionedChain)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_FusedLoop)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_PartitionedChainStrings)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_FusedLoopStrings)->Unit(benchmark::kMillisecond);

}  // namespace

int main(int argc, char** argv) {
  auto world = comm::make_mpi_world(&argc, &argv);
  g_world = world.get();
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  g_world = nullptr;
  world.reset();
  comm::finalize_mpi();
  return 0;
}
