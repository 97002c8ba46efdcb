// Shared pieces of the readers: line-aligned byte splits of text files and
// strict number parsing.
#include "data/source_util.hpp"

#include <sys/types.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <vector>

namespace lockstep::data::detail {

File open_file(const std::string& path) {
  errno = 0;
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) {
    const int e = errno;
    throw DataError(path + ": cannot open for reading: " + (e ? std::strerror(e) : "unknown error"));
  }
  return File(f);
}

namespace {

void seek(std::FILE* f, const std::string& path, std::int64_t offset) {
  if (fseeko(f, static_cast<off_t>(offset), SEEK_SET) != 0) {
    throw DataError(path + ": cannot seek to byte " + std::to_string(offset) + ": " + std::strerror(errno));
  }
}

// Reads up to n bytes; fewer only at the end of the file.
std::size_t read_some(std::FILE* f, const std::string& path, char* buf, std::size_t n, std::int64_t offset) {
  const std::size_t got = std::fread(buf, 1, n, f);
  if (got < n && std::ferror(f)) {
    throw DataError(path + ": read error near byte " + std::to_string(offset) + ": " + std::strerror(errno));
  }
  return got;
}

constexpr std::size_t kChunk = 1 << 16;

// The offset just after the first '\n' at or after `offset`, or `size` if there is none.
std::int64_t skip_line(std::FILE* f, const std::string& path, std::int64_t offset, std::int64_t size) {
  seek(f, path, offset);
  std::vector<char> buf(kChunk);
  std::int64_t pos = offset;
  while (pos < size) {
    const std::size_t got = read_some(f, path, buf.data(), buf.size(), pos);
    if (got == 0) break;
    const void* nl = std::memchr(buf.data(), '\n', got);
    if (nl) return pos + (static_cast<const char*>(nl) - buf.data()) + 1;
    pos += static_cast<std::int64_t>(got);
  }
  return size;
}

// Where the first line that starts at or after byte x of the body begins.
std::int64_t line_start_from(std::FILE* f, const std::string& path, std::int64_t body_begin, std::int64_t size, std::int64_t x) {
  if (x <= body_begin) return body_begin;
  if (x >= size) return size;
  // A line starts at x exactly when byte x-1 is a '\n', so scanning from x-1 covers both cases.
  return skip_line(f, path, x - 1, size);
}

}  // namespace

std::int64_t line_start_at_or_after(std::FILE* f, const std::string& path, std::int64_t size, std::int64_t x) {
  return line_start_from(f, path, 0, size, x);
}

std::int64_t file_size(std::FILE* f, const std::string& path) {
  if (fseeko(f, 0, SEEK_END) != 0) throw DataError(path + ": cannot seek to the end: " + std::strerror(errno));
  const off_t size = ftello(f);
  if (size < 0) throw DataError(path + ": cannot tell the file size: " + std::strerror(errno));
  return static_cast<std::int64_t>(size);
}

std::string read_line_at(std::FILE* f, const std::string& path, std::int64_t offset, std::int64_t size, std::int64_t* next) {
  const std::int64_t end = skip_line(f, path, offset, size);
  *next = end;
  std::string line(static_cast<std::size_t>(end - offset), '\0');
  seek(f, path, offset);
  line.resize(read_some(f, path, line.data(), line.size(), offset));
  if (!line.empty() && line.back() == '\n') line.pop_back();
  return line;
}

std::string read_line_split(std::FILE* f, const std::string& path, std::int64_t body_begin, std::int64_t size, int rank,
                            int ranks) {
  const std::int64_t body = size - body_begin;
  const std::int64_t lo = body_begin + body * rank / ranks;
  const std::int64_t hi = body_begin + body * (rank + 1) / ranks;
  // Rank r ends exactly where rank r+1 begins, since both apply the same rule to the same cut.
  const std::int64_t begin = line_start_from(f, path, body_begin, size, lo);
  const std::int64_t end = line_start_from(f, path, body_begin, size, hi);
  std::string text;
  if (end <= begin) return text;
  text.resize(static_cast<std::size_t>(end - begin));
  seek(f, path, begin);
  const std::size_t got = read_some(f, path, text.data(), text.size(), begin);
  if (got != text.size()) {
    throw DataError(path + ": expected " + std::to_string(size) + " bytes, the file ended at byte " +
                    std::to_string(begin + static_cast<std::int64_t>(got)) + " (was it changed while being read?)");
  }
  return text;
}

std::int64_t count_lines(std::string_view text) {
  std::int64_t n = 0;
  for (const char c : text) n += c == '\n';
  if (!text.empty() && text.back() != '\n') ++n;
  return n;
}

bool is_blank(std::string_view s) { return trim(s).empty(); }

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

std::string quoted(std::string_view s) {
  constexpr std::size_t kMax = 40;
  // Appended piece by piece: GCC 12 warns falsely (-Wrestrict) about "literal" + std::string.
  std::string out(1, '"');
  out.append(s.substr(0, kMax));
  if (s.size() > kMax) out.append("...");
  out.push_back('"');
  return out;
}

bool parse_float(std::string_view s, float& out) {
  s = trim(s);
  // from_chars rejects a leading '+', which CSV writers and LIBSVM labels ("+1") use.
  if (s.size() > 1 && s.front() == '+' && s[1] != '-' && s[1] != '+') s.remove_prefix(1);
  if (s.empty()) return false;
  const auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && p == s.data() + s.size();
}

bool parse_int(std::string_view s, std::int64_t& out) {
  s = trim(s);
  if (s.size() > 1 && s.front() == '+' && s[1] != '-' && s[1] != '+') s.remove_prefix(1);
  if (s.empty()) return false;
  const auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && p == s.data() + s.size();
}

bool get_hw(ParamReader& p, const std::string& key, std::int64_t& h, std::int64_t& w) {
  std::vector<std::int64_t> v;
  if (!p.get_list(key, v, at_least(std::int64_t{1}))) return false;
  if (v.empty() || v.size() > 2 || v[0] > 65536 || v.back() > 65536) {
    ParamReader::fail(*p.find(key), "[H, W] (or one N for N x N), each in 1..65536",
                      std::to_string(v.size()) + " values");
  }
  h = v[0], w = v.back();
  return true;
}

}  // namespace lockstep::data::detail
