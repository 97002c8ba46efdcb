// H5File on the HDF5 C API (1.10 or later). Each public method opens the handles it needs as
// scoped Handles, checks every call, and on failure throws an IoError that names the file, the
// object, what was being attempted and the reason HDF5 left on its error stack.
#include "detail/hdf5.hpp"

#include <hdf5.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <utility>

#include "lockstep/core/error.hpp"

namespace lockstep::detail {

static_assert(std::is_same_v<hid_t, std::int64_t>, "H5File stores hid_t as std::int64_t");

namespace {

// The reason lives on HDF5's error stack, not in the return value; printing it is turned off so
// that it reaches the user once, inside the exception. Done at every open, not once: it is cheap,
// and thread-safe builds of HDF5 keep this setting per thread.
//
// Also, once and before anything else of HDF5 runs: no HDF5 exit handler. A file whose final
// write-out failed (ENOSPC, EIO) stays half-closed inside HDF5, and its exit handler then crashes
// (SIGSEGV in H5F__close_cb) trying to close it again, after lockstep has reported the error. Every
// H5File is closed by its owner (close() reports failures, the destructor closes quietly), so the
// handler has nothing left to do for lockstep; the OS releases a failed file's descriptor at exit.
void silence_hdf5_printing() {
  static const bool no_atexit = [] {
    H5dont_atexit();  // must precede the library's initialisation: this is the first HDF5 call
    return true;
  }();
  (void)no_atexit;
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
}

// HDF5's POSIX driver puts a long record in its innermost message ("file write failed: time =
// ..., errno = 28, error message = 'No space left on device', buf = 0x..."): keep the system's
// words only.
std::string system_reason(const std::string& desc) {
  const std::string key = "error message = '";
  const auto at = desc.find(key);
  if (at == std::string::npos) return desc;
  const auto end = desc.find('\'', at + key.size());
  return desc.substr(at + key.size(), end == std::string::npos ? std::string::npos : end - at - key.size());
}

// The outermost description (what the API call failed to do) and the innermost one (where it was
// first detected, which usually carries the cause: "file signature not found", an errno text).
std::string hdf5_reason() {
  std::vector<std::string> descs;
  H5Ewalk2(
      H5E_DEFAULT, H5E_WALK_DOWNWARD,
      [](unsigned, const H5E_error2_t* e, void* data) -> herr_t {
        static_cast<std::vector<std::string>*>(data)->push_back(e->desc ? e->desc : "");
        return 0;
      },
      &descs);
  H5Eclear2(H5E_DEFAULT);
  if (descs.empty()) return "HDF5 gave no reason";
  if (descs.size() == 1 || descs.front() == descs.back()) return system_reason(descs.front());
  return descs.front() + " (" + system_reason(descs.back()) + ")";
}

std::string where(const std::string& file, const std::string& obj) {
  return obj.empty() ? file : file + ":" + obj;
}

[[noreturn]] void fail(const std::string& file, const std::string& obj, const std::string& what) {
  throw IoError(where(file, obj) + ": " + what + ": " + hdf5_reason());
}

hid_t check_id(hid_t id, const std::string& file, const std::string& obj, const std::string& what) {
  if (id < 0) fail(file, obj, what);
  return id;
}

void check(herr_t status, const std::string& file, const std::string& obj, const std::string& what) {
  if (status < 0) fail(file, obj, what);
}

// An HDF5 identifier closed by the matching H5?close when it goes out of scope.
class Handle {
 public:
  using Closer = herr_t (*)(hid_t);
  Handle(hid_t id, Closer closer) : id_(id), closer_(closer) {}
  Handle(Handle&& o) noexcept : id_(std::exchange(o.id_, -1)), closer_(o.closer_) {}
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  Handle& operator=(Handle&&) = delete;
  ~Handle() {
    if (id_ >= 0) closer_(id_);
  }
  hid_t get() const { return id_; }

