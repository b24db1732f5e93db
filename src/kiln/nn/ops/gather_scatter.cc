// Indexing operators driven by runtime index tensors: Gather, GatherElements, GatherND,
// ScatterElements, ScatterND and the deprecated Scatter (opset 9-10 ScatterElements).
//
// Index values are data: every one is range-checked at run time (negative values count from
// the end) and a bad one returns kOutOfRange instead of touching memory outside the tensors.
#include <algorithm>
#include <cstring>
#include <type_traits>

#include "kiln/nn/ops/families.h"
#include "kiln/nn/ops/op_util.h"

namespace kiln::nn::ops {
namespace {

bool is_kernel_dtype(DType t) {
  return visit_dtype<AllTypes>(t, [](auto) {});
}

Status check_indices_dtype(const PrepareContext& ctx, size_t i) {
  DType t = ctx.input(i).dtype;
  if (t == DType::kInt32 || t == DType::kInt64) return Status::ok();
  return ctx.invalid("indices must be int32 or int64, got ", dtype_name(t));
}

// Maps an index in [-dim, dim) to [0, dim). False when it is outside that range.
template <typename I>
bool wrap_index(I v, int64_t dim, int64_t* out) {
  int64_t x = static_cast<int64_t>(v);
  if (x < 0) x += dim;
  if (x < 0 || x >= dim) return false;
  *out = x;
  return true;
}

Status index_error(const char* op, int64_t value, int64_t axis, int64_t dim) {
  return Status::out_of_range(op, ": index ", value, " is out of range for axis ", axis, " of size ", dim);
}

// Calls f(std::type_identity<U>) with an unsigned type of `bytes` bytes, so that copies move
// whole elements whatever their dtype.
template <typename F>
void visit_element_size(size_t bytes, F&& f) {
  switch (bytes) {
    case 1: f(std::type_identity<uint8_t>{}); break;
    case 2: f(std::type_identity<uint16_t>{}); break;
    case 4: f(std::type_identity<uint32_t>{}); break;
    default: f(std::type_identity<uint64_t>{}); break;
  }
}

Shape slice_shape(const Shape& s, size_t begin, size_t end) { return Shape(s.begin() + begin, s.begin() + end); }

int64_t product(const Shape& s, size_t begin, size_t end) {
  int64_t p = 1;
  for (size_t i = begin; i < end; ++i) p *= s[i];
  return p;
}

// ---------------------------------------------------------------------------------------------
// Gather

struct GatherParams {
  int64_t outer, axis, axis_dim, inner_bytes, num_indices;
};

template <typename I>
Status run_gather(const GatherParams& p, const KernelContext& k) {
  const I* idx = k.in(1).as<const I>();
  int64_t j = 0;
  for (int64_t i = 0; i < p.num_indices; ++i)
    if (!wrap_index(idx[i], p.axis_dim, &j))
      return index_error("Gather", static_cast<int64_t>(idx[i]), p.axis, p.axis_dim);
  if (p.outer == 0 || p.inner_bytes == 0 || p.num_indices == 0) return Status::ok();
  const char* src = static_cast<const char*>(k.in(0).data);
  char* dst = static_cast<char*>(k.out(0).data);
  const size_t block = static_cast<size_t>(p.inner_bytes);
  for (int64_t o = 0; o < p.outer; ++o) {
    const char* s = src + o * p.axis_dim * p.inner_bytes;
    for (int64_t i = 0; i < p.num_indices; ++i) {
      const int64_t v = static_cast<int64_t>(idx[i]);  // checked above
      std::memcpy(dst, s + (v < 0 ? v + p.axis_dim : v) * p.inner_bytes, block);
      dst += block;
    }
  }
  return Status::ok();
}

Result<KernelPtr> prepare_gather(PrepareContext& ctx) {
  KILN_RETURN_IF_ERROR(ctx.require_input(0));
  KILN_RETURN_IF_ERROR(ctx.require_input(1));
  const TensorInfo& data = ctx.input(0);
  const TensorInfo& indices = ctx.input(1);
  if (!is_kernel_dtype(data.dtype)) return ctx.unsupported_dtype(0);
  KILN_RETURN_IF_ERROR(check_indices_dtype(ctx, 1));
  if (data.rank() == 0) return ctx.invalid("data must have rank >= 1, got a scalar");
  int64_t axis = 0;
  KILN_RETURN_IF_ERROR(normalize_axis(ctx, ctx.attr_int("axis", 0), static_cast<int64_t>(data.rank()), &axis));
  const size_t a = static_cast<size_t>(axis);
  Shape out = slice_shape(data.shape, 0, a);
  out.insert(out.end(), indices.shape.begin(), indices.shape.end());
  out.insert(out.end(), data.shape.begin() + a + 1, data.shape.end());
  KILN_RETURN_IF_ERROR(check_rank(ctx, out.size()));
  ctx.set_output(0, data.dtype, out);
  GatherParams p{product(data.shape, 0, a), axis, data.shape[a],
                 product(data.shape, a + 1, data.rank()) * static_cast<int64_t>(dtype_size(data.dtype)),
                 indices.num_elements()};
  if (indices.dtype == DType::kInt32)
    return make_kernel([p](const KernelContext& k) { return run_gather<int32_t>(p, k); });
  return make_kernel([p](const KernelContext& k) { return run_gather<int64_t>(p, k); });
}

// ---------------------------------------------------------------------------------------------
// GatherElements, ScatterElements and Scatter share one walk: over the indices tensor, with
// the data offset of every position except along `axis`, where the index value is used.

struct ElementsParams {
  const char* op;  // for error messages: Scatter shares ScatterElements' kernel
  Shape index_shape;
  std::vector<int64_t> data_strides;  // data strides with 0 along axis
  int64_t axis, axis_dim, axis_stride;
};

Result<ElementsParams> plan_elements(PrepareContext& ctx, const TensorInfo& data, const TensorInfo& indices) {
  if (data.rank() == 0) return ctx.invalid("data must have rank >= 1, got a scalar");
  if (indices.rank() != data.rank())
    return ctx.invalid("indices must have the rank of data (", data.rank(), "), got ", shape_to_string(indices.shape));
  KILN_RETURN_IF_ERROR(check_rank(ctx, data.rank()));
  ElementsParams p;
  p.op = ctx.op_type() == "Scatter"          ? "Scatter"
         : ctx.op_type() == "GatherElements" ? "GatherElements"
                                             : "ScatterElements";
  KILN_RETURN_IF_ERROR(normalize_axis(ctx, ctx.attr_int("axis", 0), static_cast<int64_t>(data.rank()), &p.axis));
  for (size_t d = 0; d < data.rank(); ++d)
    if (static_cast<int64_t>(d) != p.axis && indices.shape[d] > data.shape[d])
      return ctx.invalid("indices shape ", shape_to_string(indices.shape), " exceeds data shape ",
                         shape_to_string(data.shape), " in dimension ", d);
  p.index_shape = indices.shape;
  p.data_strides = strides_of(data.shape);
  p.axis_dim = data.shape[static_cast<size_t>(p.axis)];
  p.axis_stride = p.data_strides[static_cast<size_t>(p.axis)];
  p.data_strides[static_cast<size_t>(p.axis)] = 0;
  return p;
}

template <typename U, typename I>
Status run_gather_elements(const ElementsParams& p, const KernelContext& k) {
  const U* x = k.in(0).as<const U>();
  const I* idx = k.in(1).as<const I>();
  U* y = k.out(0).as<U>();
  int64_t n = 0, bad = -1;
  for_each_strided<1>(p.index_shape, {p.data_strides.data()}, [&](int64_t off) {
    int64_t j = 0;
    if (wrap_index(idx[n], p.axis_dim, &j)) y[n] = x[off + j * p.axis_stride];
    else if (bad < 0) bad = n;
    ++n;
  });
  if (bad >= 0) return index_error(p.op, static_cast<int64_t>(idx[bad]), p.axis, p.axis_dim);
  return Status::ok();
}

Result<KernelPtr> prepare_gather_elements(PrepareContext& ctx) {
  KILN_RETURN_IF_ERROR(ctx.require_input(0));
  KILN_RETURN_IF_ERROR(ctx.require_input(1));
  const TensorInfo& data = ctx.input(0);
  const TensorInfo& indices = ctx.input(1);
  if (!is_kernel_dtype(data.dtype)) return ctx.unsupported_dtype(0);
  KILN_RETURN_IF_ERROR(check_indices_dtype(ctx, 1));
  KILN_ASSIGN_OR_RETURN(ElementsParams p, plan_elements(ctx, data, indices));
  ctx.set_output(0, data.dtype, indices.shape);
  KernelPtr kernel;
  visit_element_size(dtype_size(data.dtype), [&](auto tag) {
    using U = typename decltype(tag)::type;
    if (indices.dtype == DType::kInt32)
      kernel = make_kernel([p](const KernelContext& k) { return run_gather_elements<U, int32_t>(p, k); });
    else
      kernel = make_kernel([p](const KernelContext& k) { return run_gather_elements<U, int64_t>(p, k); });
  });
  return kernel;
}

// ---------------------------------------------------------------------------------------------
// GatherND

struct GatherNDParams {
  int64_t batches, per_batch, batch_stride, slice_bytes, tuple_len;
  std::vector<int64_t> dims, strides;  // of the indexed dimensions; strides in elements
  int64_t element_bytes;
};

template <typename I>
Status run_gather_nd(const GatherNDParams& p, const KernelContext& k) {
  const char* src = static_cast<const char*>(k.in(0).data);
  const I* idx = k.in(1).as<const I>();
  char* dst = static_cast<char*>(k.out(0).data);
  const size_t slice = static_cast<size_t>(p.slice_bytes);
  for (int64_t b = 0; b < p.batches; ++b) {
    for (int64_t t = 0; t < p.per_batch; ++t) {
      const I* tuple = idx + (b * p.per_batch + t) * p.tuple_len;
      int64_t off = b * p.batch_stride;
      for (int64_t d = 0; d < p.tuple_len; ++d) {
        int64_t j = 0;
        if (!wrap_index(tuple[d], p.dims[d], &j))
          return index_error("GatherND", static_cast<int64_t>(tuple[d]), d, p.dims[d]);
        off += j * p.strides[d];
      }
      if (slice) std::memcpy(dst, src + off * p.element_bytes, slice);
      dst += slice;
    }
  }
  return Status::ok();
}

Result<KernelPtr> prepare_gather_nd(PrepareContext& ctx) {
  KILN_RETURN_IF_ERROR(ctx.require_input(0));
  KILN_RETURN_IF_ERROR(ctx.require_input(1));
  const TensorInfo& data = ctx.input(0);
  const TensorInfo& indices = ctx.input(1);
  if (!is_kernel_dtype(data.dtype)) return ctx.unsupported_dtype(0);
  KILN_RETURN_IF_ERROR(check_indices_dtype(ctx, 1));
  const size_t r = data.rank(), q = indices.rank();
  if (r == 0 || q == 0)
    return ctx.invalid("data and indices must have rank >= 1, got ", shape_to_string(data.shape), " and ",
                       shape_to_string(indices.shape));
  const int64_t b = ctx.opset() >= 12 ? ctx.attr_int("batch_dims", 0) : 0;
  if (b < 0 || static_cast<size_t>(b) >= std::min(q, r))
    return ctx.invalid("batch_dims must be in [0, ", std::min(q, r) - 1, "] for data rank ", r, " and indices rank ",
                       q, ", got ", b);
  const size_t nb = static_cast<size_t>(b);
  for (size_t d = 0; d < nb; ++d)
    if (indices.shape[d] != data.shape[d])
      return ctx.invalid("the first batch_dims=", b, " dimensions of data ", shape_to_string(data.shape),
                         " and indices ", shape_to_string(indices.shape), " must be equal");
  const int64_t last = indices.shape[q - 1];
  if (last < 1 || last > static_cast<int64_t>(r - nb))
    return ctx.invalid("the last dimension of indices must be in [1, ", r - nb, "], got ", last);
  const size_t end = nb + static_cast<size_t>(last);
  Shape out = slice_shape(indices.shape, 0, q - 1);
  out.insert(out.end(), data.shape.begin() + end, data.shape.end());
  KILN_RETURN_IF_ERROR(check_rank(ctx, out.size()));
  ctx.set_output(0, data.dtype, out);
  GatherNDParams p;
  p.batches = product(data.shape, 0, nb);
  p.per_batch = product(indices.shape, nb, q - 1);
  p.batch_stride = product(data.shape, nb, r);
  p.element_bytes = static_cast<int64_t>(dtype_size(data.dtype));
  p.slice_bytes = product(data.shape, end, r) * p.element_bytes;
  p.tuple_len = last;
  for (size_t d = nb; d < end; ++d) {
    p.dims.push_back(data.shape[d]);
    p.strides.push_back(product(data.shape, d + 1, r));
  }
  if (indices.dtype == DType::kInt32)
    return make_kernel([p](const KernelContext& k) { return run_gather_nd<int32_t>(p, k); });
  return make_kernel([p](const KernelContext& k) { return run_gather_nd<int64_t>(p, k); });
}

// ---------------------------------------------------------------------------------------------
// Scatter*

enum class Reduction { kNone, kAdd, kMul, kMax, kMin };

Result<Reduction> read_reduction(PrepareContext& ctx, DType dtype) {
  if (ctx.op_type() == "Scatter") return Reduction::kNone;
  if (ctx.opset() < 16) {
    if (ctx.has_attr("reduction"))
      return ctx.invalid("the reduction attribute needs opset 16, the model imports opset ", ctx.opset());
    return Reduction::kNone;
  }
  std::string s = ctx.attr_string("reduction", "none");
  Reduction r;
  if (s == "none") r = Reduction::kNone;
  else if (s == "add") r = Reduction::kAdd;
  else if (s == "mul") r = Reduction::kMul;
  else if ((s == "max" || s == "min") && ctx.opset() >= 18) r = s == "max" ? Reduction::kMax : Reduction::kMin;
  else
    return ctx.invalid("reduction must be none, add, mul", ctx.opset() >= 18 ? ", max or min" : "", " at opset ",
                       ctx.opset(), ", got '", s, "'");
  if (r != Reduction::kNone && dtype == DType::kBool)
    return ctx.unsupported("reduction '", s, "' on bool data");
  return r;
}

template <typename T>
void combine(Reduction r, T& dst, T v) {
  if constexpr (std::is_same_v<T, bool>) {
    dst = v;
  } else {
    switch (r) {
      case Reduction::kNone: dst = v; break;
      // Integers wrap, computed in uint64 so that overflow is defined.
      case Reduction::kAdd:
        if constexpr (std::is_integral_v<T>) dst = static_cast<T>(static_cast<uint64_t>(dst) + static_cast<uint64_t>(v));
        else dst = dst + v;
        break;
      case Reduction::kMul:
        if constexpr (std::is_integral_v<T>) dst = static_cast<T>(static_cast<uint64_t>(dst) * static_cast<uint64_t>(v));
        else dst = dst * v;
        break;
      case Reduction::kMax: dst = v > dst ? v : dst; break;
      case Reduction::kMin: dst = v < dst ? v : dst; break;
    }
  }
}

void copy_data(const KernelContext& k) {
  if (k.out(0).data != k.in(0).data && k.in(0).byte_size())
    std::memcpy(k.out(0).data, k.in(0).data, k.in(0).byte_size());
}

template <typename T, typename I>
Status run_scatter_elements(const ElementsParams& p, Reduction red, const KernelContext& k) {
  copy_data(k);
  const I* idx = k.in(1).as<const I>();
  const T* upd = k.in(2).as<const T>();
  T* y = k.out(0).as<T>();
  int64_t n = 0, bad = -1;
  for_each_strided<1>(p.index_shape, {p.data_strides.data()}, [&](int64_t off) {
    int64_t j = 0;
    if (wrap_index(idx[n], p.axis_dim, &j)) combine(red, y[off + j * p.axis_stride], upd[n]);
    else if (bad < 0) bad = n;
    ++n;
  });
  if (bad >= 0) return index_error(p.op, static_cast<int64_t>(idx[bad]), p.axis, p.axis_dim);
  return Status::ok();
}

Result<KernelPtr> prepare_scatter_elements(PrepareContext& ctx) {
  for (size_t i = 0; i < 3; ++i) KILN_RETURN_IF_ERROR(ctx.require_input(i));
  const TensorInfo& data = ctx.input(0);
  const TensorInfo& indices = ctx.input(1);
  const TensorInfo& updates = ctx.input(2);
  if (!is_kernel_dtype(data.dtype)) return ctx.unsupported_dtype(0);
  KILN_RETURN_IF_ERROR(check_indices_dtype(ctx, 1));
  if (updates.dtype != data.dtype)
    return ctx.invalid("updates must have the dtype of data (", dtype_name(data.dtype), "), got ",
                       dtype_name(updates.dtype));
  if (updates.shape != indices.shape)
    return ctx.invalid("updates shape ", shape_to_string(updates.shape), " must equal indices shape ",
                       shape_to_string(indices.shape));
  KILN_ASSIGN_OR_RETURN(Reduction red, read_reduction(ctx, data.dtype));
  KILN_ASSIGN_OR_RETURN(ElementsParams p, plan_elements(ctx, data, indices));
  ctx.set_output(0, data.dtype, data.shape);
  KernelPtr kernel;
  visit_dtype<AllTypes>(data.dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    if (indices.dtype == DType::kInt32)
      kernel = make_kernel([p, red](const KernelContext& k) { return run_scatter_elements<T, int32_t>(p, red, k); });
    else
      kernel = make_kernel([p, red](const KernelContext& k) { return run_scatter_elements<T, int64_t>(p, red, k); });
  });
  return kernel;
}

struct ScatterNDParams {
  int64_t num_updates, slice, tuple_len;
  std::vector<int64_t> dims, strides;  // of the indexed dimensions; strides in elements
};

template <typename T, typename I>
Status run_scatter_nd(const ScatterNDParams& p, Reduction red, const KernelContext& k) {
  copy_data(k);
  const I* idx = k.in(1).as<const I>();
  const T* upd = k.in(2).as<const T>();
  T* y = k.out(0).as<T>();
  for (int64_t u = 0; u < p.num_updates; ++u) {
    const I* tuple = idx + u * p.tuple_len;
    int64_t off = 0;
    for (int64_t d = 0; d < p.tuple_len; ++d) {
      int64_t j = 0;
      if (!wrap_index(tuple[d], p.dims[d], &j))
        return index_error("ScatterND", static_cast<int64_t>(tuple[d]), d, p.dims[d]);
      off += j * p.strides[d];
    }
    T* dst = y + off;
    const T* src = upd + u * p.slice;
    for (int64_t e = 0; e < p.slice; ++e) combine(red, dst[e], src[e]);
  }
  return Status::ok();
}

Result<KernelPtr> prepare_scatter_nd(PrepareContext& ctx) {
  for (size_t i = 0; i < 3; ++i) KILN_RETURN_IF_ERROR(ctx.require_input(i));
  const TensorInfo& data = ctx.input(0);
  const TensorInfo& indices = ctx.input(1);
  const TensorInfo& updates = ctx.input(2);
  if (!is_kernel_dtype(data.dtype)) return ctx.unsupported_dtype(0);
  KILN_RETURN_IF_ERROR(check_indices_dtype(ctx, 1));
  if (updates.dtype != data.dtype)
    return ctx.invalid("updates must have the dtype of data (", dtype_name(data.dtype), "), got ",
                       dtype_name(updates.dtype));
  const size_t r = data.rank(), q = indices.rank();
  if (r == 0 || q == 0)
    return ctx.invalid("data and indices must have rank >= 1, got ", shape_to_string(data.shape), " and ",
                       shape_to_string(indices.shape));
  const int64_t last = indices.shape[q - 1];
  if (last < 1 || last > static_cast<int64_t>(r))
    return ctx.invalid("the last dimension of indices must be in [1, ", r, "], got ", last);
  Shape want = slice_shape(indices.shape, 0, q - 1);
  want.insert(want.end(), data.shape.begin() + last, data.shape.end());
  if (updates.shape != want)
    return ctx.invalid("updates must have shape ", shape_to_string(want), " (indices.shape[:-1] + data.shape[",
                       last, ":]), got ", shape_to_string(updates.shape));
  KILN_ASSIGN_OR_RETURN(Reduction red, read_reduction(ctx, data.dtype));
  ctx.set_output(0, data.dtype, data.shape);
  ScatterNDParams p;
  p.num_updates = product(indices.shape, 0, q - 1);
  p.slice = product(data.shape, static_cast<size_t>(last), r);
  p.tuple_len = last;
  for (size_t d = 0; d < static_cast<size_t>(last); ++d) {
    p.dims.push_back(data.shape[d]);
    p.strides.push_back(product(data.shape, d + 1, r));
  }
  KernelPtr kernel;
  visit_dtype<AllTypes>(data.dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    if (indices.dtype == DType::kInt32)
      kernel = make_kernel([p, red](const KernelContext& k) { return run_scatter_nd<T, int32_t>(p, red, k); });
    else
      kernel = make_kernel([p, red](const KernelContext& k) { return run_scatter_nd<T, int64_t>(p, red, k); });
  });
  return kernel;
}

constexpr OpDef kGatherScatterOps[] = {
    {"", "Gather", 1, kMaxOnnxOpset, prepare_gather},
    {"", "GatherElements", 11, kMaxOnnxOpset, prepare_gather_elements},
    {"", "GatherND", 11, kMaxOnnxOpset, prepare_gather_nd},
    {"", "ScatterElements", 11, kMaxOnnxOpset, prepare_scatter_elements},
    {"", "ScatterND", 11, kMaxOnnxOpset, prepare_scatter_nd},
    {"", "Scatter", 9, 10, prepare_scatter_elements},
};

}  // namespace

std::span<const OpDef> gather_scatter_ops() { return kGatherScatterOps; }

}  // namespace kiln::nn::ops
