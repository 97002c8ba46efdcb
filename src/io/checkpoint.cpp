// Checkpoints in HDF5. Layout (format_version 2; see docs/checkpoint-format.md):
//   /                       attributes: format, format_version, epoch, step_in_epoch, global_step,
//                           optimizer_steps, optimizer, seed, config_hash, world_size,
//                           deterministic, epoch_loss_sum, epoch_loss_count, config (YAML),
//                           attributes_crc32 (CRC-32 of the others as canonical text)
//   every float dataset     attribute crc32: CRC-32 of its little-endian bytes, checked on load
//   /params/<name>          each parameter with its own shape, e.g. /params/dense0.weight [784, 256]
//   /flat/params            the flat buffer the trainer uses (float32)
//   /flat/optimizer/<state> optimizer state in the flat layout (velocity, exp_avg, exp_avg_sq)
//   /buffers/<name>         optional: non-trainable state (batch norm's running statistics)
//   /flat/buffers           optional: the same in the model's flat buffer layout
// Written through an io::AtomicFile (a temporary of this process, fsynced, renamed): a reader sees
// the old file or the new one, never half.
#include "lockstep/io/checkpoint.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <zlib.h>

#include <bit>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>

#include "detail/hdf5.hpp"
#include "lockstep/io/atomic_file.hpp"
#include "lockstep/core/log.hpp"
#include "lockstep/io/config.hpp"

namespace lockstep::io {
namespace {

// zlib's CRC-32 of the little-endian bytes of `n` floats, the bytes the file stores.
std::uint32_t crc32_of(const float* data, std::size_t n) {
  const auto* bytes = reinterpret_cast<const unsigned char*>(data);
  std::vector<unsigned char> swapped;
  if constexpr (std::endian::native == std::endian::big) {
    swapped.resize(n * sizeof(float));
    for (std::size_t i = 0; i < n; ++i) {
      const auto v = __builtin_bswap32(std::bit_cast<std::uint32_t>(data[i]));
      std::memcpy(swapped.data() + i * sizeof v, &v, sizeof v);
    }
    bytes = swapped.data();
  }
  return static_cast<std::uint32_t>(::crc32_z(::crc32_z(0L, Z_NULL, 0), bytes, n * sizeof(float)));
}

std::uint32_t crc32_of(const std::string& s) {
  return static_cast<std::uint32_t>(
      ::crc32_z(::crc32_z(0L, Z_NULL, 0), reinterpret_cast<const unsigned char*>(s.data()), s.size()));
}

// class_names as stored: one name a line (a class folder's name has no newline; image_folder refuses one).
std::string join_lines(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : "\n") + x;
  return s;
}
std::vector<std::string> split_lines(const std::string& s) {
  std::vector<std::string> v;
  for (std::size_t pos = 0; pos <= s.size();) {
    const std::size_t end = std::min(s.find('\n', pos), s.size());
    v.push_back(s.substr(pos, end - pos));
    pos = end + 1;
  }
  return v;
}

// input_shape as stored: "1,28,28".
std::string shape_text(const Shape& s) {
  std::ostringstream t;  // not operator+ chains: GCC 12 warns falsely on them (-Wrestrict, PR 105329)
  for (std::size_t i = 0; i < s.size(); ++i) t << (i ? "," : "") << s[i];
  return t.str();
}
Shape parse_shape_text(const std::string& path, const std::string& t) {
  Shape s;
  std::size_t pos = 0;
  while (pos < t.size()) {
    const std::size_t end = std::min(t.find(',', pos), t.size());
    const std::string d = t.substr(pos, end - pos);
    const bool ok = !d.empty() && d.size() <= 9 && d.find_first_not_of("0123456789") == std::string::npos &&
                    std::stoll(d) > 0;
    if (!ok || s.size() >= 8)
      throw CheckpointError(path + ": attribute input_shape: expected up to 8 positive integers separated by commas, "
                                   "found \"" + t + "\"");
    s.push_back(std::stoll(d));
    pos = end + 1;
  }
  if (s.empty()) throw CheckpointError(path + ": attribute input_shape: empty");
  return s;
}

// Every root attribute but the format tag and the checksum itself, as one canonical text: its
// CRC-32 is the attributes_crc32 attribute, so a damaged counter is caught like a damaged value.
std::string root_attributes_text(const CheckpointState& st) {
  std::ostringstream os;
  os << "epoch=" << st.epoch << "\nstep_in_epoch=" << st.step_in_epoch << "\nglobal_step=" << st.global_step
     << "\noptimizer_steps=" << st.optimizer_steps << "\noptimizer=" << st.optimizer_type << "\nseed=" << hex64(st.seed)
     << "\nconfig_hash=" << hex64(st.config_hash) << "\nworld_size=" << st.world_size
     << "\ndeterministic=" << static_cast<int>(st.deterministic)
     << "\nepoch_loss_sum=" << hex64(std::bit_cast<std::uint64_t>(st.epoch_loss_sum))
     << "\nepoch_loss_count=" << st.epoch_loss_count << "\nconfig=" << st.config_yaml;
  if (!st.class_names.empty()) os << "\nclass_names=" << join_lines(st.class_names);
  if (!st.input_shape.empty()) os << "\ninput_shape=" << shape_text(st.input_shape);
  return os.str();
}

void write_checksummed(detail::H5File& f, const std::string& name, const float* data, std::size_t n,
                       const std::vector<std::int64_t>& shape) {
  f.write(name, data, shape);
  f.set_attr(name, kChecksumAttribute, static_cast<std::int64_t>(crc32_of(data, n)));
}

std::string crc_text(std::int64_t crc) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%08llx", static_cast<unsigned long long>(crc));
  return buf;
}

