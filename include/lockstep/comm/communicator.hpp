// Communicator: the only way lockstep code talks to other ranks. MpiCommunicator implements it for
// host buffers; NcclCommunicator (CUDA builds, nccl_communicator.hpp) for device buffers, passing
// host-side needs to the MPI communicator it wraps. Public headers carry no MPI or NCCL types.
// Every collective must be called by every rank in the same order. MPI runs at
// MPI_THREAD_SERIALIZED: call MPI communicators only from the thread that created the world one
// (another thread gets a CommError); their nonblocking collectives run on one progress thread per
// process, shared by every communicator, and any blocking call waits for all of them first.
#pragma once

#include <cstddef>
#include <cstdint>
#include <iosfwd>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include "lockstep/core/bfloat16.hpp"
#include "lockstep/core/error.hpp"
#include "lockstep/core/int128.hpp"

namespace lockstep::comm {

// Element types a collective understands. kI128 is a 128-bit signed fixed-point integer
// (two int64 words, little-endian): its sum is exact and associative, which is what makes the
// deterministic gradient reduction independent of the number of ranks.
// kBF16 (bfloat16 gradients) is reduced by NCCL only; MPI has no bfloat16 type.
enum class CommType : std::uint8_t { kF32, kF64, kI32, kI64, kU8, kI128, kBF16 };
enum class ReduceOp : std::uint8_t { kSum, kAvg, kMin, kMax };

std::size_t comm_type_size(CommType t);

template <typename T>
constexpr CommType comm_type_of() {
  if constexpr (std::is_same_v<T, float>)
    return CommType::kF32;
  else if constexpr (std::is_same_v<T, double>)
    return CommType::kF64;
  else if constexpr (std::is_same_v<T, std::int32_t>)
    return CommType::kI32;
  else if constexpr (std::is_same_v<T, std::int64_t>)
    return CommType::kI64;
  else if constexpr (std::is_same_v<T, std::uint8_t>)
    return CommType::kU8;
  else if constexpr (std::is_same_v<T, lockstep::int128>)
    return CommType::kI128;
  else if constexpr (std::is_same_v<T, lockstep::bf16>)
    return CommType::kBF16;
  else
    static_assert(sizeof(T) == 0, "unsupported element type for a collective");
}

// A pending nonblocking collective. wait() rethrows any error the collective raised.
class Request {
 public:
  virtual ~Request() = default;
  virtual void wait() = 0;
  virtual bool test() = 0;
};

// Memory that every rank of a single-node communicator maps at once (an MPI-3 shared window).
// Writes become visible to the other ranks at the next fence().
class SharedWindow {
 public:
  virtual ~SharedWindow() = default;  // collective: every rank must destroy its handle
  virtual void* data() = 0;           // the same bytes on every rank, 64-byte aligned
  virtual std::size_t bytes() const = 0;
  // A barrier that also orders memory: every rank's writes before it are visible to every
  // rank's reads after it.
  virtual void fence() = 0;
};

class Communicator {
 public:
  virtual ~Communicator() = default;

  virtual int rank() const = 0;
  virtual int size() const = 0;
  virtual int local_rank() const = 0;  // rank among the processes on this node
  virtual int local_size() const = 0;
  virtual std::string host_name() const = 0;

  // In-place reductions over `count` elements. kAvg is the sum divided by size().
  virtual void allreduce(void* buf, std::size_t count, CommType type, ReduceOp op) = 0;
  // Starts the reduction and returns at once (MPI: queued on the progress thread, or run inline
  // without one; NCCL: on the communication stream); `buf` must stay valid until wait().
  virtual std::unique_ptr<Request> iallreduce(void* buf, std::size_t count, CommType type, ReduceOp op) = 0;
  virtual void broadcast(void* buf, std::size_t bytes, int root) = 0;
  // Every rank contributes `bytes`; recv holds size()*bytes, in rank order.
  virtual void allgather(const void* send, std::size_t bytes, void* recv) = 0;
  // Rank r contributes counts[r] bytes; recv holds their concatenation in rank order.
  virtual void allgatherv(const void* send, void* recv, const std::vector<std::size_t>& counts) = 0;
  // Every rank sends `bytes` to every rank.
  virtual void alltoall(const void* send, std::size_t bytes, void* recv) = 0;
  // send_counts[r] bytes go to rank r; recv_counts[r] bytes come from rank r; both concatenated.
  virtual void alltoallv(const void* send, const std::vector<std::size_t>& send_counts, void* recv,
                         const std::vector<std::size_t>& recv_counts) = 0;
  // Exclusive prefix sum over ranks, elementwise; rank 0 receives zeros.
  virtual void exscan(std::int64_t* buf, std::size_t count) = 0;
  virtual void barrier() = 0;
  // Ends the whole job from any rank. Last resort: prefer agree() so every rank throws.
  [[noreturn]] virtual void abort(int code) = 0;
  // A window of `bytes` shared by all ranks, zero-filled. Collective; only when every rank is on
  // this node (local_size() == size()), otherwise a CommError.
  virtual std::unique_ptr<SharedWindow> allocate_shared(std::size_t bytes) = 0;
  // Splits into disjoint communicators, one per color, ranks ordered by key (MPI_Comm_split).
  // Collective; MPI only (NcclCommunicator refuses). Lets a test run the same job at several rank
  // counts inside one launch. The parts share the process's progress thread with their parent.
  virtual std::unique_ptr<Communicator> split(int color, int key) = 0;
  // MPI-IO: every rank writes the next `bytes` bytes of `in` into the file `path` from byte `offset`
  // on (MPI_File_write_at_all, in rounds of at most 16 MiB, so memory stays bounded whatever the
  // size). The file is created if absent and never truncated; ranks' ranges should not overlap.
  // Collective; a failure anywhere (open, write, a short read of `in`) is the same IoError on every
  // rank, naming the file. The base class has no file I/O and says so (an agreed IoError).
  virtual void write_at_all(const std::string& path, std::int64_t offset, std::int64_t bytes, std::istream& in);

