// Operators that rearrange, select or generate tensor elements: Transpose, Concat, Split,
// Slice, Expand, Tile, Pad, DepthToSpace, SpaceToDepth, Trilu, CumSum, ReverseSequence, OneHot,
// Compress, NonZero, Unique.
//
// Pure data movement is dispatched on the element size only, so it works for every storable
// dtype (float16 and bool included) with one instantiation per size.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <numeric>

#include "kiln/core/thread_pool.h"
#include "kiln/nn/ops/families.h"
#include "kiln/nn/ops/op_util.h"

namespace kiln::nn::ops {
namespace {

// Empty tensors may have null data pointers; memcpy must not see them.
void copy_bytes(void* dst, const void* src, size_t n) {
  if (n != 0) std::memcpy(dst, src, n);
}

// Calls f(std::type_identity<U>{}) with an unsigned integer type as wide as one element of `t`.
template <typename F>
bool visit_element_size(DType t, F&& f) {
  switch (dtype_size(t)) {
    case 1: f(std::type_identity<uint8_t>{}); return true;
    case 2: f(std::type_identity<uint16_t>{}); return true;
    case 4: f(std::type_identity<uint32_t>{}); return true;
    case 8: f(std::type_identity<uint64_t>{}); return true;
    default: return false;
  }
}

Status require_storable(const PrepareContext& ctx, size_t i) {
  KILN_RETURN_IF_ERROR(ctx.require_input(i));
  if (!dtype_is_supported(ctx.input(i).dtype)) return ctx.unsupported_dtype(i);
  return Status::ok();
}

// Reads a constant input that must be a 1-D (or scalar) integer tensor.
Result<std::vector<int64_t>> constant_ints(PrepareContext& ctx, size_t i, const char* what) {
  const Tensor* t = ctx.require_constant(i, what);
  if (!t) return ctx.sticky_error();
  if (t->rank() > 1 || !dtype_is_integer(t->dtype()))
    return ctx.invalid("input '", what, "' must be a 1-D integer tensor, got ", dtype_name(t->dtype()), " ",
                       shape_to_string(t->shape()));
  return to_int64_vector(*t);
}

// A constant scalar input (0-d or one element) of any numeric type, as int64.
Result<int64_t> constant_scalar(PrepareContext& ctx, size_t i, const char* what) {
  KILN_RETURN_IF_ERROR(ctx.require_input(i));
  const Tensor* t = ctx.require_constant(i, what);
  if (!t) return ctx.sticky_error();
  if (t->num_elements() != 1 || t->rank() > 1)
    return ctx.invalid("input '", what, "' must be a scalar, got shape ", shape_to_string(t->shape()));
  if (dtype_is_float(t->dtype())) {
    double v = element_as_double(t->view(), 0);
    if (!(std::fabs(v) < 9e15)) return ctx.invalid("input '", what, "' has the unusable value ", v);
    return static_cast<int64_t>(v);
  }
  if (!dtype_is_integer(t->dtype()))
    return ctx.invalid("input '", what, "' must be numeric, got ", dtype_name(t->dtype()));
  return element_as_int64(t->view(), 0);
}

int64_t product(std::span<const int64_t> dims) {
  int64_t p = 1;
  for (int64_t d : dims) p *= d;
  return p;
}

// ---------------------------------------------------------------------------------------------
// Strided gather: y (contiguous, in row-major order of `shape`) = x[offset + sum(idx * strides)].
// Transpose, Slice, Expand, Tile, DepthToSpace and SpaceToDepth are all this walk.

struct StridedGather {
  Shape shape;
  std::vector<int64_t> strides;
  int64_t offset = 0;
};

// Drops unit dimensions and merges neighbours that are contiguous in the source, so that the
// innermost loop is as long as possible.
StridedGather coalesce(const Shape& shape, const std::vector<int64_t>& strides, int64_t offset) {
  StridedGather g;
  g.offset = offset;
  if (std::find(shape.begin(), shape.end(), 0) != shape.end()) {
    g.shape = {0};
    g.strides = {0};
    return g;
  }
  for (size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] == 1) continue;
    if (!g.shape.empty() && g.strides.back() == strides[d] * shape[d]) {
      g.shape.back() *= shape[d];
      g.strides.back() = strides[d];
      continue;
    }
    g.shape.push_back(shape[d]);
    g.strides.push_back(strides[d]);
  }
  return g;
}

KernelPtr strided_gather_kernel(DType dtype, const Shape& shape, const std::vector<int64_t>& strides, int64_t offset) {
  StridedGather g = coalesce(shape, strides, offset);
  KernelPtr kernel;
  visit_element_size(dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    kernel = make_kernel([g](const KernelContext& k) {
      if (k.out(0).num_elements() == 0) return Status::ok();
      const T* x = k.in(0).as<const T>() + g.offset;
      T* y = k.out(0).as<T>();
      for_each_strided<1>(g.shape, {g.strides.data()}, [&](int64_t i) { *y++ = x[i]; });
      return Status::ok();
    });
  });
  return kernel;
}

Result<KernelPtr> prepare_transpose(PrepareContext& ctx) {
  KILN_RETURN_IF_ERROR(require_storable(ctx, 0));
  const TensorInfo& x = ctx.input(0);
  const size_t rank = x.rank();
  KILN_RETURN_IF_ERROR(check_rank(ctx, rank));
  std::vector<int64_t> perm(rank);
  for (size_t i = 0; i < rank; ++i) perm[i] = static_cast<int64_t>(rank - 1 - i);
  if (ctx.has_attr("perm")) perm = ctx.attr_ints("perm");
  std::vector<bool> seen(rank, false);
  bool valid = perm.size() == rank;
  for (size_t i = 0; valid && i < rank; ++i) {
    valid = perm[i] >= 0 && perm[i] < static_cast<int64_t>(rank) && !seen[static_cast<size_t>(perm[i])];
    if (valid) seen[static_cast<size_t>(perm[i])] = true;
  }
  if (!valid)
    return ctx.invalid("perm ", shape_to_string(perm), " is not a permutation of the ", rank, " axes of input ",
                       shape_to_string(x.shape));
  const std::vector<int64_t> in_strides = strides_of(x.shape);
  Shape out(rank);
  std::vector<int64_t> strides(rank);
  for (size_t i = 0; i < rank; ++i) {
    out[i] = x.shape[static_cast<size_t>(perm[i])];
    strides[i] = in_strides[static_cast<size_t>(perm[i])];
  }
  ctx.set_output(0, x.dtype, out);
  return strided_gather_kernel(x.dtype, out, strides, 0);
}

