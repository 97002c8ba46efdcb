// MpiCommunicator: Communicator over MPI_COMM_WORLD. The only file in lockstep that includes mpi.h.
//
// Nonblocking allreduce runs on a progress thread that issues the blocking MPI_Allreduce: Open MPI
// progresses MPI_Iallreduce only inside MPI calls, and the training thread makes none while it
// computes backward, so a dedicated thread is what actually overlaps communication with compute.
//
// MPI is initialised with MPI_THREAD_SERIALIZED: at most one thread may be inside MPI at a time.
// That holds by construction, not by care at the call sites:
//  - There is one progress thread per process (the progress engine), shared by every
//    MpiCommunicator, the world and every communicator split() makes. It runs all their nonblocking
//    collectives one after another, in the order they were started; every rank starts them in the
//    same order, so the ranks agree on the sequence even across communicators.
//  - Every other MPI call is made by the thread that created the world communicator (the owner),
//    and only after the engine has drained, whichever communicator queued the pending work. A call
//    from any other thread is a CommError before it reaches MPI.
// MPI_THREAD_MULTIPLE would allow more, but costs a lock inside Open MPI on every call of the
// training path, and lockstep needs no second calling thread.
#include <mpi.h>

#include <istream>
#include <optional>

#include <unistd.h>

#include <climits>
#include <cstdlib>
#include <cstdint>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>

#include "lockstep/comm/communicator.hpp"
#include "lockstep/comm/watchdog.hpp"
#include "lockstep/core/log.hpp"
#include "lockstep/core/trace.hpp"

