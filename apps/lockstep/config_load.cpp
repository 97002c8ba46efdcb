#include <set>
#include <sstream>

#include "common.hpp"

namespace lockstep::app {

io::Config load_config_everywhere(comm::Communicator& comm, const ConfigArgs& args) {
  io::Config cfg;
  comm.collectively([&] { cfg = io::load_config(args.path, args.overrides); });
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
  return cfg;
}

}  // namespace lockstep::app
