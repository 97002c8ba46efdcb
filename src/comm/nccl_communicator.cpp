// NcclCommunicator (see the header). The only file that includes nccl.h. Device collectives run
// on a stream of their own, so they can overlap kernels on the compute stream; a blocking call
// waits for that stream, polling for asynchronous errors and the deadline.
#include "lockstep/comm/nccl_communicator.hpp"

#include "lockstep/build_info.hpp"

#if LOCKSTEP_HAVE_NCCL
#include <cuda_runtime.h>
#include <nccl.h>

#include <cstdlib>
#include <thread>

namespace lockstep::comm {
namespace {

void check_nccl(ncclResult_t r, const char* what) {
  if (r != ncclSuccess && r != ncclInProgress)
    throw CommError(std::string(what) + " failed: " + ncclGetErrorString(r));
}
void check_cuda(cudaError_t e, const char* what) {
  if (e != cudaSuccess) throw CommError(std::string(what) + " failed: " + cudaGetErrorString(e));
}

ncclDataType_t nccl_type(CommType t) {
  switch (t) {
    case CommType::kF32: return ncclFloat32;
    case CommType::kF64: return ncclFloat64;
    case CommType::kI32: return ncclInt32;
    case CommType::kI64: return ncclInt64;
    case CommType::kU8: return ncclUint8;
    case CommType::kBF16: return ncclBfloat16;
    case CommType::kI128: break;
  }
  throw CommError("NCCL has no 128-bit integer type; exact sums use int64 words (ExactGradientSum)");
}

ncclRedOp_t nccl_op(ReduceOp op) {
  switch (op) {
    case ReduceOp::kSum: return ncclSum;
    case ReduceOp::kAvg: return ncclAvg;
    case ReduceOp::kMin: return ncclMin;
    case ReduceOp::kMax: return ncclMax;
  }
  return ncclSum;
}

class NcclCommunicator;

// Completion of work enqueued on the communication stream, marked by an event.
class NcclRequest final : public Request {
 public:
  NcclRequest(NcclCommunicator* owner, cudaEvent_t done, const char* what) : owner_(owner), done_(done), what_(what) {}
  ~NcclRequest() override { cudaEventDestroy(done_); }
  void wait() override;
  bool test() override { return cudaEventQuery(done_) == cudaSuccess; }

 private:
  NcclCommunicator* owner_;
  cudaEvent_t done_;
  const char* what_;
};

class NcclCommunicator final : public Communicator {
 public:
  NcclCommunicator(Communicator& mpi, int device, NcclOptions options) : mpi_(mpi), options_(options) {
    ncclUniqueId id{};
    mpi_.collectively([&] {
      check_cuda(cudaSetDevice(device), "cudaSetDevice");
      check_cuda(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "cudaStreamCreate");
      check_cuda(cudaEventCreateWithFlags(&compute_done_, cudaEventDisableTiming), "cudaEventCreate");
      if (mpi_.rank() == 0) check_nccl(ncclGetUniqueId(&id), "ncclGetUniqueId");
    });
    mpi_.broadcast(&id, sizeof id, 0);
    mpi_.collectively([&] {
      // Non-blocking initialisation, so a rank that never arrives cannot hang the others forever.
      ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
      config.blocking = 0;
      check_nccl(ncclCommInitRankConfig(&comm_, mpi_.size(), id, mpi_.rank(), &config), "ncclCommInitRankConfig");
      wait_ready("ncclCommInitRankConfig");
    });
  }
  ~NcclCommunicator() override {
    if (comm_) ncclCommDestroy(comm_);
    if (compute_done_) cudaEventDestroy(compute_done_);
    if (stream_) cudaStreamDestroy(stream_);
  }

  int rank() const override { return mpi_.rank(); }
  int size() const override { return mpi_.size(); }
  int local_rank() const override { return mpi_.local_rank(); }
  int local_size() const override { return mpi_.local_size(); }
  std::string host_name() const override { return mpi_.host_name(); }

