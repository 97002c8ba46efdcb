// Recommendations from ratings with ALS (Spark's recommendForAllUsers):
//   mpirun -np 2 build/bin/examples/recommend RATINGS.csv K OUTPUT_DIR [RANK MAX_ITER REG_PARAM]
// RATINGS.csv: "user,item,rating" lines (a first line "user,item,rating" is skipped), e.g.
// scripts/fetch_ratings.sh's ratings_train.csv. Fits ALS (rank 10, maxIter 10, regParam 0.1
// unless given; seed 0), then writes "user<TAB>item:score,item:score,..." for every user, the K
// best items first, users in id order (scores printed to 17 digits: the same bytes at any rank
// count). Rank 0 prints the first user's line. A line that is not three numbers is an error naming
// the file and the line.
#include <cstdio>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "lockstep/comm/main.hpp"
#include "lockstep/core/error.hpp"
#include "lockstep/data/text_file.hpp"
#include "lockstep/data/wide.hpp"
#include "lockstep/ml/recommendation.hpp"

using namespace lockstep;

namespace {

using Row = std::pair<std::int64_t, std::string>;  // (line number from 1, text)

// This rank's ratings as a Frame: features user, item; label rating.
ml::Frame read_ratings(comm::Communicator& world, const std::string& path) {
  const std::vector<Row> lines = data::text_file(world, path)
                                     .zip_with_index()
                                     .filter([](const Row& r) { return !r.second.empty() && r.second != "user,item,rating"; })
                                     .local();
  ml::RowMatrix x(static_cast<Eigen::Index>(lines.size()), 2);
  ml::Vec y(static_cast<Eigen::Index>(lines.size()));
  std::string err;
  for (std::size_t j = 0; j < lines.size() && err.empty(); ++j) {
    double u = 0, i = 0, r = 0;
    char c1 = 0, c2 = 0, extra = 0;
    if (std::sscanf(lines[j].second.c_str(), "%lf %c %lf %c %lf %c", &u, &c1, &i, &c2, &r, &extra) != 5 || c1 != ',' ||
        c2 != ',') {
      std::ostringstream m;
      m << path << ": line " << lines[j].first + 1 << ": expected \"user,item,rating\", found \"" << lines[j].second
        << "\"";
      err = m.str();
    }
    x(static_cast<Eigen::Index>(j), 0) = static_cast<float>(u);
    x(static_cast<Eigen::Index>(j), 1) = static_cast<float>(i);
    y[static_cast<Eigen::Index>(j)] = r;
  }
  world.agree(err.empty() ? std::nullopt : std::optional<std::string>(err), comm::Communicator::ErrorKind::kData);
  return ml::Frame::dense(world, std::move(x), std::move(y), {}, {"user", "item"});
}

std::string line_of(const ml::UserRecommendations& u) {
  std::ostringstream o;
  o.precision(17);
  o << u.first << '\t';
  for (std::size_t j = 0; j < u.second.size(); ++j) o << (j ? "," : "") << u.second[j].first << ':' << u.second[j].second;
  return o.str();
}

}  // namespace

int main(int argc, char** argv) {
  return comm::run_main(argc, argv, [&](comm::Communicator& world) {
    if (argc != 4 && argc != 7) {
      if (world.rank() == 0)
        std::fprintf(stderr, "usage: recommend RATINGS.csv K OUTPUT_DIR [RANK MAX_ITER REG_PARAM]\n");
      return 2;
    }
    ml::AlsParams p;
    if (argc == 7) {
      p.rank = std::stoi(argv[4]);
      p.max_iter = std::stoi(argv[5]);
      p.reg_param = std::stod(argv[6]);
    }
    const ml::AlsModel model = ml::fit_als(read_ratings(world, argv[1]), p);
    const auto recs = ml::recommend_for_all_users(world, model, std::stoi(argv[2]));
    data::save_as_text(recs, argv[3], line_of);
    const auto first = recs.take(1);
    if (world.rank() == 0 && !first.empty()) std::printf("%s\n", line_of(first[0]).c_str());
    return 0;
  });
}
