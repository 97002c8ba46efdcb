// IDX reader (the MNIST format): a 4-byte magic number (two zero bytes, a type code, the number
// of dimensions), the dimensions as big-endian uint32, then the values, big-endian, row-major.
// Files may be gzip-compressed; zlib's gz* functions read both kinds, so compression is detected
// from the content. Each rank seeks to its own records: cheap for plain files, while for gzip
// files zlib must decompress everything before them (gzip has no random access), which is still
// far less than every rank holding the whole file.
#include <zlib.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>

#include "data/source_util.hpp"
#include "lockstep/core/tensor.hpp"
#include "lockstep/data/source.hpp"
#include "lockstep/data/image_folder.hpp"
#include "lockstep/data/sources.hpp"

namespace lockstep::data {
namespace {

using detail::collectively;

struct GzCloser {
  void operator()(gzFile_s* f) const { gzclose(f); }
};
using GzFile = std::unique_ptr<gzFile_s, GzCloser>;

GzFile open_gz(const std::string& path) {
  errno = 0;
  gzFile f = gzopen(path.c_str(), "rb");
  if (!f) {
    const int e = errno;
    throw DataError(path + ": cannot open for reading: " + (e ? std::strerror(e) : "out of memory"));
  }
  gzbuffer(f, 1 << 17);  // larger reads than zlib's 8 KiB default; these files are read sequentially
  return GzFile(f);
}

std::string gz_reason(gzFile f) {
  int errnum = 0;
  const char* msg = gzerror(f, &errnum);
  if (errnum == Z_ERRNO) return std::strerror(errno);
  return msg && *msg ? msg : "unknown zlib error";
}

// Reads up to n bytes, in pieces since gzread takes an unsigned count; fewer only at the end.
std::int64_t gz_read(gzFile f, const std::string& path, unsigned char* buf, std::int64_t n) {
  std::int64_t got = 0;
  while (got < n) {
    const auto want = static_cast<unsigned>(std::min<std::int64_t>(n - got, 1 << 30));
    const int r = gzread(f, buf + got, want);
    if (r < 0) throw DataError(path + ": cannot read: " + gz_reason(f));
    if (r == 0) break;
    got += r;
  }
  return got;
}

std::uint32_t be32(const unsigned char* p) {
  return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) | std::uint32_t{p[3]};
}

int element_size(int type) {
  switch (type) {
    case 0x08:
      return 1;  // unsigned byte
    case 0x09:
      return 1;  // signed byte
    case 0x0B:
      return 2;  // short
    case 0x0C:
      return 4;  // int
    case 0x0D:
      return 4;  // float
    case 0x0E:
      return 8;  // double
    default:
      return 0;
  }
}

std::string hex32(std::uint32_t v) {
  char buf[11];
  std::snprintf(buf, sizeof buf, "0x%08X", v);
  return buf;
}

std::string dims_text(const std::vector<std::int64_t>& dims) {
  std::string s = "(";
  for (std::size_t i = 0; i < dims.size(); ++i) s += (i ? ", " : "") + std::to_string(dims[i]);
  return s + ")";
}

struct IdxHeader {
  int type = 0;
  int elem_size = 0;
  std::vector<std::int64_t> dims;
  std::int64_t header_bytes = 0;
  std::int64_t records = 0;
  std::int64_t values_per_record = 1;
  bool compressed = false;

