// HDF5 reader: every rank opens the file and reads only its hyperslab of rows of the features
// and labels datasets. HDF5's type conversion turns whatever numeric types the file holds into
// float. The wrapper's IoErrors (which name the file, the dataset and HDF5's reason) become
// DataErrors here, like every other problem a source finds in its input.
#include <algorithm>
#include <filesystem>

#include "data/source_util.hpp"
#include "lockstep/core/checked_size.hpp"
#include "detail/hdf5.hpp"
#include "lockstep/data/source.hpp"
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

// A dataset's values are bounded by the file before any is read: HDF5 lets a few bytes of header
// declare any shape (and a dataset never written reads as its fill value), so the shape alone
// would have each rank allocate whatever a corrupt or hostile file claims. The bound allows for
// compression: deflate, the filter HDF5 always has, expands at most about 1032:1, so 4096 values
// per byte of file leaves room for stacked filters (shuffle + deflate) and is still a bound.
constexpr std::int64_t kMaxValuesPerFileByte = 4096;

void check_dataset_size(const std::string& path, const std::string& name, const std::vector<std::int64_t>& shape,
                        std::int64_t file_bytes) {
  const std::string what = path + ":" + name + ": shape " + shape_text(shape);
  const std::int64_t values = checked_product<DataError>(shape, what);
  const std::int64_t bytes = checked_mul<DataError>(values, sizeof(float), what + " as float");
  const std::int64_t limit = kMaxValuesPerFileByte * static_cast<std::int64_t>(sizeof(float)) * std::max<std::int64_t>(file_bytes, 1);
  check_size_limit<DataError>(bytes, limit, what + " as float",
                              "the " + bytes_text(file_bytes) + " file could hold even compressed (at most " +
                                  std::to_string(kMaxValuesPerFileByte) + " values per byte of file); is it corrupt?");
}

}  // namespace

Table read_hdf5_table(comm::Communicator& comm, const std::string& path, const Hdf5Options& options) {
  Table t;
  detail::collectively(comm, [&] {
    auto f = lockstep::detail::H5File::open_read(path);
    const std::string& xs = options.features_dataset;
    const std::string& ys = options.labels_dataset;
    require_dataset(f, xs);
    const bool unlabelled = options.labels_if_absent > 0 && !f.exists(ys);
    if (!unlabelled) require_dataset(f, ys);
    const auto xshape = f.shape(xs);
    const auto yshape = unlabelled ? Shape{xshape.empty() ? 0 : xshape[0], options.labels_if_absent} : f.shape(ys);
    if (xshape.size() < 2) {
      throw DataError(path + ":" + xs + ": expected a 2-D dataset (rows x features), got shape " + shape_text(xshape) +
                      " (higher ranks are read as rows x a sample shape)");
    }
    // (rows,) is one label per row; (rows, L) is L label columns (L = 1 is what saving a column
    // vector often produces).
    if (!(yshape.size() == 1 || yshape.size() == 2)) {
      throw DataError(path + ":" + ys +
                      ": expected a 1-D dataset of labels (or 2-D: rows x label columns), got shape " +
                      shape_text(yshape));
    }
    if (yshape[0] != xshape[0]) {
      throw DataError(path + ":" + ys + ": expected " + std::to_string(xshape[0]) + " rows (as many as " + xs +
                      " has), got " + std::to_string(yshape[0]));
    }
    std::error_code ec;
    const auto file_bytes = static_cast<std::int64_t>(std::filesystem::file_size(path, ec));
    if (ec) throw DataError(path + ": cannot read the file size: " + ec.message());
    check_dataset_size(path, xs, xshape, file_bytes);
    check_dataset_size(path, ys, yshape, file_bytes);
    const Range r = split_range(xshape[0], comm.rank(), comm.size());
    t.features = f.read_rows<float>(xs, r.begin, r.end);
    t.labels = unlabelled ? std::vector<float>(static_cast<std::size_t>(r.size() * yshape[1]), 0.0f)
                          : f.read_rows<float>(ys, r.begin, r.end);
    t.rows = r.size();
    t.sample_shape.assign(xshape.begin() + 1, xshape.end());
    t.num_labels = yshape.size() == 2 ? yshape[1] : 1;
    f.close();
  });
  return t;
}

Partitioned<Example> read_hdf5(comm::Communicator& comm, const std::string& path, const Hdf5Options& options) {
  return to_examples(comm, read_hdf5_table(comm, path, options));
}

namespace {

Table read_hdf5_source(comm::Communicator& comm, const SourceRequest& req, ParamReader& p) {
  Hdf5Options o;
  p.get("features_dataset", o.features_dataset);
  p.get("labels_dataset", o.labels_dataset);
  p.finish();
  if (req.split == SplitKind::kFile)
    o.labels_if_absent = std::max<std::int64_t>(1, static_cast<std::int64_t>(req.label_columns.size()));
  Table t = read_hdf5_table(comm, req.features, o);
  // data.label_columns names the columns of a 2-D labels dataset; the count must match.
  if (!req.label_columns.empty() && static_cast<std::int64_t>(req.label_columns.size()) != t.num_labels)
    throw DataError(req.features + ":" + o.labels_dataset + ": data.label_columns names " +
                    std::to_string(req.label_columns.size()) + " columns, the dataset has " +
                    std::to_string(t.num_labels));
  return t;
}

const SourceRegistrar kHdf5{Source{"hdf5", {"features_dataset", "labels_dataset"}, true, true, read_hdf5_source}};

}  // namespace

}  // namespace lockstep::data