Result<KernelPtr> prepare_slice(PrepareContext& ctx) {
  KILN_RETURN_IF_ERROR(require_storable(ctx, 0));
  const TensorInfo& x = ctx.input(0);
  const int64_t rank = static_cast<int64_t>(x.rank());
  KILN_RETURN_IF_ERROR(check_rank(ctx, x.rank()));
  std::vector<int64_t> starts, ends, axes, steps;
  bool have_axes = false, have_steps = false;
  if (ctx.opset() < 10) {
    if (!ctx.has_attr("starts") || !ctx.has_attr("ends")) return ctx.invalid("attributes 'starts' and 'ends' are required");
    starts = ctx.attr_ints("starts");
    ends = ctx.attr_ints("ends");
    have_axes = ctx.has_attr("axes");
    axes = ctx.attr_ints("axes");
  } else {
    KILN_RETURN_IF_ERROR(ctx.require_input(1));
    KILN_RETURN_IF_ERROR(ctx.require_input(2));
    KILN_ASSIGN_OR_RETURN(starts, constant_ints(ctx, 1, "starts"));
    KILN_ASSIGN_OR_RETURN(ends, constant_ints(ctx, 2, "ends"));
    have_axes = ctx.has_input(3);
    have_steps = ctx.has_input(4);
    if (have_axes) {
      KILN_ASSIGN_OR_RETURN(axes, constant_ints(ctx, 3, "axes"));
    }
    if (have_steps) {
      KILN_ASSIGN_OR_RETURN(steps, constant_ints(ctx, 4, "steps"));
    }
  }
  const size_t n = starts.size();
  if (!have_axes) {
    axes.resize(n);
    std::iota(axes.begin(), axes.end(), 0);
  }
  if (!have_steps) steps.assign(n, 1);
  if (ends.size() != n || axes.size() != n || steps.size() != n)
    return ctx.invalid("starts, ends, axes and steps must have the same length, got ", n, ", ", ends.size(), ", ",
                       axes.size(), " and ", steps.size());
  KILN_RETURN_IF_ERROR(normalize_axes(ctx, axes, rank));
  Shape out = x.shape;
  const std::vector<int64_t> in_strides = strides_of(x.shape);
  std::vector<int64_t> strides = in_strides;
  int64_t offset = 0;
  for (size_t i = 0; i < n; ++i) {
    const size_t a = static_cast<size_t>(axes[i]);
    const int64_t dim = x.shape[a], step = steps[i];
    if (step == 0) return ctx.invalid("steps must not be 0 (axis ", a, ")");
    // Negative starts/ends count from the end; then both are clamped to the reachable range,
    // which for a negative step is [-1, dim - 1] (-1 meaning "before the first element").
    int64_t s = starts[i], e = ends[i], count = 0;
    if (s < 0) s += dim;
    if (e < 0) e += dim;
    if (step > 0) {
      s = std::clamp<int64_t>(s, 0, dim);
      e = std::clamp<int64_t>(e, 0, dim);
      if (e > s) count = (e - s - 1) / step + 1;
    } else if (dim > 0) {
      s = std::clamp<int64_t>(s, -1, dim - 1);
      e = std::clamp<int64_t>(e, -1, dim - 1);
      const uint64_t mag = uint64_t{0} - static_cast<uint64_t>(step);
      if (s > e) count = static_cast<int64_t>(static_cast<uint64_t>(s - e - 1) / mag + 1);
    }
    out[a] = count;
    if (count > 0) offset += s * in_strides[a];
    // With two or more elements |step| < dim, so the product cannot overflow.
    strides[a] = count > 1 ? in_strides[a] * step : 0;
  }
  ctx.set_output(0, x.dtype, out);
  return strided_gather_kernel(x.dtype, out, strides, offset);
}

Result<KernelPtr> prepare_expand(PrepareContext& ctx) {
  KILN_RETURN_IF_ERROR(require_storable(ctx, 0));
  KILN_RETURN_IF_ERROR(ctx.require_input(1));
  const TensorInfo& x = ctx.input(0);
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> shape, constant_ints(ctx, 1, "shape"));
  for (int64_t d : shape)
    if (d < 0) return ctx.invalid("shape ", shape_to_string(shape), " has a negative dimension");
  KILN_ASSIGN_OR_RETURN(Shape out, broadcast_shapes(ctx, x.shape, shape));
  KILN_RETURN_IF_ERROR(check_rank(ctx, out.size()));
  ctx.set_output(0, x.dtype, out);
  return strided_gather_kernel(x.dtype, out, broadcast_strides(x.shape, out), 0);
}

Result<KernelPtr> prepare_tile(PrepareContext& ctx) {
  KILN_RETURN_IF_ERROR(require_storable(ctx, 0));
  const TensorInfo& x = ctx.input(0);
  const size_t rank = x.rank();
  std::vector<int64_t> repeats(rank, 1);
  if (ctx.opset() < 6) {
    // Tile-1: one axis repeated `tiles` times.
    KILN_ASSIGN_OR_RETURN(int64_t tiles, constant_scalar(ctx, 1, "tiles"));
    KILN_ASSIGN_OR_RETURN(int64_t axis, constant_scalar(ctx, 2, "axis"));
    KILN_RETURN_IF_ERROR(normalize_axis(ctx, axis, static_cast<int64_t>(rank), &axis));
    if (rank == 0) return ctx.invalid("input must have rank >= 1");
    repeats[static_cast<size_t>(axis)] = tiles;
  } else {
    KILN_RETURN_IF_ERROR(ctx.require_input(1));
    KILN_ASSIGN_OR_RETURN(repeats, constant_ints(ctx, 1, "repeats"));
    if (repeats.size() != rank)
      return ctx.invalid("repeats ", shape_to_string(repeats), " must have one entry per axis of input ",
                         shape_to_string(x.shape));
  }
  // Walk [r0, d0, r1, d1, ...]: the repeat index has source stride 0. Axes repeated once keep
  // a single dimension.
  const std::vector<int64_t> in_strides = strides_of(x.shape);
  Shape out(rank), walk;
  std::vector<int64_t> strides;
  for (size_t i = 0; i < rank; ++i) {
    if (repeats[i] < 0) return ctx.invalid("repeats ", shape_to_string(repeats), " has a negative entry");
    if (__builtin_mul_overflow(x.shape[i], repeats[i], &out[i]))
      return ctx.invalid("repeats ", shape_to_string(repeats), " overflow the output size");
    if (repeats[i] != 1) {
      walk.push_back(repeats[i]);
      strides.push_back(0);
    }
    walk.push_back(x.shape[i]);
    strides.push_back(in_strides[i]);
  }
  KILN_RETURN_IF_ERROR(check_rank(ctx, walk.size()));
  ctx.set_output(0, x.dtype, out);
  return strided_gather_kernel(x.dtype, walk, strides, 0);
}

