// HDF5 reader: every rank opens the file and reads only its hyperslab of rows of the features
// and labels datasets. HDF5's type conversion turns whatever numeric types the file holds into
// float. The wrapper's IoErrors (which name the file, the dataset and HDF5's reason) become
// DataErrors here, like every other problem a source finds in its input.
#include "data/source_util.hpp"
#include "detail/hdf5.hpp"
#include "lockstep/data/sources.hpp"

namespace lockstep::data {
namespace {

std::string shape_text(const std::vector<std::int64_t>& dims) {
  std::string s = "(";
  for (std::size_t i = 0; i < dims.size(); ++i) s += (i ? ", " : "") + std::to_string(dims[i]);
  return s + ")";
}

void require_dataset(const lockstep::detail::H5File& f, const std::string& name) {
  if (f.exists(name)) return;
  std::string have;
  for (const auto& child : f.list("/")) have += (have.empty() ? "" : ", ") + ("/" + child);
  throw DataError(f.path() + ": expected a dataset " + name + ", not found; the root group has " +
                  (have.empty() ? std::string("nothing") : have));
}

}  // namespace

Partitioned<Example> read_hdf5(comm::Communicator& comm, const std::string& path, const Hdf5Options& options) {
  std::vector<Example> rows;
  detail::collectively(comm, [&] {
    auto f = lockstep::detail::H5File::open_read(path);
    const std::string& xs = options.features_dataset;
    const std::string& ys = options.labels_dataset;
    require_dataset(f, xs);
    require_dataset(f, ys);
    const auto xshape = f.shape(xs);
    const auto yshape = f.shape(ys);
    if (xshape.size() != 2) {
      throw DataError(path + ":" + xs + ": expected a 2-D dataset (rows x features), got shape " + shape_text(xshape));
    }
    // (rows, 1) is accepted too: it is what saving a column vector often produces.
    if (!(yshape.size() == 1 || (yshape.size() == 2 && yshape[1] == 1))) {
      throw DataError(path + ":" + ys + ": expected a 1-D dataset of labels, got shape " + shape_text(yshape));
    }
    if (yshape[0] != xshape[0]) {
      throw DataError(path + ":" + ys + ": expected " + std::to_string(xshape[0]) + " rows (as many as " + xs + " has), got " +
                      std::to_string(yshape[0]));
    }
    const Range r = split_range(xshape[0], comm.rank(), comm.size());
    const auto x = f.read_rows<float>(xs, r.begin, r.end);
    const auto y = f.read_rows<float>(ys, r.begin, r.end);
    const auto d = static_cast<std::size_t>(xshape[1]);
    rows.resize(static_cast<std::size_t>(r.size()));
    for (std::size_t i = 0; i < rows.size(); ++i) {
      rows[i].features.assign(x.begin() + static_cast<std::ptrdiff_t>(i * d), x.begin() + static_cast<std::ptrdiff_t>((i + 1) * d));
      rows[i].label = y[i];
    }
    f.close();
  });
  return Partitioned<Example>::from_local(comm, std::move(rows));
}

}  // namespace lockstep::data
