// H5File: the one place in lockstep that calls the HDF5 C API. Data sources read datasets with it,
// checkpoints and models write them. It owns the file handle (RAII) and opens and closes every
// group, dataset, dataspace, type and attribute it needs within a single call, so no HDF5 handle
// escapes. Every HDF5 call is checked; a failure becomes an IoError naming the file, the object
// inside it, what was being done and HDF5's own reason. HDF5's automatic printing of its error
// stack is switched off whenever a file is opened, since the reason is in the exception.
//
// The header carries no HDF5 types (hid_t is held as std::int64_t), so code that includes it
// needs only lockstep's include path. Serial HDF5 is not thread-safe: use an H5File from one
// thread at a time, and all H5Files from one thread unless the library was built thread-safe.
#pragma once

#include <concepts>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace lockstep::detail {

class H5File {
 public:
  // Opens an existing file for reading.
  static H5File open_read(const std::string& path);
  // Opens an existing file for reading and writing.
  static H5File open_rw(const std::string& path);
  // Creates a file, truncating any existing one; `exclusive`: fails if the name exists (O_EXCL,
  // so a symbolic link there is not followed either), for io::AtomicFile's temporaries.
  static H5File create(const std::string& path, bool exclusive = false);

  H5File(H5File&& other) noexcept;
  H5File& operator=(H5File&& other) noexcept;
  H5File(const H5File&) = delete;
  H5File& operator=(const H5File&) = delete;
  ~H5File();  // closes quietly; call close() to see errors from the final write-out

  // Flushes and closes; throws IoError if HDF5 fails. Idempotent.
  void close();
  bool is_open() const { return id_ >= 0; }
  const std::string& path() const { return path_; }
  // Writes buffered data to disk without closing.
  void flush();
  // From now on read(), read_rows() and attr_string() refuse (IoError naming the file and the
  // object) any dataset or string whose declared size is more than this file's size on disk could
  // hold, before allocating for it. For files lockstep writes itself (checkpoints, pipeline
  // models: contiguous, uncompressed), where a larger size can only be damage. Every read checks
  // its element count against overflow whether or not this is on.
  void limit_reads_to_file_size();
  // The file's size in bytes, as HDF5 sees it.
  std::int64_t file_size() const;

  // ---- groups ----
  // Creates `path` and any missing intermediate groups; an existing group is left as it is.
  void create_group(const std::string& path);
  // Whether an object (group or dataset) exists at `path`; "/" always does.
  bool exists(const std::string& path) const;
  // Names of the direct children of a group, sorted.
  std::vector<std::string> list(const std::string& group_path) const;
  // Unlinks the object at `path` (a dataset or group); the space is not reclaimed in the file.
  void remove(const std::string& path);

  // ---- datasets ----
  // Creates a dataset of shape `shape` (empty shape: a scalar) from row-major `data`, creating
  // intermediate groups. T is float, double, std::int32_t, std::int64_t or std::uint8_t; the file
  // stores the matching little-endian type. An existing dataset at `path` is an error.
  template <typename T>
  void write(const std::string& path, const T* data, const std::vector<std::int64_t>& shape);
  // A dataset of `shape` (at least one dimension), its rows written later by write_rows, so that
  // a writer holds only some rows at a time. T as for write().
  template <typename T>
  void create_rows(const std::string& path, const std::vector<std::int64_t>& shape);
  // Rows [row_begin, row_begin + rows) of a dataset made by create_rows, row-major from `data`.
  template <typename T>
  void write_rows(const std::string& path, std::int64_t row_begin, const T* data, std::int64_t rows);
  // A one-dimensional dataset of `n` variable-length UTF-8 strings (h5py reads them as str), and
  // its elements [row_begin, row_begin + values.size()).
  void create_strings(const std::string& path, std::int64_t n);
  void write_string_rows(const std::string& path, std::int64_t row_begin, const std::vector<std::string>& values);
  std::vector<std::string> read_strings(const std::string& path) const;
  std::vector<std::int64_t> shape(const std::string& path) const;
  // Where a contiguous dataset's values start in the file, in bytes; -1 when they have no single
  // place (chunked, compact, or not yet written). For tests that damage a file's bytes.
  std::int64_t data_offset(const std::string& path) const;
  // The whole dataset, row-major, converted to T by HDF5 (any numeric file type works).
  template <typename T> std::vector<T> read(const std::string& path) const;
  // Rows [row_begin, row_end) over the first dimension, all of the others, row-major.
  template <typename T>
  std::vector<T> read_rows(const std::string& path, std::int64_t row_begin, std::int64_t row_end) const;

  // ---- attributes, on any object: the root "/", a group or a dataset ----
  // Scalar attributes; setting an existing one replaces it (whatever its old type).
  void set_attr(const std::string& obj_path, const std::string& name, std::int64_t value);
  void set_attr(const std::string& obj_path, const std::string& name, double value);
  void set_attr(const std::string& obj_path, const std::string& name, const std::string& value);
  void set_attr(const std::string& obj_path, const std::string& name, const char* value) {
    set_attr(obj_path, name, std::string(value));
  }
  // Other integer types (int, unsigned, ...) would be ambiguous between int64_t and double.
  template <std::integral I>
    requires(!std::same_as<I, std::int64_t> && !std::same_as<I, bool>)
  void set_attr(const std::string& obj_path, const std::string& name, I value) {
    set_attr(obj_path, name, static_cast<std::int64_t>(value));
  }
  bool has_attr(const std::string& obj_path, const std::string& name) const;
  std::int64_t attr_int(const std::string& obj_path, const std::string& name) const;  // integer attributes
  double attr_double(const std::string& obj_path, const std::string& name) const;     // integer or float
  std::string attr_string(const std::string& obj_path, const std::string& name) const;  // fixed or variable length

 private:
  H5File(std::string path, std::int64_t id) : path_(std::move(path)), id_(id) {}

  std::string path_;
  std::int64_t id_ = -1;  // hid_t
  std::int64_t read_limit_bytes_ = -1;  // -1: no limit beyond overflow (limit_reads_to_file_size)
};

}  // namespace lockstep::detail
