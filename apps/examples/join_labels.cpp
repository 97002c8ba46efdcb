// Joins labels to image paths, as one prepares an image-folder data set from a label table:
//   mpirun -np 4 build/bin/examples/join_labels LABELS.csv PATHS.txt OUTPUT_DIR
// LABELS.csv: "id,label" lines (a first line "id,label" is skipped). PATHS.txt: one image path per
// line; an image's id is its file name without the folder and the extension. OUTPUT_DIR gets
// "path<TAB>label" for every path, in the order of PATHS.txt, with "?" where no label has its id
// (left_outer_join). Rank 0 prints how many paths found a label. The same bytes at any rank count.
#include <cstdio>
#include <optional>
#include <string>
#include <utility>

#include "lockstep/comm/main.hpp"
#include "lockstep/core/error.hpp"
#include "lockstep/data/text_file.hpp"
#include "lockstep/data/wide.hpp"

using namespace lockstep;

namespace {

std::string id_of(const std::string& path) {
  const std::size_t slash = path.find_last_of('/');
  std::string name = slash == std::string::npos ? path : path.substr(slash + 1);
  const std::size_t dot = name.find_last_of('.');
  return dot == std::string::npos ? name : name.substr(0, dot);
}

}  // namespace

int main(int argc, char** argv) {
  return comm::run_main(argc, argv, [&](comm::Communicator& world) {
    if (argc != 4) {
      if (world.rank() == 0) std::fprintf(stderr, "usage: join_labels LABELS.csv PATHS.txt OUTPUT_DIR\n");
      return 2;
    }
    const std::string labels_path = argv[1];
    auto labels = data::text_file(world, labels_path)
                      .filter([](const std::string& l) { return !l.empty() && l != "id,label"; })
                      .map([&](std::string&& l) {
                        const std::size_t comma = l.find(',');
                        if (comma == std::string::npos) throw DataError(labels_path + ": expected \"id,label\", found \"" + l + "\"");
                        return std::pair<std::string, std::string>(l.substr(0, comma), l.substr(comma + 1));
                      });
    // Paths keyed by id, with their line number so the output keeps the order of PATHS.txt.
    using Indexed = std::pair<std::int64_t, std::string>;
    auto paths = data::text_file(world, argv[2])
                     .filter([](const std::string& l) { return !l.empty(); })
                     .zip_with_index()
                     .map([](Indexed&& ip) { return std::pair<std::string, Indexed>(id_of(ip.second), std::move(ip)); });
    using Joined = std::pair<std::string, std::pair<Indexed, std::optional<std::string>>>;
    auto joined = data::left_outer_join(paths, labels);
    auto in_order = data::sort_by(joined, [](const Joined& j) { return j.second.first.first; });
    data::save_as_text(in_order, argv[3], [](const Joined& j) {
      std::string line = j.second.first.second;
      line += '\t';
      line += j.second.second ? *j.second.second : std::string("?");
      return line;
    });
    const std::int64_t total = in_order.count();
    const std::int64_t found = in_order.filter([](const Joined& j) { return j.second.second.has_value(); }).count();
    if (world.rank() == 0) std::printf("%lld of %lld paths have a label\n", static_cast<long long>(found), static_cast<long long>(total));
    return 0;
  });
}