Result<KernelPtr> prepare_depth_to_space(PrepareContext& ctx) {
  KILN_RETURN_IF_ERROR(require_storable(ctx, 0));
  const TensorInfo& x = ctx.input(0);
  if (x.rank() != 4) return ctx.invalid("input must have rank 4 (NCHW), got ", shape_to_string(x.shape));
  if (!ctx.has_attr("blocksize")) return ctx.invalid("attribute 'blocksize' is required");
  const int64_t b = ctx.attr_int("blocksize", 0);
  const std::string mode = ctx.opset() >= 11 ? ctx.attr_string("mode", "DCR") : "DCR";
  if (mode != "DCR" && mode != "CRD") return ctx.invalid("mode must be DCR or CRD, got '", mode, "'");
  const int64_t n = x.shape[0], c = x.shape[1], h = x.shape[2], w = x.shape[3];
  int64_t bb = 0;
  if (b <= 0 || __builtin_mul_overflow(b, b, &bb) || c % bb != 0)
    return ctx.invalid("blocksize ", b, " must be positive and its square must divide the ", c, " channels");
  const int64_t oc = c / bb;
  int64_t oh, ow;
  if (__builtin_mul_overflow(h, b, &oh) || __builtin_mul_overflow(w, b, &ow))
    return ctx.invalid("blocksize ", b, " overflows the output size");
  // Output viewed as [N, C', H, b1, W, b2]; input channel = (b1 * b + b2) * C' + c' in DCR
  // order and (c' * b + b1) * b + b2 in CRD order.
  const int64_t hw = h * w;
  const bool dcr = mode == "DCR";
  Shape walk = {n, oc, h, b, w, b};
  std::vector<int64_t> strides = {c * hw, (dcr ? 1 : bb) * hw, w, (dcr ? b * oc : b) * hw, 1, (dcr ? oc : 1) * hw};
  ctx.set_output(0, x.dtype, {n, oc, oh, ow});
  return strided_gather_kernel(x.dtype, walk, strides, 0);
}

Result<KernelPtr> prepare_space_to_depth(PrepareContext& ctx) {
  KILN_RETURN_IF_ERROR(require_storable(ctx, 0));
  const TensorInfo& x = ctx.input(0);
  if (x.rank() != 4) return ctx.invalid("input must have rank 4 (NCHW), got ", shape_to_string(x.shape));
  if (!ctx.has_attr("blocksize")) return ctx.invalid("attribute 'blocksize' is required");
  const int64_t b = ctx.attr_int("blocksize", 0);
  const int64_t n = x.shape[0], c = x.shape[1], h = x.shape[2], w = x.shape[3];
  if (b <= 0 || h % b != 0 || w % b != 0)
    return ctx.invalid("blocksize ", b, " must be positive and divide the spatial size ", h, "x", w);
  int64_t oc;
  if (__builtin_mul_overflow(c, b, &oc) || __builtin_mul_overflow(oc, b, &oc))
    return ctx.invalid("blocksize ", b, " overflows the output size");
  // Output viewed as [N, b1, b2, C, H', W'] reads x[n, c, h' * b + b1, w' * b + b2].
  Shape walk = {n, b, b, c, h / b, w / b};
  std::vector<int64_t> strides = {c * h * w, w, 1, h * w, b * w, b};
  ctx.set_output(0, x.dtype, {n, oc, h / b, w / b});
  return strided_gather_kernel(x.dtype, walk, strides, 0);
}

// ---------------------------------------------------------------------------------------------
// Concat and Split: rows of contiguous bytes.

Result<KernelPtr> prepare_concat(PrepareContext& ctx) {
  const size_t count = ctx.num_inputs();
  if (count == 0) return ctx.invalid("at least one input is required");
  for (size_t i = 0; i < count; ++i) KILN_RETURN_IF_ERROR(require_storable(ctx, i));
  const TensorInfo& first = ctx.input(0);
  const int64_t rank = static_cast<int64_t>(first.rank());
  if (rank == 0) return ctx.invalid("inputs must have rank >= 1");
  if (ctx.opset() >= 4 && !ctx.has_attr("axis")) return ctx.invalid("attribute 'axis' is required");
  int64_t axis = 0;
  KILN_RETURN_IF_ERROR(normalize_axis(ctx, ctx.attr_int("axis", 1), rank, &axis));
  Shape out = first.shape;
  out[static_cast<size_t>(axis)] = 0;
  for (size_t i = 0; i < count; ++i) {
    const TensorInfo& x = ctx.input(i);
    if (x.dtype != first.dtype)
      return ctx.invalid("input ", i, " has dtype ", dtype_name(x.dtype), ", expected ", dtype_name(first.dtype));
    bool match = x.rank() == first.rank();
    for (int64_t d = 0; match && d < rank; ++d) match = d == axis || x.shape[d] == first.shape[d];
    if (!match)
      return ctx.invalid("input ", i, " has shape ", shape_to_string(x.shape), ", which does not match ",
                         shape_to_string(first.shape), " outside axis ", axis);
    out[static_cast<size_t>(axis)] += x.shape[static_cast<size_t>(axis)];
  }
  const size_t es = dtype_size(first.dtype);
  const int64_t outer = product(std::span(first.shape).first(static_cast<size_t>(axis)));
  const int64_t inner = product(std::span(first.shape).subspan(static_cast<size_t>(axis) + 1));
  std::vector<size_t> chunk(count);
  for (size_t i = 0; i < count; ++i) chunk[i] = static_cast<size_t>(ctx.input(i).shape[axis] * inner) * es;
  ctx.set_output(0, first.dtype, out);
  const size_t row_bytes = std::accumulate(chunk.begin(), chunk.end(), size_t{0});
  return make_kernel([outer, chunk, row_bytes](const KernelContext& k) {
    auto rows = [&](int64_t o0, int64_t o1) {
      char* y = k.out(0).as<char>() + static_cast<size_t>(o0) * row_bytes;
      for (int64_t o = o0; o < o1; ++o) {
        for (size_t i = 0; i < chunk.size(); ++i) {
          copy_bytes(y, k.in(i).as<const char>() + static_cast<size_t>(o) * chunk[i], chunk[i]);
          y += chunk[i];
        }
      }
    };
    // A large concatenation (SqueezeNet's channel concats are ~1 MB) is memory-bound: the threads
    // share the rows.
    if (k.pool && k.pool->threads() > 1 && outer >= 2 && static_cast<size_t>(outer) * row_bytes >= (size_t{1} << 18)) {
      const int64_t tasks = std::min<int64_t>(outer, int64_t{k.pool->threads()} * 4);
      k.pool->parallel_for(tasks, [&](int64_t t) { rows(outer * t / tasks, outer * (t + 1) / tasks); });
    } else {
      rows(0, outer);
    }
    return Status::ok();
  });
}

