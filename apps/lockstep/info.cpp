// `lockstep info`: what this binary was built with and what the job looks like at run time.
#include <cstdio>
#include <map>

#include "common.hpp"
#include "lockstep/build_info.hpp"
#include "lockstep/core/log.hpp"
#include "lockstep/io/checkpoint.hpp"

namespace lockstep::app {

namespace {
// FNV-1a over the bytes of the flat parameters: equal digests mean bit-identical parameters.
std::uint64_t digest(const std::vector<float>& v) {
  std::uint64_t h = 1469598103934665603ull;
  const auto* b = reinterpret_cast<const unsigned char*>(v.data());
  for (std::size_t i = 0; i < v.size() * sizeof(float); ++i) h = (h ^ b[i]) * 1099511628211ull;
  return h;
}
}  // namespace

int run_info(comm::Communicator& comm, const std::string& checkpoint) {
  if (!checkpoint.empty()) {
    io::CheckpointState st;
    comm.collectively([&] {
      if (comm.rank() == 0) st = io::load_checkpoint(checkpoint);
    });
    if (comm.rank() == 0) {
      std::printf("checkpoint %s\n", checkpoint.c_str());
      std::printf("  epoch %lld, step_in_epoch %lld, global_step %lld, written by %lld rank(s)%s\n",
                  static_cast<long long>(st.epoch), static_cast<long long>(st.step_in_epoch),
                  static_cast<long long>(st.global_step), static_cast<long long>(st.world_size),
                  st.deterministic ? ", deterministic" : "");
      std::printf("  config_hash %s, optimizer %s (%lld steps)\n", io::hex64(st.config_hash).c_str(),
                  st.optimizer_type.c_str(), static_cast<long long>(st.optimizer_steps));
      std::printf("  parameters %zu, digest %s\n", st.params.size(), io::hex64(digest(st.params)).c_str());
    }
    return 0;
  }
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
