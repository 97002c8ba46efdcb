// Image-folder decode throughput: reads a `data.format: image_folder` folder once through the
// image-folder source (rank 0 lists and sorts, every rank decodes its own contiguous block, as
// `lockstep train` does) and prints one JSON line on rank 0. bench/cnn_vs_pytorch.sh runs it beside
// torchvision's ImageFolder DataLoader. Usage:
//   mpirun -np 2 build/bench/image_folder_decode ROOT [channels=1] [size=H] [passes=1]
// ROOT: one sub-folder per class (e.g. /tmp/fmnist_png/png/train from scripts/make_fmnist_folder.py).
// channels: 1 or 3 (the decoded image is converted, as data.channels); size: resize to H x H
// (0: keep). Each pass is timed from a barrier to the slowest rank's end (listing, decoding and
// the source's checks of the table); images/s per rank = images / seconds / ranks.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "lockstep/comm/communicator.hpp"
#include "lockstep/core/error.hpp"
#include "lockstep/data/image_folder.hpp"

using namespace lockstep;
using Clock = std::chrono::steady_clock;

namespace {

void run(comm::Communicator& c, int argc, char** argv) {
  if (argc < 2) throw ConfigError("usage: image_folder_decode ROOT [channels=1] [size=H] [passes=1]");
  const std::string root = argv[1];
  std::map<std::string, std::string> args{{"channels", "1"}, {"size", "0"}, {"passes", "1"}};
  for (int i = 2; i < argc; ++i) {
    const std::string a = argv[i];
    const auto eq = a.find('=');
    if (eq == std::string::npos || !args.count(a.substr(0, eq)))
      throw ConfigError("image_folder_decode: expected channels=, size= or passes=; got \"" + a + "\"");
    args[a.substr(0, eq)] = a.substr(eq + 1);
  }
  data::ImageFolderOptions o;
  o.channels = std::stoi(args["channels"]);
  o.height = o.width = std::stoll(args["size"]);
  const int passes = std::stoi(args["passes"]);
  std::vector<double> seconds;
  std::int64_t images = 0;
  for (int p = 0; p < passes; ++p) {
    c.barrier();
    const auto t0 = Clock::now();
    const data::Table t = data::read_image_folder_table(c, root, o);
    const double mine = std::chrono::duration<double>(Clock::now() - t0).count();
    seconds.push_back(c.allreduce<double>(mine, comm::ReduceOp::kMax));
    images = c.allreduce<std::int64_t>(t.rows, comm::ReduceOp::kSum);
  }
  double best = seconds.front(), total = 0.0;
  for (const double s : seconds) best = std::min(best, s), total += s;
  const double per_rank = static_cast<double>(images) / (total / passes) / c.size();
  if (c.rank() != 0) return;
  std::printf(
      "{\"peer\":\"lockstep\",\"mode\":\"mpi%d\",\"ranks\":%d,\"images\":%lld,\"channels\":%d,\"passes\":%d,"
      "\"seconds\":%.4f,\"best_seconds\":%.4f,\"images_per_sec\":%.1f,\"images_per_sec_per_rank\":%.1f}\n",
      c.size(), c.size(), static_cast<long long>(images), o.channels, passes, total / passes, best,
      per_rank * c.size(), per_rank);
}

}  // namespace

int main(int argc, char** argv) {
  auto world = comm::make_mpi_world(&argc, &argv);
  int status = 0;
  try {
    run(*world, argc, argv);
  } catch (const std::exception& e) {
    if (world->rank() == 0) std::fprintf(stderr, "error: %s\n", e.what());
    status = 1;
  }
  world.reset();
  comm::finalize_mpi();
  return status;
}
