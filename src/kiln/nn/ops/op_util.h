// kiln/nn/ops/op_util.h — shared helpers for operator implementations (internal to nn).
//
// dtype dispatch, axis normalisation, numpy-style broadcasting and reading small constant
// tensors (axes, shapes, pads) of any integer type.
//
//   bool ok = visit_dtype<NumericTypes>(ctx.input(0).dtype, [&](auto tag) {
//     using T = typename decltype(tag)::type;
//     kernel = make_kernel([=](const KernelContext& k) { ... T ... });
//   });
//   if (!ok) return ctx.unsupported_dtype(0);
#pragma once

#include <array>
#include <cstdint>
#include <tuple>
#include <span>
#include <type_traits>
#include <vector>

#include "kiln/core/status.h"
#include "kiln/core/tensor.h"
#include "kiln/nn/kernel.h"

namespace kiln::nn::ops {

template <typename... Ts> struct TypeList {};

using FloatTypes = TypeList<float, double>;
using SignedTypes = TypeList<float, double, int8_t, int16_t, int32_t, int64_t>;
using IntegerTypes = TypeList<int8_t, uint8_t, int16_t, uint16_t, int32_t, uint32_t, int64_t, uint64_t>;
using NumericTypes = TypeList<float, double, int8_t, uint8_t, int16_t, uint16_t, int32_t, uint32_t, int64_t, uint64_t>;
using AllTypes = TypeList<float, double, int8_t, uint8_t, int16_t, uint16_t, int32_t, uint32_t, int64_t, uint64_t, bool>;
using IndexTypes = TypeList<int32_t, int64_t>;

// Calls f(std::type_identity<T>{}) for the T in List whose dtype is `t`. False when `t` is
// not in the list (f is not called).
template <typename T, typename... Rest, typename F>
bool visit_dtype_impl(DType t, F&& f) {
  if (t == dtype_of<T>()) {
    f(std::type_identity<T>{});
    return true;
  }
  if constexpr (sizeof...(Rest) > 0) return visit_dtype_impl<Rest...>(t, std::forward<F>(f));
  return false;
}
template <typename List, typename F> struct Visitor;
template <typename... Ts, typename F> struct Visitor<TypeList<Ts...>, F> {
  static bool visit(DType t, F&& f) { return visit_dtype_impl<Ts...>(t, std::forward<F>(f)); }
};
template <typename List, typename F>
bool visit_dtype(DType t, F&& f) {
  return Visitor<List, F>::visit(t, std::forward<F>(f));
}

// Maps a possibly negative axis into [0, rank). Error names the op and the valid range.
Status normalize_axis(const PrepareContext& ctx, int64_t axis, int64_t rank, int64_t* out);
// Same for a list of axes; also rejects duplicates.
Status normalize_axes(const PrepareContext& ctx, std::vector<int64_t>& axes, int64_t rank);

// Multidirectional (numpy) broadcasting of two or more shapes.
Result<Shape> broadcast_shapes(const PrepareContext& ctx, std::span<const Shape> shapes);
Result<Shape> broadcast_shapes(const PrepareContext& ctx, const Shape& a, const Shape& b);

// Row-major strides (in elements) of a shape.
std::vector<int64_t> strides_of(std::span<const int64_t> shape);
// Strides of `in` seen through `out` after broadcasting (0 along broadcast dimensions), as a
// vector of out.size() entries.
std::vector<int64_t> broadcast_strides(std::span<const int64_t> in, std::span<const int64_t> out);

// Reads a constant 0-d or 1-d tensor of any integer type as int64 values.
std::vector<int64_t> to_int64_vector(const Tensor& t);
std::vector<double> to_double_vector(const Tensor& t);

// Walks every index of `shape` in row-major order, keeping one running offset per stride
// set. f(offsets...) is called once per element with the offsets of each operand.
// Used by reference kernels: clear, and fast enough because the innermost dimension runs as
// a plain loop.
template <size_t N, typename F>
void for_each_strided(std::span<const int64_t> shape, const std::array<const int64_t*, N>& strides, F&& f) {
  const size_t rank = shape.size();
  for (int64_t d : shape)
    if (d == 0) return;
  if (rank == 0) {
    std::array<int64_t, N> off{};
    std::apply(f, off);
    return;
  }
  int64_t idx[32] = {0};
  std::array<int64_t, N> off{};
  const int64_t inner = shape[rank - 1];
  for (;;) {
    std::array<int64_t, N> o = off;
    for (int64_t i = 0; i < inner; ++i) {
      std::apply(f, o);
      for (size_t k = 0; k < N; ++k) o[k] += strides[k][rank - 1];
    }
    // Advance the outer dimensions.
    size_t d = rank - 1;
    for (;;) {
      if (d == 0) return;
      --d;
      ++idx[d];
      for (size_t k = 0; k < N; ++k) off[k] += strides[k][d];
      if (idx[d] < shape[d]) break;
      for (size_t k = 0; k < N; ++k) off[k] -= strides[k][d] * shape[d];
      idx[d] = 0;
    }
  }
}

// Rank limit of the strided walkers above.
inline constexpr size_t kMaxRank = 32;
Status check_rank(const PrepareContext& ctx, size_t rank);

}  // namespace kiln::nn::ops