Result<KernelPtr> prepare_split(PrepareContext& ctx) {
  KILN_RETURN_IF_ERROR(require_storable(ctx, 0));
  const TensorInfo& x = ctx.input(0);
  const int64_t rank = static_cast<int64_t>(x.rank());
  if (rank == 0) return ctx.invalid("input must have rank >= 1");
  int64_t axis = 0;
  KILN_RETURN_IF_ERROR(normalize_axis(ctx, ctx.attr_int("axis", 0), rank, &axis));
  const int64_t dim = x.shape[static_cast<size_t>(axis)];
  const size_t outputs = ctx.num_outputs();
  if (outputs == 0) return ctx.invalid("at least one output is required");
  std::vector<int64_t> sizes;
  bool given = false;
  if (ctx.has_input(1) && (ctx.opset() >= 13 || ctx.opset() == 1)) {
    KILN_ASSIGN_OR_RETURN(sizes, constant_ints(ctx, 1, "split"));
    given = true;
  } else if (ctx.opset() < 13 && ctx.has_attr("split")) {
    sizes = ctx.attr_ints("split");
    given = true;
  }
  if (given) {
    if (ctx.opset() >= 18 && ctx.has_attr("num_outputs"))
      return ctx.invalid("input 'split' and attribute 'num_outputs' must not both be given");
    if (sizes.size() != outputs)
      return ctx.invalid("split ", shape_to_string(sizes), " has ", sizes.size(), " entries for ", outputs, " outputs");
    int64_t sum = 0;
    for (int64_t s : sizes) {
      if (s < 0 || s > dim) return ctx.invalid("split ", shape_to_string(sizes), " has an entry outside [0, ", dim, "]");
      sum += s;
    }
    if (sum != dim)
      return ctx.invalid("split ", shape_to_string(sizes), " sums to ", sum, " but axis ", axis, " of input ",
                         shape_to_string(x.shape), " has size ", dim);
  } else {
    const int64_t n = static_cast<int64_t>(outputs);
    const bool by_count = ctx.opset() >= 18;
    if (by_count && ctx.has_attr("num_outputs") && ctx.attr_int("num_outputs", 0) != n)
      return ctx.invalid("num_outputs is ", ctx.attr_int("num_outputs", 0), " but the node has ", n, " outputs");
    if (!by_count && dim % n != 0)
      return ctx.invalid("axis ", axis, " of input ", shape_to_string(x.shape), " (size ", dim,
                         ") cannot be split into ", n, " equal parts");
    // Since opset 18 the parts have size ceil(dim / n) and the last one takes what remains.
    const int64_t part = (dim + n - 1) / n;
    for (int64_t i = 0, left = dim; i < n; ++i, left -= std::min(left, part)) sizes.push_back(std::min(left, part));
  }
  const size_t es = dtype_size(x.dtype);
  const int64_t outer = product(std::span(x.shape).first(static_cast<size_t>(axis)));
  const int64_t inner = product(std::span(x.shape).subspan(static_cast<size_t>(axis) + 1));
  std::vector<size_t> chunk(outputs);
  for (size_t j = 0; j < outputs; ++j) {
    Shape s = x.shape;
    s[static_cast<size_t>(axis)] = sizes[j];
    ctx.set_output(j, x.dtype, s);
    chunk[j] = static_cast<size_t>(sizes[j] * inner) * es;
  }
  const size_t row = static_cast<size_t>(dim * inner) * es;
  std::vector<bool> present(outputs);
  for (size_t j = 0; j < outputs; ++j) present[j] = ctx.has_output(j);
  return make_kernel([outer, chunk, present, row](const KernelContext& k) {
    const char* x = k.in(0).as<const char>();
    for (int64_t o = 0; o < outer; ++o) {
      size_t off = static_cast<size_t>(o) * row;
      for (size_t j = 0; j < chunk.size(); ++j) {
        if (present[j]) copy_bytes(k.out(j).as<char>() + static_cast<size_t>(o) * chunk[j], x + off, chunk[j]);
        off += chunk[j];
      }
    }
    return Status::ok();
  });
}

// ---------------------------------------------------------------------------------------------
// Pad

enum class PadMode { kConstant, kReflect, kEdge, kWrap };

// One padded axis: output index j reads input index j - begin when it lies in [lo, hi), the
// part of the input that negative pads leave; outside it the mode decides.
struct PadAxis {
  int64_t begin, lo, hi;
};

// Source index of output index j along an axis, or -1 for the constant value.
int64_t pad_source(int64_t j, const PadAxis& a, PadMode mode) {
  const int64_t src = j - a.begin, n = a.hi - a.lo;
  if (src >= a.lo && src < a.hi) return src;
  switch (mode) {
    case PadMode::kConstant: return -1;
    case PadMode::kEdge: return src < a.lo ? a.lo : a.hi - 1;
    case PadMode::kReflect: {
      if (n == 1) return a.lo;
      const int64_t period = 2 * (n - 1);
      int64_t r = (src - a.lo) % period;
      if (r < 0) r += period;
      return a.lo + (r < n ? r : period - r);
    }
    case PadMode::kWrap: {
      int64_t r = (src - a.lo) % n;
      if (r < 0) r += n;
      return a.lo + r;
    }
  }
  return -1;
}

template <typename T>
void run_pad(const Shape& out, const std::vector<int64_t>& in_strides, const std::vector<PadAxis>& axes, PadMode mode,
             T cv, const T* x, T* y) {
  const size_t rank = out.size();
  if (rank == 0) {
    y[0] = x[0];
    return;
  }
  const int64_t len = out[rank - 1];
  const PadAxis& last = axes[rank - 1];
  // Output columns [c0, c1) read the input row directly.
  const int64_t c0 = std::clamp(last.begin + last.lo, int64_t{0}, len);
  const int64_t c1 = std::clamp(last.begin + last.hi, c0, len);
  int64_t idx[kMaxRank] = {0};
  for (;;) {
    int64_t src = 0;
    bool fill = false;
    for (size_t d = 0; d + 1 < rank && !fill; ++d) {
      const int64_t s = pad_source(idx[d], axes[d], mode);
      fill = s < 0;
      src += s * in_strides[d];
    }
    if (fill) {
      for (int64_t j = 0; j < len; ++j) y[j] = cv;
    } else {
      const T* row = x + src;
      for (int64_t j = 0; j < c0; ++j) {
        const int64_t s = pad_source(j, last, mode);
        y[j] = s < 0 ? cv : row[s];
      }
      for (int64_t j = c0; j < c1; ++j) y[j] = row[j - last.begin];
      for (int64_t j = c1; j < len; ++j) {
        const int64_t s = pad_source(j, last, mode);
        y[j] = s < 0 ? cv : row[s];
      }
    }
    y += len;
    size_t d = rank - 1;
    for (;;) {
      if (d == 0) return;
      --d;
      if (++idx[d] < out[d]) break;
      idx[d] = 0;
    }
  }
}