  std::int64_t record_bytes() const { return values_per_record * elem_size; }
  std::int64_t data_bytes() const { return records * record_bytes(); }
  std::string describe_data() const {
    return std::to_string(data_bytes()) + " bytes of data for " + std::to_string(records) + " records of " +
           std::to_string(values_per_record) + (values_per_record == 1 ? " value" : " values");
  }
};

IdxHeader read_header(gzFile f, const std::string& path) {
  unsigned char magic[4];
  const std::int64_t got = gz_read(f, path, magic, 4);
  if (got < 4) {
    throw DataError(path + ": expected an IDX header starting with a 4-byte magic number, the file has only " +
                    std::to_string(got) + " bytes");
  }
  IdxHeader h;
  h.type = magic[2];
  h.elem_size = element_size(h.type);
  const int ndims = magic[3];
  if (magic[0] != 0 || magic[1] != 0 || h.elem_size == 0 || ndims == 0) {
    throw DataError(path +
                    ": not an IDX file: expected magic 0x0000TTNN (TT the type: 08 ubyte, 09 byte, 0B short, 0C int, "
                    "0D float, 0E double; NN >= 1 the number of dimensions; 0x00000803 for MNIST images, "
                    "0x00000801 for labels), got " +
                    hex32(be32(magic)));
  }
  std::vector<unsigned char> raw(static_cast<std::size_t>(4 * ndims));
  const std::int64_t got_dims = gz_read(f, path, raw.data(), 4 * ndims);
  if (got_dims < 4 * ndims) {
    throw DataError(path + ": expected " + std::to_string(ndims) + " dimensions (" + std::to_string(4 * ndims) +
                    " bytes) after the magic number, the file ends after " + std::to_string(got_dims));
  }
  h.header_bytes = 4 + 4 * ndims;
  // The product is bounded so that byte offsets can never overflow.
  constexpr std::int64_t kMaxBytes = std::int64_t{1} << 50;
  std::int64_t bytes = h.elem_size;
  for (int d = 0; d < ndims; ++d) {
    const std::int64_t n = be32(&raw[static_cast<std::size_t>(4 * d)]);
    h.dims.push_back(n);
    // A record of no values would let a 12-byte header claim 2^32 records, which nothing bounds.
    if (d > 0 && n == 0) {
      throw DataError(path + ": dimensions " + dims_text(h.dims) +
                      ": expected every dimension after the first (the record count) to be >= 1, got 0");
    }
    // One record alone is bounded too: with no records, the total says nothing about the rest.
    const bool record_too_large = d > 0 && h.values_per_record > kMaxBytes / n;
    if (d > 0 && !record_too_large) h.values_per_record *= n;
    bytes = (n != 0 && bytes > kMaxBytes / n) ? kMaxBytes + 1 : bytes * n;
    if (bytes > kMaxBytes || record_too_large) {
      std::string so_far = dims_text(h.dims);
      if (d + 1 < ndims) so_far.insert(so_far.size() - 1, ", ...");
      throw DataError(path + ": dimensions " + so_far + " describe more than 2^50 bytes; is the header corrupt?");
    }
  }
  h.records = h.dims[0];
  h.compressed = gzdirect(f) == 0;
  return h;
}

// A plain file's size says at once whether the data is all there; a compressed one is checked
// while reading (read_records and check_no_trailing_data), since only decompressing tells.
void check_plain_size(const IdxHeader& h, const std::string& path) {
  if (h.compressed) return;
  std::error_code ec;
  const auto size = std::filesystem::file_size(path, ec);
  if (ec) throw DataError(path + ": cannot read the file size: " + ec.message());
  const std::int64_t has = static_cast<std::int64_t>(size) - h.header_bytes;
  if (has != h.data_bytes())
    throw DataError(path + ": expected " + h.describe_data() + ", file has " + std::to_string(has));
}

// Appends n big-endian values of IDX type `type` from p to out, times `scale`.
void decode_values(int type, const unsigned char* p, std::size_t n, float scale, std::vector<float>& out) {
  const std::size_t base = out.size();
  out.resize(base + n);
  float* o = out.data() + base;
  switch (type) {
    case 0x08:
      for (std::size_t i = 0; i < n; ++i) o[i] = static_cast<float>(p[i]) * scale;
      break;
    case 0x09:
      for (std::size_t i = 0; i < n; ++i) o[i] = static_cast<float>(static_cast<std::int8_t>(p[i])) * scale;
      break;
    case 0x0B:
      for (std::size_t i = 0; i < n; ++i) {
        const auto v = static_cast<std::int16_t>((p[2 * i] << 8) | p[2 * i + 1]);
        o[i] = static_cast<float>(v) * scale;
      }
      break;
    case 0x0C:
      for (std::size_t i = 0; i < n; ++i) o[i] = static_cast<float>(static_cast<std::int32_t>(be32(p + 4 * i))) * scale;
      break;
    case 0x0D:
      for (std::size_t i = 0; i < n; ++i) o[i] = std::bit_cast<float>(be32(p + 4 * i)) * scale;
      break;
    case 0x0E:
      for (std::size_t i = 0; i < n; ++i) {
        const std::uint64_t bits = (std::uint64_t{be32(p + 8 * i)} << 32) | be32(p + 8 * i + 4);
        o[i] = static_cast<float>(std::bit_cast<double>(bits)) * scale;
      }
      break;
    default:
      break;  // read_header accepts only the types above
  }
}

// Records [begin, end) as floats times `scale`. Read in pieces: the size of a compressed file's
// data is known only by reading it, and a corrupt header must not make a rank allocate what the
// header claims before finding out.
std::vector<float> read_records(gzFile f, const IdxHeader& h, const std::string& path, std::int64_t begin,
                                std::int64_t end, float scale) {
  const std::int64_t offset = h.header_bytes + begin * h.record_bytes();
  const std::int64_t nbytes = (end - begin) * h.record_bytes();
  std::vector<float> out;
  if (nbytes == 0) return out;
  if (!h.compressed)
    out.reserve(static_cast<std::size_t>((end - begin) * h.values_per_record));  // size already checked
  if (gzseek(f, static_cast<z_off_t>(offset), SEEK_SET) < 0) {
    throw DataError(path + ": cannot seek to byte " + std::to_string(offset) + ": " + gz_reason(f));
  }
  const std::int64_t piece = std::int64_t{1 << 24} / h.elem_size * h.elem_size;
  std::vector<unsigned char> raw(static_cast<std::size_t>(std::min(piece, nbytes)));
  for (std::int64_t done = 0; done < nbytes;) {
    const std::int64_t want = std::min(piece, nbytes - done);
    const std::int64_t got = gz_read(f, path, raw.data(), want);
    if (got < want) {
      // At the end of the stream gztell is the uncompressed length, even when the seek asked for more.
      const std::int64_t has =
          std::min<std::int64_t>(static_cast<std::int64_t>(gztell(f)), offset + done + got) - h.header_bytes;
      throw DataError(path + ": expected " + h.describe_data() + ", file has " + std::to_string(has));
    }
    decode_values(h.type, raw.data(), static_cast<std::size_t>(want / h.elem_size), scale, out);
    done += want;
  }
  return out;
}

// Called by the rank that read the last record, positioned just after it: a compressed file must
// end there too.
void check_no_trailing_data(gzFile f, const IdxHeader& h, const std::string& path) {
  if (!h.compressed) return;
  if (gzseek(f, static_cast<z_off_t>(h.header_bytes + h.data_bytes()), SEEK_SET) < 0) {
    throw DataError(path + ": cannot seek to the end of the data: " + gz_reason(f));
  }
  std::vector<unsigned char> buf(1 << 16);
  std::int64_t extra = 0;
  while (const std::int64_t got = gz_read(f, path, buf.data(), static_cast<std::int64_t>(buf.size()))) extra += got;
  if (extra > 0) {
    throw DataError(path + ": expected " + h.describe_data() + ", file has " + std::to_string(h.data_bytes() + extra));
  }
}

}  // namespace

