// What the readers in src/data share: agreeing on an error across ranks while keeping its type,
// splitting a text file between ranks at line boundaries, walking lines with their global numbers,
// and strict number parsing. Private to the library.
#pragma once

#include <cstdint>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "lockstep/comm/communicator.hpp"
#include "lockstep/core/error.hpp"
#include "lockstep/core/param_reader.hpp"

namespace lockstep::data::detail {

// Runs fn on this rank and agrees on the outcome: an exception on any rank is thrown on all,
// keeping its lockstep type; anything else found while reading becomes a DataError.
template <typename Fn> void collectively(comm::Communicator& comm, Fn&& fn) {
  comm.collectively(
      [&] {
        try {
          fn();
        } catch (const IoError& e) {  // a file we cannot read is a data problem to the user
          throw DataError(e.what());
        }
      },
      comm::Communicator::ErrorKind::kData);
}

struct FileCloser {
  void operator()(std::FILE* f) const { std::fclose(f); }
};
using File = std::unique_ptr<std::FILE, FileCloser>;

// Opens for binary reading; a DataError names the path and the system's reason.
File open_file(const std::string& path);
std::int64_t file_size(std::FILE* f, const std::string& path);

// Reads from `offset` up to and including the next '\n' (or the end of the file); returns the
// bytes without the '\n'. *next receives the offset just after the line.
std::string read_line_at(std::FILE* f, const std::string& path, std::int64_t offset, std::int64_t size, std::int64_t* next);

// This rank's lines of the body [body_begin, size) of a text file. The body is cut into `ranks`
// equal byte ranges and a rank owns the lines that start in its range (the Hadoop rule): the one
// line that straddles a cut belongs to the rank where it starts, and the next rank skips it.
// Each rank reads only its own bytes plus the tail of the line that straddles its end.
std::string read_line_split(std::FILE* f, const std::string& path, std::int64_t body_begin, std::int64_t size, int rank,
                            int ranks);

// Where the first line that starts at or after byte x of a file of `size` bytes begins (x itself
// when byte x-1 is a '\n'; `size` when no line starts there).
std::int64_t line_start_at_or_after(std::FILE* f, const std::string& path, std::int64_t size, std::int64_t x);

// How many lines `text` holds: the last one may lack its '\n'.
std::int64_t count_lines(std::string_view text);

// Calls fn(line_number, line) for each line of `text`, the first being `first_line`; a trailing
// '\r' (CRLF files) is removed.
template <typename Fn> void for_each_line(std::string_view text, std::int64_t first_line, Fn&& fn) {
  std::size_t pos = 0;
  std::int64_t line = first_line;
  while (pos < text.size()) {
    std::size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view s = text.substr(pos, end - pos);
    if (!s.empty() && s.back() == '\r') s.remove_suffix(1);
    fn(line, s);
    ++line;
    pos = end + 1;
  }
}

bool is_blank(std::string_view s);
std::string_view trim(std::string_view s);
// A field for an error message: quoted, and cut short if long.
std::string quoted(std::string_view s);

// The whole of `s` (spaces around allowed, a leading '+' allowed) as a number; false otherwise.
bool parse_float(std::string_view s, float& out);
bool parse_int(std::string_view s, std::int64_t& out);

// A list key of one or two integers in 1..65536 ([H, W], or N for N x N) into h, w; false when absent.
bool get_hw(ParamReader& p, const std::string& key, std::int64_t& h, std::int64_t& w);

}  // namespace lockstep::data::detail
