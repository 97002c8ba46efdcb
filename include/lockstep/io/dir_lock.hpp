// DirLock: one run at a time in an output directory. A run that writes into output.dir (train,
// fit) holds a POSIX record lock (fcntl F_SETLK, write lock) on <dir>/lockstep.lock for as long as
// it runs; the file says who holds it (host, pid, start time, command). A second run into the
// same directory is refused with an IoError naming the directory and the holder.
//
// Why fcntl and not an O_EXCL lock file: the kernel (or, on NFS, the server's lock manager)
// releases the lock when the holder ends, however it ends (SIGKILL, a node's OOM killer, a
// Slurm time limit), so there is no stale lock to detect and a restart with --resume after a
// killed job just works, on any node. An O_EXCL file survives its holder, and a holder on another
// node cannot be told dead from alive without a heartbeat and synchronised clocks. fcntl locks are
// cluster-wide on NFS (NLM, NFSv4), GPFS, BeeGFS, and Lustre mounted with -o flock; flock(2) is not
// on every one of those (on Linux NFS it is emulated with fcntl anyway). Where the file system
// has no locking at all (fcntl answers ENOLCK, ENOSYS or EOPNOTSUPP: Lustre with -o noflock),
// the run goes on unlocked with a warning rather than not at all.
//
// POSIX locks belong to the process and are dropped when any descriptor of the file is closed,
// so a process opens each lock file once: acquire() returns the same shared lock to every caller
// in the process for the same directory. The lock file is removed when the last holder lets go.
#pragma once

#include <memory>
#include <string>

namespace lockstep::io {

class DirLock {
 public:
  // Locks `dir` (which must exist) for `command` ("lockstep train"). Throws IoError if another
  // process holds it.
  static std::shared_ptr<DirLock> acquire(const std::string& dir, const std::string& command);
  ~DirLock();
  DirLock(const DirLock&) = delete;
  DirLock& operator=(const DirLock&) = delete;

  const std::string& file() const { return file_; }
  bool locked() const { return fd_ >= 0; }  // false where the file system has no locks

  static constexpr const char* kFileName = "lockstep.lock";

 private:
  DirLock(std::string file, int fd) : file_(std::move(file)), fd_(fd) {}
  std::string file_;
  int fd_ = -1;
};

}  // namespace lockstep::io
