// Atomic file writes (see atomic_file.hpp).
#include "lockstep/io/atomic_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "lockstep/core/error.hpp"

namespace lockstep::io {
namespace {

std::atomic<std::uint64_t> next_temp{0};

// The system's reason, with a plainer word for the refusal of O_NOFOLLOW.
std::string reason(int err) {
  if (err == ELOOP) return "it is a symbolic link, which lockstep does not write through";
  return std::strerror(err);
}

void write_all(int fd, const std::string& path, std::string_view bytes) {
  while (!bytes.empty()) {
    const ssize_t n = ::write(fd, bytes.data(), bytes.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw IoError(path + ": write failed: " + reason(errno));
    bytes.remove_prefix(static_cast<std::size_t>(n));
  }
}

void fsync_path(const std::string& path, bool directory) {
  const int fd = ::open(path.c_str(), directory ? O_RDONLY | O_DIRECTORY | O_CLOEXEC : O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) throw IoError(path + ": cannot open for fsync: " + reason(errno));
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  // Some file systems do not support fsync on directories; the rename is still atomic there.
  if (rc != 0 && !(directory && (err == EINVAL || err == EBADF)))
    throw IoError(path + ": fsync failed: " + std::strerror(err));
}

}  // namespace

std::string host_name() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof buf - 1) != 0 || buf[0] == '\0') return "localhost";
  return buf;
}

AtomicFile::AtomicFile(std::string path) : path_(std::move(path)) {
  struct stat st{};
  if (::lstat(path_.c_str(), &st) == 0 && !S_ISREG(st.st_mode))
    throw IoError(path_ + ": exists and is not a regular file (" +
                  (S_ISLNK(st.st_mode) ? std::string("a symbolic link") : std::string("a directory or device")) +
                  "); lockstep neither replaces it nor writes through it: remove it or choose another name");
  const std::string stem = path_ + ".tmp." + host_name() + "." + std::to_string(::getpid()) + ".";
  // A leftover of a crashed process with the same pid (pid namespaces make that common) is
  // skipped, not reused: the writer's exclusive create would refuse it anyway.
  for (int tries = 0; tries < 1000; ++tries) {
    temp_ = stem + std::to_string(next_temp.fetch_add(1));
    if (::lstat(temp_.c_str(), &st) != 0) return;
  }
  throw IoError(path_ + ": no free temporary name beside it (" + temp_ + " and 999 others exist)");
}

AtomicFile::~AtomicFile() {
  if (created_ && !committed_) ::unlink(temp_.c_str());
}

void AtomicFile::write(std::string_view bytes) {
  const int fd = ::open(temp_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0666);
  if (fd < 0) throw IoError(temp_ + ": cannot create (writing " + path_ + "): " + reason(errno));
  created_ = true;
  try {
    write_all(fd, temp_, bytes);
  } catch (...) {
    ::close(fd);
    throw;
  }
  if (::close(fd) != 0) throw IoError(temp_ + ": write failed: " + reason(errno));
}

void AtomicFile::created() {
  created_ = true;
}

void AtomicFile::commit() {
  fsync_path(temp_, false);
  if (std::rename(temp_.c_str(), path_.c_str()) != 0)
    throw IoError(temp_ + ": cannot rename to " + path_ + ": " + std::strerror(errno));
  committed_ = true;
  const auto dir = std::filesystem::path(path_).parent_path();
  fsync_path(dir.empty() ? "." : dir.string(), true);
}

void write_file_atomically(const std::string& path, const std::string& bytes) {
  AtomicFile f(path);
  f.write(bytes);
  f.commit();
}

void append_to_file(const std::string& path, std::string_view text) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0666);
  if (fd < 0) throw IoError(path + ": cannot open for appending: " + reason(errno));
  try {
    write_all(fd, path, text);
  } catch (...) {
    ::close(fd);
    throw;
  }
  if (::close(fd) != 0) throw IoError(path + ": write failed: " + reason(errno));
}

}  // namespace lockstep::io
