// Reductions: ReduceSum ReduceMean ReduceMax ReduceMin ReduceProd ReduceL1 ReduceL2 ReduceLogSum
// ReduceLogSumExp ReduceSumSquare, and the index-selecting ArgMax ArgMin TopK Hardmax.
//
// Reduce* accumulate in double for floating-point data (float32 sums of many terms drift)
// and in 64-bit wrapping integers for integer data. A reduction over an empty set gives what
// ONNX defines from opset 18: 0 for the sums, 1 for Prod, -inf (or the lowest value) for Max,
// +inf (or the highest) for Min, -inf for LogSum and LogSumExp; Mean gives NaN (0 for integers).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>
#include <type_traits>

#include "kiln/nn/ops/families.h"
#include "kiln/nn/ops/op_util.h"

namespace kiln::nn::ops {
namespace {

// Floating-point comparisons that order NaN above every number (and equal to itself), which
// makes them strict weak orders and matches numpy's argmax / sort placement of NaN.
template <typename T>
bool value_less(T a, T b) {
  if constexpr (std::is_floating_point_v<T>) {
    if (std::isnan(b)) return !std::isnan(a);
    if (std::isnan(a)) return false;
  }
  return a < b;
}

// Converts an accumulated double to T without undefined behaviour for integer T (NaN, inf,
// out-of-range values saturate).
template <typename T>
T from_double(double v) {
  if constexpr (std::is_floating_point_v<T>) {
    return static_cast<T>(v);
  } else {
    if (std::isnan(v)) return T(0);
    if (v <= static_cast<double>(std::numeric_limits<T>::lowest())) return std::numeric_limits<T>::lowest();
    if (v >= static_cast<double>(std::numeric_limits<T>::max())) return std::numeric_limits<T>::max();
    return static_cast<T>(v);
  }
}

int64_t product(const Shape& s, size_t begin, size_t end) {
  int64_t p = 1;
  for (size_t i = begin; i < end; ++i) p *= s[i];
  return p;
}

// ---------------------------------------------------------------------------------------------
// Reduce*

enum class Red { kSum, kMean, kMax, kMin, kProd, kL1, kL2, kLogSum, kLogSumExp, kSumSquare };

template <Red R, typename T>
using Acc = std::conditional_t<
    std::is_floating_point_v<T> || R == Red::kMean || R == Red::kL2 || R == Red::kLogSum || R == Red::kLogSumExp,
    double, std::conditional_t<(R == Red::kMax || R == Red::kMin) && std::is_signed_v<T>, int64_t, uint64_t>>;

// The walk over the input: dimensions of size 1 dropped and neighbours that are both reduced
// or both kept merged, so the innermost loop is as long as possible.
struct ReducePlan {
  Shape walk;
  std::vector<int64_t> in_strides, out_strides;  // out_strides are 0 along reduced dimensions
  int64_t out_elems = 1, count = 1;              // count: input elements per output element
};

ReducePlan plan_reduce(const Shape& in, const std::vector<bool>& reduced) {
  ReducePlan p;
  std::vector<bool> walk_reduced;
  for (size_t d = 0; d < in.size(); ++d) {
    if (reduced[d]) p.count *= in[d];
    else p.out_elems *= in[d];
    if (in[d] == 1) continue;
    if (!p.walk.empty() && walk_reduced.back() == reduced[d]) {
      p.walk.back() *= in[d];
    } else {
      p.walk.push_back(in[d]);
      walk_reduced.push_back(reduced[d]);
    }
  }
  p.in_strides = strides_of(p.walk);
  p.out_strides.assign(p.walk.size(), 0);
  int64_t s = 1;
  for (size_t d = p.walk.size(); d-- > 0;) {
    if (walk_reduced[d]) continue;
    p.out_strides[d] = s;
    s *= p.walk[d];
  }
  return p;
}

template <Red R, typename T, typename A>
A reduce_init() {
  if constexpr (R == Red::kProd) {
    return A(1);
  } else if constexpr (R == Red::kMax || R == Red::kLogSumExp) {
    if constexpr (std::is_floating_point_v<A>) return -std::numeric_limits<A>::infinity();
    else return static_cast<A>(std::numeric_limits<T>::lowest());
  } else if constexpr (R == Red::kMin) {
    if constexpr (std::is_floating_point_v<A>) return std::numeric_limits<A>::infinity();
    else return static_cast<A>(std::numeric_limits<T>::max());
  } else {
    return A(0);
  }
}

template <Red R, typename T, typename A>
void reduce_update(A& a, T x) {
  const A v = static_cast<A>(x);
  if constexpr (R == Red::kSum || R == Red::kMean || R == Red::kLogSum) {
    a += v;
  } else if constexpr (R == Red::kL1) {
    if constexpr (std::is_floating_point_v<A>) a += std::fabs(v);
    else if constexpr (std::is_signed_v<T>) a += x < 0 ? A(0) - v : v;
    else a += v;
  } else if constexpr (R == Red::kL2 || R == Red::kSumSquare) {
    a += v * v;
  } else if constexpr (R == Red::kProd) {
    a *= v;
  } else if constexpr (R == Red::kMax || R == Red::kLogSumExp) {
    if (value_less(a, v)) a = v;
  } else if constexpr (R == Red::kMin) {
    if constexpr (std::is_floating_point_v<A>) {
      if (v < a || std::isnan(v)) a = v;
    } else {
      if (v < a) a = v;
    }
  }
}

template <Red R, typename T, typename A>
T reduce_finish(A a, int64_t count) {
  if constexpr (R == Red::kMean) {
    if (count == 0) return std::is_floating_point_v<T> ? from_double<T>(std::nan("")) : T(0);
    return from_double<T>(a / static_cast<double>(count));
  } else if constexpr (R == Red::kL2) {
    return from_double<T>(std::sqrt(a));
  } else if constexpr (R == Red::kLogSum) {
    return from_double<T>(std::log(a));
  } else if constexpr (std::is_floating_point_v<A>) {
    return from_double<T>(a);
  } else {
    return static_cast<T>(a);
  }
}

template <Red R, typename T>
Status run_reduce(const ReducePlan& p, const KernelContext& k) {
  using A = Acc<R, T>;
  const T* x = k.in(0).as<const T>();
  T* y = k.out(0).as<T>();
  A* acc = static_cast<A*>(k.scratch);
  const std::array<const int64_t*, 2> strides = {p.in_strides.data(), p.out_strides.data()};
  for (int64_t o = 0; o < p.out_elems; ++o) acc[o] = reduce_init<R, T, A>();
  for_each_strided<2>(p.walk, strides, [&](int64_t i, int64_t o) { reduce_update<R, T, A>(acc[o], x[i]); });
  if constexpr (R == Red::kLogSumExp) {
    // acc holds the maxima; subtracting them keeps exp() in range.
    A* sum = acc + p.out_elems;
    for (int64_t o = 0; o < p.out_elems; ++o) sum[o] = 0;
    for_each_strided<2>(p.walk, strides, [&](int64_t i, int64_t o) {
      if (std::isfinite(acc[o])) sum[o] += std::exp(static_cast<double>(x[i]) - acc[o]);
    });
    for (int64_t o = 0; o < p.out_elems; ++o)
      y[o] = from_double<T>(std::isfinite(acc[o]) ? acc[o] + std::log(sum[o]) : acc[o]);
  } else {
    for (int64_t o = 0; o < p.out_elems; ++o) y[o] = reduce_finish<R, T, A>(acc[o], p.count);
  }
  return Status::ok();
}

template <Red R>
Result<KernelPtr> prepare_reduce(PrepareContext& ctx) {
  KILN_RETURN_IF_ERROR(ctx.require_input(0));
  const TensorInfo& x = ctx.input(0);
  KILN_RETURN_IF_ERROR(check_rank(ctx, x.rank()));
  const int64_t rank = static_cast<int64_t>(x.rank());
  // ReduceSum took axes as an input from opset 13, the others from opset 18; noop_with_empty_axes
  // came with it.
  const int axes_input_opset = R == Red::kSum ? 13 : 18;
  std::vector<int64_t> axes;
  bool noop = false;
  if (ctx.opset() >= axes_input_opset) {
    if (ctx.has_attr("axes"))
      return ctx.invalid("from opset ", axes_input_opset, " axes is an input, not an attribute");
    if (ctx.has_input(1)) {
      const Tensor* t = ctx.require_constant(1, "axes");
      if (!t) return ctx.sticky_error();
      if (!dtype_is_integer(t->dtype()) || t->rank() > 1)
        return ctx.invalid("axes must be a 1-D integer tensor, got ", dtype_name(t->dtype()), " ",
                           shape_to_string(t->shape()));
      axes = to_int64_vector(*t);
    }
    noop = ctx.attr_int("noop_with_empty_axes", 0) != 0;
  } else {
    axes = ctx.attr_ints("axes");
  }
  const bool keepdims = ctx.attr_int("keepdims", 1) != 0;
  KILN_RETURN_IF_ERROR(normalize_axes(ctx, axes, rank));
  std::vector<bool> reduced(x.rank(), axes.empty() && !noop);
  if (rank > 0)
    for (int64_t a : axes) reduced[static_cast<size_t>(a)] = true;
  Shape out;
  for (size_t d = 0; d < x.rank(); ++d) {
    if (!reduced[d]) out.push_back(x.shape[d]);
    else if (keepdims) out.push_back(1);
  }
  ctx.set_output(0, x.dtype, out);
  ReducePlan plan = plan_reduce(x.shape, reduced);
  KernelPtr kernel;
  auto make = [&](auto tag) {
    using T = typename decltype(tag)::type;
    const size_t per_output = sizeof(Acc<R, T>) * (R == Red::kLogSumExp ? 2 : 1);
    ctx.request_scratch(static_cast<size_t>(plan.out_elems) * per_output);
    kernel = make_kernel([plan](const KernelContext& k) { return run_reduce<R, T>(plan, k); });
  };
  // ONNX allows bool only for ReduceMax and ReduceMin (opset 20).
  const bool ok = R == Red::kMax || R == Red::kMin ? visit_dtype<AllTypes>(x.dtype, make)
                                                   : visit_dtype<NumericTypes>(x.dtype, make);
  if (!ok) return ctx.unsupported_dtype(0);
  return kernel;
}

// ---------------------------------------------------------------------------------------------
// ArgMax, ArgMin, Hardmax

// For each of `inner` columns of an [n, inner] block, the row of the largest (kMax) or smallest
// value; ties go to the first row, or the last with `last`. A NaN counts as the extreme value,
// as in numpy.
template <typename T, bool kMax>
void arg_extreme_block(const T* x, int64_t n, int64_t inner, bool last, int64_t* best) {
  for (int64_t j = 0; j < inner; ++j) best[j] = 0;
  for (int64_t a = 1; a < n; ++a) {
    const T* row = x + a * inner;
    for (int64_t j = 0; j < inner; ++j) {
      const T v = row[j];
      const T b = x[best[j] * inner + j];
      bool better;
      if constexpr (std::is_floating_point_v<T>) {
        if (std::isnan(v) || std::isnan(b)) {
          better = std::isnan(v) && (last || !std::isnan(b));
          if (better) best[j] = a;
          continue;
        }
      }
      if constexpr (kMax) better = last ? v >= b : v > b;
      else better = last ? v <= b : v < b;
      if (better) best[j] = a;
    }
  }
}

struct AxisSplit {
  int64_t outer, n, inner;
};

AxisSplit split_at(const Shape& s, size_t axis) {
  return {product(s, 0, axis), s[axis], product(s, axis + 1, s.size())};
}

template <bool kMax>
Result<KernelPtr> prepare_arg(PrepareContext& ctx) {
  KILN_RETURN_IF_ERROR(ctx.require_input(0));
  const TensorInfo& x = ctx.input(0);
  if (x.rank() == 0) return ctx.invalid("input must have rank >= 1, got a scalar");
  int64_t axis = 0;
  KILN_RETURN_IF_ERROR(normalize_axis(ctx, ctx.attr_int("axis", 0), static_cast<int64_t>(x.rank()), &axis));
  const bool keepdims = ctx.attr_int("keepdims", 1) != 0;
  const bool last = ctx.opset() >= 12 && ctx.attr_int("select_last_index", 0) != 0;
  const AxisSplit s = split_at(x.shape, static_cast<size_t>(axis));
  if (s.n == 0 && s.outer * s.inner > 0)
    return ctx.invalid("cannot select an index along axis ", axis, " of size 0 in ", shape_to_string(x.shape));
  Shape out = x.shape;
  if (keepdims) out[static_cast<size_t>(axis)] = 1;
  else out.erase(out.begin() + axis);
  ctx.set_output(0, DType::kInt64, out);
  KernelPtr kernel;
  bool ok = visit_dtype<NumericTypes>(x.dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    kernel = make_kernel([s, last](const KernelContext& k) {
      const T* in = k.in(0).as<const T>();
      int64_t* y = k.out(0).as<int64_t>();
      for (int64_t o = 0; o < s.outer; ++o)
        arg_extreme_block<T, kMax>(in + o * s.n * s.inner, s.n, s.inner, last, y + o * s.inner);
      return Status::ok();
    });
  });
  if (!ok) return ctx.unsupported_dtype(0);
  return kernel;
}

// Opset < 13 Softmax-style ops see the input as a 2-D matrix split at `axis`.
Result<AxisSplit> legacy_2d_split(const PrepareContext& ctx, const Shape& shape, int64_t axis) {
  const int64_t r = static_cast<int64_t>(shape.size());
  if (axis < -r || axis > r) return ctx.invalid("axis ", axis, " is out of range [", -r, ", ", r, "] for rank ", r);
  const size_t a = static_cast<size_t>(axis < 0 ? axis + r : axis);
  return AxisSplit{product(shape, 0, a), product(shape, a, shape.size()), 1};
}

Result<KernelPtr> prepare_hardmax(PrepareContext& ctx) {
  KILN_RETURN_IF_ERROR(ctx.require_input(0));
  const TensorInfo& x = ctx.input(0);
  if (x.rank() == 0) return ctx.invalid("input must have rank >= 1, got a scalar");
  AxisSplit s;
  if (ctx.opset() < 13) {
    KILN_ASSIGN_OR_RETURN(s, legacy_2d_split(ctx, x.shape, ctx.attr_int("axis", 1)));
  } else {
    int64_t axis = 0;
    KILN_RETURN_IF_ERROR(normalize_axis(ctx, ctx.attr_int("axis", -1), static_cast<int64_t>(x.rank()), &axis));
    s = split_at(x.shape, static_cast<size_t>(axis));
  }
  ctx.set_output(0, x.dtype, x.shape);
  ctx.request_scratch(static_cast<size_t>(s.inner) * sizeof(int64_t));
  KernelPtr kernel;
  bool ok = visit_dtype<FloatTypes>(x.dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    kernel = make_kernel([s](const KernelContext& k) {
      const T* in = k.in(0).as<const T>();
      T* y = k.out(0).as<T>();
      int64_t* best = static_cast<int64_t*>(k.scratch);
      const int64_t total = s.outer * s.n * s.inner;
      for (int64_t i = 0; i < total; ++i) y[i] = T(0);
      if (s.n == 0) return Status::ok();
      for (int64_t o = 0; o < s.outer; ++o) {
        const int64_t base = o * s.n * s.inner;
        arg_extreme_block<T, true>(in + base, s.n, s.inner, false, best);
        for (int64_t j = 0; j < s.inner; ++j) y[base + best[j] * s.inner + j] = T(1);
      }
      return Status::ok();
    });
  });
  if (!ok) return ctx.unsupported_dtype(0);
  return kernel;
}