Table read_idx_table(comm::Communicator& comm, const std::string& images_path, const std::string& labels_path,
                     const IdxOptions& options) {
  Table t;
  collectively(comm, [&] {
    GzFile images = open_gz(images_path);
    const IdxHeader ih = read_header(images.get(), images_path);
    check_plain_size(ih, images_path);
    // Without a labels file (prediction on unlabeled images) every label is 0.
    const bool labelled = !labels_path.empty();
    GzFile labels;
    IdxHeader lh{};
    if (labelled) {
      labels = open_gz(labels_path);
      lh = read_header(labels.get(), labels_path);
      if (lh.values_per_record != 1) {
        throw DataError(labels_path + ": expected one label per record, got dimensions " + dims_text(lh.dims));
      }
      if (lh.records != ih.records) {
        throw DataError(labels_path + ": expected " + std::to_string(ih.records) + " records (as many as " +
                        images_path + " has), got " + std::to_string(lh.records));
      }
      check_plain_size(lh, labels_path);
    }

    const Range r = split_range(ih.records, comm.rank(), comm.size());
    // The decoded records are the table's blocks as they stand: no per-row copies.
    t.features = read_records(images.get(), ih, images_path, r.begin, r.end, options.scale);
    t.labels = labelled ? read_records(labels.get(), lh, labels_path, r.begin, r.end, 1.0f)
                        : std::vector<float>(static_cast<std::size_t>(r.size()), 0.0f);
    // One rank looks past the data for leftovers: the owner of the last record, or rank 0 when
    // there are no records at all.
    if ((r.end == ih.records && r.size() > 0) || (ih.records == 0 && comm.rank() == 0)) {
      check_no_trailing_data(images.get(), ih, images_path);
      if (labelled) check_no_trailing_data(labels.get(), lh, labels_path);
    }
    t.rows = r.size();
    // Images (N, H, W) are one channel: {1, H, W}, the shape a convolution expects.
    t.sample_shape.assign(ih.dims.begin() + 1, ih.dims.end());
    if (t.sample_shape.empty()) t.sample_shape = {1};
    if (t.sample_shape.size() == 2) t.sample_shape.insert(t.sample_shape.begin(), 1);
  });
  return t;
}

