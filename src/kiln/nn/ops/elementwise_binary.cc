// Binary and variadic elementwise operators with numpy broadcasting: arithmetic, comparison,
// logic, bit shifts, Max/Min/Sum/Mean, Where and PRelu.
#include <cmath>
#include <limits>
#include <type_traits>

#include "kiln/nn/op_registry.h"
#include "kiln/nn/ops/families.h"
#include "kiln/nn/ops/op_util.h"

namespace kiln::nn::ops {
namespace {

// Precomputed broadcast walk for two inputs into one output.
struct Broadcast2 {
  Shape out;
  std::vector<int64_t> sa, sb, so;
  enum class Mode { kSame, kScalarB, kScalarA, kRowB, kRowA, kGeneral } mode;
  int64_t cols = 0;  // kRowA / kRowB: the broadcast operand is one row of `cols` elements
};

// True when `in` (left-padded with 1s) is a run of 1s followed by out's trailing dimensions: then
// it is one contiguous row repeated over the leading dimensions.
bool is_trailing_row(const Shape& in, const Shape& out) {
  size_t off = out.size() - in.size();
  size_t first = 0;
  while (first < in.size() && in[first] == 1) ++first;
  for (size_t i = first; i < in.size(); ++i)
    if (in[i] != out[off + i]) return false;
  return true;
}

Broadcast2 plan_broadcast(const Shape& a, const Shape& b, const Shape& out) {
  Broadcast2 p;
  p.out = out;
  p.sa = broadcast_strides(a, out);
  p.sb = broadcast_strides(b, out);
  p.so = strides_of(out);
  int64_t na = num_elements(a), nb = num_elements(b), no = num_elements(out);
  if (na == no && nb == no && a == b) p.mode = Broadcast2::Mode::kSame;
  else if (nb == 1 && na == no) p.mode = Broadcast2::Mode::kScalarB;
  else if (na == 1 && nb == no) p.mode = Broadcast2::Mode::kScalarA;
  else if (na == no && nb > 0 && is_trailing_row(b, out)) p.mode = Broadcast2::Mode::kRowB, p.cols = nb;
  else if (nb == no && na > 0 && is_trailing_row(a, out)) p.mode = Broadcast2::Mode::kRowA, p.cols = na;
  else p.mode = Broadcast2::Mode::kGeneral;
  return p;
}

template <typename T, typename R, typename Op>
void apply_binary(const Broadcast2& p, const T* a, const T* b, R* y, Op op) {
  const int64_t n = num_elements(p.out);
  switch (p.mode) {
    case Broadcast2::Mode::kSame:
      for (int64_t i = 0; i < n; ++i) y[i] = op(a[i], b[i]);
      return;
    case Broadcast2::Mode::kScalarB: {
      const T s = b[0];
      for (int64_t i = 0; i < n; ++i) y[i] = op(a[i], s);
      return;
    }
    case Broadcast2::Mode::kScalarA: {
      const T s = a[0];
      for (int64_t i = 0; i < n; ++i) y[i] = op(s, b[i]);
      return;
    }
    case Broadcast2::Mode::kRowB:
      for (int64_t r = 0; r < n; r += p.cols)
        for (int64_t j = 0; j < p.cols; ++j) y[r + j] = op(a[r + j], b[j]);
      return;
    case Broadcast2::Mode::kRowA:
      for (int64_t r = 0; r < n; r += p.cols)
        for (int64_t j = 0; j < p.cols; ++j) y[r + j] = op(a[j], b[r + j]);
      return;
    case Broadcast2::Mode::kGeneral:
      for_each_strided<3>(p.out, {p.sa.data(), p.sb.data(), p.so.data()},
                          [&](int64_t ia, int64_t ib, int64_t io) { y[io] = op(a[ia], b[ib]); });
      return;
  }
}

template <typename T, typename R, typename Op>
KernelPtr binary_kernel(const Shape& a, const Shape& b, const Shape& out, Op op) {
  Broadcast2 p = plan_broadcast(a, b, out);
  return make_kernel([p, op](const KernelContext& k) {
    apply_binary<T, R>(p, k.in(0).as<const T>(), k.in(1).as<const T>(), k.out(0).as<R>(), op);
    return Status::ok();
  });
}

// Integer division that cannot trap: x / 0 gives 0 and MIN / -1 wraps, instead of SIGFPE.
template <typename T> T safe_div(T a, T b) {
  if constexpr (std::is_integral_v<T>) {
    if (b == 0) return 0;
    if constexpr (std::is_signed_v<T>)
      if (a == std::numeric_limits<T>::min() && b == T(-1)) return a;
    return a / b;
  } else {
    return a / b;
  }
}

template <typename T> T int_mod(T a, T b) {  // result takes the sign of the divisor (Python %)
  if (b == 0) return 0;
  if constexpr (std::is_signed_v<T>) {
    if (b == T(-1)) return 0;
    T r = a % b;
    if (r != 0 && ((r < 0) != (b < 0))) r += b;
    return r;
  } else {
    return a % b;
  }
}

template <typename T> T c_fmod(T a, T b) {  // result takes the sign of the dividend (C fmod)
  if constexpr (std::is_floating_point_v<T>) {
    return std::fmod(a, b);
  } else {
    if (b == 0) return 0;
    if constexpr (std::is_signed_v<T>)
      if (b == T(-1)) return 0;
    return a % b;
  }
}

enum class Arith { kAdd, kSub, kMul, kDiv };

template <Arith A>
Result<KernelPtr> prepare_arith(PrepareContext& ctx) {
  KILN_RETURN_IF_ERROR(ctx.require_input(0));
  KILN_RETURN_IF_ERROR(ctx.require_input(1));
  const TensorInfo& a = ctx.input(0);
  const TensorInfo& b = ctx.input(1);
  if (a.dtype != b.dtype)
    return ctx.invalid("inputs have different dtypes ", dtype_name(a.dtype), " and ", dtype_name(b.dtype));
  Shape b_shape = b.shape;
  if (ctx.opset() < 7) {
    // Opset < 7 broadcast only B onto A, and only when asked, aligning B's dimensions with A's
    // starting at `axis` (default: the trailing dimensions, as numpy does).
    if (ctx.attr_int("broadcast", 0) == 0) {
      if (a.shape != b.shape)
        return ctx.invalid("shapes ", shape_to_string(a.shape), " and ", shape_to_string(b.shape),
                           " differ and broadcast=0 (opset ", ctx.opset(), ")");
    } else if (ctx.has_attr("axis")) {
      int64_t axis = 0;
      KILN_RETURN_IF_ERROR(normalize_axis(ctx, ctx.attr_int("axis", 0), static_cast<int64_t>(a.rank()), &axis));
      if (axis + static_cast<int64_t>(b.rank()) > static_cast<int64_t>(a.rank()))
        return ctx.invalid("B of shape ", shape_to_string(b.shape), " does not fit A ", shape_to_string(a.shape),
                           " at axis ", axis);
      b_shape.insert(b_shape.end(), a.rank() - axis - b.rank(), 1);
    }
  }
  KILN_ASSIGN_OR_RETURN(Shape out, broadcast_shapes(ctx, a.shape, b_shape));
  if (ctx.opset() < 7 && out != a.shape)
    return ctx.invalid("B of shape ", shape_to_string(b.shape), " does not broadcast to A ", shape_to_string(a.shape));
  KILN_RETURN_IF_ERROR(check_rank(ctx, out.size()));
  ctx.set_output(0, a.dtype, out);
  KernelPtr k;
  bool ok = visit_dtype<NumericTypes>(a.dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    if constexpr (A == Arith::kAdd) k = binary_kernel<T, T>(a.shape, b_shape, out, [](T x, T y) { return T(x + y); });
    if constexpr (A == Arith::kSub) k = binary_kernel<T, T>(a.shape, b_shape, out, [](T x, T y) { return T(x - y); });
    if constexpr (A == Arith::kMul) k = binary_kernel<T, T>(a.shape, b_shape, out, [](T x, T y) { return T(x * y); });
    if constexpr (A == Arith::kDiv) k = binary_kernel<T, T>(a.shape, b_shape, out, [](T x, T y) { return safe_div(x, y); });
  });
  if (!ok) return ctx.unsupported_dtype(0);
  return k;
}

template <typename B, typename E> B pow_value(B base, E exp) {
  if constexpr (std::is_integral_v<B> && std::is_integral_v<E>) {
    if (exp < 0) return base == 1 ? 1 : (base == B(-1) ? ((exp % 2) ? B(-1) : B(1)) : 0);
    B r = 1;
    for (E i = 0; i < exp && i < 64; ++i) r = static_cast<B>(r * base);
    return r;
  } else {
    return static_cast<B>(std::pow(static_cast<double>(base), static_cast<double>(exp)));
  }
}

Result<KernelPtr> prepare_pow(PrepareContext& ctx) {
  KILN_RETURN_IF_ERROR(ctx.require_input(0));
  KILN_RETURN_IF_ERROR(ctx.require_input(1));
  const TensorInfo& a = ctx.input(0);
  const TensorInfo& b = ctx.input(1);
  KILN_ASSIGN_OR_RETURN(Shape out, broadcast_shapes(ctx, a.shape, b.shape));
  KILN_RETURN_IF_ERROR(check_rank(ctx, out.size()));
  ctx.set_output(0, a.dtype, out);
  Broadcast2 p = plan_broadcast(a.shape, b.shape, out);
  KernelPtr k;
  bool ok = visit_dtype<TypeList<float, double, int32_t, int64_t>>(a.dtype, [&](auto bt) {
    using B = typename decltype(bt)::type;
    visit_dtype<TypeList<float, double, int8_t, uint8_t, int16_t, uint16_t, int32_t, uint32_t, int64_t, uint64_t>>(
        b.dtype, [&](auto et) {
          using E = typename decltype(et)::type;
          k = make_kernel([p](const KernelContext& kc) {
            const B* x = kc.in(0).as<const B>();
            const E* e = kc.in(1).as<const E>();
            B* y = kc.out(0).as<B>();
            for_each_strided<3>(p.out, {p.sa.data(), p.sb.data(), p.so.data()},
                                [&](int64_t ia, int64_t ib, int64_t io) { y[io] = pow_value<B, E>(x[ia], e[ib]); });
            return Status::ok();
          });
        });
  });
  if (!ok || !k) return ctx.unsupported("base dtype ", dtype_name(a.dtype), " with exponent dtype ", dtype_name(b.dtype));
  return k;
}

Result<KernelPtr> prepare_mod(PrepareContext& ctx) {
  KILN_RETURN_IF_ERROR(ctx.require_input(0));
  KILN_RETURN_IF_ERROR(ctx.require_input(1));
  const TensorInfo& a = ctx.input(0);
  const TensorInfo& b = ctx.input(1);
  if (a.dtype != b.dtype) return ctx.invalid("inputs have different dtypes");
  bool fmod = ctx.attr_int("fmod", 0) != 0;
  if (!fmod && dtype_is_float(a.dtype)) return ctx.invalid("fmod must be 1 for floating-point inputs");
  KILN_ASSIGN_OR_RETURN(Shape out, broadcast_shapes(ctx, a.shape, b.shape));
  KILN_RETURN_IF_ERROR(check_rank(ctx, out.size()));
  ctx.set_output(0, a.dtype, out);
  KernelPtr k;
  bool ok = visit_dtype<NumericTypes>(a.dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    if (fmod) k = binary_kernel<T, T>(a.shape, b.shape, out, [](T x, T y) { return c_fmod(x, y); });
    else if constexpr (std::is_integral_v<T>) k = binary_kernel<T, T>(a.shape, b.shape, out, [](T x, T y) { return int_mod(x, y); });
  });
  if (!ok || !k) return ctx.unsupported_dtype(0);
  return k;
}