 private:
  hid_t id_;
  Closer closer_;
};

template <typename T> hid_t native_type() {
  if constexpr (std::is_same_v<T, float>) return H5T_NATIVE_FLOAT;
  else if constexpr (std::is_same_v<T, double>) return H5T_NATIVE_DOUBLE;
  else if constexpr (std::is_same_v<T, std::int32_t>) return H5T_NATIVE_INT32;
  else if constexpr (std::is_same_v<T, std::int64_t>) return H5T_NATIVE_INT64;
  else if constexpr (std::is_same_v<T, std::uint8_t>) return H5T_NATIVE_UINT8;
  else static_assert(sizeof(T) == 0, "H5File: unsupported element type");
}

// Files are written little-endian whatever the host, so they read the same everywhere.
template <typename T> hid_t file_type() {
  if constexpr (std::is_same_v<T, float>) return H5T_IEEE_F32LE;
  else if constexpr (std::is_same_v<T, double>) return H5T_IEEE_F64LE;
  else if constexpr (std::is_same_v<T, std::int32_t>) return H5T_STD_I32LE;
  else if constexpr (std::is_same_v<T, std::int64_t>) return H5T_STD_I64LE;
  else if constexpr (std::is_same_v<T, std::uint8_t>) return H5T_STD_U8LE;
  else static_assert(sizeof(T) == 0, "H5File: unsupported element type");
}

const char* class_name(H5T_class_t c) {
  switch (c) {
    case H5T_INTEGER: return "integer";
    case H5T_FLOAT: return "float";
    case H5T_STRING: return "string";
    case H5T_BITFIELD: return "bitfield";
    case H5T_OPAQUE: return "opaque";
    case H5T_COMPOUND: return "compound";
    case H5T_REFERENCE: return "reference";
    case H5T_ENUM: return "enum";
    case H5T_VLEN: return "variable-length";
    case H5T_ARRAY: return "array";
    default: return "unknown";
  }
}

std::string shape_text(const std::vector<hsize_t>& dims) {
  std::string s = "(";
  for (std::size_t i = 0; i < dims.size(); ++i) s += (i ? ", " : "") + std::to_string(dims[i]);
  return s + ")";
}

// The dataspace dimensions of an open dataset or attribute's space.
std::vector<hsize_t> space_dims(hid_t space, const std::string& file, const std::string& obj) {
  const int rank = H5Sget_simple_extent_ndims(space);
  if (rank < 0) fail(file, obj, "cannot read the dataspace rank");
  std::vector<hsize_t> dims(static_cast<std::size_t>(rank));
  if (rank > 0) check(H5Sget_simple_extent_dims(space, dims.data(), nullptr), file, obj, "cannot read the dataspace dimensions");
  return dims;
}

// The number of elements a read of `dims` allocates, refused before any allocation when it overflows
// (a size_t of bytes of T) or when it is more than `limit_bytes` of the file could hold at
// `file_elem_size` bytes each (limit_bytes < 0: no such limit).
std::size_t checked_count(const std::vector<hsize_t>& dims, std::size_t elem_size, std::size_t file_elem_size,
                          std::int64_t limit_bytes, const std::string& file, const std::string& obj) {
  std::size_t n = 1, bytes = 0;
  bool overflow = false;
  for (const hsize_t d : dims) overflow = overflow || __builtin_mul_overflow(n, static_cast<std::size_t>(d), &n);
  overflow = overflow || __builtin_mul_overflow(n, std::max(elem_size, file_elem_size), &bytes) ||
             bytes > static_cast<std::size_t>(PTRDIFF_MAX);
  if (overflow) {
    throw IoError(where(file, obj) + ": declares shape " + shape_text(dims) +
                  ", too many elements to hold in memory (the file is damaged or not lockstep's); refusing to allocate");
  }
  if (limit_bytes >= 0 && n * file_elem_size > static_cast<std::size_t>(limit_bytes)) {
    throw IoError(where(file, obj) + ": declares shape " + shape_text(dims) + " (" + std::to_string(n * file_elem_size) +
                  " bytes), more than the whole file (" + std::to_string(limit_bytes) +
                  " bytes) holds; the file is damaged; refusing to allocate");
  }
  return n;
}

// The element count of an open dataset's dataspace, checked as above; 0 for a null dataspace.
std::size_t dataset_count(hid_t dset, hid_t space, std::size_t elem_size, std::int64_t limit_bytes,
                          const std::string& file, const std::string& obj) {
  if (H5Sget_simple_extent_type(space) == H5S_NULL) return 0;
  Handle type(check_id(H5Dget_type(dset), file, obj, "cannot read the datatype"), H5Tclose);
  return checked_count(space_dims(space, file, obj), elem_size, H5Tget_size(type.get()), limit_bytes, file, obj);
}

Handle open_dataset(hid_t file_id, const std::string& file, const std::string& path) {
  return Handle(check_id(H5Dopen2(file_id, path.c_str(), H5P_DEFAULT), file, path, "cannot open dataset"), H5Dclose);
}

// Datasets are read into numbers; a string or compound dataset would fail deep in HDF5's
// conversion code with a less helpful message.
void require_numeric(hid_t dset, const std::string& file, const std::string& path) {
  Handle type(check_id(H5Dget_type(dset), file, path, "cannot read the datatype"), H5Tclose);
  const H5T_class_t c = H5Tget_class(type.get());
  if (c != H5T_INTEGER && c != H5T_FLOAT) {
    throw IoError(where(file, path) + ": expected a numeric (integer or float) dataset, found a " + class_name(c) + " one");
  }
  // A damaged or hostile file can declare an element or a chunk of gigabytes, which HDF5 would
  // allocate whole while reading (the hdf5 fuzzer found a chunk recorded as 4 GiB in a 1 KB file): both are bounded, and so is
  // the storage the dataset claims.
  const std::size_t elem = H5Tget_size(type.get());
  if (elem == 0 || elem > 16)
    throw IoError(where(file, path) + ": expected numeric elements of 1 to 16 bytes, found " + std::to_string(elem));
  // The stored bytes (for a chunked dataset, the sum of its chunks' sizes in the chunk index) cannot
  // exceed the file: HDF5 reads a stored chunk into a buffer of its recorded size before filtering.
  hsize_t file_bytes = 0;
  {
    Handle fid(check_id(H5Iget_file_id(dset), file, path, "cannot find the dataset's file"), H5Fclose);
    check(H5Fget_filesize(fid.get(), &file_bytes), file, path, "cannot read the file's size");
  }
  const hsize_t stored = H5Dget_storage_size(dset);
  if (stored > file_bytes)
    throw IoError(where(file, path) + ": the dataset claims " + std::to_string(stored) + " bytes of storage in a file of " +
                  std::to_string(file_bytes) + " bytes (a damaged file)");
  Handle dcpl(check_id(H5Dget_create_plist(dset), file, path, "cannot read the creation properties"), H5Pclose);
  if (H5Pget_layout(dcpl.get()) == H5D_CHUNKED) {
    hsize_t chunk[H5S_MAX_RANK];
    const int rank = H5Pget_chunk(dcpl.get(), H5S_MAX_RANK, chunk);
    if (rank < 0) throw IoError(where(file, path) + ": cannot read the chunk shape");
    constexpr double kMaxChunkBytes = 256.0 * 1024 * 1024;
    double bytes = static_cast<double>(elem);
    for (int k = 0; k < rank; ++k) bytes *= static_cast<double>(chunk[k]);
    if (bytes > kMaxChunkBytes)
      throw IoError(where(file, path) + ": a chunk of " + std::to_string(static_cast<long long>(bytes)) +
                    " bytes, more than lockstep reads in one piece (256 MiB); rewrite the dataset with smaller chunks");
  }
}

Handle open_object(hid_t file_id, const std::string& file, const std::string& obj) {
  return Handle(check_id(H5Oopen(file_id, obj.c_str(), H5P_DEFAULT), file, obj, "cannot open object"), H5Oclose);
}

// Opens attribute `name` of `obj`, which must hold exactly one value; returns it with its class.
Handle open_scalar_attr(hid_t file_id, const std::string& file, const std::string& obj, const std::string& name) {
  const std::string what = "attribute \"" + name + "\"";
  Handle o = open_object(file_id, file, obj);
  Handle attr(check_id(H5Aopen(o.get(), name.c_str(), H5P_DEFAULT), file, obj, "cannot open " + what), H5Aclose);
  Handle space(check_id(H5Aget_space(attr.get()), file, obj, "cannot read the dataspace of " + what), H5Sclose);
  const hssize_t n = H5Sget_simple_extent_npoints(space.get());
  if (n != 1) {
    throw IoError(where(file, obj) + ": " + what + ": expected a single value, found " + std::to_string(n));
  }
  return attr;
}

H5T_class_t attr_class(hid_t attr, const std::string& file, const std::string& obj, const std::string& name) {
  Handle type(check_id(H5Aget_type(attr), file, obj, "cannot read the type of attribute \"" + name + "\""), H5Tclose);
  return H5Tget_class(type.get());
}

// Objects are created without access, modification, change and birth times in their headers
// (H5Pset_obj_track_times; a file creation list sets it for the root group), so the same content
// written twice makes the same bytes: the features file of `predict` is byte-identical across runs
// and rank counts. Nothing in lockstep reads those times.
Handle untimed_plist(hid_t cls, const std::string& file, const std::string& obj) {
  Handle plist(check_id(H5Pcreate(cls), file, obj, "cannot create a property list"), H5Pclose);
  check(H5Pset_obj_track_times(plist.get(), 0), file, obj, "cannot switch off modification times");
  return plist;
}

// The groups above `path` that do not exist yet, created untimed one level at a time (HDF5's own
// intermediate groups would carry times).
void create_parents(hid_t file_id, const std::string& file, const std::string& path) {
  for (std::size_t slash = path.find('/', 1); slash != std::string::npos; slash = path.find('/', slash + 1)) {
    const std::string parent = path.substr(0, slash);
    if (parent.empty() || parent.back() == '/') continue;
    const htri_t there = H5Lexists(file_id, parent.c_str(), H5P_DEFAULT);
    if (there < 0) fail(file, parent, "cannot check whether the group exists");
    if (there > 0) continue;
    Handle gcpl = untimed_plist(H5P_GROUP_CREATE, file, parent);
    Handle g(check_id(H5Gcreate2(file_id, parent.c_str(), H5P_DEFAULT, gcpl.get(), H5P_DEFAULT), file, parent,
                      "cannot create group"),
             H5Gclose);
  }
}

Handle link_create_plist(hid_t file_id, const std::string& file, const std::string& obj) {
  create_parents(file_id, file, obj);
  Handle lcpl(check_id(H5Pcreate(H5P_LINK_CREATE), file, obj, "cannot create a link property list"), H5Pclose);
  check(H5Pset_create_intermediate_group(lcpl.get(), 1), file, obj, "cannot request intermediate groups");
  return lcpl;
}

}  // namespace

// ---- the file ----

H5File H5File::open_read(const std::string& path) {
  silence_hdf5_printing();
  return H5File(path, check_id(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), path, "", "cannot open for reading"));
}

