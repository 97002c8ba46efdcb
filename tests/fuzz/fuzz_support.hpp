// What every fuzz target shares. The readers take paths, so each input is written to a file in
// /dev/shm (memory, not disk) and read back through the public reader, on a one-rank MPI world
// made on first use. Errors of lockstep's types are the expected answer to bad input; anything
// else (std::bad_alloc, std::length_error, a stray std::exception) is a finding, so it aborts and
// libFuzzer (or the replay test) reports it with its input.
#pragma once

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <memory>
#include <string>

#include "lockstep/comm/communicator.hpp"
#include "lockstep/core/error.hpp"

namespace lockstep::fuzz {

inline std::unique_ptr<comm::Communicator>& world_ptr() {
  static std::unique_ptr<comm::Communicator> w;
  return w;
}

// The one-rank world, made on first use and finalized at exit (Open MPI reports a process that
// initialised MPI and exited without finalizing as an abnormal termination).
inline comm::Communicator& world() {
  auto& w = world_ptr();
  if (!w) {
    // The readers' memory bounds (core/checked_size.hpp) inside libFuzzer's -rss_limit_mb=2048.
    setenv("LOCKSTEP_MEMORY_LIMIT_MB", "512", 0);
    int argc = 0;
    char** argv = nullptr;
    w = comm::make_mpi_world(&argc, &argv);
    std::atexit([] {
      world_ptr().reset();
      comm::finalize_mpi();
    });
  }
  return *w;
}

// The input as a file; the same path for every input of one process (rewritten each time).
inline std::string write_input(const std::uint8_t* data, std::size_t size, const char* name) {
  static const std::string dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
  const std::string path = dir + "/lockstep-fuzz-" + std::to_string(getpid()) + "-" + name;
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (!f || (size > 0 && std::fwrite(data, 1, size, f) != size) || std::fclose(f) != 0) {
    std::fprintf(stderr, "fuzz: cannot write %s\n", path.c_str());
    std::abort();
  }
  return path;
}

// Runs fn; a lockstep::Error is a handled rejection, anything else aborts with its message.
template <typename Fn> void expect_clean(const char* what, Fn&& fn) {
  try {
    fn();
  } catch (const Error&) {
  } catch (const std::exception& e) {
    std::fprintf(stderr, "fuzz %s: escaped as a non-lockstep exception: %s\n", what, e.what());
    std::abort();
  }
}

}  // namespace lockstep::fuzz