enum class Cmp { kEq, kGt, kGe, kLt, kLe };

template <Cmp C>
Result<KernelPtr> prepare_compare(PrepareContext& ctx) {
  KILN_RETURN_IF_ERROR(ctx.require_input(0));
  KILN_RETURN_IF_ERROR(ctx.require_input(1));
  const TensorInfo& a = ctx.input(0);
  const TensorInfo& b = ctx.input(1);
  if (a.dtype != b.dtype) return ctx.invalid("inputs have different dtypes");
  KILN_ASSIGN_OR_RETURN(Shape out, broadcast_shapes(ctx, a.shape, b.shape));
  KILN_RETURN_IF_ERROR(check_rank(ctx, out.size()));
  ctx.set_output(0, DType::kBool, out);
  KernelPtr k;
  bool ok = visit_dtype<AllTypes>(a.dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    if constexpr (C == Cmp::kEq) k = binary_kernel<T, bool>(a.shape, b.shape, out, [](T x, T y) { return x == y; });
    if constexpr (C == Cmp::kGt) k = binary_kernel<T, bool>(a.shape, b.shape, out, [](T x, T y) { return x > y; });
    if constexpr (C == Cmp::kGe) k = binary_kernel<T, bool>(a.shape, b.shape, out, [](T x, T y) { return x >= y; });
    if constexpr (C == Cmp::kLt) k = binary_kernel<T, bool>(a.shape, b.shape, out, [](T x, T y) { return x < y; });
    if constexpr (C == Cmp::kLe) k = binary_kernel<T, bool>(a.shape, b.shape, out, [](T x, T y) { return x <= y; });
  });
  if (!ok) return ctx.unsupported_dtype(0);
  return k;
}