Result<KernelPtr> prepare_pad(PrepareContext& ctx) {
  KILN_RETURN_IF_ERROR(require_storable(ctx, 0));
  const TensorInfo& x = ctx.input(0);
  const int64_t rank = static_cast<int64_t>(x.rank());
  KILN_RETURN_IF_ERROR(check_rank(ctx, x.rank()));
  const std::string mode_name = ctx.attr_string("mode", "constant");
  PadMode mode;
  if (mode_name == "constant") mode = PadMode::kConstant;
  else if (mode_name == "reflect") mode = PadMode::kReflect;
  else if (mode_name == "edge") mode = PadMode::kEdge;
  else if (mode_name == "wrap" && ctx.opset() >= 19) mode = PadMode::kWrap;
  else return ctx.invalid("mode must be constant, reflect, edge", ctx.opset() >= 19 ? " or wrap" : "", ", got '",
                          mode_name, "'");

  std::vector<int64_t> pads, axes;
  double attr_value = 0;
  if (ctx.opset() < 11) {
    const char* name = ctx.opset() < 2 ? "paddings" : "pads";
    if (!ctx.has_attr(name)) return ctx.invalid("attribute '", name, "' is required");
    pads = ctx.attr_ints(name);
    attr_value = ctx.attr_float("value", 0);
  } else {
    KILN_RETURN_IF_ERROR(ctx.require_input(1));
    KILN_ASSIGN_OR_RETURN(pads, constant_ints(ctx, 1, "pads"));
    if (ctx.has_input(3)) {
      KILN_ASSIGN_OR_RETURN(axes, constant_ints(ctx, 3, "axes"));
    }
  }
  if (axes.empty() && !(ctx.opset() >= 18 && ctx.has_input(3))) {
    axes.resize(static_cast<size_t>(rank));
    std::iota(axes.begin(), axes.end(), 0);
  }
  KILN_RETURN_IF_ERROR(normalize_axes(ctx, axes, rank));
  if (pads.size() != 2 * axes.size())
    return ctx.invalid("pads ", shape_to_string(pads), " must have 2 entries per padded axis (", axes.size(), ")");

  std::vector<int64_t> begin(static_cast<size_t>(rank), 0), end(static_cast<size_t>(rank), 0);
  for (size_t i = 0; i < axes.size(); ++i) {
    // Bounded so that no sum below can overflow; larger pads exceed any tensor Kiln can hold.
    constexpr int64_t kLimit = int64_t{1} << 48;
    const int64_t b = pads[i], e = pads[i + axes.size()];
    if (b > kLimit || b < -kLimit || e > kLimit || e < -kLimit)
      return ctx.invalid("pads ", shape_to_string(pads), " has an entry beyond +-2^48");
    begin[static_cast<size_t>(axes[i])] = b;
    end[static_cast<size_t>(axes[i])] = e;
  }
  Shape out(static_cast<size_t>(rank));
  std::vector<PadAxis> pad_axes(static_cast<size_t>(rank));
  for (size_t d = 0; d < out.size(); ++d) {
    const int64_t dim = x.shape[d];
    PadAxis a{begin[d], std::max<int64_t>(0, -begin[d]), dim - std::max<int64_t>(0, -end[d])};
    if (a.hi < a.lo)
      return ctx.invalid("pads ", shape_to_string(pads), " remove more than the ", dim, " elements of axis ", d);
    out[d] = dim + begin[d] + end[d];
    if (mode != PadMode::kConstant && a.hi == a.lo && out[d] > 0)
      return ctx.invalid("cannot pad empty axis ", d, " in ", mode_name, " mode");
    pad_axes[d] = a;
  }

  // The constant: an optional runtime input since opset 11, a float attribute before.
  const bool cv_input = ctx.opset() >= 11 && ctx.has_input(2) && mode == PadMode::kConstant;
  if (cv_input) {
    const TensorInfo& v = ctx.input(2);
    if (v.dtype != x.dtype)
      return ctx.invalid("constant_value has dtype ", dtype_name(v.dtype), ", expected ", dtype_name(x.dtype));
    if (v.num_elements() != 1)
      return ctx.invalid("constant_value must be a scalar, got shape ", shape_to_string(v.shape));
  }
  unsigned char cv_bytes[8] = {0};
  if (attr_value != 0) {
    // Pad-2 is defined for float data only; converting the float to an integer type could overflow.
    bool ok = visit_dtype<FloatTypes>(x.dtype, [&](auto tag) {
      using T = typename decltype(tag)::type;
      const T v = static_cast<T>(attr_value);
      std::memcpy(cv_bytes, &v, sizeof(T));
    });
    if (!ok) return ctx.unsupported("a nonzero 'value' attribute for ", dtype_name(x.dtype), " data");
  }

  const std::vector<int64_t> in_strides = strides_of(x.shape);
  ctx.set_output(0, x.dtype, out);
  KernelPtr kernel;
  visit_element_size(x.dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    T cv;
    std::memcpy(&cv, cv_bytes, sizeof(T));
    kernel = make_kernel([out, in_strides, pad_axes, mode, cv, cv_input](const KernelContext& k) {
      if (k.out(0).num_elements() == 0) return Status::ok();
      T value = cv;
      if (cv_input) std::memcpy(&value, k.in(2).data, sizeof(T));
      run_pad<T>(out, in_strides, pad_axes, mode, value, k.in(0).as<const T>(), k.out(0).as<T>());
      return Status::ok();
    });
  });
  return kernel;
}

// ---------------------------------------------------------------------------------------------
// Trilu, CumSum, ReverseSequence, OneHot

Result<KernelPtr> prepare_trilu(PrepareContext& ctx) {
  KILN_RETURN_IF_ERROR(require_storable(ctx, 0));
  const TensorInfo& x = ctx.input(0);
  if (x.rank() < 2) return ctx.invalid("input must have rank >= 2, got ", shape_to_string(x.shape));
  const bool upper = ctx.attr_int("upper", 1) != 0;
  const bool k_input = ctx.has_input(1);
  if (k_input) {
    const TensorInfo& kt = ctx.input(1);
    if (kt.dtype != DType::kInt64 || kt.num_elements() != 1 || kt.rank() > 1)
      return ctx.invalid("input k must be an int64 scalar, got ", dtype_name(kt.dtype), " ", shape_to_string(kt.shape));
  }
  const int64_t rows = x.shape[x.rank() - 2], cols = x.shape[x.rank() - 1];
  const int64_t batch = product(std::span(x.shape).first(x.rank() - 2));
  ctx.set_output(0, x.dtype, x.shape);
  KernelPtr kernel;
  visit_element_size(x.dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    kernel = make_kernel([rows, cols, batch, upper, k_input](const KernelContext& kc) {
      int64_t k = k_input ? kc.in(1).as<const int64_t>()[0] : 0;
      k = std::clamp(k, -rows - 1, cols + 1);  // beyond this every k behaves the same
      const T* x = kc.in(0).as<const T>();
      T* y = kc.out(0).as<T>();
      for (int64_t m = 0; m < batch; ++m) {
        for (int64_t i = 0; i < rows; ++i, x += cols, y += cols) {
          // Kept columns: j >= i + k (upper) or j <= i + k (lower).
          const int64_t edge = std::clamp(i + k + (upper ? 0 : 1), int64_t{0}, cols);
          for (int64_t j = 0; j < cols; ++j) y[j] = ((j >= edge) == upper) ? x[j] : T(0);
        }
      }
      return Status::ok();
    });
  });
  return kernel;
}