namespace lockstep::comm {
bool mpi_initialized();
namespace {

// True while this thread unwinds an exception. A destructor that would call a collective then
// leaves it out (and leaks what it held): the error may be this rank's alone, and the other ranks,
// waiting in some other collective, would never join it. The process is about to end anyway:
// through MPI_Abort (an error only this rank saw) or, for an agreed error, on every rank alike.
bool unwinding() { return std::uncaught_exceptions() > 0; }

void check_mpi(int rc, const char* what) {
  if (rc == MPI_SUCCESS) return;
  char buf[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(rc, buf, &len);
  throw CommError(std::string(what) + ": " + std::string(buf, static_cast<std::size_t>(len)));
}

std::string mpi_error_text(int rc) {
  char buf[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(rc, buf, &len);
  return std::string(buf, static_cast<std::size_t>(len));
}

int to_int(std::size_t n, const char* what) {
  LOCKSTEP_CHECK(n <= static_cast<std::size_t>(INT_MAX), CommError, what, ": ", n,
                 " elements exceed MPI's int count limit; split the transfer");
  return static_cast<int>(n);
}

// 128-bit fixed-point sum: exact and associative, so the result is independent of the
// reduction tree and of the number of ranks.
void int128_sum(void* in, void* inout, int* len, MPI_Datatype*) {
  auto* a = static_cast<const lockstep::int128*>(in);
  auto* b = static_cast<lockstep::int128*>(inout);
  for (int i = 0; i < *len; ++i) b[i] += a[i];
}

MPI_Datatype g_int128 = MPI_DATATYPE_NULL;
MPI_Op g_int128_sum = MPI_OP_NULL;

MPI_Datatype mpi_type(CommType t) {
  switch (t) {
    case CommType::kF32: return MPI_FLOAT;
    case CommType::kF64: return MPI_DOUBLE;
    case CommType::kI32: return MPI_INT32_T;
    case CommType::kI64: return MPI_INT64_T;
    case CommType::kU8: return MPI_UINT8_T;
    case CommType::kI128: return g_int128;
    case CommType::kBF16: break;
  }
  throw CommError("MPI has no bfloat16 type: bf16 gradients are reduced by NCCL only (training.reduce_precision)");
}

MPI_Op mpi_op(CommType t, ReduceOp op) {
  if (t == CommType::kI128) {
    LOCKSTEP_CHECK(op == ReduceOp::kSum, CommError, "allreduce: int128 supports only sum");
    return g_int128_sum;
  }
  switch (op) {
    case ReduceOp::kSum:
    case ReduceOp::kAvg: return MPI_SUM;
    case ReduceOp::kMin: return MPI_MIN;
    case ReduceOp::kMax: return MPI_MAX;
  }
  return MPI_OP_NULL;
}

void divide_in_place(void* buf, std::size_t count, CommType t, int n) {
  switch (t) {
    case CommType::kF32: {
      auto* p = static_cast<float*>(buf);
      const float inv = 1.0f / static_cast<float>(n);
      for (std::size_t i = 0; i < count; ++i) p[i] *= inv;
      break;
    }
    case CommType::kF64: {
      auto* p = static_cast<double*>(buf);
      for (std::size_t i = 0; i < count; ++i) p[i] /= n;
      break;
    }
    case CommType::kI32: {
      auto* p = static_cast<std::int32_t*>(buf);
      for (std::size_t i = 0; i < count; ++i) p[i] /= n;
      break;
    }
    case CommType::kI64: {
      auto* p = static_cast<std::int64_t*>(buf);
      for (std::size_t i = 0; i < count; ++i) p[i] /= n;
      break;
    }
    default: throw CommError("allreduce: average is not defined for this element type");
  }
}

void allreduce_now(MPI_Comm comm, int size, void* buf, std::size_t count, CommType type, ReduceOp op) {
  WatchdogWait wait("MPI_Allreduce");
  check_mpi(MPI_Allreduce(MPI_IN_PLACE, buf, to_int(count, "allreduce"), mpi_type(type), mpi_op(type, op), comm),
            "MPI_Allreduce");
  if (op == ReduceOp::kAvg && size > 1) divide_in_place(buf, count, type, size);
}

// One thread that runs queued collectives in FIFO order: the process's progress engine.
class ProgressThread {
 public:
  struct Job {
    std::function<void()> run;
    std::exception_ptr error;
    bool done = false;
  };

  ProgressThread() : thread_([this] { loop(); }) {}
  ~ProgressThread() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }

  std::shared_ptr<Job> submit(std::function<void()> fn) {
    auto job = std::make_shared<Job>();
    job->run = std::move(fn);
    {
      std::lock_guard<std::mutex> lock(mu_);
      queue_.push_back(job);
      ++outstanding_;
    }
    cv_.notify_all();
    return job;
  }
  void wait(const std::shared_ptr<Job>& job) {
    std::unique_lock<std::mutex> lock(mu_);
    done_cv_.wait(lock, [&] { return job->done; });
    if (job->error) std::rethrow_exception(job->error);
  }
  bool test(const std::shared_ptr<Job>& job) {
    std::lock_guard<std::mutex> lock(mu_);
    return job->done;
  }
  void drain() {
    std::unique_lock<std::mutex> lock(mu_);
    done_cv_.wait(lock, [&] { return outstanding_ == 0; });
  }

 private:
  void loop() {
    trace::set_thread_name("progress");
    while (true) {
      std::shared_ptr<Job> job;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
        if (queue_.empty()) return;
        job = queue_.front();
        queue_.pop_front();
      }
      try {
        job->run();
      } catch (...) {
        job->error = std::current_exception();
      }
      {
        std::lock_guard<std::mutex> lock(mu_);
        job->done = true;
        --outstanding_;
      }
      done_cv_.notify_all();
    }
  }

  std::mutex mu_;
  std::condition_variable cv_, done_cv_;
  std::deque<std::shared_ptr<Job>> queue_;
  int outstanding_ = 0;
  bool stop_ = false;
  std::thread thread_;
};

class ThreadRequest final : public Request {
 public:
  ThreadRequest(std::shared_ptr<ProgressThread> pt, std::shared_ptr<ProgressThread::Job> job)
      : pt_(std::move(pt)), job_(std::move(job)) {}
  void wait() override { pt_->wait(job_); }
  bool test() override { return pt_->test(job_); }

