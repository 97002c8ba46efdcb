// Output-directory chores shared by train, fit, evaluate and predict (see run_log.hpp).
#include "lockstep/train/run_log.hpp"

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "lockstep/io/atomic_file.hpp"
#include "lockstep/io/dir_lock.hpp"

namespace lockstep::train {

namespace {
void create_dir(const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  LOCKSTEP_CHECK(!ec && std::filesystem::is_directory(dir), IoError, "output.dir: cannot create ", dir, ": ",
                 ec ? ec.message() : std::string("it exists and is not a directory"));
}
}  // namespace

RunLog::RunLog(comm::Communicator& comm, std::string dir) : comm_(comm), dir_(std::move(dir)) {
  comm_.collectively(
      [&] {
        if (comm_.rank() == 0) create_dir(dir_);
      },
      comm::Communicator::ErrorKind::kIo);
}

std::shared_ptr<io::DirLock> lock_output_dir(comm::Communicator& comm, const std::string& dir,
                                             const std::string& command) {
  std::shared_ptr<io::DirLock> lock;
  comm.collectively(
      [&] {
        if (comm.rank() != 0) return;
        create_dir(dir);
        lock = io::DirLock::acquire(dir, command);
      },
      comm::Communicator::ErrorKind::kIo);
  return lock;
}

std::string RunLog::path(const std::string& file) const {
  return (std::filesystem::path(dir_) / file).string();
}

void RunLog::rotate(std::initializer_list<const char*> files) {
  comm_.collectively([&] {
    if (comm_.rank() != 0) return;
    for (const char* name : files) {
      const std::string p = path(name);
      std::error_code ec;
      if (!std::filesystem::exists(p, ec)) continue;
      std::filesystem::rename(p, p + ".prev", ec);
      LOCKSTEP_CHECK(!ec, IoError, p, ": cannot keep the previous run's file as ", p, ".prev: ", ec.message());
    }
  });
}

void RunLog::keep_epochs(const std::string& file, std::int64_t last) {
  comm_.collectively(
      [&] {
        if (comm_.rank() != 0) return;
        const std::string p = path(file);
        std::ifstream in(p);
        if (!in) return;
        std::string kept, line;
        while (std::getline(in, line)) {
          // A line cut short by the crash that ends a run, or without an epoch, is dropped.
          const auto js = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
          if (js.is_object() && js.contains("epoch") && js["epoch"].is_number_integer() &&
              js["epoch"].get<std::int64_t>() <= last)
            kept += line + '\n';
        }
        in.close();
        io::write_file_atomically(p, kept);
      },
      comm::Communicator::ErrorKind::kIo);
}

void RunLog::append(const std::string& file, const std::string& lines) {
  comm_.collectively(
      [&] {
        if (comm_.rank() == 0) io::append_to_file(path(file), lines);
      },
      comm::Communicator::ErrorKind::kIo);
}

void RunLog::write(const std::string& file, const std::string& text) {
  comm_.collectively(
      [&] {
        if (comm_.rank() == 0) io::write_file_atomically(path(file), text);
      },
      comm::Communicator::ErrorKind::kIo);
}

void write_gathered(comm::Communicator& comm, const std::string& path, const std::string& header,
                    const std::string& mine) {
  const auto parts = comm.allgather_strings(mine);
  comm.collectively(
      [&] {
        if (comm.rank() != 0) return;
        std::string all = header;
        for (const auto& p : parts) all += p;
        io::write_file_atomically(path, all);
      },
      comm::Communicator::ErrorKind::kIo);
}

}  // namespace lockstep::train
