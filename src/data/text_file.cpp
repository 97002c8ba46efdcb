// text_file and save_as_text (data/text_file.hpp).
#include "lockstep/data/text_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <optional>
#include <sstream>
#include <vector>

#include "data/source_util.hpp"
#include "lockstep/core/error.hpp"

namespace lockstep::data {
namespace {

namespace fs = std::filesystem;

struct InputFile {
  std::string path;
  std::int64_t size = 0;
  std::int64_t start = 0;  // of its bytes in the concatenation of all the files
};

bool hidden(const std::string& name) { return !name.empty() && (name[0] == '.' || name[0] == '_'); }

// The files under `path`, in order, with their sizes (rank 0 lists; the list is broadcast so every
// rank reads the same files even if the folder changes meanwhile).
std::vector<InputFile> list_input(comm::Communicator& comm, const std::string& path) {
  std::string listing;
  detail::collectively(comm, [&] {
    if (comm.rank() != 0) return;
    std::error_code ec;
    const fs::file_status st = fs::status(path, ec);
    if (ec || !fs::exists(st)) throw DataError(path + ": text_file: no such file or folder");
    std::vector<std::string> names;
    if (fs::is_directory(st)) {
      for (const auto& e : fs::directory_iterator(path, ec)) {
        if (e.is_regular_file() && !hidden(e.path().filename().string())) names.push_back(e.path().string());
      }
      if (ec) throw DataError(path + ": text_file: cannot list the folder: " + ec.message());
      std::sort(names.begin(), names.end());
    } else if (fs::is_regular_file(st)) {
      names.push_back(path);
    } else {
      throw DataError(path + ": text_file: expected a regular file or a folder");
    }
    std::ostringstream out;
    for (const auto& n : names) {
      auto f = detail::open_file(n);  // unreadable files fail here, before any rank reads
      out << detail::file_size(f.get(), n) << ' ' << n << '\n';
    }
    listing = out.str();
  });
  comm.broadcast(listing, 0);
  std::vector<InputFile> files;
  std::istringstream in(listing);
  std::int64_t start = 0;
  for (InputFile f; in >> f.size && in.get() == ' ' && std::getline(in, f.path);) {
    f.start = start;
    start += f.size;
    files.push_back(f);
  }
  return files;
}

constexpr std::size_t kBlock = std::size_t{1} << 20;

// Emits the lines of file bytes [begin, end), both line starts, reading kBlock bytes at a time
// from the open file f.
void emit_lines(std::FILE* f, const InputFile& in, std::int64_t begin, std::int64_t end,
                const Partitioned<std::string>::Emit& emit) {
  if (fseeko(f, static_cast<off_t>(begin), SEEK_SET) != 0) {
    throw DataError(in.path + ": text_file: cannot seek to byte " + std::to_string(begin));
  }
  std::vector<char> buf(kBlock);
  std::string partial;
  std::int64_t pos = begin;
  while (pos < end) {
    const std::size_t want = static_cast<std::size_t>(std::min<std::int64_t>(end - pos, kBlock));
    const std::size_t got = std::fread(buf.data(), 1, want, f);
    if (got != want) {
      throw DataError(in.path + ": text_file: expected " + std::to_string(in.size) +
                      " bytes, the file ended or failed near byte " + std::to_string(pos + static_cast<std::int64_t>(got)) +
                      " (was it changed while being read?)");
    }
    const char* p = buf.data();
    const char* const e = p + got;
    while (p < e) {
      const char* nl = static_cast<const char*>(std::memchr(p, '\n', static_cast<std::size_t>(e - p)));
      if (!nl) {
        partial.append(p, e);
        break;
      }
      partial.append(p, nl);
      if (!partial.empty() && partial.back() == '\r') partial.pop_back();
      emit(std::move(partial));
      partial = std::string();
      p = nl + 1;
    }
    pos += static_cast<std::int64_t>(got);
  }
  if (!partial.empty()) {  // the file's last line, without a '\n'
    if (partial.back() == '\r') partial.pop_back();
    emit(std::move(partial));
  }
}

}  // namespace

Partitioned<std::string> text_file(comm::Communicator& comm, const std::string& path) {
  const auto files = std::make_shared<const std::vector<InputFile>>(list_input(comm, path));
  const std::int64_t total = files->empty() ? 0 : files->back().start + files->back().size;
  const Range mine = split_range(total, comm.rank(), comm.size());
  return Partitioned<std::string>(comm, [files, mine](const Partitioned<std::string>::Emit& emit) {
    for (const InputFile& in : *files) {
      const std::int64_t lo = std::max(mine.begin, in.start) - in.start;
      const std::int64_t hi = std::min(mine.end, in.start + in.size) - in.start;
      if (in.size == 0 || lo >= hi) continue;
      // The lines that start in [lo, hi): from the first line start at or after lo to the first
      // at or after hi (a file's first byte starts a line, whoever owns it).
      auto f = detail::open_file(in.path);
      const std::int64_t begin = lo == 0 ? 0 : detail::line_start_at_or_after(f.get(), in.path, in.size, lo);
      const std::int64_t end = hi >= in.size ? in.size : detail::line_start_at_or_after(f.get(), in.path, in.size, hi);
      if (begin < end) emit_lines(f.get(), in, begin, end, emit);
    }
  });
}

namespace {

std::string part_name(int rank) {
  char name[32];
  std::snprintf(name, sizeof name, "part-%05d", rank);
  return name;
}

bool is_output_name(const std::string& name) { return name == "_SUCCESS" || name.rfind("part-", 0) == 0; }

// Rank 0 makes `dir` ready: created if absent; earlier output refused, or removed with overwrite.
void prepare_dir(comm::Communicator& comm, const std::string& dir, bool overwrite) {
  comm.collectively([&] {
    if (comm.rank() != 0) return;
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec || !fs::is_directory(dir)) {
      throw IoError(dir + ": save_as_text: cannot create the folder" + (ec ? ": " + ec.message() : std::string()));
    }
    std::vector<fs::path> old;
    for (const auto& e : fs::directory_iterator(dir, ec)) {
      if (is_output_name(e.path().filename().string())) old.push_back(e.path());
    }
    if (old.empty()) return;
    if (!overwrite) {
      throw IoError(dir + ": save_as_text: the folder already holds output (" + old.front().filename().string() +
                    "); remove it or pass overwrite");
    }
    for (const auto& p : old) {
      fs::remove(p, ec);
      if (ec) throw IoError(p.string() + ": save_as_text: cannot remove the earlier output: " + ec.message());
    }
  }, comm::Communicator::ErrorKind::kIo);
}

struct FdCloser {
  void operator()(std::FILE* f) const {
    if (f) std::fclose(f);
  }
};

// Streams this rank's lines into `temp`, flushed and fsynced; an IoError names `part`.
void write_part(const Partitioned<std::string>& lines, const std::string& temp, const std::string& part) {
  const int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
  if (fd < 0) throw IoError(part + ": save_as_text: cannot create " + temp + ": " + std::strerror(errno));
  std::unique_ptr<std::FILE, FdCloser> f(::fdopen(fd, "wb"));
  if (!f) {
    ::close(fd);
    throw IoError(part + ": save_as_text: cannot open " + temp);
  }
  std::int64_t line = 0;
  std::optional<std::string> bad;
  lines.for_each_local([&](std::string&& s) {
    ++line;
    if (bad) return;
    if (s.find('\n') != std::string::npos) {
      bad = part + ": save_as_text: element " + std::to_string(line) + " of this rank holds a '\\n'";
      return;
    }
    s += '\n';
    if (std::fwrite(s.data(), 1, s.size(), f.get()) != s.size()) bad = part + ": save_as_text: write failed: " + std::strerror(errno);
  });
  if (!bad && (std::fflush(f.get()) != 0 || ::fsync(fileno(f.get())) != 0)) {
    bad = part + ": save_as_text: write failed: " + std::strerror(errno);
  }
  if (std::fclose(f.release()) != 0 && !bad) bad = part + ": save_as_text: write failed: " + std::strerror(errno);
  if (bad) throw IoError(*bad);
}

}  // namespace