// Reads a possibly negative axis from a scalar tensor and maps it into [0, rank).
bool read_axis(const TensorView& t, int64_t rank, int64_t* axis) {
  const int64_t a = element_as_int64(t, 0);
  if (a < -rank || a >= rank) return false;
  *axis = a < 0 ? a + rank : a;
  return true;
}

Result<KernelPtr> prepare_cumsum(PrepareContext& ctx) {
  KILN_RETURN_IF_ERROR(ctx.require_input(0));
  KILN_RETURN_IF_ERROR(ctx.require_input(1));
  const TensorInfo& x = ctx.input(0);
  const TensorInfo& at = ctx.input(1);
  const int64_t rank = static_cast<int64_t>(x.rank());
  if (rank == 0) return ctx.invalid("input must have rank >= 1");
  if ((at.dtype != DType::kInt32 && at.dtype != DType::kInt64) || at.num_elements() != 1 || at.rank() > 1)
    return ctx.invalid("input axis must be an int32 or int64 scalar, got ", dtype_name(at.dtype), " ",
                       shape_to_string(at.shape));
  if (const Tensor* t = ctx.constant(1)) {
    int64_t axis;
    if (!read_axis(t->view(), rank, &axis))
      return ctx.invalid("axis ", element_as_int64(t->view(), 0), " is out of range for rank ", rank);
  }
  const bool exclusive = ctx.attr_int("exclusive", 0) != 0, reverse = ctx.attr_int("reverse", 0) != 0;
  ctx.set_output(0, x.dtype, x.shape);
  KernelPtr kernel;
  bool ok = visit_dtype<TypeList<float, double, int32_t, int64_t, uint32_t, uint64_t>>(x.dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    kernel = make_kernel([exclusive, reverse](const KernelContext& k) {
      const TensorView& xv = k.in(0);
      const int64_t rank = static_cast<int64_t>(xv.rank());
      int64_t axis;
      if (!read_axis(k.in(1), rank, &axis))
        return Status::out_of_range("CumSum: axis ", element_as_int64(k.in(1), 0), " is out of range for rank ", rank);
      int64_t outer = 1, inner = 1;
      for (int64_t d = 0; d < rank; ++d)
        if (d != axis) (d < axis ? outer : inner) *= xv.shape[static_cast<size_t>(d)];
      const int64_t len = xv.shape[static_cast<size_t>(axis)];
      const T* x = xv.as<const T>();
      T* y = k.out(0).as<T>();
      // Step along the axis; each output row is the previous one plus an input row.
      const int64_t step = reverse ? -inner : inner;
      for (int64_t o = 0; o < outer; ++o) {
        const int64_t base = o * len * inner + (reverse ? (len - 1) * inner : 0);
        for (int64_t t = 0; t < len; ++t) {
          const int64_t at = base + t * step;
          for (int64_t i = 0; i < inner; ++i) {
            if (t == 0) y[at + i] = exclusive ? T(0) : x[at + i];
            else y[at + i] = T(y[at - step + i] + (exclusive ? x[at - step + i] : x[at + i]));
          }
        }
      }
      return Status::ok();
    });
  });
  if (!ok) return ctx.unsupported_dtype(0);
  return kernel;
}

Result<KernelPtr> prepare_reverse_sequence(PrepareContext& ctx) {
  KILN_RETURN_IF_ERROR(require_storable(ctx, 0));
  KILN_RETURN_IF_ERROR(ctx.require_input(1));
  const TensorInfo& x = ctx.input(0);
  if (x.rank() < 2) return ctx.invalid("input must have rank >= 2, got ", shape_to_string(x.shape));
  const int64_t batch_axis = ctx.attr_int("batch_axis", 1), time_axis = ctx.attr_int("time_axis", 0);
  if (!((batch_axis == 0 && time_axis == 1) || (batch_axis == 1 && time_axis == 0)))
    return ctx.invalid("batch_axis and time_axis must be 0 and 1 in some order, got ", batch_axis, " and ", time_axis);
  const int64_t batch = x.shape[static_cast<size_t>(batch_axis)], time = x.shape[static_cast<size_t>(time_axis)];
  const TensorInfo& lens = ctx.input(1);
  if (lens.dtype != DType::kInt64 && lens.dtype != DType::kInt32)
    return ctx.invalid("sequence_lens must be int64, got ", dtype_name(lens.dtype));
  if (lens.shape != Shape{batch})
    return ctx.invalid("sequence_lens must have shape [", batch, "], got ", shape_to_string(lens.shape));
  const size_t es = dtype_size(x.dtype);
  const size_t inner = static_cast<size_t>(product(std::span(x.shape).subspan(2))) * es;
  const size_t batch_stride = batch_axis == 0 ? static_cast<size_t>(time) * inner : inner;
  const size_t time_stride = time_axis == 0 ? static_cast<size_t>(batch) * inner : inner;
  ctx.set_output(0, x.dtype, x.shape);
  return make_kernel([batch, time, inner, batch_stride, time_stride](const KernelContext& k) {
    const char* x = k.in(0).as<const char>();
    char* y = k.out(0).as<char>();
    for (int64_t b = 0; b < batch; ++b) {
      const int64_t len = element_as_int64(k.in(1), b);
      if (len < 0 || len > time)
        return Status::out_of_range("ReverseSequence: sequence_lens[", b, "] = ", len, " is outside [0, ", time, "]");
      for (int64_t t = 0; t < time; ++t) {
        const int64_t src = t < len ? len - 1 - t : t;
        copy_bytes(y + b * batch_stride + t * time_stride, x + b * batch_stride + src * time_stride, inner);
      }
    }
    return Status::ok();
  });
}

