// kiln/core/dtype.h — element types of tensors.
//
// The numeric values equal ONNX's TensorProto.DataType codes, so a model's type field maps
// to a DType without a table. Kiln computes in the types listed in is_supported(); the others
// are named so that an error can say which type a model asked for.
//
//   DType t = DType::kFloat32;
//   size_t bytes = dtype_size(t) * n;          // 4 * n
//   std::string s = dtype_name(t);             // "float32"
//   static_assert(dtype_of<int64_t>() == DType::kInt64);
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace kiln {

enum class DType : uint8_t {
  kUndefined = 0,
  kFloat32 = 1,
  kUInt8 = 2,
  kInt8 = 3,
  kUInt16 = 4,
  kInt16 = 5,
  kInt32 = 6,
  kInt64 = 7,
  kString = 8,
  kBool = 9,
  kFloat16 = 10,
  kFloat64 = 11,
  kUInt32 = 12,
  kUInt64 = 13,
  kComplex64 = 14,
  kComplex128 = 15,
  kBFloat16 = 16,
};

// Bytes per element; 0 for types Kiln cannot store (string, complex, undefined).
size_t dtype_size(DType t);
// "float32", "int64", "bool", ...; "dtype(<code>)" for codes outside the enum.
std::string dtype_name(DType t);
// Whether Kiln can hold and compute with this type at all (kernels may support fewer).
bool dtype_is_supported(DType t);
bool dtype_is_float(DType t);    // float32, float64 (float16/bfloat16 are storage-only)
bool dtype_is_integer(DType t);  // signed or unsigned integers, not bool
// Maps an ONNX TensorProto.DataType code; kUndefined for codes Kiln does not know.
DType dtype_from_onnx(int32_t code);

template <typename T> constexpr DType dtype_of();
template <> constexpr DType dtype_of<float>() { return DType::kFloat32; }
template <> constexpr DType dtype_of<double>() { return DType::kFloat64; }
template <> constexpr DType dtype_of<int8_t>() { return DType::kInt8; }
template <> constexpr DType dtype_of<uint8_t>() { return DType::kUInt8; }
template <> constexpr DType dtype_of<int16_t>() { return DType::kInt16; }
template <> constexpr DType dtype_of<uint16_t>() { return DType::kUInt16; }
template <> constexpr DType dtype_of<int32_t>() { return DType::kInt32; }
template <> constexpr DType dtype_of<uint32_t>() { return DType::kUInt32; }
template <> constexpr DType dtype_of<int64_t>() { return DType::kInt64; }
template <> constexpr DType dtype_of<uint64_t>() { return DType::kUInt64; }
template <> constexpr DType dtype_of<bool>() { return DType::kBool; }

}  // namespace kiln