Partitioned<Example> read_idx(comm::Communicator& comm, const std::string& images_path, const std::string& labels_path,
                              const IdxOptions& options) {
  return to_examples(comm, read_idx_table(comm, images_path, labels_path, options));
}

std::vector<std::int64_t> idx_dims(comm::Communicator& comm, const std::string& path) {
  // Rank 0 alone reads the header: one small read instead of one per rank.
  std::vector<std::int64_t> dims;
  collectively(comm, [&] {
    if (comm.rank() == 0) {
      GzFile f = open_gz(path);
      dims = read_header(f.get(), path).dims;
    }
  });
  std::string wire;
  if (comm.rank() == 0) encode_all(dims, wire);
  comm.broadcast(wire, 0);
  dims.clear();
  decode_all(wire, dims);
  return dims;
}

namespace {

// The registry's row. A missing file is an error (train/ names the config key and, for the
// Fashion-MNIST paths, the Debian package); there is no synthetic stand-in, so a mistyped path can
// never turn into a run on made-up data.
// data.crop / crop_size on IDX images, as image_folder has them: `random` crops training rows
// per epoch (keyed like the flip) and the other splits at the centre; `center` crops every split at
// the centre once, at load.
struct IdxCrop {
  std::string mode = "none";
  std::int64_t h = 0, w = 0;
  std::string where;  // of crop_size, for errors
};

IdxCrop read_crop(ParamReader& p) {
  IdxCrop c;
  p.get("crop", c.mode, one_of({"none", "center", "random"}));
  const bool has_size = detail::get_hw(p, "crop_size", c.h, c.w);
  if (c.mode == "none" && has_size)
    ParamReader::fail(*p.find("crop_size"), "no crop_size when data.crop is none (the default)", "one");
  if (c.mode != "none" && !has_size) throw ConfigError(p.find("crop")->where + ": crop " + c.mode + " needs data.crop_size");
  if (has_size) c.where = p.find("crop_size")->where;
  return c;
}

void apply_crop(const SourceRequest& req, const IdxCrop& c, Table& t) {
  if (c.mode == "none") return;
  LOCKSTEP_CHECK(t.sample_shape.size() == 3 && c.h <= t.sample_shape[1] && c.w <= t.sample_shape[2], ConfigError,
                 c.where, ": a crop of ", c.h, " x ", c.w, " needs images at least that large, but ", req.features,
                 " holds samples of shape ", lockstep::shape_str(t.sample_shape));
  t.augment.crop_h = c.h, t.augment.crop_w = c.w;
  if (c.mode == "center" || req.split != SplitKind::kTrain) {
    const bool flip = t.augment.hflip;
    t = without_augment(t);  // the centre crop, at load
    t.augment.hflip = flip;
  }
}

Table read_idx_source(comm::Communicator& comm, const SourceRequest& req, ParamReader& p) {
  IdxOptions o;
  double scale = 1.0 / 255.0;
  p.get("scale", scale, greater_than(0.0));
  o.scale = static_cast<float>(scale);
  bool flip = false;  // random horizontal flips of training images, as image_folder's
  p.get("horizontal_flip", flip);
  const std::string flip_where = p.find("horizontal_flip") ? p.find("horizontal_flip")->where : "";
  const IdxCrop crop = read_crop(p);
  p.finish();
  Table t = read_idx_table(comm, req.features, req.labels, o);
  if (flip && req.split == SplitKind::kTrain) {
    LOCKSTEP_CHECK(t.sample_shape.size() == 3, ConfigError, flip_where,
                   ": needs image samples (an IDX file of rank 3 or 4), but ", req.features, " holds samples of shape ",
                   lockstep::shape_str(t.sample_shape));
    t.augment.hflip = true;
  }
  apply_crop(req, crop, t);
  return t;
}

const SourceRegistrar kIdx{Source{"idx", {"scale", "horizontal_flip", "crop", "crop_size"}, true, false, read_idx_source}};

}  // namespace

}  // namespace lockstep::data