// ---------------------------------------------------------------------------------------------
// TopK

struct TopKParams {
  AxisSplit s;
  int64_t k;
  bool largest, want_values, want_indices;
};

template <typename T>
Status run_topk(const TopKParams& p, const KernelContext& kc) {
  const T* x = kc.in(0).as<const T>();
  T* values = p.want_values ? kc.out(0).as<T>() : nullptr;
  int64_t* indices = p.want_indices ? kc.out(1).as<int64_t>() : nullptr;
  int64_t* order = static_cast<int64_t*>(kc.scratch);
  const int64_t n = p.s.n, inner = p.s.inner, k = p.k;
  if (k == 0) return Status::ok();
  for (int64_t o = 0; o < p.s.outer; ++o) {
    for (int64_t j = 0; j < inner; ++j) {
      const T* col = x + o * n * inner + j;
      std::iota(order, order + n, int64_t{0});
      // Ties go to the lower index, like the ONNX reference's stable sort.
      auto before = [&](int64_t a, int64_t b) {
        const T va = col[a * inner], vb = col[b * inner];
        if (value_less(va, vb)) return !p.largest;
        if (value_less(vb, va)) return p.largest;
        return a < b;
      };
      std::partial_sort(order, order + k, order + n, before);
      const int64_t base = o * k * inner + j;
      for (int64_t r = 0; r < k; ++r) {
        if (values) values[base + r * inner] = col[order[r] * inner];
        if (indices) indices[base + r * inner] = order[r];
      }
    }
  }
  return Status::ok();
}

