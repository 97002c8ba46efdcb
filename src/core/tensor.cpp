// Tensor and Storage. CPU memory is 64-byte aligned so that Eigen and SIMD code see the same
// alignment on every rank (a condition for bit-identical results). Device memory goes through
// the CUDA backend's caching allocator, which registers itself here when it is built.
#include "lockstep/core/tensor.hpp"

#include <cstdlib>
#include <cstring>
#include <sstream>

#include "lockstep/core/device_allocator.hpp"

namespace lockstep {

std::size_t dtype_size(DType t) {
  switch (t) {
    case DType::kF32: return 4;
    case DType::kF64: return 8;
    case DType::kI32: return 4;
    case DType::kI64: return 8;
    case DType::kU8: return 1;
    case DType::kBF16: return 2;
  }
  return 0;
}

const char* dtype_name(DType t) {
  switch (t) {
    case DType::kF32: return "float32";
    case DType::kF64: return "float64";
    case DType::kI32: return "int32";
    case DType::kI64: return "int64";
    case DType::kU8: return "uint8";
    case DType::kBF16: return "bfloat16";
  }
  return "?";
}

const char* device_name(Device d) { return d == Device::kCpu ? "cpu" : "cuda"; }

std::int64_t shape_numel(const Shape& s) {
  std::int64_t n = 1;
  for (auto d : s) n *= d;
  return n;
}

std::string shape_str(const Shape& s) {
  std::ostringstream os;
  os << '[';
  for (std::size_t i = 0; i < s.size(); ++i) os << (i ? ", " : "") << s[i];
  os << ']';
  return os.str();
}

std::shared_ptr<Storage> Storage::allocate(std::size_t bytes, Device device) {
  void* p = nullptr;
  if (device == Device::kCpu) {
    const std::size_t rounded = ((bytes + 63) / 64) * 64;
    p = std::aligned_alloc(64, rounded == 0 ? 64 : rounded);
    if (!p) throw std::bad_alloc();
    std::memset(p, 0, rounded == 0 ? 64 : rounded);
  } else {
    p = device_allocator().allocate(bytes);
  }
  return std::shared_ptr<Storage>(new Storage(p, bytes, device, true));
}

std::shared_ptr<Storage> Storage::borrow(void* data, std::size_t bytes, Device device) {
  return std::shared_ptr<Storage>(new Storage(data, bytes, device, false));
}

Storage::~Storage() {
  if (!owned_) return;
  if (device_ == Device::kCpu) {
    std::free(data_);
  } else {
    device_allocator().release(data_, bytes_);
  }
}

Tensor::Tensor(Shape shape, DType dtype, Device device) : shape_(std::move(shape)), dtype_(dtype) {
  for (auto d : shape_) LOCKSTEP_CHECK(d >= 0, Error, "Tensor: negative dimension in ", shape_str(shape_));
  storage_ = Storage::allocate(bytes(), device);
  if (device != Device::kCpu) device_allocator().memset(storage_->data(), 0, bytes());
}

Tensor Tensor::borrow(void* data, Shape shape, DType dtype, Device device) {
  Tensor t;
  t.shape_ = std::move(shape);
  t.dtype_ = dtype;
  t.storage_ = Storage::borrow(data, t.bytes(), device);
  return t;
}

Tensor Tensor::rows(std::int64_t begin, std::int64_t end) const {
  LOCKSTEP_CHECK(ndim() >= 1 && begin >= 0 && begin <= end && end <= dim(0), Error, "Tensor::rows: [", begin,
                 ", ", end, ") out of range for shape ", shape_str(shape_));
  Tensor t = *this;
  const std::int64_t row = dim(0) == 0 ? 0 : numel() / dim(0);
  t.offset_ += static_cast<std::size_t>(begin * row) * dtype_size(dtype_);
  t.shape_[0] = end - begin;
  return t;
}

Tensor Tensor::reshape(Shape shape) const {
  LOCKSTEP_CHECK(shape_numel(shape) == numel(), Error, "Tensor::reshape: cannot view ", shape_str(shape_), " as ",
                 shape_str(shape));
  Tensor t = *this;
  t.shape_ = std::move(shape);
  return t;
}

Tensor Tensor::clone(Device device) const {
  Tensor t(shape_, dtype_, device);
  t.copy_from(*this);
  return t;
}

void Tensor::zero_() {
  if (!storage_) return;
  if (device() == Device::kCpu) {
    std::memset(raw(), 0, bytes());
  } else {
    device_allocator().memset(raw(), 0, bytes());
  }
}

void Tensor::copy_from(const Tensor& other) {
  LOCKSTEP_CHECK(other.numel() == numel() && other.dtype() == dtype(), Error, "Tensor::copy_from: ",
                 shape_str(other.shape()), " ", dtype_name(other.dtype()), " into ", shape_str(shape_), " ",
                 dtype_name(dtype_));
  if (device() == Device::kCpu && other.device() == Device::kCpu) {
    std::memcpy(raw(), other.raw(), bytes());
  } else {
    device_allocator().copy(raw(), device(), other.raw(), other.device(), bytes());
  }
}

}  // namespace lockstep
