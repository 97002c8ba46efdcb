// An inverted index: for each word, the documents that contain it.
//   mpirun -np 4 build/bin/examples/inverted_index DOCS.tsv OUTPUT_DIR
// DOCS.tsv holds one document per line, "id<TAB>text" (a line without a tab is an error naming
// its line). Words as in word_count. OUTPUT_DIR gets "word<TAB>id1,id2,..." lines sorted by word,
// each list sorted and without repeats: the same bytes, concatenated, at any rank count.
#include <algorithm>
#include <cctype>
#include <cstdio>
#include <string>
#include <utility>
#include <vector>

#include "lockstep/comm/main.hpp"
#include "lockstep/core/error.hpp"
#include "lockstep/data/text_file.hpp"
#include "lockstep/data/wide.hpp"

using namespace lockstep;
using WordDoc = std::pair<std::string, std::string>;
using Posting = std::pair<std::string, std::vector<std::string>>;

int main(int argc, char** argv) {
  return comm::run_main(argc, argv, [&](comm::Communicator& world) {
    if (argc != 3) {
      if (world.rank() == 0) std::fprintf(stderr, "usage: inverted_index DOCS.tsv OUTPUT_DIR\n");
      return 2;
    }
    const std::string path = argv[1];
    // (line number, line), so a malformed line can be named whichever rank holds it.
    auto lines = data::text_file(world, path).zip_with_index();
    std::int64_t bad = -1;
    lines.for_each_local([&](std::pair<std::int64_t, std::string>&& l) {
      if (bad < 0 && l.second.find('\t') == std::string::npos) bad = l.first;
    });
    const std::int64_t first_bad = world.allreduce<std::int64_t>(bad < 0 ? INT64_MAX : bad, comm::ReduceOp::kMin);
    if (first_bad != INT64_MAX) {
      Error e(path + ": line " + std::to_string(first_bad + 1) + ": expected \"id<TAB>text\", found no tab");
      e.set_agreed();
      throw e;
    }
    auto pairs = lines.flat_map([](std::pair<std::int64_t, std::string>&& l) {
      const std::size_t tab = l.second.find('\t');
      const std::string id = l.second.substr(0, tab);
      std::vector<WordDoc> out;
      std::string w;
      for (std::size_t i = tab + 1; i <= l.second.size(); ++i) {
        const char c = i < l.second.size() ? l.second[i] : ' ';
        if (std::isalnum(static_cast<unsigned char>(c))) {
          w += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        } else if (!w.empty()) {
          out.emplace_back(std::move(w), id);
          w.clear();
        }
      }
      return out;
    });
    auto postings = data::group_by_key(data::distinct(pairs)).map([](Posting&& p) {
      std::sort(p.second.begin(), p.second.end());
      return std::move(p);
    });
    auto by_word = data::sort_by(postings, [](const Posting& p) { return p.first; });
    data::save_as_text(by_word, argv[2], [](const Posting& p) {
      std::string line = p.first;
      line += '\t';
      for (std::size_t i = 0; i < p.second.size(); ++i) {
        if (i) line += ',';
        line += p.second[i];
      }
      return line;
    });
    const std::int64_t words = by_word.count();
    if (world.rank() == 0) std::printf("%lld words indexed\n", static_cast<long long>(words));
    return 0;
  });
}
