// Shared test helpers: the world communicator, temporary directories, and agreement checks.
#pragma once

#include <stdlib.h>

#include <filesystem>
#include <string>

#include "lockstep/comm/communicator.hpp"

namespace lockstep::testing {

comm::Communicator& world();

// A directory that every rank shares (rank 0 creates it, the name is broadcast).
inline std::filesystem::path shared_temp_dir(const std::string& tag) {
  auto& c = world();
  std::string path;
  if (c.rank() == 0) {
    std::string tmpl = (std::filesystem::temp_directory_path() / ("lockstep-" + tag + "-XXXXXX")).string();
    path = ::mkdtemp(tmpl.data()) ? tmpl : std::string();
  }
  c.broadcast(path, 0);
  return path;
}

}  // namespace lockstep::testing