enum class Logic { kAnd, kOr, kXor };

template <Logic L>
Result<KernelPtr> prepare_logic(PrepareContext& ctx) {
  KILN_RETURN_IF_ERROR(ctx.require_input(0));
  KILN_RETURN_IF_ERROR(ctx.require_input(1));
  const TensorInfo& a = ctx.input(0);
  const TensorInfo& b = ctx.input(1);
  if (a.dtype != DType::kBool || b.dtype != DType::kBool) return ctx.invalid("inputs must be bool");
  KILN_ASSIGN_OR_RETURN(Shape out, broadcast_shapes(ctx, a.shape, b.shape));
  KILN_RETURN_IF_ERROR(check_rank(ctx, out.size()));
  ctx.set_output(0, DType::kBool, out);
  if constexpr (L == Logic::kAnd) return binary_kernel<bool, bool>(a.shape, b.shape, out, [](bool x, bool y) { return x && y; });
  if constexpr (L == Logic::kOr) return binary_kernel<bool, bool>(a.shape, b.shape, out, [](bool x, bool y) { return x || y; });
  return binary_kernel<bool, bool>(a.shape, b.shape, out, [](bool x, bool y) { return x != y; });
}

Result<KernelPtr> prepare_bitshift(PrepareContext& ctx) {
  KILN_RETURN_IF_ERROR(ctx.require_input(0));
  KILN_RETURN_IF_ERROR(ctx.require_input(1));
  const TensorInfo& a = ctx.input(0);
  const TensorInfo& b = ctx.input(1);
  if (a.dtype != b.dtype) return ctx.invalid("inputs have different dtypes");
  std::string dir = ctx.attr_string("direction", "");
  if (dir != "LEFT" && dir != "RIGHT") return ctx.invalid("direction must be LEFT or RIGHT, got '", dir, "'");
  bool left = dir == "LEFT";
  KILN_ASSIGN_OR_RETURN(Shape out, broadcast_shapes(ctx, a.shape, b.shape));
  KILN_RETURN_IF_ERROR(check_rank(ctx, out.size()));
  ctx.set_output(0, a.dtype, out);
  KernelPtr k;
  bool ok = visit_dtype<TypeList<uint8_t, uint16_t, uint32_t, uint64_t>>(a.dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    constexpr T bits = sizeof(T) * 8;
    k = binary_kernel<T, T>(a.shape, b.shape, out, [left](T x, T s) {
      if (s >= bits) return T(0);
      return left ? T(x << s) : T(x >> s);
    });
  });
  if (!ok) return ctx.unsupported_dtype(0);
  return k;
}