  void allreduce(void* buf, std::size_t count, CommType type, ReduceOp op) override {
    iallreduce(buf, count, type, op)->wait();
  }
  std::unique_ptr<Request> iallreduce(void* buf, std::size_t count, CommType type, ReduceOp op) override {
    after_compute();
    check_nccl(ncclAllReduce(buf, buf, count, nccl_type(type), nccl_op(op), comm_, stream_), "ncclAllReduce");
    return record("ncclAllReduce");
  }
  void broadcast(void* buf, std::size_t bytes, int root) override {
    after_compute();
    check_nccl(ncclBroadcast(buf, buf, bytes, ncclUint8, root, comm_, stream_), "ncclBroadcast");
    record("ncclBroadcast")->wait();
  }
  void allgather(const void* send, std::size_t bytes, void* recv) override {
    after_compute();
    check_nccl(ncclAllGather(send, recv, bytes, ncclUint8, comm_, stream_), "ncclAllGather");
    record("ncclAllGather")->wait();
  }
  void allgatherv(const void* send, void* recv, const std::vector<std::size_t>& counts) override {
    // One broadcast per rank, grouped into a single NCCL launch.
    std::size_t offset = 0;
    after_compute();
    check_nccl(ncclGroupStart(), "ncclGroupStart");
    for (int r = 0; r < size(); ++r) {
      const std::size_t n = counts[static_cast<std::size_t>(r)];
      char* dst = static_cast<char*>(recv) + offset;
      check_nccl(ncclBroadcast(r == rank() ? send : dst, dst, n, ncclUint8, r, comm_, stream_), "ncclBroadcast");
      offset += n;
    }
    check_nccl(ncclGroupEnd(), "ncclGroupEnd");
    record("allgatherv")->wait();
  }
  void alltoall(const void* send, std::size_t bytes, void* recv) override {
    std::vector<std::size_t> counts(static_cast<std::size_t>(size()), bytes);
    alltoallv(send, counts, recv, counts);
  }
  void alltoallv(const void* send, const std::vector<std::size_t>& send_counts, void* recv,
                 const std::vector<std::size_t>& recv_counts) override {
    std::size_t so = 0, ro = 0;
    after_compute();
    check_nccl(ncclGroupStart(), "ncclGroupStart");
    for (int r = 0; r < size(); ++r) {
      const auto i = static_cast<std::size_t>(r);
      check_nccl(ncclSend(static_cast<const char*>(send) + so, send_counts[i], ncclUint8, r, comm_, stream_), "ncclSend");
      check_nccl(ncclRecv(static_cast<char*>(recv) + ro, recv_counts[i], ncclUint8, r, comm_, stream_), "ncclRecv");
      so += send_counts[i];
      ro += recv_counts[i];
    }
    check_nccl(ncclGroupEnd(), "ncclGroupEnd");
    record("alltoallv")->wait();
  }
  // Host-side collectives go through MPI: their buffers are host memory.
  void exscan(std::int64_t* buf, std::size_t count) override { mpi_.exscan(buf, count); }
  void write_at_all(const std::string& path, std::int64_t offset, std::int64_t bytes, std::istream& in) override {
    mpi_.write_at_all(path, offset, bytes, in);
  }
  void barrier() override {
    check_cuda(cudaStreamSynchronize(stream_), "cudaStreamSynchronize");
    mpi_.barrier();
  }
  [[noreturn]] void abort(int code) override {
    if (comm_) ncclCommAbort(comm_);
    comm_ = nullptr;
    mpi_.abort(code);
    std::_Exit(code);  // not reached; GCC does not trust [[noreturn]] through a virtual call
  }
  std::string library_version() const override {
    const int v = nccl_version();
    return "NCCL " + std::to_string(v / 10000) + "." + std::to_string(v / 100 % 100) + "." + std::to_string(v % 100) +
           " over " + mpi_.library_version();
  }
  std::unique_ptr<SharedWindow> allocate_shared(std::size_t bytes) override { return mpi_.allocate_shared(bytes); }
  std::unique_ptr<Communicator> split(int, int) override {
    throw CommError("NcclCommunicator::split: split the MPI communicator and build an NCCL one on each part");
  }

