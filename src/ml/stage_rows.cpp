// The HDF5 helpers the stage files share (stage_rows.hpp): Eigen matrices as row-major double
// datasets, and lists of strings as one newline-joined attribute.
#include "ml/stage_rows.hpp"

#include <sstream>

namespace lockstep::ml {

void put(H5File& h, const std::string& path, const Mat& m) {
  const Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> r = m;
  h.write<double>(path, r.data(), {r.rows(), r.cols()});
}

void put(H5File& h, const std::string& path, const Vec& v) {
  h.write<double>(path, v.data(), {v.size()});
}

namespace {
void expect_rank(const H5File& h, const std::string& path, std::size_t rank, std::size_t found) {
  if (found != rank)
    throw IoError(h.path() + ":" + path + ": expected a " + std::to_string(rank) + "-dimensional dataset, found " +
                  std::to_string(found) + " dimensions (the file is damaged)");
}
}  // namespace

Mat get_mat(const H5File& h, const std::string& path) {
  const auto shape = h.shape(path);
  expect_rank(h, path, 2, shape.size());
  const auto data = h.read<double>(path);  // sized (and bounded by the file) before the matrix is
  Mat m(shape[0], shape[1]);
  for (Eigen::Index i = 0; i < m.rows(); ++i)
    for (Eigen::Index j = 0; j < m.cols(); ++j) m(i, j) = data[static_cast<std::size_t>(i * m.cols() + j)];
  return m;
}

Vec get_vec(const H5File& h, const std::string& path) {
  expect_rank(h, path, 1, h.shape(path).size());
  const auto data = h.read<double>(path);
  return Eigen::Map<const Vec>(data.data(), static_cast<Eigen::Index>(data.size()));
}

void bad_model(const H5File& h, const std::string& group, const std::string& item, const std::string& what) {
  throw IoError(h.path() + ":" + group + (item.empty() ? "" : "/" + item) + ": " + what);
}

void expect_size(const H5File& h, const std::string& group, const std::string& item, std::int64_t size,
                 std::int64_t expected, const std::string& why) {
  if (size != expected)
    bad_model(h, group, item,
              "has " + std::to_string(size) + " values, expected " + std::to_string(expected) + " (" + why + ")");
}

std::int64_t int_attr_in(const H5File& h, const std::string& group, const std::string& name, std::int64_t lo,
                         std::int64_t hi) {
  const std::int64_t v = h.attr_int(group, name);
  if (v < lo || v > hi)
    bad_model(h, group, "",
              "attribute " + name + ": expected an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) + "], found " +
                  std::to_string(v));
  return v;
}

std::string join_lines(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : "\n") + x;
  return s;
}

std::vector<std::string> split_lines(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  for (std::string l; std::getline(ss, l);) out.push_back(l);
  return out;
}

}  // namespace lockstep::ml
