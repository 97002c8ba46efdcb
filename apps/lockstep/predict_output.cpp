// predict's streaming outputs (see predict_output.hpp).
#include "predict_output.hpp"

#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <vector>

#include "lockstep/core/error.hpp"
#include "lockstep/io/features_file.hpp"

namespace lockstep::app {
namespace {

namespace fs = std::filesystem;

// A name no other run's parts have: rank 0's host and process id, the same on every rank.
std::string run_token(comm::Communicator& comm) {
  std::string token;
  if (comm.rank() == 0) token = io::host_name() + "." + std::to_string(::getpid());
  comm.broadcast(token, 0);
  return token;
}

std::string part_number(int rank) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%05d", rank);
  return buf;
}

void open_part(std::ofstream& out, const std::string& path) {
  out.open(path, std::ios::binary | std::ios::trunc);
  if (!out) throw IoError(path + ": cannot create this rank's part of the output: " + std::strerror(errno));
}

bool wants_folder(const std::string& output) {
  std::error_code ec;
  return (!output.empty() && output.back() == '/') || fs::is_directory(output, ec);
}

// The folder's previous output (part-*.csv, _SUCCESS): removed before any part is written, so a
// reader never takes an old _SUCCESS for the new parts.
void clear_folder(const std::string& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw IoError(dir + ": cannot create the output folder: " + ec.message());
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const std::string n = e.path().filename().string();
    if (n == "_SUCCESS" || (n.rfind("part-", 0) == 0 && n.size() > 4 && n.substr(n.size() - 4) == ".csv"))
      fs::remove(e.path(), ec);
  }
  if (ec) throw IoError(dir + ": cannot clear the previous output: " + ec.message());
}

}  // namespace

std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\r\n") == std::string::npos) return s;
  std::string q = "\"";
  for (char c : s) {
    if (c == '"') q += '"';
    q += c;
  }
  q += '"';
  return q;
}

CsvOutput::CsvOutput(comm::Communicator& comm, const std::string& output, const std::string& header)
    : comm_(comm), output_(output), folder_(wants_folder(output)) {
  const std::string token = run_token(comm);
  comm.collectively([&] {
    if (folder_) {
      std::string dir = output_;
      while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
      output_ = dir;
      if (comm_.rank() == 0) clear_folder(dir);
    } else if (comm_.rank() == 0) {
      file_ = std::make_unique<io::AtomicFile>(output_);  // refuses a link or a non-file there
    }
  });
  comm.collectively([&] {
    if (folder_) {
      final_part_ = output_ + "/part-" + part_number(comm_.rank()) + ".csv";
      part_ = output_ + "/.part-" + part_number(comm_.rank()) + ".csv." + token + ".tmp";
    } else {
      part_ = output_ + "." + token + ".part-" + part_number(comm_.rank()) + ".tmp";
    }
    open_part(out_, part_);
    if (folder_ || comm_.rank() == 0) append(header);
  });
}

CsvOutput::~CsvOutput() {
  if (out_.is_open()) out_.close();
  if (!part_.empty()) std::remove(part_.c_str());
}

void CsvOutput::append(const std::string& rows) {
  out_.write(rows.data(), static_cast<std::streamsize>(rows.size()));
  bytes_ += static_cast<std::int64_t>(rows.size());
}

std::string CsvOutput::finish() {
  comm_.collectively([&] {
    out_.close();
    if (!out_) throw IoError(part_ + ": cannot write this rank's part of the output (disk full?)");
    if (folder_ && std::rename(part_.c_str(), final_part_.c_str()) != 0)
      throw IoError(final_part_ + ": cannot rename the part into place: " + std::strerror(errno));
  });
  if (folder_) {
    part_.clear();
    comm_.collectively([&] {
      if (comm_.rank() == 0) io::write_file_atomically(output_ + "/_SUCCESS", "");
    });
    return std::to_string(comm_.size()) + " part files and _SUCCESS in " + output_ + "/";
  }
  const std::int64_t offset = comm_.exscan(bytes_);
  std::string temp = comm_.rank() == 0 ? file_->temp() : std::string();
  comm_.broadcast(temp, 0);
  std::ifstream in(part_, std::ios::binary);
  try {
    comm_.write_at_all(temp, offset, bytes_, in);
    comm_.collectively([&] {
      if (comm_.rank() != 0) return;
      file_->created();
      file_->commit();
    });
  } catch (...) {
    if (comm_.rank() == 0) std::remove(temp.c_str());
    throw;
  }
  return output_;
}