  // Waits for `done`, polling NCCL's asynchronous error and the deadline; aborts on either.
  void wait_for(cudaEvent_t done, const char* what) {
    const auto deadline = std::chrono::steady_clock::now() + options_.timeout;
    while (true) {
      const cudaError_t q = cudaEventQuery(done);
      if (q == cudaSuccess) return;
      if (q != cudaErrorNotReady) check_cuda(q, what);
      fail_if_broken(what, deadline);
      std::this_thread::yield();
    }
  }

 private:
  // The kernels that produce a buffer run on the legacy default stream; the communication stream
  // (non-blocking, so it does not serialise with it) waits for everything enqueued there so far
  // through an event rather than a device-wide synchronisation, so compute can go on meanwhile.
  void after_compute() {
    check_cuda(cudaEventRecord(compute_done_, cudaStreamLegacy), "cudaEventRecord");
    check_cuda(cudaStreamWaitEvent(stream_, compute_done_, 0), "cudaStreamWaitEvent");
  }

  std::unique_ptr<Request> record(const char* what) {
    cudaEvent_t ev = nullptr;
    check_cuda(cudaEventCreateWithFlags(&ev, cudaEventDisableTiming), "cudaEventCreate");
    check_cuda(cudaEventRecord(ev, stream_), "cudaEventRecord");
    return std::make_unique<NcclRequest>(this, ev, what);
  }
  void wait_ready(const char* what) {
    const auto deadline = std::chrono::steady_clock::now() + options_.timeout;
    ncclResult_t st = ncclInProgress;
    while (st == ncclInProgress) {
      check_nccl(ncclCommGetAsyncError(comm_, &st), "ncclCommGetAsyncError");
      if (st == ncclInProgress) fail_if_broken(what, deadline);
    }
    check_nccl(st, what);
  }
  void fail_if_broken(const char* what, std::chrono::steady_clock::time_point deadline) {
    ncclResult_t st = ncclSuccess;
    ncclCommGetAsyncError(comm_, &st);
    const bool late = std::chrono::steady_clock::now() > deadline;
    if ((st == ncclSuccess || st == ncclInProgress) && !late) return;
    ncclCommAbort(comm_);
    comm_ = nullptr;
    throw CommError(std::string(what) + (late ? ": did not complete within " : ": failed (") +
                    (late ? std::to_string(options_.timeout.count()) + " s; a peer may have died or stalled"
                          : std::string(ncclGetErrorString(st)) + ")") +
                    "; the NCCL communicator was aborted");
  }

  Communicator& mpi_;
  NcclOptions options_;
  ncclComm_t comm_ = nullptr;
  cudaStream_t stream_ = nullptr;
  cudaEvent_t compute_done_ = nullptr;
};

void NcclRequest::wait() { owner_->wait_for(done_, what_); }

}  // namespace

std::unique_ptr<Communicator> make_nccl(Communicator& mpi, int device, NcclOptions options) {
  return std::make_unique<NcclCommunicator>(mpi, device, options);
}

int nccl_version() {
  int v = 0;
  ncclGetVersion(&v);
  // NCCL >= 2.9 encodes major*10000 + minor*100 + patch already.
  return v;
}

}  // namespace lockstep::comm

#else  // no NCCL in this build

namespace lockstep::comm {
std::unique_ptr<Communicator> make_nccl(Communicator&, int, NcclOptions) {
  throw CommError("this lockstep was built without NCCL (configure with -DLOCKSTEP_CUDA=ON and NCCL_HOME set)");
}
int nccl_version() { return 0; }
}  // namespace lockstep::comm

#endif