Result<KernelPtr> prepare_topk(PrepareContext& ctx) {
  KILN_RETURN_IF_ERROR(ctx.require_input(0));
  const TensorInfo& x = ctx.input(0);
  if (x.rank() == 0) return ctx.invalid("input must have rank >= 1, got a scalar");
  int64_t axis = 0;
  KILN_RETURN_IF_ERROR(normalize_axis(ctx, ctx.attr_int("axis", -1), static_cast<int64_t>(x.rank()), &axis));
  int64_t k = 0;
  if (ctx.opset() < 10) {
    if (!ctx.has_attr("k")) return ctx.invalid("attribute k is required before opset 10");
    k = ctx.attr_int("k", 0);
  } else {
    KILN_RETURN_IF_ERROR(ctx.require_input(1));
    const Tensor* t = ctx.require_constant(1, "K");
    if (!t) return ctx.sticky_error();
    if (!dtype_is_integer(t->dtype()) || t->num_elements() != 1 || t->rank() > 1)
      return ctx.invalid("K must be a 1-element integer tensor, got ", dtype_name(t->dtype()), " ",
                         shape_to_string(t->shape()));
    k = element_as_int64(t->view(), 0);
  }
  TopKParams p;
  p.s = split_at(x.shape, static_cast<size_t>(axis));
  if (k < 0 || k > p.s.n)
    return ctx.invalid("k must be in [0, ", p.s.n, "] (the size of axis ", axis, "), got ", k);
  p.k = k;
  p.largest = ctx.opset() < 11 || ctx.attr_int("largest", 1) != 0;
  // sorted=0 leaves the order unspecified, so sorted output is always valid.
  p.want_values = ctx.has_output(0);
  p.want_indices = ctx.has_output(1);
  Shape out = x.shape;
  out[static_cast<size_t>(axis)] = k;
  ctx.set_output(0, x.dtype, out);
  ctx.set_output(1, DType::kInt64, out);
  ctx.request_scratch(static_cast<size_t>(p.s.n) * sizeof(int64_t));
  KernelPtr kernel;
  bool ok = visit_dtype<NumericTypes>(x.dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    kernel = make_kernel([p](const KernelContext& kc) { return run_topk<T>(p, kc); });
  });
  if (!ok) return ctx.unsupported_dtype(0);
  return kernel;
}