Result<KernelPtr> prepare_one_hot(PrepareContext& ctx) {
  KILN_RETURN_IF_ERROR(ctx.require_input(0));
  KILN_RETURN_IF_ERROR(require_storable(ctx, 2));
  const TensorInfo& ind = ctx.input(0);
  const TensorInfo& values = ctx.input(2);
  KILN_ASSIGN_OR_RETURN(int64_t depth, constant_scalar(ctx, 1, "depth"));
  if (depth <= 0) return ctx.invalid("depth must be positive, got ", depth);
  if (values.rank() != 1 || values.shape[0] != 2)
    return ctx.invalid("values must have shape [2] ([off, on]), got ", shape_to_string(values.shape));
  const int64_t rank = static_cast<int64_t>(ind.rank());
  int64_t axis = ctx.attr_int("axis", -1);
  if (axis < -rank - 1 || axis > rank)
    return ctx.invalid("axis ", axis, " is out of range [", -rank - 1, ", ", rank, "] for indices of rank ", rank);
  if (axis < 0) axis += rank + 1;
  KILN_RETURN_IF_ERROR(check_rank(ctx, ind.rank() + 1));
  Shape out = ind.shape;
  out.insert(out.begin() + axis, depth);
  const int64_t outer = product(std::span(ind.shape).first(static_cast<size_t>(axis)));
  const int64_t inner = product(std::span(ind.shape).subspan(static_cast<size_t>(axis)));
  ctx.set_output(0, values.dtype, out);
  KernelPtr kernel;
  bool ok = visit_dtype<NumericTypes>(ind.dtype, [&](auto itag) {
    using I = typename decltype(itag)::type;
    visit_element_size(values.dtype, [&](auto vtag) {
      using V = typename decltype(vtag)::type;
      kernel = make_kernel([outer, inner, depth](const KernelContext& k) {
        const I* idx = k.in(0).as<const I>();
        const V off = k.in(2).as<const V>()[0], on = k.in(2).as<const V>()[1];
        V* y = k.out(0).as<V>();
        for (int64_t i = 0, n = outer * depth * inner; i < n; ++i) y[i] = off;
        for (int64_t o = 0; o < outer; ++o) {
          for (int64_t i = 0; i < inner; ++i) {
            // Indices outside [-depth, depth - 1] select nothing; floats are truncated, after a
            // range check so that huge values and NaN never reach the conversion.
            const I v = idx[o * inner + i];
            int64_t d;
            if constexpr (std::is_floating_point_v<I>) {
              if (!(v > -static_cast<double>(depth) - 1 && v < static_cast<double>(depth))) continue;
              d = static_cast<int64_t>(v);
            } else if constexpr (std::is_unsigned_v<I>) {
              if (v >= static_cast<uint64_t>(depth)) continue;
              d = static_cast<int64_t>(v);
            } else {
              d = v;
            }
            if (d < 0) d += depth;
            if (d >= 0 && d < depth) y[(o * depth + d) * inner + i] = on;
          }
        }
        return Status::ok();
      });
    });
  });
  if (!ok) return ctx.unsupported_dtype(0);
  return kernel;
}

// ---------------------------------------------------------------------------------------------
// Compress, NonZero, Unique: output shapes depend on data, which must be known at compile time.

Result<KernelPtr> prepare_compress(PrepareContext& ctx) {
  KILN_RETURN_IF_ERROR(require_storable(ctx, 0));
  KILN_RETURN_IF_ERROR(ctx.require_input(1));
  const TensorInfo& x = ctx.input(0);
  const Tensor* cond = ctx.require_constant(1, "condition");
  if (!cond) return ctx.sticky_error();
  if (cond->dtype() != DType::kBool || cond->rank() != 1)
    return ctx.invalid("condition must be a 1-D bool tensor, got ", dtype_name(cond->dtype()), " ",
                       shape_to_string(cond->shape()));
  const bool has_axis = ctx.has_attr("axis");
  int64_t axis = 0;
  if (has_axis) {
    if (x.rank() == 0) return ctx.invalid("axis is given but the input is a scalar");
    KILN_RETURN_IF_ERROR(normalize_axis(ctx, ctx.attr_int("axis", 0), static_cast<int64_t>(x.rank()), &axis));
  }
  const int64_t dim = has_axis ? x.shape[static_cast<size_t>(axis)] : x.num_elements();
  const bool* c = cond->data<bool>();
  std::vector<int64_t> selected;
  for (int64_t i = 0; i < cond->num_elements(); ++i) {
    if (!c[i]) continue;
    // As numpy: a condition longer than the axis is fine as long as the extra entries are false.
    if (i >= dim) return ctx.invalid("condition selects index ", i, " but the axis has size ", dim);
    selected.push_back(i);
  }
  const size_t es = dtype_size(x.dtype);
  int64_t outer = 1, inner = 1;
  Shape out = {static_cast<int64_t>(selected.size())};
  if (has_axis) {
    outer = product(std::span(x.shape).first(static_cast<size_t>(axis)));
    inner = product(std::span(x.shape).subspan(static_cast<size_t>(axis) + 1));
    out = x.shape;
    out[static_cast<size_t>(axis)] = static_cast<int64_t>(selected.size());
  }
  ctx.set_output(0, x.dtype, out);
  const size_t chunk = static_cast<size_t>(inner) * es;
  return make_kernel([selected, outer, dim, chunk](const KernelContext& k) {
    const char* x = k.in(0).as<const char>();
    char* y = k.out(0).as<char>();
    for (int64_t o = 0; o < outer; ++o) {
      for (int64_t s : selected) {
        copy_bytes(y, x + static_cast<size_t>(o * dim + s) * chunk, chunk);
        y += chunk;
      }
    }
    return Status::ok();
  });
}

KernelPtr tensors_kernel(std::vector<Tensor> values) {
  auto holder = std::make_shared<std::vector<Tensor>>(std::move(values));
  return make_kernel([holder](const KernelContext& k) {
    for (size_t i = 0; i < holder->size() && i < k.outputs.size(); ++i)
      if (k.out(i).data) copy_bytes(k.out(i).data, (*holder)[i].raw(), (*holder)[i].byte_size());
    return Status::ok();
  });
}

Result<KernelPtr> prepare_non_zero(PrepareContext& ctx) {
  KILN_RETURN_IF_ERROR(ctx.require_input(0));
  const Tensor* x = ctx.require_constant(0, "X");
  if (!x) return ctx.sticky_error();
  std::vector<bool> nonzero(static_cast<size_t>(x->num_elements()));
  bool ok = visit_dtype<AllTypes>(x->dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    for (size_t i = 0; i < nonzero.size(); ++i) nonzero[i] = x->data<T>()[i] != T(0);
  });
  if (!ok && (x->dtype() == DType::kFloat16 || x->dtype() == DType::kBFloat16)) {
    ok = true;  // zero is the only value whose bits, sign aside, are all clear
    for (size_t i = 0; i < nonzero.size(); ++i) nonzero[i] = (x->data<uint16_t>()[i] & 0x7fff) != 0;
  }
  if (!ok) return ctx.unsupported_dtype(0);
  const int64_t nnz = std::count(nonzero.begin(), nonzero.end(), true);
  // A scalar counts as one-dimensional, as in numpy.
  const Shape shape = x->rank() == 0 ? Shape{1} : x->shape();
  const size_t rank = shape.size();
  Tensor out(DType::kInt64, {static_cast<int64_t>(rank), nnz});
  int64_t* y = out.data<int64_t>();
  std::vector<int64_t> idx(rank, 0);
  for (size_t i = 0, j = 0; i < nonzero.size(); ++i) {
    if (nonzero[i]) {
      for (size_t d = 0; d < rank; ++d) y[static_cast<int64_t>(d) * nnz + static_cast<int64_t>(j)] = idx[d];
      ++j;
    }
    for (size_t d = rank; d-- > 0;) {
      if (++idx[d] < shape[d]) break;
      idx[d] = 0;
    }
  }
  ctx.set_output(0, DType::kInt64, out.shape());
  std::vector<Tensor> results;
  results.push_back(std::move(out));
  return tensors_kernel(std::move(results));
}

