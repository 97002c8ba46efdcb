// `lockstep info`: what this binary was built with and what the job looks like at run time.
#include <cstdio>
#include <map>

#include "common.hpp"
#include "lockstep/build_info.hpp"
#include "lockstep/core/log.hpp"

namespace lockstep::app {

int run_info(comm::Communicator& comm) {
  const auto hosts = comm.allgather_strings(comm.host_name());
  const auto local = comm.allgather<std::int32_t>(comm.local_rank());
  if (comm.rank() != 0) return 0;
  std::printf("lockstep %s (%s build, %s)\n", LOCKSTEP_VERSION, LOCKSTEP_BUILD_TYPE, LOCKSTEP_COMPILER);
  std::printf("MPI:     %s\n", comm.library_version().c_str());
  std::printf("backend: cpu (Eigen); device: cuda is not available in this build\n");
  std::printf("CUDA:    %s\n", LOCKSTEP_HAVE_CUDA ? ("toolkit " LOCKSTEP_CUDA_VERSION " found at configure time; no CUDA backend compiled yet")
                                                 : "not found at configure time");
  std::printf("NCCL:    %s\n", LOCKSTEP_HAVE_NCCL ? "found at configure time; not used yet" : "not found");
  std::map<std::string, int> per_host;
  for (const auto& h : hosts) ++per_host[h];
  std::printf("ranks:   %d on %zu host(s)\n", comm.size(), per_host.size());
  for (int r = 0; r < comm.size(); ++r) {
    std::printf("  rank %d: host %s, local rank %d, device cpu\n", r, hosts[static_cast<std::size_t>(r)].c_str(),
                local[static_cast<std::size_t>(r)]);
  }
  return 0;
}

}  // namespace lockstep::app