H5File H5File::open_rw(const std::string& path) {
  silence_hdf5_printing();
  return H5File(path, check_id(H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT), path, "", "cannot open for writing"));
}

H5File H5File::create(const std::string& path, bool exclusive) {
  silence_hdf5_printing();
  // The 1.8 file format at least: it stores attributes over 64 KiB (a config's text, say) densely
  // instead of refusing them, and every HDF5 since 2008, h5py included, reads it.
  Handle fapl(check_id(H5Pcreate(H5P_FILE_ACCESS), path, "", "cannot create a file access property list"), H5Pclose);
  check(H5Pset_libver_bounds(fapl.get(), H5F_LIBVER_V18, H5F_LIBVER_LATEST), path, "", "cannot set the file format version");
  Handle fcpl = untimed_plist(H5P_FILE_CREATE, path, "");
  return H5File(path, check_id(H5Fcreate(path.c_str(), exclusive ? H5F_ACC_EXCL : H5F_ACC_TRUNC, fcpl.get(), fapl.get()),
                               path, "", "cannot create"));
}

H5File::H5File(H5File&& other) noexcept
    : path_(std::move(other.path_)), id_(std::exchange(other.id_, -1)), read_limit_bytes_(other.read_limit_bytes_) {}

H5File& H5File::operator=(H5File&& other) noexcept {
  if (this != &other) {
    if (id_ >= 0) {
      H5Fclose(id_);
      H5Eclear2(H5E_DEFAULT);
    }
    path_ = std::move(other.path_);
    id_ = std::exchange(other.id_, -1);
    read_limit_bytes_ = other.read_limit_bytes_;
  }
  return *this;
}

