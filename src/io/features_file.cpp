// Features files (see features_file.hpp).
#include "lockstep/io/features_file.hpp"

#include "detail/hdf5.hpp"
#include "lockstep/core/error.hpp"

namespace lockstep::io {

FeaturesFileWriter::FeaturesFileWriter(const std::string& path, std::int64_t rows, std::int64_t dims,
                                       const std::string& layer)
    : file_(path), dims_(dims) {
  h5_ = std::make_unique<detail::H5File>(detail::H5File::create(file_.temp(), true));
  file_.created();
  h5_->create_strings("/origin", rows);
  h5_->create_rows<float>("/features", {rows, dims});
  h5_->set_attr("/features", "layer", layer);
}

FeaturesFileWriter::~FeaturesFileWriter() = default;

void FeaturesFileWriter::write(std::int64_t row, const std::vector<std::string>& origins, const float* values) {
  h5_->write_string_rows("/origin", row, origins);
  h5_->write_rows<float>("/features", row, values, static_cast<std::int64_t>(origins.size()));
}

void FeaturesFileWriter::commit() {
  h5_->close();
  file_.commit();
}

FeaturesFile read_features_file(const std::string& path) {
  const auto h5 = detail::H5File::open_read(path);
  FeaturesFile f;
  f.origin = h5.read_strings("/origin");
  f.features = h5.read<float>("/features");
  const auto shape = h5.shape("/features");
  LOCKSTEP_CHECK(shape.size() == 2 && shape[0] == static_cast<std::int64_t>(f.origin.size()), IoError, path,
                 ": /features should be [", f.origin.size(), ", d] beside /origin");
  f.dims = shape[1];
  f.layer = h5.attr_string("/features", "layer");
  return f;
}

}  // namespace lockstep::io