// Reads a float dataset and, when the file carries checksums, checks it against its crc32.
std::vector<float> read_verified(const detail::H5File& f, const std::string& name, bool checksummed) {
  std::vector<float> v = f.read<float>(name);
  if (!checksummed) return v;
  if (!f.has_attr(name, kChecksumAttribute))
    throw CheckpointError(f.path() + ":" + name + ": no " + kChecksumAttribute +
                          " attribute, which every dataset of a format_version 2 checkpoint has; the file is damaged");
  const std::int64_t stored = f.attr_int(name, kChecksumAttribute), computed = crc32_of(v.data(), v.size());
  if (stored != computed)
    throw CheckpointError(f.path() + ":" + name + ": checksum mismatch (crc32 stored " + crc_text(stored) +
                          ", computed " + crc_text(computed) + "): the file is damaged; use an intact checkpoint");
  return v;
}

// An integer root attribute that must lie in [lo, hi].
std::int64_t counter(const detail::H5File& f, const char* name, std::int64_t lo, std::int64_t hi) {
  const std::int64_t v = f.attr_int("/", name);
  if (v < lo || v > hi)
    throw CheckpointError(f.path() + ": attribute " + name + ": expected an integer in [" + std::to_string(lo) + ", " +
                          std::to_string(hi) + "], found " + std::to_string(v));
  return v;
}

// A root attribute written by hex64: exactly 16 lowercase hex digits.
std::uint64_t hex_attr(const detail::H5File& f, const char* name) {
  const std::string s = f.attr_string("/", name);
  const bool ok = s.size() == 16 && s.find_first_not_of("0123456789abcdef") == std::string::npos;
  if (!ok)
    throw CheckpointError(f.path() + ": attribute " + name + ": expected 16 lowercase hex digits, found \"" + s + "\"");
  return std::stoull(s, nullptr, 16);
}

void read_root_attributes(const detail::H5File& f, CheckpointState& st) {
  constexpr std::int64_t kMaxCount = std::int64_t{1} << 53;  // counts stay exact as doubles
  st.epoch = counter(f, "epoch", 0, std::numeric_limits<std::int32_t>::max());
  st.step_in_epoch = counter(f, "step_in_epoch", 0, kMaxCount);
  st.global_step = counter(f, "global_step", 0, kMaxCount);
  st.optimizer_steps = counter(f, "optimizer_steps", 0, kMaxCount);
  st.optimizer_type = f.attr_string("/", "optimizer");
  st.seed = hex_attr(f, "seed");
  st.config_hash = hex_attr(f, "config_hash");
  st.world_size = counter(f, "world_size", 1, std::numeric_limits<std::int32_t>::max());
  st.deterministic = counter(f, "deterministic", 0, 1) != 0;
  st.epoch_loss_sum = f.attr_double("/", "epoch_loss_sum");
  st.epoch_loss_count = counter(f, "epoch_loss_count", 0, kMaxCount);
  st.config_yaml = f.attr_string("/", "config");
  if (f.has_attr("/", "class_names")) st.class_names = split_lines(f.attr_string("/", "class_names"));
  if (f.has_attr("/", "input_shape")) st.input_shape = parse_shape_text(f.path(), f.attr_string("/", "input_shape"));
}