  // What this communicator runs on, for `lockstep info`.
  virtual std::string library_version() const = 0;

  // ---- typed conveniences ----
  template <typename T>
  void allreduce(std::span<T> v, ReduceOp op) {
    allreduce(v.data(), v.size(), comm_type_of<T>(), op);
  }
  template <typename T>
  T allreduce(T v, ReduceOp op) {
    allreduce(&v, 1, comm_type_of<T>(), op);
    return v;
  }
  template <typename T>
  std::vector<T> allgather(const T& v) {
    static_assert(std::is_trivially_copyable_v<T>);
    std::vector<T> out(static_cast<std::size_t>(size()));
    allgather(&v, sizeof(T), out.data());
    return out;
  }
  // Every rank's vector, concatenated in rank order, on every rank.
  template <typename T>
  std::vector<T> allgather_vector(const std::vector<T>& mine) {
    static_assert(std::is_trivially_copyable_v<T>);
    std::vector<std::size_t> bytes;
    std::size_t total = 0;
    for (const auto n : allgather<std::int64_t>(static_cast<std::int64_t>(mine.size()))) {
      bytes.push_back(static_cast<std::size_t>(n) * sizeof(T));
      total += static_cast<std::size_t>(n);
    }
    std::vector<T> out(total);
    allgatherv(mine.data(), out.data(), bytes);
    return out;
  }
  template <typename T>
  void broadcast(T& v, int root) {
    static_assert(std::is_trivially_copyable_v<T>);
    broadcast(&v, sizeof(T), root);
  }
  void broadcast(std::string& s, int root);
  std::int64_t exscan(std::int64_t v) {
    exscan(&v, 1);
    return v;
  }
  // Gathers a byte string from every rank, in rank order.
  std::vector<std::string> allgather_strings(const std::string& mine);

  // A condition that only some ranks can see must not leave the others waiting in a collective.
  // Every rank calls agree() with its own error (or none); if any rank failed, every rank throws
  // the same error (Error::agreed() is true), naming the lowest failing rank and its message.
  // The error keeps its type (ConfigError, DataError, ...) on every rank.
  enum class ErrorKind : char { kError = 'E', kConfig = 'C', kData = 'D', kIo = 'I', kComm = 'M', kCheckpoint = 'K' };
  void agree(const std::optional<std::string>& local_error, ErrorKind kind = ErrorKind::kError);
  // Runs fn; an exception on any rank becomes the same error on every rank. Exceptions that are not
  // lockstep errors become `fallback`.
  template <typename Fn>
  void collectively(Fn&& fn, ErrorKind fallback = ErrorKind::kError) {
    std::optional<std::string> err;
    ErrorKind kind = fallback;
    try {
      fn();
    } catch (const ConfigError& e) {
      err = e.what(), kind = ErrorKind::kConfig;
    } catch (const DataError& e) {
      err = e.what(), kind = ErrorKind::kData;
    } catch (const IoError& e) {
      err = e.what(), kind = ErrorKind::kIo;
    } catch (const CommError& e) {
      err = e.what(), kind = ErrorKind::kComm;
    } catch (const CheckpointError& e) {
      err = e.what(), kind = ErrorKind::kCheckpoint;
    } catch (const std::exception& e) {
      err = e.what();
    }
    agree(err, kind);
  }
};

// Bad input that only some ranks can see: each rank passes the global row of the first offending
// row it holds (INT64_MAX for none) and a message about that row. If any rank has one, every rank
// throws the same agreed DataError, the message about the lowest row, whatever the rank count.
void agree_on_first_bad_row(comm::Communicator& comm, std::int64_t row, const std::string& message);
struct MpiOptions {
  // Run nonblocking allreduces on the process's progress thread (ignored below
  // MPI_THREAD_SERIALIZED, and for one rank); false runs them inline, i.e. blocking.
  bool progress_thread = true;
};

// Initialises MPI on first use (MPI_Init_thread asking for MPI_THREAD_SERIALIZED; the calling
// thread becomes the one that may call MPI) and wraps MPI_COMM_WORLD.
std::unique_ptr<Communicator> make_mpi_world(int* argc, char*** argv, MpiOptions options = {});
// MPI_Finalize; call once, after every communicator is gone, only on the success path.
void finalize_mpi();
bool mpi_initialized();

}  // namespace lockstep::comm
