// Tensor: a shape, a dtype, a device and storage that is either owned (allocated here) or
// borrowed (a view into memory someone else owns, such as the model's flat parameter buffer).
// Tensors are row-major and contiguous. Device memory is allocated by the backend's allocator,
// so this header stays free of CUDA.
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "lockstep/core/bfloat16.hpp"
#include "lockstep/core/error.hpp"

namespace lockstep {

enum class DType : std::uint8_t { kF32, kF64, kI32, kI64, kU8, kBF16 };
enum class Device : std::uint8_t { kCpu, kCuda };

std::size_t dtype_size(DType t);
const char* dtype_name(DType t);
const char* device_name(Device d);

template <typename T> constexpr DType dtype_of();
template <> constexpr DType dtype_of<float>() { return DType::kF32; }
template <> constexpr DType dtype_of<double>() { return DType::kF64; }
template <> constexpr DType dtype_of<std::int32_t>() { return DType::kI32; }
template <> constexpr DType dtype_of<std::int64_t>() { return DType::kI64; }
template <> constexpr DType dtype_of<std::uint8_t>() { return DType::kU8; }
template <> constexpr DType dtype_of<bf16>() { return DType::kBF16; }

using Shape = std::vector<std::int64_t>;
std::int64_t shape_numel(const Shape& s);
std::string shape_str(const Shape& s);

// Raw memory on one device. Owned storage frees itself through the allocator of its device.
class Storage {
 public:
  static std::shared_ptr<Storage> allocate(std::size_t bytes, Device device);
  static std::shared_ptr<Storage> borrow(void* data, std::size_t bytes, Device device);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  void* data() const { return data_; }
  std::size_t bytes() const { return bytes_; }
  Device device() const { return device_; }
  bool owned() const { return owned_; }

 private:
  Storage(void* data, std::size_t bytes, Device device, bool owned)
      : data_(data), bytes_(bytes), device_(device), owned_(owned) {}
  void* data_;
  std::size_t bytes_;
  Device device_;
  bool owned_;
};

class Tensor {
 public:
  Tensor() = default;
  Tensor(Shape shape, DType dtype = DType::kF32, Device device = Device::kCpu);  // zero-filled on CPU
  static Tensor borrow(void* data, Shape shape, DType dtype = DType::kF32, Device device = Device::kCpu);

  const Shape& shape() const { return shape_; }
  std::int64_t dim(int i) const { return shape_.at(static_cast<std::size_t>(i < 0 ? i + ndim() : i)); }
  int ndim() const { return static_cast<int>(shape_.size()); }
  std::int64_t numel() const { return shape_numel(shape_); }
  std::size_t bytes() const { return static_cast<std::size_t>(numel()) * dtype_size(dtype_); }
  DType dtype() const { return dtype_; }
  Device device() const { return storage_ ? storage_->device() : Device::kCpu; }
  bool defined() const { return storage_ != nullptr; }

  void* raw() const { return storage_ ? static_cast<char*>(storage_->data()) + offset_ : nullptr; }
  template <typename T> T* data() const {
    LOCKSTEP_CHECK(dtype_of<T>() == dtype_, Error, "Tensor::data: tensor is ", dtype_name(dtype_));
    return static_cast<T*>(raw());
  }
  template <typename T> std::span<T> span() const { return {data<T>(), static_cast<std::size_t>(numel())}; }

  // A view of rows [begin, end) of the first dimension; shares storage.
  Tensor rows(std::int64_t begin, std::int64_t end) const;
  // Same storage, new shape with the same number of elements.
  Tensor reshape(Shape shape) const;
  // A deep copy, optionally to another device.
  Tensor clone(Device device) const;
  Tensor clone() const { return clone(device()); }
  void zero_();
  void copy_from(const Tensor& other);  // same numel and dtype, any devices

 private:
  std::shared_ptr<Storage> storage_;
  std::size_t offset_ = 0;
  Shape shape_;
  DType dtype_ = DType::kF32;
};

}  // namespace lockstep
