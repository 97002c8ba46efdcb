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

Mat get_mat(const H5File& h, const std::string& path) {
  const auto shape = h.shape(path);
  const auto data = h.read<double>(path);
  Mat m(shape.at(0), shape.size() > 1 ? shape[1] : 1);
  for (Eigen::Index i = 0; i < m.rows(); ++i)
    for (Eigen::Index j = 0; j < m.cols(); ++j) m(i, j) = data[static_cast<std::size_t>(i * m.cols() + j)];
  return m;
}

Vec get_vec(const H5File& h, const std::string& path) {
  const auto data = h.read<double>(path);
  return Eigen::Map<const Vec>(data.data(), static_cast<Eigen::Index>(data.size()));
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