enum class Variadic { kMax, kMin, kSum, kMean };

template <Variadic V>
Result<KernelPtr> prepare_variadic(PrepareContext& ctx) {
  size_t n = ctx.num_inputs();
  if (n == 0) return ctx.invalid("needs at least one input");
  std::vector<Shape> shapes;
  for (size_t i = 0; i < n; ++i) {
    KILN_RETURN_IF_ERROR(ctx.require_input(i));
    if (ctx.input(i).dtype != ctx.input(0).dtype) return ctx.invalid("inputs have different dtypes");
    shapes.push_back(ctx.input(i).shape);
  }
  KILN_ASSIGN_OR_RETURN(Shape out, broadcast_shapes(ctx, shapes));
  KILN_RETURN_IF_ERROR(check_rank(ctx, out.size()));
  DType dt = ctx.input(0).dtype;
  ctx.set_output(0, dt, out);
  std::vector<std::vector<int64_t>> strides;
  for (const Shape& s : shapes) strides.push_back(broadcast_strides(s, out));
  std::vector<int64_t> so = strides_of(out);
  KernelPtr k;
  using Types = std::conditional_t<V == Variadic::kMean, FloatTypes, NumericTypes>;
  bool ok = visit_dtype<Types>(dt, [&](auto tag) {
    using T = typename decltype(tag)::type;
    k = make_kernel([out, strides, so, n](const KernelContext& kc) {
      T* y = kc.out(0).as<T>();
      // Start from input 0, then fold each further input in.
      const T* x0 = kc.in(0).as<const T>();
      for_each_strided<2>(out, {strides[0].data(), so.data()}, [&](int64_t i, int64_t o) { y[o] = x0[i]; });
      for (size_t j = 1; j < n; ++j) {
        const T* x = kc.in(j).as<const T>();
        for_each_strided<2>(out, {strides[j].data(), so.data()}, [&](int64_t i, int64_t o) {
          if constexpr (V == Variadic::kMax) {
            if constexpr (std::is_floating_point_v<T>) y[o] = (std::isnan(x[i]) || x[i] > y[o]) ? x[i] : y[o];
            else y[o] = x[i] > y[o] ? x[i] : y[o];
          } else if constexpr (V == Variadic::kMin) {
            if constexpr (std::is_floating_point_v<T>) y[o] = (std::isnan(x[i]) || x[i] < y[o]) ? x[i] : y[o];
            else y[o] = x[i] < y[o] ? x[i] : y[o];
          } else {
            y[o] = T(y[o] + x[i]);
          }
        });
      }
      if constexpr (V == Variadic::kMean) {
        const int64_t total = num_elements(out);
        for (int64_t i = 0; i < total; ++i) y[i] = y[i] / static_cast<T>(n);
      }
      return Status::ok();
    });
  });
  if (!ok) return ctx.unsupported_dtype(0);
  return k;
}