H5File::~H5File() {
  if (id_ >= 0) {
    H5Fclose(id_);
    H5Eclear2(H5E_DEFAULT);
  }
}

void H5File::close() {
  if (id_ < 0) return;
  const herr_t status = H5Fclose(std::exchange(id_, -1));
  check(status, path_, "", "cannot close");
}

void H5File::flush() {
  LOCKSTEP_CHECK(id_ >= 0, IoError, path_, ": flush on a closed H5File");
  check(H5Fflush(id_, H5F_SCOPE_GLOBAL), path_, "", "cannot flush");
}

void H5File::limit_reads_to_file_size() {
  read_limit_bytes_ = file_size();
}

std::int64_t H5File::file_size() const {
  LOCKSTEP_CHECK(id_ >= 0, IoError, path_, ": file_size on a closed H5File");
  hsize_t size = 0;
  check(H5Fget_filesize(id_, &size), path_, "", "cannot read the file size");
  return static_cast<std::int64_t>(size);
}

// ---- groups ----

void H5File::create_group(const std::string& path) {
  LOCKSTEP_CHECK(id_ >= 0, IoError, path_, ":", path, ": create_group on a closed H5File");
  if (exists(path)) {
    Handle g(check_id(H5Gopen2(id_, path.c_str(), H5P_DEFAULT), path_, path, "exists but cannot be opened as a group"),
             H5Gclose);
    return;
  }
  Handle lcpl = link_create_plist(id_, path_, path);
  Handle gcpl = untimed_plist(H5P_GROUP_CREATE, path_, path);
  Handle g(check_id(H5Gcreate2(id_, path.c_str(), lcpl.get(), gcpl.get(), H5P_DEFAULT), path_, path, "cannot create group"),
           H5Gclose);
}

bool H5File::exists(const std::string& path) const {
  LOCKSTEP_CHECK(id_ >= 0, IoError, path_, ":", path, ": exists on a closed H5File");
  // H5Lexists fails, rather than answering false, when an intermediate link is missing, so the
  // path is checked one component at a time.
  std::string prefix = path.starts_with('/') ? "/" : "";
  std::size_t pos = 0;
  bool any = false;
  while (pos <= path.size()) {
    std::size_t next = path.find('/', pos);
    if (next == std::string::npos) next = path.size();
    const std::string part = path.substr(pos, next - pos);
    pos = next + 1;
    if (part.empty() || part == ".") continue;
    prefix += (prefix.empty() || prefix.ends_with('/') ? "" : "/") + part;
    any = true;
    const htri_t link = H5Lexists(id_, prefix.c_str(), H5P_DEFAULT);
    if (link <= 0) {
      H5Eclear2(H5E_DEFAULT);
      return false;
    }
  }
  if (!any) return true;  // the root group
  // A soft link whose target is missing exists as a link but not as an object.
  const htri_t obj = H5Oexists_by_name(id_, path.c_str(), H5P_DEFAULT);
  H5Eclear2(H5E_DEFAULT);
  return obj > 0;
}

std::vector<std::string> H5File::list(const std::string& group_path) const {
  LOCKSTEP_CHECK(id_ >= 0, IoError, path_, ":", group_path, ": list on a closed H5File");
  Handle g(check_id(H5Gopen2(id_, group_path.c_str(), H5P_DEFAULT), path_, group_path, "cannot open group"), H5Gclose);
  H5G_info_t info;
  check(H5Gget_info(g.get(), &info), path_, group_path, "cannot read group info");
  std::vector<std::string> names;
  names.reserve(info.nlinks);
  for (hsize_t i = 0; i < info.nlinks; ++i) {
    const ssize_t n = H5Lget_name_by_idx(g.get(), ".", H5_INDEX_NAME, H5_ITER_INC, i, nullptr, 0, H5P_DEFAULT);
    if (n < 0) fail(path_, group_path, "cannot read the name of child " + std::to_string(i));
    std::string name(static_cast<std::size_t>(n) + 1, '\0');
    if (H5Lget_name_by_idx(g.get(), ".", H5_INDEX_NAME, H5_ITER_INC, i, name.data(), name.size(), H5P_DEFAULT) < 0) {
      fail(path_, group_path, "cannot read the name of child " + std::to_string(i));
    }
    name.resize(static_cast<std::size_t>(n));
    names.push_back(std::move(name));
  }
  std::sort(names.begin(), names.end());
  return names;
}

