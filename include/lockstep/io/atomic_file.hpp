// Atomic file writes: every file lockstep writes whole (checkpoint.h5, model.h5, config.yaml,
// predictions, transformed rows) is written under a temporary name of its own process,
// "<path>.tmp.<host>.<pid>.<n>", created exclusively (O_CREAT|O_EXCL|O_NOFOLLOW, or HDF5's
// H5F_ACC_EXCL, which is the same open), fsynced, renamed over <path>, and the directory fsynced.
// A reader sees the old file or the new one, never half; two processes writing the same path
// never share a temporary; a crash leaves at most a temporary, never a partial final file.
// Neither name is ever followed if it is a symbolic link: an existing temporary name is skipped,
// and an existing <path> that is not a regular file (a link, a device, a directory) is an IoError,
// not replaced and not written through.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace lockstep::io {

class AtomicFile {
 public:
  // Checks `path` (absent or a regular file) and chooses a temporary name that no file has yet.
  // Creates nothing.
  explicit AtomicFile(std::string path);
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;
  // Removes the temporary unless commit() ran (an error on the way leaves nothing behind).
  ~AtomicFile();

  const std::string& path() const { return path_; }
  const std::string& temp() const { return temp_; }

  // Creates the temporary exclusively and writes `bytes` to it.
  void write(std::string_view bytes);
  // For writers that create temp() themselves, exclusively (HDF5: H5File::create(temp, true)):
  // call once it exists, so that a failure removes it.
  void created();
  // fsync the temporary, rename it over path(), fsync the directory.
  void commit();

 private:
  std::string path_, temp_;
  bool created_ = false, committed_ = false;
};

// Writes `bytes` to `path` through an AtomicFile.
void write_file_atomically(const std::string& path, const std::string& bytes);

// Appends `text` to `path` (created if absent, never through a symbolic link). A failed open or
// write (read-only file system, full disk) is an IoError naming the file and the system's reason.
void append_to_file(const std::string& path, std::string_view text);

// "this host's name" (gethostname), for temporary names and lock files.
std::string host_name();

}  // namespace lockstep::io