// The optional buffer group: /buffers/<name> must add up to /flat/buffers, as /params does.
void read_buffers(const detail::H5File& f, CheckpointState& st) {
  if (!f.exists("/flat/buffers")) return;
  st.buffers = read_verified(f, "/flat/buffers", st.checksummed);
  std::uint64_t total = 0;
  for (const auto& name : f.list("/buffers")) {
    const auto values = read_verified(f, "/buffers/" + name, st.checksummed);
    total += values.size();
    st.buffer_layout.push_back({name, f.shape("/buffers/" + name), -1});
  }
  if (total != st.buffers.size())
    throw CheckpointError(f.path() + ": the datasets under /buffers hold " + std::to_string(total) +
                          " values in all, /flat/buffers holds " + std::to_string(st.buffers.size()) +
                          "; expected the same (the file is damaged)");
}

void read_datasets(const detail::H5File& f, CheckpointState& st) {
  const std::string& path = f.path();
  st.params = read_verified(f, "/flat/params", st.checksummed);
  // Names and shapes of the parameters (offsets are the flat layout's business: -1 here); their
  // sizes must add up to the flat buffer, and each must match its checksum.
  std::uint64_t total = 0;
  for (const auto& name : f.list("/params")) {
    const auto shape = f.shape("/params/" + name);
    const auto values = read_verified(f, "/params/" + name, st.checksummed);
    total += values.size();
    st.layout.push_back({name, shape, -1});
  }
  if (total != st.params.size())
    throw CheckpointError(path + ": the datasets under /params hold " + std::to_string(total) +
                          " values in all, /flat/params holds " + std::to_string(st.params.size()) +
                          "; expected the same (the file is damaged)");
  read_buffers(f, st);
  for (const auto& name : f.list("/flat/optimizer")) {
    st.optimizer_state[name] = read_verified(f, "/flat/optimizer/" + name, st.checksummed);
    // The trainable parameters are a prefix of /flat/params (frozen layers' follow): at most as long.
    if (st.optimizer_state[name].size() > st.params.size())
      throw CheckpointError(path + ": /flat/optimizer/" + name + " has " +
                            std::to_string(st.optimizer_state[name].size()) + " values, expected at most " +
                            std::to_string(st.params.size()) + " (the length of /flat/params)");
  }
}

}  // namespace

void save_checkpoint(const std::string& path, const CheckpointState& st) {
  AtomicFile out(path);  // removes the temporary if anything below fails
  {
    auto f = detail::H5File::create(out.temp(), /*exclusive=*/true);
    out.created();
    f.set_attr("/", "format", "lockstep-checkpoint");
    f.set_attr("/", "format_version", CheckpointState::kFormatVersion);
    f.set_attr("/", "epoch", st.epoch);
    f.set_attr("/", "step_in_epoch", st.step_in_epoch);
    f.set_attr("/", "global_step", st.global_step);
    f.set_attr("/", "optimizer_steps", st.optimizer_steps);
    f.set_attr("/", "optimizer", st.optimizer_type);
    f.set_attr("/", "seed", hex64(st.seed));
    f.set_attr("/", "config_hash", hex64(st.config_hash));
    f.set_attr("/", "world_size", st.world_size);
    f.set_attr("/", "deterministic", static_cast<std::int64_t>(st.deterministic));
    f.set_attr("/", "epoch_loss_sum", st.epoch_loss_sum);
    f.set_attr("/", "epoch_loss_count", st.epoch_loss_count);
    f.set_attr("/", "config", st.config_yaml);
    if (!st.class_names.empty()) f.set_attr("/", "class_names", join_lines(st.class_names));
    if (!st.input_shape.empty()) f.set_attr("/", "input_shape", shape_text(st.input_shape));
    f.set_attr("/", "attributes_crc32", static_cast<std::int64_t>(crc32_of(root_attributes_text(st))));
    f.create_group("/params");
    for (const auto& p : st.layout) {
      std::size_t n = 1;
      for (const auto d : p.shape) n *= static_cast<std::size_t>(d);
      write_checksummed(f, "/params/" + p.name, st.params.data() + p.offset, n, p.shape);
    }
    if (!st.buffer_layout.empty()) {
      f.create_group("/buffers");
      for (const auto& b : st.buffer_layout) {
        std::size_t n = 1;
        for (const auto d : b.shape) n *= static_cast<std::size_t>(d);
        write_checksummed(f, "/buffers/" + b.name, st.buffers.data() + b.offset, n, b.shape);
      }
    }
    f.create_group("/flat/optimizer");
    if (!st.buffer_layout.empty())
      write_checksummed(f, "/flat/buffers", st.buffers.data(), st.buffers.size(),
                        {static_cast<std::int64_t>(st.buffers.size())});
    write_checksummed(f, "/flat/params", st.params.data(), st.params.size(),
                      {static_cast<std::int64_t>(st.params.size())});
    for (const auto& [name, buf] : st.optimizer_state) {
      write_checksummed(f, "/flat/optimizer/" + name, buf.data(), buf.size(), {static_cast<std::int64_t>(buf.size())});
    }
    f.flush();
    f.close();
  }
  out.commit();
}