void H5File::remove(const std::string& path) {
  LOCKSTEP_CHECK(id_ >= 0, IoError, path_, ":", path, ": remove on a closed H5File");
  check(H5Ldelete(id_, path.c_str(), H5P_DEFAULT), path_, path, "cannot remove");
}

// ---- datasets ----

template <typename T>
void H5File::write(const std::string& path, const T* data, const std::vector<std::int64_t>& shape) {
  LOCKSTEP_CHECK(id_ >= 0, IoError, path_, ":", path, ": write on a closed H5File");
  std::vector<hsize_t> dims;
  std::int64_t count = 1;
  for (const std::int64_t d : shape) {
    LOCKSTEP_CHECK(d >= 0, IoError, path_, ":", path, ": expected dimensions >= 0, got ", d);
    dims.push_back(static_cast<hsize_t>(d));
    count *= d;
  }
  LOCKSTEP_CHECK(count == 0 || data != nullptr, IoError, path_, ":", path, ": write of ", count, " values from a null pointer");
  Handle space(check_id(shape.empty() ? H5Screate(H5S_SCALAR) : H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr),
                        path_, path, "cannot create a dataspace of shape " + shape_text(dims)),
               H5Sclose);
  Handle lcpl = link_create_plist(id_, path_, path);
  Handle dcpl = untimed_plist(H5P_DATASET_CREATE, path_, path);
  Handle dset(check_id(H5Dcreate2(id_, path.c_str(), file_type<T>(), space.get(), lcpl.get(), dcpl.get(), H5P_DEFAULT), path_,
                       path, "cannot create dataset"),
              H5Dclose);
  if (count > 0) {
    check(H5Dwrite(dset.get(), native_type<T>(), H5S_ALL, H5S_ALL, H5P_DEFAULT, data), path_, path, "cannot write dataset");
  }
}

std::vector<std::int64_t> H5File::shape(const std::string& path) const {
  LOCKSTEP_CHECK(id_ >= 0, IoError, path_, ":", path, ": shape on a closed H5File");
  Handle dset = open_dataset(id_, path_, path);
  Handle space(check_id(H5Dget_space(dset.get()), path_, path, "cannot read the dataspace"), H5Sclose);
  const auto dims = space_dims(space.get(), path_, path);
  return std::vector<std::int64_t>(dims.begin(), dims.end());
}

std::int64_t H5File::data_offset(const std::string& path) const {
  LOCKSTEP_CHECK(id_ >= 0, IoError, path_, ":", path, ": data_offset on a closed H5File");
  Handle dset = open_dataset(id_, path_, path);
  const haddr_t at = H5Dget_offset(dset.get());
  H5Eclear2(H5E_DEFAULT);
  return at == HADDR_UNDEF ? -1 : static_cast<std::int64_t>(at);
}

template <typename T> std::vector<T> H5File::read(const std::string& path) const {
  LOCKSTEP_CHECK(id_ >= 0, IoError, path_, ":", path, ": read on a closed H5File");
  Handle dset = open_dataset(id_, path_, path);
  require_numeric(dset.get(), path_, path);
  Handle space(check_id(H5Dget_space(dset.get()), path_, path, "cannot read the dataspace"), H5Sclose);
  const std::size_t n = dataset_count(dset.get(), space.get(), sizeof(T), read_limit_bytes_, path_, path);
  std::vector<T> out(n);
  if (n > 0) {
    check(H5Dread(dset.get(), native_type<T>(), H5S_ALL, H5S_ALL, H5P_DEFAULT, out.data()), path_, path, "cannot read dataset");
  }
  return out;
}

