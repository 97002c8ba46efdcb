// Sorting text, Spark's textFile(...).sortBy(identity).saveAsTextFile(...), on the ranks:
//   mpirun -np 4 build/bin/examples/sort_lines INPUT OUTPUT_DIR
// INPUT is a text file or a folder of them (text_file); its lines are sorted by their bytes (as
// `LC_ALL=C sort` does) with the sample sort of data::sort_by, and OUTPUT_DIR gets one part file per
// rank holding a contiguous range of the order: concatenated, the same bytes at any rank count.
// Rank 0 prints the line count and the first line.
#include <cstdio>
#include <string>

#include "lockstep/comm/main.hpp"
#include "lockstep/data/text_file.hpp"
#include "lockstep/data/wide.hpp"

using namespace lockstep;

int main(int argc, char** argv) {
  return comm::run_main(argc, argv, [&](comm::Communicator& world) {
    if (argc != 3) {
      if (world.rank() == 0) std::fprintf(stderr, "usage: sort_lines INPUT OUTPUT_DIR\n");
      return 2;
    }
    const auto sorted = data::sort_by(data::text_file(world, argv[1]), [](const std::string& s) { return s; });
    data::save_as_text(sorted, argv[2], [](const std::string& s) { return s; });
    const std::int64_t lines = sorted.count();
    const auto first = sorted.take(1);
    if (world.rank() == 0)
      std::printf("%lld lines sorted; the first: \"%s\"\n", static_cast<long long>(lines),
                  first.empty() ? "" : first[0].c_str());
    return 0;
  });
}