 private:
  std::shared_ptr<ProgressThread> pt_;
  std::shared_ptr<ProgressThread::Job> job_;
};

// Process-wide MPI state: the progress engine, shared while any communicator uses it, and the one
// thread allowed to call MPI besides it.
struct MpiProcess {
  std::mutex mu;
  std::weak_ptr<ProgressThread> engine;
  std::thread::id owner;
  int thread_level = 0;  // what MPI_Init_thread provided
};
MpiProcess& mpi_process() {
  static MpiProcess p;
  return p;
}

// The engine, started on first use; it stops when the last communicator holding it is destroyed.
std::shared_ptr<ProgressThread> progress_engine() {
  auto& p = mpi_process();
  std::lock_guard<std::mutex> lock(p.mu);
  auto e = p.engine.lock();
  if (!e) {
    e = std::make_shared<ProgressThread>();
    p.engine = e;
  }
  return e;
}

// Only the owner thread may call MPI (or queue work for the engine).
void check_owner_locked(const MpiProcess& p, const char* what) {
  LOCKSTEP_CHECK(std::this_thread::get_id() == p.owner, CommError, what,
                 ": called from a thread other than the one that created the world communicator; MPI runs at "
                 "MPI_THREAD_SERIALIZED and lockstep makes every MPI call from that thread (and from its one "
                 "progress thread), so call collectives from there");
}
void check_owner(const char* what) {
  auto& p = mpi_process();
  std::lock_guard<std::mutex> lock(p.mu);
  check_owner_locked(p, what);
}

// Waits until the engine has run everything any communicator queued, so no other thread is inside
// MPI; then the caller may enter it.
void drain_engine() {
  auto& p = mpi_process();
  std::shared_ptr<ProgressThread> e;
  {
    std::lock_guard<std::mutex> lock(p.mu);
    e = p.engine.lock();
  }
  if (e) e->drain();
}
// What every blocking call does before its first MPI call.
void enter_mpi(const char* what) {
  check_owner(what);
  drain_engine();
}

class MpiSharedWindow final : public SharedWindow {
 public:
  MpiSharedWindow(MPI_Comm comm, std::size_t bytes, std::function<void()> drain)
      : comm_(comm), bytes_(bytes), drain_(std::move(drain)) {
    int rank = 0;
    MPI_Comm_rank(comm_, &rank);
    // Rank 0 allocates it all: one contiguous block, the same layout on every rank.
    void* mine = nullptr;
    const MPI_Aint size = rank == 0 ? static_cast<MPI_Aint>(bytes + 64) : 0;
    check_mpi(MPI_Win_allocate_shared(size, 1, MPI_INFO_NULL, comm_, &mine, &win_), "MPI_Win_allocate_shared");
    MPI_Aint got = 0;
    int disp = 0;
    void* base = nullptr;
    check_mpi(MPI_Win_shared_query(win_, 0, &got, &disp, &base), "MPI_Win_shared_query");
    const auto addr = reinterpret_cast<std::uintptr_t>(base);
    data_ = reinterpret_cast<void*>((addr + 63) / 64 * 64);
    check_mpi(MPI_Win_lock_all(MPI_MODE_NOCHECK, win_), "MPI_Win_lock_all");
    if (rank == 0) std::memset(data_, 0, bytes_);
    fence();
  }
  ~MpiSharedWindow() override {
    if (!mpi_initialized() || unwinding()) return;
    drain_engine();
    MPI_Win_unlock_all(win_);
    MPI_Win_free(&win_);
  }
  void* data() override { return data_; }
  std::size_t bytes() const override { return bytes_; }
  void fence() override {
    drain_();
    // The unified memory model: sync, barrier, sync orders this rank's stores before the other
    // ranks' loads (MPI 3.1, section 11.7, example 11.21).
    MPI_Win_sync(win_);
    WatchdogWait wait("SharedWindow::fence (MPI_Barrier)");
    check_mpi(MPI_Barrier(comm_), "MPI_Barrier");
    MPI_Win_sync(win_);
  }

