// The output directory's lock (see dir_lock.hpp).
#include "lockstep/io/dir_lock.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <map>
#include <mutex>

#include "lockstep/core/error.hpp"
#include "lockstep/core/log.hpp"
#include "lockstep/io/atomic_file.hpp"

namespace lockstep::io {
namespace {

std::mutex registry_mutex;
std::map<std::string, std::weak_ptr<DirLock>> registry;  // this process's locks, by lock file

bool try_lock(int fd, int& err) {
  struct flock fl{};
  fl.l_type = F_WRLCK;
  fl.l_whence = SEEK_SET;
  fl.l_start = 0;
  fl.l_len = 0;  // the whole file
  if (::fcntl(fd, F_SETLK, &fl) == 0) return true;
  err = errno;
  return false;
}

std::string holder_text(int fd) {
  char buf[512] = {};
  const ssize_t n = ::pread(fd, buf, sizeof buf - 1, 0);
  std::string s = n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : std::string();
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s.empty() ? "holder unknown: it has not written its name yet" : s;
}

std::string now_text() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  ::localtime_r(&t, &tm);
  char buf[64];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S %z", &tm);
  return buf;
}

bool same_file(int fd, const std::string& path) {
  struct stat a{}, b{};
  return ::fstat(fd, &a) == 0 && ::lstat(path.c_str(), &b) == 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

// Opens and locks the lock file; -1 where the file system has no locks. Throws if another
// process holds it.
int lock_file(const std::string& dir, const std::string& file) {
  // The holder removes the file when it lets go; a process that opened the old file just before
  // may then lock a file no longer in the directory, so the lock counts only if the descriptor
  // still is the directory's file.
  for (int attempt = 0; attempt < 100; ++attempt) {
    const int fd = ::open(file.c_str(), O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd < 0) throw IoError("output.dir " + dir + ": cannot open the lock file " + file + ": " + std::strerror(errno));
    int err = 0;
    if (try_lock(fd, err)) {
      if (same_file(fd, file)) return fd;
      ::close(fd);
      continue;
    }
    if (err == EACCES || err == EAGAIN) {
      const std::string holder = holder_text(fd);
      ::close(fd);
      throw IoError("output.dir " + dir + " is in use by another lockstep run (" + holder + "; lock file " + file +
                    "): wait for it to end, or give this run another output.dir (--set output.dir=...)");
    }
    ::close(fd);
    if (err == ENOLCK || err == ENOSYS || err == EOPNOTSUPP || err == EINVAL) {
      log::warn("output.dir " + dir + ": the file system does not lock files (" + std::strerror(err) +
                "); this run cannot detect another run writing into the same directory");
      return -1;
    }
    throw IoError("output.dir " + dir + ": cannot lock " + file + ": " + std::strerror(err));
  }
  throw IoError("output.dir " + dir + ": cannot lock " + file + ": it keeps being replaced by other processes");
}

}  // namespace

std::shared_ptr<DirLock> DirLock::acquire(const std::string& dir, const std::string& command) {
  std::error_code ec;
  const auto canon = std::filesystem::weakly_canonical(dir, ec);
  const std::string file = ((ec ? std::filesystem::path(dir) : canon) / kFileName).string();
  std::lock_guard<std::mutex> guard(registry_mutex);
  if (auto held = registry[file].lock()) return held;
  const int fd = lock_file(dir, file);
  std::shared_ptr<DirLock> lock(new DirLock(file, fd));
  if (fd >= 0) {
    const std::string who = "host " + host_name() + ", pid " + std::to_string(::getpid()) + ", started " + now_text() +
                            ", " + command + "\n";
    // Best effort: the lock holds without its label.
    if (::ftruncate(fd, 0) == 0 && ::pwrite(fd, who.data(), who.size(), 0) == static_cast<ssize_t>(who.size()))
      ::fsync(fd);
  }
  registry[file] = lock;
  return lock;
}

DirLock::~DirLock() {
  if (fd_ < 0) return;
  ::unlink(file_.c_str());  // still holding the lock: see lock_file() for the race this leaves none of
  ::close(fd_);
}

}  // namespace lockstep::io
