#!/usr/bin/env bash
# Builds the libFuzzer targets (tests/fuzz, docs/fuzzing.md) in build-fuzz with Clang and runs each
# for a bounded time from its seed corpus:
#   scripts/fuzz.sh [seconds per target, default 30] [target ...]
# The default targets are every reader: of outside data (idx csv jsonl libsvm hdf5 config onnx) and of
# lockstep's own files (checkpoint pipeline_model).
# Fails on any crash, hang (-timeout), out-of-memory (-rss_limit_mb / -malloc_limit_mb) or
# sanitizer report; the input that caused it is left in build-fuzz/findings/<target>/ (copy it to
# tests/fuzz/regressions/<target>/ once fixed, so the normal build replays it). New coverage
# found along the way goes to build-fuzz/corpus/<target>/, never into the repository.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-30}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(idx csv jsonl libsvm hdf5 config onnx checkpoint pipeline_model)

# Clang and its libFuzzer runtime (Debian 12: clang 14).
if ! command -v clang++ >/dev/null || ! echo 'extern "C" int LLVMFuzzerTestOneInput(const char*, long) { return 0; }' |
     clang++ -x c++ -fsanitize=fuzzer - -o /dev/null 2>/dev/null; then
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  echo "fuzz: installing clang and libclang-rt-dev"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends clang libclang-rt-dev
fi

launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_C_COMPILER_LAUNCHER=ccache)
CC=clang CXX=clang++ cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLOCKSTEP_FUZZ=ON "${launcher[@]}" \
  >build-fuzz.configure.log 2>&1 || { cat build-fuzz.configure.log; exit 1; }
cmake --build build-fuzz -j"$(nproc)" --target "${targets[@]/#/fuzz_}"

source scripts/mpi_env.sh
# Open MPI's own allocations at exit are not ours (as in the sanitizer build of .ci/run).
export ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
failed=()
for t in "${targets[@]}"; do
  work=build-fuzz/corpus/$t findings=build-fuzz/findings/$t
  mkdir -p "$work" "$findings"
  log=build-fuzz/fuzz-$t.log
  echo "==== fuzz_$t: ${seconds}s from tests/fuzz/corpus/$t ($(ls tests/fuzz/corpus/$t | wc -l) seeds) ===="
  # -timeout: one input taking over 10 s is a hang; -rss_limit_mb also bounds a single malloc.
  if build-fuzz/tests/fuzz/fuzz_$t "$work" tests/fuzz/corpus/$t -max_total_time="$seconds" -timeout=10 \
       -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1 -artifact_prefix="$findings/" \
       -close_fd_mask=1 >"$log" 2>&1; then
    grep -E "^stat::(number_of_executed_units|average_exec_per_sec|peak_rss_mb)|^#[0-9]+.*DONE" "$log" | sed 's/^/  /'
    echo "  corpus: $(ls "$work" | wc -l) inputs in $work"
  else
    echo "  FAILED: see $log; the input is in $findings/"
    grep -E "ERROR|SUMMARY|escaped|==[0-9]+==|deadly signal|Test unit written" "$log" | head -20 | sed 's/^/  /'
    failed+=("$t")
  fi
done
rm -f /dev/shm/lockstep-fuzz-* 2>/dev/null || true
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: FAILED: ${failed[*]}" >&2
  exit 1
fi
echo "fuzz: every target ran ${seconds}s without a finding"
