// Error types. Library code throws one of these; only apps/ ends a process. Messages name the
// place (file and line, or config key), what was expected and what was found.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>

namespace lockstep {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
  // True when every rank throws this same error because it came through a collective agreement
  // (Communicator::agree): the process may then end normally instead of aborting the job.
  bool agreed() const { return agreed_; }
  void set_agreed() { agreed_ = true; }

 private:
  bool agreed_ = false;
};
class ConfigError : public Error {
 public:
  using Error::Error;
};
class DataError : public Error {
 public:
  using Error::Error;
};
class IoError : public Error {
 public:
  using Error::Error;
};
class CommError : public Error {
 public:
  using Error::Error;
};
class CheckpointError : public Error {
 public:
  using Error::Error;
};

// Throws an error that every rank raises identically because it follows from inputs the ranks
// already agreed on (the config, whose hash they compared; the result of a collective). Marked
// agreed, so the process ends normally on every rank instead of aborting the job.
template <typename E> [[noreturn]] void throw_agreed(const std::string& msg) {
  E e(msg);
  e.set_agreed();
  throw e;
}

namespace detail {
template <typename... Args>
std::string concat(const Args&... args) {
  std::ostringstream os;
  (os << ... << args);
  return os.str();
}
}  // namespace detail

}  // namespace lockstep

// Stays on in Release builds. Usage: LOCKSTEP_CHECK(n > 0, DataError, path, ": expected ...", n);
#define LOCKSTEP_CHECK(cond, ErrorType, ...)                                    \
  do {                                                                          \
    if (!(cond)) throw ::lockstep::ErrorType(::lockstep::detail::concat(__VA_ARGS__)); \
  } while (0)
