// `lockstep info`: what this binary was built with and what the job looks like at run time.
#include <cstdio>
#include <map>

#include "common.hpp"
#include "lockstep/backend/conv_plan.hpp"
#include "lockstep/backend/cuda_runtime.hpp"
#include "lockstep/build_info.hpp"
#include "lockstep/comm/nccl_communicator.hpp"
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
  // What each rank sees of CUDA, as one line per rank.
  const auto cuda = backend::cuda::runtime_info();
  std::string seen;
  for (const auto& d : cuda.devices) {
    char buf[160];
    std::snprintf(buf, sizeof buf, "%s%d:%s (sm_%d%d, %.0f GiB, %s)", seen.empty() ? "" : "; ", d.index, d.name.c_str(),
                  d.major, d.minor, static_cast<double>(d.memory_bytes) / (1 << 30), d.pci_bus_id.c_str());
    seen += buf;
  }
  if (cuda.built && cuda.devices.empty()) seen = "none (" + cuda.error + ")";
  const auto gpus = comm.allgather_strings(seen);
  bool conv_reference = false;  // LOCKSTEP_CONV is read (and a bad value reported) on every rank
  comm.collectively([&] { conv_reference = backend::conv_impl() == backend::ConvImpl::kReference; });
  if (comm.rank() != 0) return 0;
  std::printf("lockstep %s (%s build, %s)\n", LOCKSTEP_VERSION, LOCKSTEP_BUILD_TYPE, LOCKSTEP_COMPILER);
  std::printf("MPI:     %s\n", comm.library_version().c_str());
  std::printf("backend: cpu (Eigen)%s\n", cuda.built ? ", cuda (cuBLAS and kernels)" : "");
  if (cuda.built) {
    std::printf("CUDA:    built with toolkit %s; runtime %d.%d, driver %s, cuBLAS %d.%d.%d\n", LOCKSTEP_CUDA_VERSION,
                cuda.runtime_version / 1000, cuda.runtime_version % 1000 / 10,
                cuda.driver_version ? (std::to_string(cuda.driver_version / 1000) + "." +
                                       std::to_string(cuda.driver_version % 1000 / 10))
                                          .c_str()
                                    : "none",
                cuda.cublas_version / 10000, cuda.cublas_version / 100 % 100, cuda.cublas_version % 100);
  } else {
    std::printf("CUDA:    not built (no CUDA Toolkit at configure time, or -DLOCKSTEP_CUDA=OFF)\n");
  }
  std::printf("conv:    %s%s\n", backend::conv_libraries().c_str(),
              conv_reference ? " (not used: LOCKSTEP_CONV=reference)" : "");
  if (LOCKSTEP_HAVE_NCCL) {
    const int v = comm::nccl_version();
    std::printf("NCCL:    %d.%d.%d (gradient reduction for device: cuda)\n", v / 10000, v / 100 % 100, v % 100);
  } else {
    std::printf("NCCL:    not built\n");
  }
  std::map<std::string, int> per_host;
  for (const auto& h : hosts) ++per_host[h];
  if (LOCKSTEP_HAVE_ONNX)
    std::printf("ONNX:    %s (import and export, opsets 7-17)\n", LOCKSTEP_ONNX_VERSION);
  else
    std::printf("ONNX:    not built (-DLOCKSTEP_ONNX=OFF)\n");
  std::printf("ranks:   %d on %zu host(s)\n", comm.size(), per_host.size());
  for (int r = 0; r < comm.size(); ++r) {
    std::printf("  rank %d: host %s, local rank %d%s%s\n", r, hosts[static_cast<std::size_t>(r)].c_str(),
                local[static_cast<std::size_t>(r)], cuda.built ? ", CUDA devices: " : "",
                cuda.built ? gpus[static_cast<std::size_t>(r)].c_str() : "");
  }
  return 0;
}

}  // namespace lockstep::app
