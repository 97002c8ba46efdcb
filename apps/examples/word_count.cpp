// Word count, Spark's first example, on the ranks:
//   mpirun -np 4 build/bin/examples/word_count INPUT OUTPUT_DIR
// INPUT is a text file or a folder of them (text_file). A word is a run of ASCII letters and digits,
// lower-cased; everything else separates words. OUTPUT_DIR gets "word<TAB>count" lines sorted by
// word, one part file per rank (save_as_text): the same bytes, concatenated, at any rank count.
// Rank 0 prints the number of distinct words and the ten most frequent.
#include <array>
#include <cstdio>
#include <string>
#include <utility>
#include <vector>

#include "lockstep/comm/main.hpp"
#include "lockstep/data/text_file.hpp"
#include "lockstep/data/wide.hpp"

using namespace lockstep;
using WordCount = std::pair<std::string, std::int64_t>;

namespace {

// ASCII letters and digits, lower-cased; 0 for everything else (a separator).
constexpr auto kWordChar = [] {
  std::array<char, 256> t{};
  for (int c = '0'; c <= '9'; ++c) t[static_cast<std::size_t>(c)] = static_cast<char>(c);
  for (int c = 'a'; c <= 'z'; ++c) t[static_cast<std::size_t>(c)] = static_cast<char>(c);
  for (int c = 'A'; c <= 'Z'; ++c) t[static_cast<std::size_t>(c)] = static_cast<char>(c - 'A' + 'a');
  return t;
}();

std::vector<WordCount> words_of(std::string&& line) {
  std::vector<WordCount> out;
  std::string w;
  for (const char c : line) {
    const char k = kWordChar[static_cast<unsigned char>(c)];
    if (k != 0) {
      w += k;
    } else if (!w.empty()) {
      out.emplace_back(std::move(w), 1);
      w.clear();
    }
  }
  if (!w.empty()) out.emplace_back(std::move(w), 1);
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  return comm::run_main(argc, argv, [&](comm::Communicator& world) {
    if (argc != 3) {
      if (world.rank() == 0) std::fprintf(stderr, "usage: word_count INPUT OUTPUT_DIR\n");
      return 2;
    }
    auto counts = data::reduce_by_key(data::text_file(world, argv[1]).flat_map(words_of),
                                      [](std::int64_t a, std::int64_t b) { return a + b; });
    auto by_word = data::sort_by(counts, [](const WordCount& wc) { return wc.first; });
    data::save_as_text(by_word, argv[2], [](const WordCount& wc) {
      std::string line = wc.first;
      line += '\t';
      line += std::to_string(wc.second);
      return line;
    });
    const std::int64_t distinct = by_word.count();
    // The ten most frequent: by count descending, then word; take_ordered needs no full sort.
    const auto top = data::take_ordered(counts, 10, [](const WordCount& a, const WordCount& b) {
      return a.second != b.second ? a.second > b.second : a.first < b.first;
    });
    if (world.rank() == 0) {
      std::printf("%lld distinct words; the most frequent:", static_cast<long long>(distinct));
      for (const auto& wc : top) std::printf(" %s %lld", wc.first.c_str(), static_cast<long long>(wc.second));
      std::printf("\n");
    }
    return 0;
  });
}