 private:
  MPI_Comm comm_;
  MPI_Win win_ = MPI_WIN_NULL;
  std::size_t bytes_;
  void* data_ = nullptr;
  std::function<void()> drain_;
};

class DoneRequest final : public Request {
 public:
  void wait() override {}
  bool test() override { return true; }
};

std::vector<int> byte_counts(const std::vector<std::size_t>& counts, std::vector<int>* displs, const char* what) {
  std::vector<int> out(counts.size());
  displs->assign(counts.size(), 0);
  std::size_t off = 0;
  for (std::size_t i = 0; i < counts.size(); ++i) {
    out[i] = to_int(counts[i], what);
    (*displs)[i] = to_int(off, what);
    off += counts[i];
  }
  return out;
}

class MpiCommunicator final : public Communicator {
 public:
  MpiCommunicator(MPI_Comm comm, MpiOptions options, bool owned = false) : comm_(comm), owned_(owned), options_(options) {
    MPI_Comm_rank(comm_, &rank_);
    MPI_Comm_size(comm_, &size_);
    MPI_Comm local;
    check_mpi(MPI_Comm_split_type(comm_, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &local), "MPI_Comm_split_type");
    MPI_Comm_rank(local, &local_rank_);
    MPI_Comm_size(local, &local_size_);
    MPI_Comm_free(&local);
    char name[MPI_MAX_PROCESSOR_NAME];
    int len = 0;
    MPI_Get_processor_name(name, &len);
    host_.assign(name, static_cast<std::size_t>(len));
    if (options.progress_thread && size_ > 1) progress_ = progress_engine();
  }

  ~MpiCommunicator() override {
    if (unwinding()) {
      // Neither wait for queued collectives nor stop the engine (its thread may be inside one
      // that will never complete); keep both alive until the process ends.
      new std::shared_ptr<ProgressThread>(std::move(progress_));
      return;
    }
    // This communicator's queued collectives finish before its MPI_Comm goes.
    drain_engine();
    progress_.reset();
    if (owned_ && mpi_initialized()) MPI_Comm_free(&comm_);
  }

  std::unique_ptr<SharedWindow> allocate_shared(std::size_t bytes) override {
    LOCKSTEP_CHECK(local_size_ == size_, CommError, "allocate_shared: the ranks span several nodes (", local_size_,
                   " of ", size_, " on this one); a shared window needs them all on one node");
    enter_mpi("allocate_shared");
    return std::make_unique<MpiSharedWindow>(comm_, bytes, [] { enter_mpi("SharedWindow::fence"); });
  }

  std::unique_ptr<Communicator> split(int color, int key) override {
    enter_mpi("split");
    MPI_Comm sub;
    check_mpi(MPI_Comm_split(comm_, color, key, &sub), "MPI_Comm_split");
    MPI_Comm_set_errhandler(sub, MPI_ERRORS_RETURN);
    return std::make_unique<MpiCommunicator>(sub, options_, true);
  }

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  int local_rank() const override { return local_rank_; }
  int local_size() const override { return local_size_; }
  std::string host_name() const override { return host_; }

  void allreduce(void* buf, std::size_t count, CommType type, ReduceOp op) override {
    enter_mpi("allreduce");
    allreduce_now(comm_, size_, buf, count, type, op);
  }

  std::unique_ptr<Request> iallreduce(void* buf, std::size_t count, CommType type, ReduceOp op) override {
    // Traced where it runs (core/trace.hpp), with the caller's pending argument (the bucket).
    const trace::Arg tag = trace::take_pending_arg();
    const trace::Arg bytes{"bytes", static_cast<std::int64_t>(count * comm_type_size(type))};
    if (!progress_) {
      enter_mpi("iallreduce");
      LOCKSTEP_TRACE_SCOPE("allreduce", "comm", tag, bytes);
      allreduce_now(comm_, size_, buf, count, type, op);
      return std::make_unique<DoneRequest>();
    }
    check_owner("iallreduce");
    MPI_Comm comm = comm_;
    const int size = size_;
    auto job = progress_->submit([=] {
      LOCKSTEP_TRACE_SCOPE("allreduce", "comm", tag, bytes);
      allreduce_now(comm, size, buf, count, type, op);
    });
    return std::make_unique<ThreadRequest>(progress_, std::move(job));
  }