bool is_checkpoint_file(const std::string& path) {
  {
    std::ifstream in(path, std::ios::binary);
    char sig[8] = {};
    if (!in.read(sig, 8) || std::string(sig, 8) != std::string("\x89HDF\r\n\x1a\n", 8)) return false;
  }
  try {
    const auto f = detail::H5File::open_read(path);
    return f.has_attr("/", "format") && f.attr_string("/", "format") == "lockstep-checkpoint";
  } catch (const Error&) {
    return false;
  }
}

CheckpointState load_checkpoint(const std::string& path) {
  if (!std::filesystem::exists(path)) throw CheckpointError(path + ": no such checkpoint file");
  CheckpointState st;
  try {
    auto f = detail::H5File::open_read(path);
    f.limit_reads_to_file_size();
    if (!f.has_attr("/", "format") || f.attr_string("/", "format") != "lockstep-checkpoint")
      throw CheckpointError(path + ": not a lockstep checkpoint (attribute /format is missing or different)");
    const auto version = f.attr_int("/", "format_version");
    if (version != CheckpointState::kFormatVersion && version != 1)
      throw CheckpointError(path + ": checkpoint format_version " + std::to_string(version) + ", this lockstep reads " +
                            std::to_string(CheckpointState::kFormatVersion) + " (and 1, unverified)");
    st.checksummed = version >= 2;
    read_root_attributes(f, st);
    if (st.checksummed) {
      const std::int64_t stored = f.attr_int("/", "attributes_crc32"),
                         computed = crc32_of(root_attributes_text(st));
      if (stored != computed)
        throw CheckpointError(path + ": root attributes: checksum mismatch (attributes_crc32 stored " +
                              crc_text(stored) + ", computed " + crc_text(computed) +
                              "): a counter or the config is damaged; use an intact checkpoint");
    } else {
      log::warn(path + ": a format_version 1 checkpoint (written before checkpoints carried checksums): its "
                       "contents cannot be verified; the next checkpoint is written with checksums");
    }
    read_datasets(f, st);
  } catch (const IoError& e) {
    throw CheckpointError(std::string("cannot read checkpoint: ") + e.what());
  }
  return st;
}

std::vector<std::string> read_checkpoint_class_names(const std::string& path) {
  if (!std::filesystem::exists(path)) throw CheckpointError(path + ": no such checkpoint file");
  try {
    auto f = detail::H5File::open_read(path);
    f.limit_reads_to_file_size();
    if (!f.has_attr("/", "class_names")) return {};
    return split_lines(f.attr_string("/", "class_names"));
  } catch (const IoError& e) {
    throw CheckpointError(std::string("cannot read checkpoint: ") + e.what());
  }
}

std::string rotated_checkpoint_path(const std::string& path, std::int64_t i) {
  const std::filesystem::path p(path);
  return (p.parent_path() / (p.stem().string() + "." + std::to_string(i) + p.extension().string())).string();
}

void rotate_checkpoints(const std::string& path, std::int64_t keep) {
  namespace fs = std::filesystem;
  std::error_code ec;
  // Older generations than `keep` allows (keep was lowered) would only mislead a resume.
  for (std::int64_t i = std::max<std::int64_t>(keep, 1); fs::exists(rotated_checkpoint_path(path, i), ec); ++i)
    fs::remove(rotated_checkpoint_path(path, i), ec);
  if (keep <= 1 || !fs::exists(path, ec)) return;
  for (std::int64_t i = keep - 1; i >= 2; --i) {
    const std::string from = rotated_checkpoint_path(path, i - 1), to = rotated_checkpoint_path(path, i);
    if (!fs::exists(from, ec)) continue;
    if (std::rename(from.c_str(), to.c_str()) != 0)
      throw IoError(from + ": cannot rename to " + to + ": " + std::strerror(errno));
  }
  // A hard link: <path> stays in place (and valid) until the new checkpoint is renamed over it.
  const std::string first = rotated_checkpoint_path(path, 1);
  fs::remove(first, ec);
  if (::link(path.c_str(), first.c_str()) != 0) {
    fs::copy_file(path, first, fs::copy_options::overwrite_existing, ec);  // file systems without hard links
    if (ec) throw IoError(path + ": cannot keep it as " + first + ": " + ec.message());
  }
}

std::vector<std::string> checkpoint_generations(const std::string& path) {
  std::vector<std::string> out{path};
  for (std::int64_t i = 1; std::filesystem::exists(rotated_checkpoint_path(path, i)); ++i)
    out.push_back(rotated_checkpoint_path(path, i));
  return out;
}

}  // namespace lockstep::io