constexpr OpDef kReduceOps[] = {
    {"", "ReduceSum", 1, kMaxOnnxOpset, prepare_reduce<Red::kSum>},
    {"", "ReduceMean", 1, kMaxOnnxOpset, prepare_reduce<Red::kMean>},
    {"", "ReduceMax", 1, kMaxOnnxOpset, prepare_reduce<Red::kMax>},
    {"", "ReduceMin", 1, kMaxOnnxOpset, prepare_reduce<Red::kMin>},
    {"", "ReduceProd", 1, kMaxOnnxOpset, prepare_reduce<Red::kProd>},
    {"", "ReduceL1", 1, kMaxOnnxOpset, prepare_reduce<Red::kL1>},
    {"", "ReduceL2", 1, kMaxOnnxOpset, prepare_reduce<Red::kL2>},
    {"", "ReduceLogSum", 1, kMaxOnnxOpset, prepare_reduce<Red::kLogSum>},
    {"", "ReduceLogSumExp", 1, kMaxOnnxOpset, prepare_reduce<Red::kLogSumExp>},
    {"", "ReduceSumSquare", 1, kMaxOnnxOpset, prepare_reduce<Red::kSumSquare>},
    {"", "ArgMax", 1, kMaxOnnxOpset, prepare_arg<true>},
    {"", "ArgMin", 1, kMaxOnnxOpset, prepare_arg<false>},
    {"", "TopK", 1, kMaxOnnxOpset, prepare_topk},
    {"", "Hardmax", 1, kMaxOnnxOpset, prepare_hardmax},
};

}  // namespace

std::span<const OpDef> reduce_ops() { return kReduceOps; }

}  // namespace kiln::nn::ops
