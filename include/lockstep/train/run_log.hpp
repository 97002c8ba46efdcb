// RunLog: the chores of an output directory that every subcommand shares. Rank 0 does the file
// work; every call is collective, so a failed write (a full disk, a read-only directory) is an
// IoError on every rank naming the file and the system's reason, not a hang or a silent exit 0.
// Whole files go through io::AtomicFile; appends never follow a symbolic link.
// - A new run into a used directory keeps the previous run's logs as *.prev instead of mixing
//   two runs in one file.
// - A resumed run drops the JSON lines of epochs past its checkpoint (written after it, by the
//   run that died), so no epoch appears twice.
// - Outputs that every rank contributes to (predictions, transformed rows) are gathered in rank
//   order and written by rank 0 to a temporary name, then renamed into place.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>

#include "lockstep/comm/communicator.hpp"
#include "lockstep/io/dir_lock.hpp"

namespace lockstep::train {

class RunLog {
 public:
  // Creates `dir` if needed. Collective.
  RunLog(comm::Communicator& comm, std::string dir);

  const std::string& dir() const { return dir_; }
  std::string path(const std::string& file) const;
  // Renames each existing file to <file>.prev. Collective.
  void rotate(std::initializer_list<const char*> files);
  // Keeps the lines of a JSON-lines file whose "epoch" is at most `last`. Collective.
  void keep_epochs(const std::string& file, std::int64_t last);
  // Appends text (whole lines) to a file. Collective.
  void append(const std::string& file, const std::string& lines);
  // Writes a whole file atomically from rank 0's text. Collective.
  void write(const std::string& file, const std::string& text);

 private:
  comm::Communicator& comm_;
  std::string dir_;
};

// Creates `dir` if needed and takes its lock (io/dir_lock.hpp) for `command` ("lockstep train"):
// rank 0 holds it (other ranks get nullptr) until the last copy is dropped; another run holding it
// is an IoError on every rank naming the directory and the holder. Collective.
std::shared_ptr<io::DirLock> lock_output_dir(comm::Communicator& comm, const std::string& dir,
                                             const std::string& command);

// Gathers every rank's text in rank order; rank 0 writes header + the parts to `path` through a
// temporary file. Collective.
void write_gathered(comm::Communicator& comm, const std::string& path, const std::string& header,
                    const std::string& mine);

}  // namespace lockstep::train