Result<KernelPtr> prepare_where(PrepareContext& ctx) {
  for (size_t i = 0; i < 3; ++i) KILN_RETURN_IF_ERROR(ctx.require_input(i));
  const TensorInfo& c = ctx.input(0);
  const TensorInfo& x = ctx.input(1);
  const TensorInfo& y = ctx.input(2);
  if (c.dtype != DType::kBool) return ctx.invalid("condition must be bool, got ", dtype_name(c.dtype));
  if (x.dtype != y.dtype) return ctx.invalid("X and Y have different dtypes");
  Shape shapes[3] = {c.shape, x.shape, y.shape};
  KILN_ASSIGN_OR_RETURN(Shape out, broadcast_shapes(ctx, std::span<const Shape>(shapes, 3)));
  KILN_RETURN_IF_ERROR(check_rank(ctx, out.size()));
  ctx.set_output(0, x.dtype, out);
  auto sc = broadcast_strides(c.shape, out), sx = broadcast_strides(x.shape, out), sy = broadcast_strides(y.shape, out);
  auto so = strides_of(out);
  KernelPtr k;
  bool ok = visit_dtype<AllTypes>(x.dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    k = make_kernel([=](const KernelContext& kc) {
      const bool* cond = kc.in(0).as<const bool>();
      const T* a = kc.in(1).as<const T>();
      const T* b = kc.in(2).as<const T>();
      T* o = kc.out(0).as<T>();
      for_each_strided<4>(out, {sc.data(), sx.data(), sy.data(), so.data()},
                          [&](int64_t ic, int64_t ix, int64_t iy, int64_t io) { o[io] = cond[ic] ? a[ix] : b[iy]; });
      return Status::ok();
    });
  });
  if (!ok) return ctx.unsupported_dtype(1);
  return k;
}