template <typename T>
std::vector<T> H5File::read_rows(const std::string& path, std::int64_t row_begin, std::int64_t row_end) const {
  LOCKSTEP_CHECK(id_ >= 0, IoError, path_, ":", path, ": read_rows on a closed H5File");
  Handle dset = open_dataset(id_, path_, path);
  require_numeric(dset.get(), path_, path);
  Handle file_space(check_id(H5Dget_space(dset.get()), path_, path, "cannot read the dataspace"), H5Sclose);
  const auto dims = space_dims(file_space.get(), path_, path);
  LOCKSTEP_CHECK(!dims.empty(), IoError, path_, ":", path, ": expected a dataset with at least one dimension to read rows from, got a scalar");
  const auto rows = static_cast<std::int64_t>(dims[0]);
  LOCKSTEP_CHECK(0 <= row_begin && row_begin <= row_end && row_end <= rows, IoError, path_, ":", path, ": expected rows within [0, ",
                 rows, "), got [", row_begin, ", ", row_end, ")");
  std::vector<hsize_t> start(dims.size(), 0), count = dims;
  start[0] = static_cast<hsize_t>(row_begin);
  count[0] = static_cast<hsize_t>(row_end - row_begin);
  Handle type(check_id(H5Dget_type(dset.get()), path_, path, "cannot read the datatype"), H5Tclose);
  const std::size_t n = checked_count(count, sizeof(T), H5Tget_size(type.get()), read_limit_bytes_, path_, path);
  std::vector<T> out(n);
  if (n == 0) return out;  // an empty hyperslab is not a valid selection in HDF5 1.10
  check(H5Sselect_hyperslab(file_space.get(), H5S_SELECT_SET, start.data(), nullptr, count.data(), nullptr), path_, path,
        "cannot select rows [" + std::to_string(row_begin) + ", " + std::to_string(row_end) + ")");
  Handle mem_space(check_id(H5Screate_simple(static_cast<int>(count.size()), count.data(), nullptr), path_, path,
                            "cannot create the memory dataspace"),
                   H5Sclose);
  check(H5Dread(dset.get(), native_type<T>(), mem_space.get(), file_space.get(), H5P_DEFAULT, out.data()), path_, path,
        "cannot read rows [" + std::to_string(row_begin) + ", " + std::to_string(row_end) + ")");
  return out;
}

namespace {

// The file dataspace of `dset` with rows [row_begin, row_begin + rows) selected, and a memory
// dataspace of their shape.
std::pair<Handle, Handle> row_spaces(hid_t dset, const std::string& file, const std::string& path, std::int64_t row_begin,
                                     std::int64_t rows) {
  Handle file_space(check_id(H5Dget_space(dset), file, path, "cannot read the dataspace"), H5Sclose);
  const auto dims = space_dims(file_space.get(), file, path);
  LOCKSTEP_CHECK(!dims.empty() && row_begin >= 0 && rows >= 0 && row_begin + rows <= static_cast<std::int64_t>(dims[0]),
                 IoError, file, ":", path, ": rows [", row_begin, ", ", row_begin + rows, ") outside the dataset");
  std::vector<hsize_t> start(dims.size(), 0), count = dims;
  start[0] = static_cast<hsize_t>(row_begin);
  count[0] = static_cast<hsize_t>(rows);
  check(H5Sselect_hyperslab(file_space.get(), H5S_SELECT_SET, start.data(), nullptr, count.data(), nullptr), file, path,
        "cannot select rows");
  Handle mem_space(check_id(H5Screate_simple(static_cast<int>(count.size()), count.data(), nullptr), file, path,
                            "cannot create the memory dataspace"),
                   H5Sclose);
  return {std::move(file_space), std::move(mem_space)};
}

Handle utf8_string_type(const std::string& file, const std::string& path) {
  Handle type(check_id(H5Tcopy(H5T_C_S1), file, path, "cannot copy the string type"), H5Tclose);
  check(H5Tset_size(type.get(), H5T_VARIABLE), file, path, "cannot make a variable-length string type");
  check(H5Tset_cset(type.get(), H5T_CSET_UTF8), file, path, "cannot set the string type's character set");
  return type;
}

}  // namespace

template <typename T>
void H5File::create_rows(const std::string& path, const std::vector<std::int64_t>& shape) {
  LOCKSTEP_CHECK(id_ >= 0 && !shape.empty(), IoError, path_, ":", path, ": create_rows needs an open file and a shape");
  const std::vector<hsize_t> dims(shape.begin(), shape.end());
  Handle space(check_id(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr), path_, path,
                        "cannot create a dataspace of shape " + shape_text(dims)),
               H5Sclose);
  Handle lcpl = link_create_plist(id_, path_, path);
  Handle dcpl = untimed_plist(H5P_DATASET_CREATE, path_, path);
  Handle dset(check_id(H5Dcreate2(id_, path.c_str(), file_type<T>(), space.get(), lcpl.get(), dcpl.get(), H5P_DEFAULT),
                       path_, path, "cannot create dataset"),
              H5Dclose);
}

template <typename T>
void H5File::write_rows(const std::string& path, std::int64_t row_begin, const T* data, std::int64_t rows) {
  LOCKSTEP_CHECK(id_ >= 0, IoError, path_, ":", path, ": write_rows on a closed H5File");
  if (rows == 0) return;  // an empty hyperslab is not a valid selection in HDF5 1.10
  Handle dset = open_dataset(id_, path_, path);
  auto [file_space, mem_space] = row_spaces(dset.get(), path_, path, row_begin, rows);
  check(H5Dwrite(dset.get(), native_type<T>(), mem_space.get(), file_space.get(), H5P_DEFAULT, data), path_, path,
        "cannot write rows");
}

void H5File::create_strings(const std::string& path, std::int64_t n) {
  LOCKSTEP_CHECK(id_ >= 0 && n >= 0, IoError, path_, ":", path, ": create_strings on a closed H5File");
  const hsize_t dims[1] = {static_cast<hsize_t>(n)};
  Handle space(check_id(H5Screate_simple(1, dims, nullptr), path_, path, "cannot create a dataspace"), H5Sclose);
  Handle type = utf8_string_type(path_, path);
  Handle lcpl = link_create_plist(id_, path_, path);
  Handle dcpl = untimed_plist(H5P_DATASET_CREATE, path_, path);
  Handle dset(check_id(H5Dcreate2(id_, path.c_str(), type.get(), space.get(), lcpl.get(), dcpl.get(), H5P_DEFAULT),
                       path_, path, "cannot create dataset"),
              H5Dclose);
}

