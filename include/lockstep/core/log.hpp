// Rank-aware logging: rank 0 prints progress and info; any rank prints warnings and errors with a
// "[rank r]" prefix. The rank is set once by the communicator's owner.
#pragma once

#include <string>

namespace lockstep::log {

void set_rank(int rank, int size);
int rank();
void info(const std::string& msg);     // rank 0 only, stdout
void warn(const std::string& msg);     // any rank, stderr, prefixed
void error(const std::string& msg);    // any rank, stderr, prefixed
bool stdout_is_terminal();

}  // namespace lockstep::log
