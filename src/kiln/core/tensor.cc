#include "kiln/core/tensor.h"

#include <cstdlib>
#include <cstring>
#include <limits>

namespace kiln {

int64_t num_elements(std::span<const int64_t> shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

Result<int64_t> checked_num_elements(std::span<const int64_t> shape, size_t element_bytes,
                                     uint64_t limit) {
  uint64_t n = 1;
  bool zero = false;
  for (int64_t d : shape) {
    if (d < 0) return Status::invalid("negative dimension ", d, " in shape ", shape_to_string(shape));
    // Every dimension is bounded even when another is 0, so that products of a subset of the
    // dimensions (strides, loop bounds) cannot overflow later.
    if (static_cast<uint64_t>(d) > limit) return Status::invalid("dimension ", d, " in shape ", shape_to_string(shape), " is too large");
    if (d == 0) zero = true;
  }
  if (zero) {
    uint64_t nonzero = 1;
    for (int64_t d : shape) {
      if (d == 0) continue;
      if (nonzero > limit / static_cast<uint64_t>(d))
        return Status::invalid("shape ", shape_to_string(shape), " is too large");
      nonzero *= static_cast<uint64_t>(d);
    }
    return int64_t{0};
  }
  for (int64_t d : shape) {
    if (n > limit / static_cast<uint64_t>(d))
      return Status::invalid("shape ", shape_to_string(shape), " is too large");
    n *= static_cast<uint64_t>(d);
  }
  if (element_bytes != 0 && n > limit / element_bytes)
    return Status::invalid("shape ", shape_to_string(shape), " is too large");
  return static_cast<int64_t>(n);
}

std::string shape_to_string(std::span<const int64_t> shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(shape[i]);
  }
  return s + "]";
}

void Tensor::Free::operator()(void* p) const { std::free(p); }

Tensor::Tensor(DType dtype, Shape shape) : dtype_(dtype), shape_(std::move(shape)) {
  bytes_ = static_cast<size_t>(kiln::num_elements(shape_)) * dtype_size(dtype_);
  // Always allocate at least one cache line so raw() is never null and SIMD over-reads of a
  // few bytes stay inside the allocation.
  size_t alloc = ((bytes_ + 63) / 64) * 64 + 64;
  void* p = std::aligned_alloc(64, alloc);
  if (p) std::memset(p, 0, alloc);
  buf_.reset(p);
}

Tensor::Tensor(const Tensor& other) : Tensor(other.dtype_, other.shape_) {
  if (bytes_) std::memcpy(raw(), other.raw(), bytes_);
}

Tensor& Tensor::operator=(const Tensor& other) {
  if (this != &other) {
    Tensor copy(other);
    *this = std::move(copy);
  }
  return *this;
}

Status Tensor::reshape(Shape shape) {
  if (kiln::num_elements(shape) != num_elements())
    return Status::invalid("cannot reshape ", shape_to_string(shape_), " to ", shape_to_string(shape));
  shape_ = std::move(shape);
  return Status::ok();
}

template <typename R>
static R element_as(const TensorView& v, int64_t i) {
  switch (v.dtype) {
    case DType::kFloat32: return static_cast<R>(v.as<const float>()[i]);
    case DType::kFloat64: return static_cast<R>(v.as<const double>()[i]);
    case DType::kInt8: return static_cast<R>(v.as<const int8_t>()[i]);
    case DType::kUInt8: return static_cast<R>(v.as<const uint8_t>()[i]);
    case DType::kInt16: return static_cast<R>(v.as<const int16_t>()[i]);
    case DType::kUInt16: return static_cast<R>(v.as<const uint16_t>()[i]);
    case DType::kInt32: return static_cast<R>(v.as<const int32_t>()[i]);
    case DType::kUInt32: return static_cast<R>(v.as<const uint32_t>()[i]);
    case DType::kInt64: return static_cast<R>(v.as<const int64_t>()[i]);
    case DType::kUInt64: return static_cast<R>(v.as<const uint64_t>()[i]);
    case DType::kBool: return static_cast<R>(v.as<const bool>()[i]);
    default: return R{};
  }
}

int64_t element_as_int64(const TensorView& v, int64_t i) {
  if (v.dtype == DType::kFloat32 || v.dtype == DType::kFloat64) {
    double d = element_as<double>(v, i);
    if (!(d > -9.2e18 && d < 9.2e18)) return d > 0 ? std::numeric_limits<int64_t>::max()
                                                      : std::numeric_limits<int64_t>::min();
    return static_cast<int64_t>(d);
  }
  return element_as<int64_t>(v, i);
}

double element_as_double(const TensorView& v, int64_t i) { return element_as<double>(v, i); }

}  // namespace kiln
