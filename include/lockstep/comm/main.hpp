// run_main: the main() of a program written against the library (apps/examples/), with MPI and
// lockstep's error rules: an error every rank agreed on (comm.agree, the readers' and wide
// operations' errors) is printed once by rank 0 and ends every rank with status 1; an error only
// this rank saw is printed with its rank and aborts the job, since the others may be waiting in a
// collective and would otherwise hang.
//
//   int main(int argc, char** argv) {
//     return lockstep::comm::run_main(argc, argv, [&](lockstep::comm::Communicator& world) {
//       ... return 0;
//     });
//   }
#pragma once

#include <cstdio>
#include <exception>
#include <memory>

#include "lockstep/comm/communicator.hpp"
#include "lockstep/core/error.hpp"

namespace lockstep::comm {

template <typename Body> int run_main(int& argc, char**& argv, Body&& body) {
  std::unique_ptr<Communicator> world;
  try {
    world = make_mpi_world(&argc, &argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: cannot start MPI: %s\n", e.what());
    return 1;
  }
  int status = 1;
  bool abort = false;
  try {
    status = body(*world);
  } catch (const Error& e) {
    if (e.agreed()) {
      if (world->rank() == 0) std::fprintf(stderr, "error: %s\n", e.what());
    } else {
      std::fprintf(stderr, "error: [rank %d] %s\n", world->rank(), e.what());
      abort = true;
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: [rank %d] %s\n", world->rank(), e.what());
    abort = true;
  }
  if (abort && world->size() > 1) world->abort(1);
  world.reset();
  finalize_mpi();
  return status;
}

}  // namespace lockstep::comm