FeatureOutput::FeatureOutput(comm::Communicator& comm, const std::string& path, std::int64_t dims,
                             const std::string& layer)
    : comm_(comm), path_(path), layer_(layer), dims_(dims) {
  const std::string token = run_token(comm);
  comm.collectively([&] {
    if (comm_.rank() == 0) io::AtomicFile check(path_);  // refuses a link or a non-file there
    part_ = path_ + "." + token + ".part-" + part_number(comm_.rank()) + ".tmp";
    open_part(out_, part_);
  });
}

FeatureOutput::~FeatureOutput() {
  if (out_.is_open()) out_.close();
  if (!part_.empty()) std::remove(part_.c_str());
}

void FeatureOutput::append(const std::string& origin, const float* row) {
  const auto n = static_cast<std::uint32_t>(origin.size());
  out_.write(reinterpret_cast<const char*>(&n), sizeof n);
  out_.write(origin.data(), n);
  out_.write(reinterpret_cast<const char*>(row), static_cast<std::streamsize>(dims_ * 4));
  ++rows_;
}

void FeatureOutput::finish() {
  comm_.collectively([&] {
    out_.close();
    if (!out_) throw IoError(part_ + ": cannot write this rank's part of the features (disk full?)");
  });
  const auto rows = comm_.allgather<std::int64_t>(rows_);
  comm_.collectively([&] {
    if (comm_.rank() == 0) merge(rows);
  });
}

// Rank 0: every part in rank order into /origin and /features, in blocks of kChunk rows of the
// whole file (not of each part), so the file's bytes are the same at any number of ranks.
void FeatureOutput::merge(const std::vector<std::int64_t>& rows) {
  constexpr std::size_t kChunk = 4096;
  std::int64_t total = 0;
  for (auto r : rows) total += r;
  io::FeaturesFileWriter file(path_, total, dims_, layer_);
  const std::string stem = part_.substr(0, part_.size() - std::strlen("00000.tmp"));
  std::int64_t at = 0;
  std::vector<std::string> origins;
  std::vector<float> values;
  const auto flush = [&] {
    file.write(at, origins, values.data());
    at += static_cast<std::int64_t>(origins.size());
    origins.clear();
    values.clear();
  };
  std::vector<float> row(static_cast<std::size_t>(dims_));
  for (std::size_t r = 0; r < rows.size(); ++r) {
    const std::string part = stem + part_number(static_cast<int>(r)) + ".tmp";
    std::ifstream in(part, std::ios::binary);
    if (!in) throw IoError(part + ": cannot open rank " + std::to_string(r) + "'s features (is the folder shared?)");
    for (std::int64_t i = 0; i < rows[r]; ++i) {
      std::uint32_t n = 0;
      in.read(reinterpret_cast<char*>(&n), sizeof n);
      std::string origin(n, '\0');
      in.read(origin.data(), n);
      in.read(reinterpret_cast<char*>(row.data()), static_cast<std::streamsize>(dims_ * 4));
      if (!in) throw IoError(part + ": rank " + std::to_string(r) + "'s features end early");
      origins.push_back(std::move(origin));
      values.insert(values.end(), row.begin(), row.end());
      if (origins.size() == kChunk) flush();
    }
  }
  if (!origins.empty()) flush();
  file.commit();
}

}  // namespace lockstep::app