  void broadcast(void* buf, std::size_t bytes, int root) override {
    enter_mpi("broadcast");
    WatchdogWait wait("MPI_Bcast");
    check_mpi(MPI_Bcast(buf, to_int(bytes, "broadcast"), MPI_BYTE, root, comm_), "MPI_Bcast");
  }

  void allgather(const void* send, std::size_t bytes, void* recv) override {
    enter_mpi("allgather");
    WatchdogWait wait("MPI_Allgather");
    const int n = to_int(bytes, "allgather");
    check_mpi(MPI_Allgather(send, n, MPI_BYTE, recv, n, MPI_BYTE, comm_), "MPI_Allgather");
  }

  void allgatherv(const void* send, void* recv, const std::vector<std::size_t>& counts) override {
    enter_mpi("allgatherv");
    WatchdogWait wait("MPI_Allgatherv");
    LOCKSTEP_CHECK(counts.size() == static_cast<std::size_t>(size_), CommError, "allgatherv: ", counts.size(),
                   " counts for ", size_, " ranks");
    std::vector<int> displs;
    const auto c = byte_counts(counts, &displs, "allgatherv");
    check_mpi(MPI_Allgatherv(send, c[static_cast<std::size_t>(rank_)], MPI_BYTE, recv, c.data(), displs.data(),
                             MPI_BYTE, comm_),
              "MPI_Allgatherv");
  }

  void alltoall(const void* send, std::size_t bytes, void* recv) override {
    enter_mpi("alltoall");
    WatchdogWait wait("MPI_Alltoall");
    const int n = to_int(bytes, "alltoall");
    check_mpi(MPI_Alltoall(send, n, MPI_BYTE, recv, n, MPI_BYTE, comm_), "MPI_Alltoall");
  }

  void alltoallv(const void* send, const std::vector<std::size_t>& send_counts, void* recv,
                 const std::vector<std::size_t>& recv_counts) override {
    enter_mpi("alltoallv");
    WatchdogWait wait("MPI_Alltoallv");
    std::vector<int> sd, rd;
    const auto sc = byte_counts(send_counts, &sd, "alltoallv");
    const auto rc = byte_counts(recv_counts, &rd, "alltoallv");
    check_mpi(MPI_Alltoallv(send, sc.data(), sd.data(), MPI_BYTE, recv, rc.data(), rd.data(), MPI_BYTE, comm_),
              "MPI_Alltoallv");
  }

  void exscan(std::int64_t* buf, std::size_t count) override {
    enter_mpi("exscan");
    WatchdogWait wait("MPI_Exscan");
    std::vector<std::int64_t> in(buf, buf + count);
    check_mpi(MPI_Exscan(in.data(), buf, to_int(count, "exscan"), MPI_INT64_T, MPI_SUM, comm_), "MPI_Exscan");
    if (rank_ == 0) std::fill(buf, buf + count, 0);  // MPI leaves rank 0's buffer undefined
  }

  void write_at_all(const std::string& path, std::int64_t offset, std::int64_t bytes, std::istream& in) override {
    enter_mpi("write_at_all");
    MPI_File fh = MPI_FILE_NULL;
    std::optional<std::string> err;
    const int rc = MPI_File_open(comm_, path.c_str(), MPI_MODE_CREATE | MPI_MODE_WRONLY, MPI_INFO_NULL, &fh);
    if (rc != MPI_SUCCESS) err = path + ": cannot open for writing (MPI_File_open): " + mpi_error_text(rc);
    agree(err, ErrorKind::kIo);  // the open is collective: it fails on every rank or on none
    constexpr std::int64_t kRound = std::int64_t{16} << 20;
    const std::int64_t rounds = Communicator::allreduce<std::int64_t>((bytes + kRound - 1) / kRound, ReduceOp::kMax);
    std::vector<char> buf(static_cast<std::size_t>(std::min(bytes, kRound)));
    std::int64_t done = 0;
    for (std::int64_t r = 0; r < rounds; ++r) {
      std::int64_t n = err ? 0 : std::min(kRound, bytes - done);
      if (n > 0 && !in.read(buf.data(), n)) {
        err = path + ": the part to write ended after " + std::to_string(done + in.gcount()) + " of " +
              std::to_string(bytes) + " bytes";
        n = 0;
      }
      MPI_Status st;
      const int wrc = MPI_File_write_at_all(fh, static_cast<MPI_Offset>(offset + done), buf.data(), static_cast<int>(n),
                                            MPI_BYTE, &st);
      if (wrc != MPI_SUCCESS && !err) err = path + ": cannot write (MPI_File_write_at_all): " + mpi_error_text(wrc);
      done += n;
    }
    const int crc = MPI_File_close(&fh);
    if (crc != MPI_SUCCESS && !err) err = path + ": cannot close (MPI_File_close): " + mpi_error_text(crc);
    agree(err, ErrorKind::kIo);
  }