void H5File::write_string_rows(const std::string& path, std::int64_t row_begin, const std::vector<std::string>& values) {
  LOCKSTEP_CHECK(id_ >= 0, IoError, path_, ":", path, ": write_string_rows on a closed H5File");
  if (values.empty()) return;
  Handle dset = open_dataset(id_, path_, path);
  auto [file_space, mem_space] = row_spaces(dset.get(), path_, path, row_begin, static_cast<std::int64_t>(values.size()));
  std::vector<const char*> ptrs;
  ptrs.reserve(values.size());
  for (const auto& v : values) ptrs.push_back(v.c_str());
  Handle type = utf8_string_type(path_, path);
  check(H5Dwrite(dset.get(), type.get(), mem_space.get(), file_space.get(), H5P_DEFAULT, ptrs.data()), path_, path,
        "cannot write strings");
}

std::vector<std::string> H5File::read_strings(const std::string& path) const {
  LOCKSTEP_CHECK(id_ >= 0, IoError, path_, ":", path, ": read_strings on a closed H5File");
  Handle dset = open_dataset(id_, path_, path);
  Handle space(check_id(H5Dget_space(dset.get()), path_, path, "cannot read the dataspace"), H5Sclose);
  const auto dims = space_dims(space.get(), path_, path);
  LOCKSTEP_CHECK(dims.size() == 1, IoError, path_, ":", path, ": expected a one-dimensional string dataset");
  std::vector<char*> ptrs(dims[0], nullptr);
  Handle type = utf8_string_type(path_, path);
  if (!ptrs.empty())
    check(H5Dread(dset.get(), type.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, ptrs.data()), path_, path, "cannot read strings");
  std::vector<std::string> out;
  for (char* p : ptrs) out.emplace_back(p ? p : "");
  if (!ptrs.empty()) H5Dvlen_reclaim(type.get(), space.get(), H5P_DEFAULT, ptrs.data());
  return out;
}

#define LOCKSTEP_H5_INSTANTIATE(T)                                                                    \
  template void H5File::write<T>(const std::string&, const T*, const std::vector<std::int64_t>&);     \
  template std::vector<T> H5File::read<T>(const std::string&) const;                                  \
  template std::vector<T> H5File::read_rows<T>(const std::string&, std::int64_t, std::int64_t) const; \
  template void H5File::create_rows<T>(const std::string&, const std::vector<std::int64_t>&);         \
  template void H5File::write_rows<T>(const std::string&, std::int64_t, const T*, std::int64_t);
LOCKSTEP_H5_INSTANTIATE(float)
LOCKSTEP_H5_INSTANTIATE(double)
LOCKSTEP_H5_INSTANTIATE(std::int32_t)
LOCKSTEP_H5_INSTANTIATE(std::int64_t)
LOCKSTEP_H5_INSTANTIATE(std::uint8_t)
#undef LOCKSTEP_H5_INSTANTIATE

// ---- attributes ----

namespace {

// Replaces attribute `name` of `obj` with a scalar of file type `ftype` holding *value in `mtype`.
void put_scalar_attr(hid_t file_id, const std::string& file, const std::string& obj, const std::string& name, hid_t ftype,
                     hid_t mtype, const void* value) {
  const std::string what = "attribute \"" + name + "\"";
  Handle o = open_object(file_id, file, obj);
  const htri_t present = H5Aexists(o.get(), name.c_str());
  if (present < 0) fail(file, obj, "cannot look up " + what);
  if (present > 0) check(H5Adelete(o.get(), name.c_str()), file, obj, "cannot replace " + what);
  Handle space(check_id(H5Screate(H5S_SCALAR), file, obj, "cannot create a scalar dataspace for " + what), H5Sclose);
  Handle attr(check_id(H5Acreate2(o.get(), name.c_str(), ftype, space.get(), H5P_DEFAULT, H5P_DEFAULT), file, obj, "cannot create " + what),
              H5Aclose);
  check(H5Awrite(attr.get(), mtype, value), file, obj, "cannot write " + what);
}

}  // namespace

void H5File::set_attr(const std::string& obj_path, const std::string& name, std::int64_t value) {
  LOCKSTEP_CHECK(id_ >= 0, IoError, path_, ":", obj_path, ": set_attr on a closed H5File");
  put_scalar_attr(id_, path_, obj_path, name, H5T_STD_I64LE, H5T_NATIVE_INT64, &value);
}

void H5File::set_attr(const std::string& obj_path, const std::string& name, double value) {
  LOCKSTEP_CHECK(id_ >= 0, IoError, path_, ":", obj_path, ": set_attr on a closed H5File");
  put_scalar_attr(id_, path_, obj_path, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &value);
}

