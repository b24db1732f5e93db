// kiln/core/tensor.h — shapes, owning tensors and non-owning views.
//
// A Shape is a list of dimensions. A Tensor owns a 64-byte aligned buffer (used in setup:
// weights, constants, test data). A TensorView points at memory someone else owns (the
// arena of a compiled model, a caller's buffer) and is what hot paths pass around: making,
// copying and reading a view never allocates.
//
//   kiln::Tensor t(kiln::DType::kFloat32, {2, 3});      // zero-filled, 24 bytes
//   t.data<float>()[0] = 1.0f;
//   kiln::TensorView v = t.view();                      // no copy
//   int64_t n = v.num_elements();                       // 6
//
// Shapes read from files are untrusted: use checked_num_elements() before allocating.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "kiln/core/dtype.h"
#include "kiln/core/status.h"

namespace kiln {

using Shape = std::vector<int64_t>;

// Product of the dimensions (1 for a scalar). The dimensions must be valid (non-negative).
int64_t num_elements(std::span<const int64_t> shape);
// Product of the dimensions, or an error if one is negative or the product (times
// element_bytes) would exceed `limit` bytes.
Result<int64_t> checked_num_elements(std::span<const int64_t> shape, size_t element_bytes = 1,
                                     uint64_t limit = uint64_t{1} << 40);
// "[1, 3, 224, 224]"
std::string shape_to_string(std::span<const int64_t> shape);

// A typed, shaped window on memory owned elsewhere. Cheap to copy; never allocates.
struct TensorView {
  DType dtype = DType::kUndefined;
  std::span<const int64_t> shape;
  void* data = nullptr;

  int64_t num_elements() const { return kiln::num_elements(shape); }
  size_t byte_size() const { return static_cast<size_t>(num_elements()) * dtype_size(dtype); }
  size_t rank() const { return shape.size(); }
  template <typename T> T* as() const { return static_cast<T*>(data); }
};

// An owning tensor with a 64-byte aligned, zero-initialised buffer.
class Tensor {
 public:
  Tensor() = default;
  // Allocates num_elements(shape) * dtype_size(dtype) bytes. The shape must be trusted or
  // checked first with checked_num_elements().
  Tensor(DType dtype, Shape shape);

  Tensor(const Tensor& other);
  Tensor& operator=(const Tensor& other);
  Tensor(Tensor&&) noexcept = default;
  Tensor& operator=(Tensor&&) noexcept = default;

  DType dtype() const { return dtype_; }
  const Shape& shape() const { return shape_; }
  size_t rank() const { return shape_.size(); }
  int64_t num_elements() const { return kiln::num_elements(shape_); }
  size_t byte_size() const { return bytes_; }
  bool empty() const { return dtype_ == DType::kUndefined; }

  void* raw() { return buf_.get(); }
  const void* raw() const { return buf_.get(); }
  template <typename T> T* data() { return static_cast<T*>(raw()); }
  template <typename T> const T* data() const { return static_cast<const T*>(raw()); }

  TensorView view() const { return TensorView{dtype_, shape_, const_cast<void*>(raw())}; }

  // Changes the shape without touching the data; the element count must not change.
  Status reshape(Shape shape);

 private:
  struct Free {
    void operator()(void* p) const;
  };
  DType dtype_ = DType::kUndefined;
  Shape shape_;
  size_t bytes_ = 0;
  std::unique_ptr<void, Free> buf_;
};

// Reads element i of a numeric tensor of any integer or float dtype as int64 / double.
// Used by setup code that accepts "any integer type" (axes, shapes, indices).
int64_t element_as_int64(const TensorView& v, int64_t i);
double element_as_double(const TensorView& v, int64_t i);

}  // namespace kiln
