#include "lockstep/core/log.hpp"

#include <unistd.h>

#include <cstdio>

namespace lockstep::log {
namespace {
int g_rank = 0;
int g_size = 1;
}  // namespace

void set_rank(int r, int size) {
  g_rank = r;
  g_size = size;
}
int rank() { return g_rank; }

void info(const std::string& msg) {
  if (g_rank != 0) return;
  std::fprintf(stdout, "%s\n", msg.c_str());
  std::fflush(stdout);
}
void warn(const std::string& msg) {
  std::fprintf(stderr, "[rank %d] warning: %s\n", g_rank, msg.c_str());
  std::fflush(stderr);
}
void error(const std::string& msg) {
  std::fprintf(stderr, "[rank %d] error: %s\n", g_rank, msg.c_str());
  std::fflush(stderr);
}
bool stdout_is_terminal() { return ::isatty(STDOUT_FILENO) == 1; }

}  // namespace lockstep::log