void H5File::set_attr(const std::string& obj_path, const std::string& name, const std::string& value) {
  LOCKSTEP_CHECK(id_ >= 0, IoError, path_, ":", obj_path, ": set_attr on a closed H5File");
  // A fixed-length, NUL-terminated UTF-8 string: what C readers expect, and h5py reads it as str.
  Handle type(check_id(H5Tcopy(H5T_C_S1), path_, obj_path, "cannot create a string type"), H5Tclose);
  check(H5Tset_size(type.get(), value.size() + 1), path_, obj_path, "cannot size a string type");
  check(H5Tset_strpad(type.get(), H5T_STR_NULLTERM), path_, obj_path, "cannot set string padding");
  check(H5Tset_cset(type.get(), H5T_CSET_UTF8), path_, obj_path, "cannot set string encoding");
  put_scalar_attr(id_, path_, obj_path, name, type.get(), type.get(), value.c_str());
}

bool H5File::has_attr(const std::string& obj_path, const std::string& name) const {
  LOCKSTEP_CHECK(id_ >= 0, IoError, path_, ":", obj_path, ": has_attr on a closed H5File");
  Handle o = open_object(id_, path_, obj_path);
  const htri_t present = H5Aexists(o.get(), name.c_str());
  if (present < 0) fail(path_, obj_path, "cannot look up attribute \"" + name + "\"");
  return present > 0;
}

std::int64_t H5File::attr_int(const std::string& obj_path, const std::string& name) const {
  LOCKSTEP_CHECK(id_ >= 0, IoError, path_, ":", obj_path, ": attr_int on a closed H5File");
  Handle attr = open_scalar_attr(id_, path_, obj_path, name);
  const H5T_class_t c = attr_class(attr.get(), path_, obj_path, name);
  if (c != H5T_INTEGER) {
    throw IoError(where(path_, obj_path) + ": attribute \"" + name + "\": expected an integer, found a " + class_name(c));
  }
  std::int64_t v = 0;
  check(H5Aread(attr.get(), H5T_NATIVE_INT64, &v), path_, obj_path, "cannot read attribute \"" + name + "\"");
  return v;
}

double H5File::attr_double(const std::string& obj_path, const std::string& name) const {
  LOCKSTEP_CHECK(id_ >= 0, IoError, path_, ":", obj_path, ": attr_double on a closed H5File");
  Handle attr = open_scalar_attr(id_, path_, obj_path, name);
  const H5T_class_t c = attr_class(attr.get(), path_, obj_path, name);
  if (c != H5T_INTEGER && c != H5T_FLOAT) {
    throw IoError(where(path_, obj_path) + ": attribute \"" + name + "\": expected a number, found a " + class_name(c));
  }
  double v = 0;
  check(H5Aread(attr.get(), H5T_NATIVE_DOUBLE, &v), path_, obj_path, "cannot read attribute \"" + name + "\"");
  return v;
}

std::string H5File::attr_string(const std::string& obj_path, const std::string& name) const {
  LOCKSTEP_CHECK(id_ >= 0, IoError, path_, ":", obj_path, ": attr_string on a closed H5File");
  const std::string what = "attribute \"" + name + "\"";
  Handle attr = open_scalar_attr(id_, path_, obj_path, name);
  Handle ftype(check_id(H5Aget_type(attr.get()), path_, obj_path, "cannot read the type of " + what), H5Tclose);
  const H5T_class_t c = H5Tget_class(ftype.get());
  if (c != H5T_STRING) throw IoError(where(path_, obj_path) + ": " + what + ": expected a string, found a " + class_name(c));
  const htri_t variable = H5Tis_variable_str(ftype.get());
  if (variable < 0) fail(path_, obj_path, "cannot inspect the string type of " + what);
  if (variable > 0) {
    // Written by h5py and most non-C writers: HDF5 allocates the buffer, we free it.
    Handle mtype(check_id(H5Tcopy(H5T_C_S1), path_, obj_path, "cannot create a string type"), H5Tclose);
    check(H5Tset_size(mtype.get(), H5T_VARIABLE), path_, obj_path, "cannot make a variable-length string type");
    check(H5Tset_cset(mtype.get(), H5Tget_cset(ftype.get())), path_, obj_path, "cannot set string encoding");
    char* p = nullptr;
    check(H5Aread(attr.get(), mtype.get(), &p), path_, obj_path, "cannot read " + what);
    std::string s = p ? p : "";
    if (p) H5free_memory(p);
    return s;
  }
  const std::size_t size = H5Tget_size(ftype.get());
  if (size == 0) fail(path_, obj_path, "cannot read the size of " + what);
  checked_count({1}, 1, size, read_limit_bytes_, path_, obj_path + " " + what);
  std::string buf(size, '\0');
  check(H5Aread(attr.get(), ftype.get(), buf.data()), path_, obj_path, "cannot read " + what);
  // Fixed-length strings are padded with NULs (or spaces, for Fortran-style ones).
  buf.resize(std::strlen(buf.c_str()));
  if (H5Tget_strpad(ftype.get()) == H5T_STR_SPACEPAD) {
    while (!buf.empty() && buf.back() == ' ') buf.pop_back();
  }
  return buf;
}

}  // namespace lockstep::detail