void save_as_text(const Partitioned<std::string>& lines, const std::string& dir, bool overwrite) {
  comm::Communicator& comm = lines.comm();
  prepare_dir(comm, dir, overwrite);
  const std::string part = (fs::path(dir) / part_name(comm.rank())).string();
  std::ostringstream t;
  char host[256] = {};
  ::gethostname(host, sizeof host - 1);
  t << dir << "/.part-" << comm.rank() << ".tmp." << host << '.' << ::getpid();
  const std::string temp = t.str();
  try {
    comm.collectively([&] { write_part(lines, temp, part); }, comm::Communicator::ErrorKind::kIo);
    comm.collectively([&] {
      if (std::rename(temp.c_str(), part.c_str()) != 0) {
        throw IoError(part + ": save_as_text: cannot rename " + temp + ": " + std::strerror(errno));
      }
    }, comm::Communicator::ErrorKind::kIo);
  } catch (...) {
    std::remove(temp.c_str());
    throw;
  }
  comm.collectively([&] {
    if (comm.rank() != 0) return;
    const std::string success = (fs::path(dir) / "_SUCCESS").string();
    const int fd = ::open(success.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd < 0 || ::close(fd) != 0) throw IoError(success + ": save_as_text: cannot create: " + std::strerror(errno));
  }, comm::Communicator::ErrorKind::kIo);
}

}  // namespace lockstep::data