// Total order for Unique: NaN sorts last and equals NaN, so sorting cannot misbehave.
template <typename T> bool less_total(T a, T b) {
  if constexpr (std::is_floating_point_v<T>) {
    if (std::isnan(a) || std::isnan(b)) return !std::isnan(a) && std::isnan(b);
  }
  return a < b;
}
template <typename T> bool equal_total(T a, T b) {
  if constexpr (std::is_floating_point_v<T>) {
    if (std::isnan(a) || std::isnan(b)) return std::isnan(a) && std::isnan(b);
  }
  return a == b;
}

Result<KernelPtr> prepare_unique(PrepareContext& ctx) {
  KILN_RETURN_IF_ERROR(ctx.require_input(0));
  const Tensor* x = ctx.require_constant(0, "X");
  if (!x) return ctx.sticky_error();
  const bool sorted = ctx.attr_int("sorted", 1) != 0;
  const bool has_axis = ctx.has_attr("axis");
  int64_t axis = 0;
  if (has_axis) {
    if (x->rank() == 0) return ctx.invalid("axis is given but the input is a scalar");
    KILN_RETURN_IF_ERROR(normalize_axis(ctx, ctx.attr_int("axis", 0), static_cast<int64_t>(x->rank()), &axis));
  }
  // Slices along the axis (single elements without one), each gathered into a row of `width`.
  const Shape& s = x->shape();
  const int64_t n = has_axis ? s[static_cast<size_t>(axis)] : x->num_elements();
  const int64_t outer = has_axis ? product(std::span(s).first(static_cast<size_t>(axis))) : 1;
  const int64_t inner = has_axis ? product(std::span(s).subspan(static_cast<size_t>(axis) + 1)) : 1;
  const int64_t width = outer * inner;
  std::vector<Tensor> results;
  bool ok = visit_dtype<AllTypes>(x->dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* xd = x->data<T>();
    auto at = [&](int64_t slice, int64_t j) { return xd[((j / inner) * n + slice) * inner + j % inner]; };
    auto row_less = [&](int64_t a, int64_t b) {
      for (int64_t j = 0; j < width; ++j) {
        const T va = at(a, j), vb = at(b, j);
        if (!equal_total(va, vb)) return less_total(va, vb);
      }
      return false;
    };
    auto row_equal = [&](int64_t a, int64_t b) {
      for (int64_t j = 0; j < width; ++j)
        if (!equal_total(at(a, j), at(b, j))) return false;
      return true;
    };
    std::vector<int64_t> order(static_cast<size_t>(n));
    std::iota(order.begin(), order.end(), 0);
    // Stable, so the first member of each group is the first occurrence.
    std::stable_sort(order.begin(), order.end(), row_less);
    std::vector<int64_t> first, counts, inverse(static_cast<size_t>(n));
    for (size_t p = 0; p < order.size(); ++p) {
      if (p == 0 || !row_equal(order[p - 1], order[p])) {
        first.push_back(order[p]);
        counts.push_back(0);
      }
      ++counts.back();
      inverse[static_cast<size_t>(order[p])] = static_cast<int64_t>(first.size()) - 1;
    }
    const size_t u = first.size();
    std::vector<int64_t> rank_of(u);  // output position of each sorted group
    std::iota(rank_of.begin(), rank_of.end(), 0);
    if (!sorted) {
      std::vector<int64_t> by_first(u);
      std::iota(by_first.begin(), by_first.end(), 0);
      std::sort(by_first.begin(), by_first.end(), [&](int64_t a, int64_t b) { return first[a] < first[b]; });
      for (size_t p = 0; p < u; ++p) rank_of[static_cast<size_t>(by_first[p])] = static_cast<int64_t>(p);
    }
    Shape yshape = {static_cast<int64_t>(u)};
    if (has_axis) {
      yshape = s;
      yshape[static_cast<size_t>(axis)] = static_cast<int64_t>(u);
    }
    Tensor y(x->dtype(), yshape), indices(DType::kInt64, {static_cast<int64_t>(u)});
    Tensor inv(DType::kInt64, {n}), cnt(DType::kInt64, {static_cast<int64_t>(u)});
    for (size_t g = 0; g < u; ++g) {
      const int64_t r = rank_of[g];
      indices.data<int64_t>()[r] = first[g];
      cnt.data<int64_t>()[r] = counts[g];
      for (int64_t j = 0; j < width; ++j)
        y.data<T>()[((j / inner) * static_cast<int64_t>(u) + r) * inner + j % inner] = at(first[g], j);
    }
    for (int64_t i = 0; i < n; ++i) inv.data<int64_t>()[i] = rank_of[static_cast<size_t>(inverse[static_cast<size_t>(i)])];
    results.push_back(std::move(y));
    results.push_back(std::move(indices));
    results.push_back(std::move(inv));
    results.push_back(std::move(cnt));
  });
  if (!ok) return ctx.unsupported_dtype(0);
  for (size_t i = 0; i < results.size(); ++i) ctx.set_output(i, results[i].dtype(), results[i].shape());
  return tensors_kernel(std::move(results));
}

constexpr OpDef kTensorOps[] = {
    {"", "Transpose", 1, kMaxOnnxOpset, prepare_transpose},
    {"", "Concat", 1, kMaxOnnxOpset, prepare_concat},
    {"", "Split", 1, kMaxOnnxOpset, prepare_split},
    {"", "Slice", 1, kMaxOnnxOpset, prepare_slice},
    {"", "Expand", 8, kMaxOnnxOpset, prepare_expand},
    {"", "Tile", 1, kMaxOnnxOpset, prepare_tile},
    {"", "Pad", 1, kMaxOnnxOpset, prepare_pad},
    {"", "DepthToSpace", 1, kMaxOnnxOpset, prepare_depth_to_space},
    {"", "SpaceToDepth", 1, kMaxOnnxOpset, prepare_space_to_depth},
    {"", "Trilu", 14, kMaxOnnxOpset, prepare_trilu},
    {"", "CumSum", 11, kMaxOnnxOpset, prepare_cumsum},
    {"", "ReverseSequence", 10, kMaxOnnxOpset, prepare_reverse_sequence},
    {"", "OneHot", 9, kMaxOnnxOpset, prepare_one_hot},
    {"", "Compress", 9, kMaxOnnxOpset, prepare_compress},
    {"", "NonZero", 9, kMaxOnnxOpset, prepare_non_zero},
    {"", "Unique", 11, kMaxOnnxOpset, prepare_unique},
};

}  // namespace

std::span<const OpDef> tensor_ops() { return kTensorOps; }

}  // namespace kiln::nn::ops
