// Output-directory chores shared by train, fit, evaluate and predict (see run_log.hpp).
#include "lockstep/train/run_log.hpp"

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "lockstep/io/checkpoint.hpp"

namespace lockstep::train {

RunLog::RunLog(comm::Communicator& comm, std::string dir) : comm_(comm), dir_(std::move(dir)) {
  comm_.collectively([&] {
    if (comm_.rank() != 0) return;
    std::error_code ec;
    std::filesystem::create_directories(dir_, ec);
    LOCKSTEP_CHECK(!ec && std::filesystem::is_directory(dir_), IoError, "output.dir: cannot create ", dir_, ": ",
                   ec.message());
  });
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
  comm_.collectively([&] {
    if (comm_.rank() != 0) return;
    const std::string p = path(file);
    std::ifstream in(p);
    if (!in) return;
    std::string kept, line;
    while (std::getline(in, line)) {
      const auto at = line.find("\"epoch\":");
      if (at == std::string::npos) continue;
      char* end = nullptr;
      const long long epoch = std::strtoll(line.c_str() + at + 8, &end, 10);
      if (end != line.c_str() + at + 8 && epoch <= last) kept += line + '\n';
    }
    in.close();
    io::write_file_atomically(p, kept);
  });
}

void RunLog::append(const std::string& file, const std::string& lines) {
  comm_.collectively(
      [&] {
        if (comm_.rank() != 0) return;
        const std::string p = path(file);
        std::ofstream out(p, std::ios::app);
        out << lines;
        out.flush();
        LOCKSTEP_CHECK(out.good(), IoError, p, ": cannot append (", std::strerror(errno), ")");
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
