// Features files: per-row vectors (a network layer's outputs) with the origin of each row, as
// HDF5: /origin (N variable-length UTF-8 strings: an image's path or a row index) and /features
// (N x d float32, attribute "layer"). Written a block of rows at a time, so the writer never holds
// the whole file, under a temporary name renamed into place (io::AtomicFile).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "lockstep/io/atomic_file.hpp"

namespace lockstep::detail {
class H5File;
}

namespace lockstep::io {

class FeaturesFileWriter {
 public:
  FeaturesFileWriter(const std::string& path, std::int64_t rows, std::int64_t dims, const std::string& layer);
  ~FeaturesFileWriter();  // without commit(): the temporary is removed
  // Rows [row, row + origins.size()), values row-major (origins.size() x dims).
  void write(std::int64_t row, const std::vector<std::string>& origins, const float* values);
  void commit();

 private:
  AtomicFile file_;
  std::unique_ptr<detail::H5File> h5_;
  std::int64_t dims_ = 0;
};

struct FeaturesFile {
  std::vector<std::string> origin;
  std::vector<float> features;  // origin.size() x dims, row-major
  std::int64_t dims = 0;
  std::string layer;
};
// The whole file (for tests and small files). IoError naming the file.
FeaturesFile read_features_file(const std::string& path);

}  // namespace lockstep::io