  void barrier() override {
    enter_mpi("barrier");
    WatchdogWait wait("MPI_Barrier");
    check_mpi(MPI_Barrier(comm_), "MPI_Barrier");
  }

  [[noreturn]] void abort(int code) override {
    MPI_Abort(comm_, code);
    std::_Exit(code);
  }

  std::string library_version() const override {
    char buf[MPI_MAX_LIBRARY_VERSION_STRING];
    int len = 0;
    MPI_Get_library_version(buf, &len);
    std::string s(buf, static_cast<std::size_t>(len));
    while (!s.empty() && (s.back() == '\n' || s.back() == '\0')) s.pop_back();
    return s;
  }

 private:
  MPI_Comm comm_;
  bool owned_ = false;
  MpiOptions options_;
  int rank_ = 0, size_ = 1, local_rank_ = 0, local_size_ = 1;
  std::string host_;
  std::shared_ptr<ProgressThread> progress_;  // the process's engine, when this one overlaps
};

}  // namespace

bool mpi_initialized() {
  int init = 0, fin = 0;
  MPI_Initialized(&init);
  MPI_Finalized(&fin);
  return init && !fin;
}

std::unique_ptr<Communicator> make_mpi_world(int* argc, char*** argv, MpiOptions options) {
  auto& p = mpi_process();
  if (!mpi_initialized()) {
    int provided = 0;
    // A rank is two threads (training, progress) on one core: an MPI wait on the progress thread
    // must give the core to the training thread rather than spin on it. Open MPI's busy poll
    // yields when idle with this (unless the user set it); other MPIs ignore the variable.
    setenv("OMPI_MCA_mpi_yield_when_idle", "1", /*overwrite=*/0);
    check_mpi(MPI_Init_thread(argc, argv, MPI_THREAD_SERIALIZED, &provided), "MPI_Init_thread");
    std::lock_guard<std::mutex> lock(p.mu);
    p.owner = std::this_thread::get_id();
    p.thread_level = provided;
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_Type_contiguous(2, MPI_INT64_T, &g_int128);
    MPI_Type_commit(&g_int128);
    MPI_Op_create(&int128_sum, /*commute=*/1, &g_int128_sum);
  } else {
    std::lock_guard<std::mutex> lock(p.mu);
    if (p.owner == std::thread::id()) {  // someone else called MPI_Init: the caller owns MPI now
      p.owner = std::this_thread::get_id();
      MPI_Query_thread(&p.thread_level);
    }
    check_owner_locked(p, "make_mpi_world");
  }
  drain_engine();  // the constructor calls MPI
  // Below SERIALIZED the engine may not call MPI at all: nonblocking collectives run inline.
  if (p.thread_level < MPI_THREAD_SERIALIZED) options.progress_thread = false;
  auto c = std::make_unique<MpiCommunicator>(MPI_COMM_WORLD, options);
  log::set_rank(c->rank(), c->size());
  set_watchdog_identity(c->rank(), c->size(), c->host_name());
  return c;
}

void finalize_mpi() {
  if (!mpi_initialized()) return;
  if (g_int128_sum != MPI_OP_NULL) MPI_Op_free(&g_int128_sum);
  if (g_int128 != MPI_DATATYPE_NULL) MPI_Type_free(&g_int128);
  MPI_Finalize();
}

}  // namespace lockstep::comm
