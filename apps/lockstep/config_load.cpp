#include <set>
#include <string>
#include <sstream>

#include "common.hpp"
#include "lockstep/comm/watchdog.hpp"
#include "lockstep/train/model.hpp"
#include "lockstep/train/network_file.hpp"

namespace lockstep::app {

std::string shell_quote(const std::string& s) {
  const bool plain = !s.empty() && s.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                                       "0123456789_-+=.,/:@%") == std::string::npos;
  if (plain) return s;
  std::string q = "'";
  for (const char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

std::string resume_command(const ConfigArgs& args) {
  std::string cmd = "lockstep train " + shell_quote(args.path);
  for (const auto& o : args.overrides) cmd += " --set " + shell_quote(o);
  return cmd + " --resume";
}

io::Config load_config_everywhere(comm::Communicator& comm, const ConfigArgs& args) {
  io::Config cfg;
  comm.collectively([&] {
    cfg = io::load_config(args.path, args.overrides);
    // The names and parameters of layers, losses and initialisers belong to nn's registries;
    // checking them here reports a bad one before any data is read.
    if (!cfg.model.layers.empty()) train::check_network(cfg);
    for (const auto& stage : cfg.pipeline)
      if (stage.nn) train::check_network(*stage.nn);
  });
  // model.init_from: the pretrained network's layers become part of model.layers (train/network_file.hpp).
  train::resolve_init_from(comm, cfg);
  for (auto& stage : cfg.pipeline)
    if (stage.nn) train::resolve_init_from(comm, *stage.nn);
  const std::uint64_t mine = io::config_hash(cfg);
  const auto all = comm.allgather<std::uint64_t>(mine);
  if (std::set<std::uint64_t>(all.begin(), all.end()).size() > 1) {
    // A stream, not operator+ chains: GCC 12 warns falsely on those (-Wrestrict, PR 105329).
    std::ostringstream msg;
    msg << args.path << ": ranks resolved different configs (hash per rank:";
    for (std::size_t r = 0; r < all.size(); ++r) msg << ' ' << r << '=' << io::hex64(all[r]);
    msg << "); every rank must read the same file with the same --set flags";
    comm.agree(msg.str());
  }
  comm::set_watchdog_timeout(cfg.comm.timeout_s);
  return cfg;
}

}  // namespace lockstep::app
