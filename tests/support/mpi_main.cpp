// gtest main for every lockstep test: initialises MPI once, gives tests the world communicator,
// lets only rank 0 print, and agrees the result so every rank exits with the same status.
#include <gtest/gtest.h>

#include <cstdio>

#include "support/test_comm.hpp"

namespace lockstep::testing {
namespace {
comm::Communicator* g_comm = nullptr;
}
comm::Communicator& world() { return *g_comm; }
}  // namespace lockstep::testing

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  auto world = lockstep::comm::make_mpi_world(&argc, &argv);
  lockstep::testing::g_comm = world.get();
  if (world->rank() != 0) {
    auto& listeners = ::testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
  }
  const int local = RUN_ALL_TESTS();
  const int any = world->allreduce<std::int32_t>(local != 0 ? 1 : 0, lockstep::comm::ReduceOp::kMax);
  if (any && local == 0) std::fprintf(stderr, "[rank %d] another rank failed\n", world->rank());
  world.reset();
  lockstep::comm::finalize_mpi();
  return any ? 1 : 0;
}