Result<KernelPtr> prepare_prelu(PrepareContext& ctx) {
  KILN_RETURN_IF_ERROR(ctx.require_input(0));
  KILN_RETURN_IF_ERROR(ctx.require_input(1));
  const TensorInfo& x = ctx.input(0);
  Shape slope = ctx.input(1).shape;
  if (ctx.input(1).dtype != x.dtype) return ctx.invalid("X and slope have different dtypes");
  // Opset < 7 allowed a slope of shape [C] for X of shape [N, C, ...] (per channel).
  if (ctx.opset() < 7 && slope.size() == 1 && x.rank() >= 2 && slope[0] == x.shape[1] && x.rank() > 2)
    slope.insert(slope.end(), x.rank() - 2, 1);
  KILN_ASSIGN_OR_RETURN(Shape out, broadcast_shapes(ctx, x.shape, slope));
  if (out != x.shape)
    return ctx.invalid("slope of shape ", shape_to_string(ctx.input(1).shape), " does not broadcast to X ",
                       shape_to_string(x.shape));
  ctx.set_output(0, x.dtype, out);
  KernelPtr k;
  bool ok = visit_dtype<SignedTypes>(x.dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    k = binary_kernel<T, T>(x.shape, slope, out, [](T v, T s) { return v < 0 ? T(v * s) : v; });
  });
  if (!ok) return ctx.unsupported_dtype(0);
  return k;
}

constexpr OpDef kBinaryOps[] = {
    {"", "Add", 1, kMaxOnnxOpset, prepare_arith<Arith::kAdd>},
    {"", "Sub", 1, kMaxOnnxOpset, prepare_arith<Arith::kSub>},
    {"", "Mul", 1, kMaxOnnxOpset, prepare_arith<Arith::kMul>},
    {"", "Div", 1, kMaxOnnxOpset, prepare_arith<Arith::kDiv>},
    {"", "Pow", 1, kMaxOnnxOpset, prepare_pow},
    {"", "Mod", 10, kMaxOnnxOpset, prepare_mod},
    {"", "Equal", 1, kMaxOnnxOpset, prepare_compare<Cmp::kEq>},
    {"", "Greater", 1, kMaxOnnxOpset, prepare_compare<Cmp::kGt>},
    {"", "GreaterOrEqual", 12, kMaxOnnxOpset, prepare_compare<Cmp::kGe>},
    {"", "Less", 1, kMaxOnnxOpset, prepare_compare<Cmp::kLt>},
    {"", "LessOrEqual", 12, kMaxOnnxOpset, prepare_compare<Cmp::kLe>},
    {"", "And", 1, kMaxOnnxOpset, prepare_logic<Logic::kAnd>},
    {"", "Or", 1, kMaxOnnxOpset, prepare_logic<Logic::kOr>},
    {"", "Xor", 1, kMaxOnnxOpset, prepare_logic<Logic::kXor>},
    {"", "BitShift", 11, kMaxOnnxOpset, prepare_bitshift},
    {"", "Max", 1, kMaxOnnxOpset, prepare_variadic<Variadic::kMax>},
    {"", "Min", 1, kMaxOnnxOpset, prepare_variadic<Variadic::kMin>},
    {"", "Sum", 1, kMaxOnnxOpset, prepare_variadic<Variadic::kSum>},
    {"", "Mean", 1, kMaxOnnxOpset, prepare_variadic<Variadic::kMean>},
    {"", "Where", 9, kMaxOnnxOpset, prepare_where},
    {"", "PRelu", 1, kMaxOnnxOpset, prepare_prelu},
};

}  // namespace

std::span<const OpDef> binary_ops() { return kBinaryOps; }

}  // namespace kiln::nn::ops
