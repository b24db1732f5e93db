#include "kiln/nn/ops/op_util.h"

#include <algorithm>

namespace kiln::nn::ops {

Status normalize_axis(const PrepareContext& ctx, int64_t axis, int64_t rank, int64_t* out) {
  int64_t lo = rank == 0 ? -1 : -rank, hi = rank == 0 ? 0 : rank - 1;
  if (axis < lo || axis > hi)
    return ctx.invalid("axis ", axis, " is out of range [", lo, ", ", hi, "] for rank ", rank);
  *out = axis < 0 ? axis + rank : axis;
  if (rank == 0) *out = 0;
  return Status::ok();
}

Status normalize_axes(const PrepareContext& ctx, std::vector<int64_t>& axes, int64_t rank) {
  for (int64_t& a : axes) KILN_RETURN_IF_ERROR(normalize_axis(ctx, a, rank, &a));
  std::vector<int64_t> sorted = axes;
  std::sort(sorted.begin(), sorted.end());
  if (std::adjacent_find(sorted.begin(), sorted.end()) != sorted.end())
    return ctx.invalid("axes contain a duplicate");
  return Status::ok();
}

Result<Shape> broadcast_shapes(const PrepareContext& ctx, std::span<const Shape> shapes) {
  size_t rank = 0;
  for (const Shape& s : shapes) rank = std::max(rank, s.size());
  Shape out(rank, 1);
  for (const Shape& s : shapes) {
    size_t off = rank - s.size();
    for (size_t i = 0; i < s.size(); ++i) {
      int64_t d = s[i];
      int64_t& o = out[off + i];
      if (d == o || d == 1) continue;
      if (o == 1) {
        o = d;
        continue;
      }
      std::string list;
      for (const Shape& t : shapes) list += (list.empty() ? "" : " and ") + shape_to_string(t);
      return ctx.invalid("shapes ", list, " cannot be broadcast together");
    }
  }
  return out;
}

Result<Shape> broadcast_shapes(const PrepareContext& ctx, const Shape& a, const Shape& b) {
  Shape both[2] = {a, b};
  return broadcast_shapes(ctx, std::span<const Shape>(both, 2));
}

std::vector<int64_t> strides_of(std::span<const int64_t> shape) {
  std::vector<int64_t> s(shape.size(), 1);
  for (size_t i = shape.size(); i-- > 1;) s[i - 1] = s[i] * shape[i];
  return s;
}

std::vector<int64_t> broadcast_strides(std::span<const int64_t> in, std::span<const int64_t> out) {
  std::vector<int64_t> s(out.size(), 0);
  std::vector<int64_t> own = strides_of(in);
  size_t off = out.size() - in.size();
  for (size_t i = 0; i < in.size(); ++i) s[off + i] = in[i] == 1 ? 0 : own[i];
  return s;
}

std::vector<int64_t> to_int64_vector(const Tensor& t) {
  std::vector<int64_t> v(static_cast<size_t>(t.num_elements()));
  TensorView view = t.view();
  for (size_t i = 0; i < v.size(); ++i) v[i] = element_as_int64(view, static_cast<int64_t>(i));
  return v;
}

std::vector<double> to_double_vector(const Tensor& t) {
  std::vector<double> v(static_cast<size_t>(t.num_elements()));
  TensorView view = t.view();
  for (size_t i = 0; i < v.size(); ++i) v[i] = element_as_double(view, static_cast<int64_t>(i));
  return v;
}

Status check_rank(const PrepareContext& ctx, size_t rank) {
  if (rank > kMaxRank) return ctx.unsupported("rank ", rank, " is above Kiln's limit of ", kMaxRank);
  return Status::ok();
}

}  // namespace kiln::nn::ops
