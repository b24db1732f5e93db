// Unary elementwise operators: Abs Neg Exp Log Sqrt Reciprocal, the trigonometric and hyperbolic
// functions and their inverses, the activations (Tanh Sigmoid Relu LeakyRelu Elu Selu Celu
// HardSigmoid HardSwish Softplus Softsign ThresholdedRelu Mish Gelu), Erf Floor Ceil Round Sign,
// Not IsNaN IsInf, Shrink and Clip.
#include <cmath>
#include <limits>
#include <numbers>
#include <type_traits>

#include "kiln/nn/ops/families.h"
#include "kiln/nn/ops/op_util.h"

namespace kiln::nn::ops {
namespace {

// Converts a double to an integer type with truncation and saturation; NaN becomes 0. Used where
// an integer op computes through floating point (Shrink, Erf) so that no conversion is UB.
template <typename T> T saturate_from_double(double v) {
  if constexpr (std::is_floating_point_v<T>) {
    return static_cast<T>(v);
  } else {
    if (std::isnan(v)) return 0;
    if (v <= static_cast<double>(std::numeric_limits<T>::lowest())) return std::numeric_limits<T>::lowest();
    // max() + 1 is a power of two, so it is exact in double.
    if (v >= static_cast<double>(std::numeric_limits<T>::max()) + 1.0) return std::numeric_limits<T>::max();
    return static_cast<T>(v);
  }
}

// y[i] = f(x[i]) for input 0 of any dtype in Types; the output dtype is f's result type.
// `make(tag)` builds f for the dispatched element type.
template <typename Types, typename Make>
Result<KernelPtr> prepare_map(PrepareContext& ctx, Make make) {
  KILN_RETURN_IF_ERROR(ctx.require_input(0));
  const TensorInfo& x = ctx.input(0);
  KILN_ASSIGN_OR_RETURN(int64_t n, checked_num_elements(x.shape));
  KernelPtr k;
  DType out = DType::kUndefined;
  bool ok = visit_dtype<Types>(x.dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    auto f = make(tag);
    using R = std::invoke_result_t<decltype(f), T>;
    out = dtype_of<R>();
    k = make_kernel([f, n](const KernelContext& kc) {
      const T* in = kc.in(0).as<const T>();
      R* y = kc.out(0).as<R>();
      for (int64_t i = 0; i < n; ++i) y[i] = f(in[i]);
      return Status::ok();
    });
  });
  if (!ok) return ctx.unsupported_dtype(0);
  ctx.set_output(0, out, x.shape);
  return k;
}

// Same-type float functions without attributes.
enum class Fn {
  kExp, kLog, kSqrt, kReciprocal, kSin, kCos, kTan, kAsin, kAcos, kAtan, kSinh, kCosh, kAsinh,
  kAcosh, kAtanh, kTanh, kSigmoid, kSoftplus, kSoftsign, kFloor, kCeil, kRound, kHardSwish, kMish
};

// log(1 + e^x) without overflow for large x.
template <typename T> T softplus(T x) {
  return x > 0 ? x + std::log1p(std::exp(-x)) : std::log1p(std::exp(x));
}

// Round half to even, independent of the floating-point environment's rounding mode.
template <typename T> T round_half_even(T x) {
  T r = std::round(x);  // half away from zero
  if (std::fabs(x - std::trunc(x)) == T(0.5)) r = T(2) * std::round(x / T(2));
  return r;
}

template <Fn F, typename T> T apply_fn(T x) {
  if constexpr (F == Fn::kExp) return std::exp(x);
  if constexpr (F == Fn::kLog) return std::log(x);
  if constexpr (F == Fn::kSqrt) return std::sqrt(x);
  if constexpr (F == Fn::kReciprocal) return T(1) / x;
  if constexpr (F == Fn::kSin) return std::sin(x);
  if constexpr (F == Fn::kCos) return std::cos(x);
  if constexpr (F == Fn::kTan) return std::tan(x);
  if constexpr (F == Fn::kAsin) return std::asin(x);
  if constexpr (F == Fn::kAcos) return std::acos(x);
  if constexpr (F == Fn::kAtan) return std::atan(x);
  if constexpr (F == Fn::kSinh) return std::sinh(x);
  if constexpr (F == Fn::kCosh) return std::cosh(x);
  if constexpr (F == Fn::kAsinh) return std::asinh(x);
  if constexpr (F == Fn::kAcosh) return std::acosh(x);
  if constexpr (F == Fn::kAtanh) return std::atanh(x);
  if constexpr (F == Fn::kTanh) return std::tanh(x);
  if constexpr (F == Fn::kSigmoid) {
    // Both branches keep exp()'s argument non-positive, so nothing overflows.
    if (x >= 0) return T(1) / (T(1) + std::exp(-x));
    T e = std::exp(x);
    return e / (T(1) + e);
  }
  if constexpr (F == Fn::kSoftplus) return softplus(x);
  if constexpr (F == Fn::kSoftsign) return x / (T(1) + std::fabs(x));
  if constexpr (F == Fn::kFloor) return std::floor(x);
  if constexpr (F == Fn::kCeil) return std::ceil(x);
  if constexpr (F == Fn::kRound) return round_half_even(x);
  if constexpr (F == Fn::kHardSwish) {
    T h = x / T(6) + T(0.5);
    h = h < 0 ? T(0) : (h > 1 ? T(1) : h);
    return x * h;
  }
  if constexpr (F == Fn::kMish) return x * std::tanh(softplus(x));
}

template <Fn F>
Result<KernelPtr> prepare_fn(PrepareContext& ctx) {
  return prepare_map<FloatTypes>(ctx, [](auto tag) {
    using T = typename decltype(tag)::type;
    return [](T x) { return apply_fn<F, T>(x); };
  });
}

Result<KernelPtr> prepare_abs(PrepareContext& ctx) {
  return prepare_map<NumericTypes>(ctx, [](auto tag) {
    using T = typename decltype(tag)::type;
    return [](T x) -> T {
      if constexpr (std::is_floating_point_v<T>) {
        return std::fabs(x);
      } else if constexpr (std::is_signed_v<T>) {
        // Negating through the unsigned type wraps MIN to itself (as numpy does) instead of UB.
        using U = std::make_unsigned_t<T>;
        return x < 0 ? static_cast<T>(U(0) - static_cast<U>(x)) : x;
      } else {
        return x;
      }
    };
  });
}

Result<KernelPtr> prepare_neg(PrepareContext& ctx) {
  return prepare_map<SignedTypes>(ctx, [](auto tag) {
    using T = typename decltype(tag)::type;
    return [](T x) -> T {
      if constexpr (std::is_floating_point_v<T>) {
        return -x;
      } else {
        using U = std::make_unsigned_t<T>;
        return static_cast<T>(U(0) - static_cast<U>(x));
      }
    };
  });
}

Result<KernelPtr> prepare_relu(PrepareContext& ctx) {
  // Integer inputs are valid from opset 14; accepting them earlier is harmless.
  return prepare_map<SignedTypes>(ctx, [](auto tag) {
    using T = typename decltype(tag)::type;
    return [](T x) { return x < 0 ? T(0) : x; };  // NaN stays NaN
  });
}

Result<KernelPtr> prepare_leaky_relu(PrepareContext& ctx) {
  const float alpha = ctx.attr_float("alpha", 0.01f);
  return prepare_map<FloatTypes>(ctx, [alpha](auto tag) {
    using T = typename decltype(tag)::type;
    const T a = static_cast<T>(alpha);
    return [a](T x) { return x < 0 ? a * x : x; };
  });
}

Result<KernelPtr> prepare_elu(PrepareContext& ctx) {
  const float alpha = ctx.attr_float("alpha", 1.0f);
  return prepare_map<FloatTypes>(ctx, [alpha](auto tag) {
    using T = typename decltype(tag)::type;
    const T a = static_cast<T>(alpha);
    return [a](T x) { return x < 0 ? a * std::expm1(x) : x; };
  });
}

Result<KernelPtr> prepare_selu(PrepareContext& ctx) {
  // Opset 1 had rounder defaults than opset 6.
  const bool v1 = ctx.opset() < 6;
  const float alpha = ctx.attr_float("alpha", v1 ? 1.6732f : 1.67326319217681884765625f);
  const float gamma = ctx.attr_float("gamma", v1 ? 1.0507f : 1.05070102214813232421875f);
  return prepare_map<FloatTypes>(ctx, [alpha, gamma](auto tag) {
    using T = typename decltype(tag)::type;
    const T a = static_cast<T>(alpha), g = static_cast<T>(gamma);
    return [a, g](T x) { return x > 0 ? g * x : g * a * std::expm1(x); };
  });
}

Result<KernelPtr> prepare_celu(PrepareContext& ctx) {
  const float alpha = ctx.attr_float("alpha", 1.0f);
  if (alpha == 0 || !std::isfinite(alpha)) return ctx.invalid("alpha must be finite and non-zero, got ", alpha);
  return prepare_map<FloatTypes>(ctx, [alpha](auto tag) {
    using T = typename decltype(tag)::type;
    const T a = static_cast<T>(alpha);
    // max(0, x) + min(0, a * (exp(x / a) - 1)): the second term is 0 exactly when x > 0.
    return [a](T x) { return x > 0 ? x : a * std::expm1(x / a); };
  });
}

Result<KernelPtr> prepare_hard_sigmoid(PrepareContext& ctx) {
  const float alpha = ctx.attr_float("alpha", 0.2f);
  const float beta = ctx.attr_float("beta", 0.5f);
  return prepare_map<FloatTypes>(ctx, [alpha, beta](auto tag) {
    using T = typename decltype(tag)::type;
    const T a = static_cast<T>(alpha), b = static_cast<T>(beta);
    return [a, b](T x) {
      T v = a * x + b;
      return v < 0 ? T(0) : (v > 1 ? T(1) : v);
    };
  });
}

Result<KernelPtr> prepare_thresholded_relu(PrepareContext& ctx) {
  const float alpha = ctx.attr_float("alpha", 1.0f);
  return prepare_map<FloatTypes>(ctx, [alpha](auto tag) {
    using T = typename decltype(tag)::type;
    const T a = static_cast<T>(alpha);
    return [a](T x) { return x <= a ? T(0) : x; };
  });
}

Result<KernelPtr> prepare_gelu(PrepareContext& ctx) {
  const std::string approximate = ctx.attr_string("approximate", "none");
  if (approximate != "none" && approximate != "tanh")
    return ctx.invalid("approximate must be 'none' or 'tanh', got '", approximate, "'");
  const bool use_tanh = approximate == "tanh";
  return prepare_map<FloatTypes>(ctx, [use_tanh](auto tag) {
    using T = typename decltype(tag)::type;
    const T sqrt_2_over_pi = static_cast<T>(std::sqrt(2.0 / std::numbers::pi));
    const T inv_sqrt2 = static_cast<T>(std::numbers::sqrt2 / 2);
    return [use_tanh, sqrt_2_over_pi, inv_sqrt2](T x) {
      if (use_tanh) return T(0.5) * x * (T(1) + std::tanh(sqrt_2_over_pi * (x + T(0.044715) * x * x * x)));
      return T(0.5) * x * (T(1) + std::erf(x * inv_sqrt2));
    };
  });
}

Result<KernelPtr> prepare_erf(PrepareContext& ctx) {
  return prepare_map<NumericTypes>(ctx, [](auto tag) {
    using T = typename decltype(tag)::type;
    return [](T x) -> T {
      if constexpr (std::is_floating_point_v<T>) return std::erf(x);
      else return saturate_from_double<T>(std::erf(static_cast<double>(x)));
    };
  });
}

Result<KernelPtr> prepare_sign(PrepareContext& ctx) {
  return prepare_map<NumericTypes>(ctx, [](auto tag) {
    using T = typename decltype(tag)::type;
    return [](T x) -> T {
      if (x > 0) return T(1);
      if constexpr (std::is_signed_v<T>)
        if (x < 0) return T(-1);
      return x == 0 ? T(0) : x;  // keeps NaN
    };
  });
}

Result<KernelPtr> prepare_not(PrepareContext& ctx) {
  return prepare_map<TypeList<bool>>(ctx, [](auto) { return [](bool x) { return !x; }; });
}

Result<KernelPtr> prepare_isnan(PrepareContext& ctx) {
  return prepare_map<FloatTypes>(ctx, [](auto tag) {
    using T = typename decltype(tag)::type;
    return [](T x) { return std::isnan(x); };
  });
}

Result<KernelPtr> prepare_isinf(PrepareContext& ctx) {
  const bool pos = ctx.attr_int("detect_positive", 1) != 0;
  const bool neg = ctx.attr_int("detect_negative", 1) != 0;
  return prepare_map<FloatTypes>(ctx, [pos, neg](auto tag) {
    using T = typename decltype(tag)::type;
    return [pos, neg](T x) { return std::isinf(x) && (x > 0 ? pos : neg); };
  });
}

// Integer inputs are computed in double and converted back with saturation.
Result<KernelPtr> prepare_shrink(PrepareContext& ctx) {
  const float lambd = ctx.attr_float("lambd", 0.5f);
  const float bias = ctx.attr_float("bias", 0.0f);
  return prepare_map<NumericTypes>(ctx, [lambd, bias](auto tag) {
    using T = typename decltype(tag)::type;
    using C = std::conditional_t<std::is_same_v<T, float>, float, double>;
    const C l = static_cast<C>(lambd), b = static_cast<C>(bias);
    return [l, b](T x) -> T {
      const C v = static_cast<C>(x);
      if (v < -l) return saturate_from_double<T>(v + b);
      if (v > l) return saturate_from_double<T>(v - b);
      return T(0);
    };
  });
}

// min(max(x, lo), hi): when lo > hi every value becomes hi (as the spec says); NaN stays NaN.
template <typename T> T clip_value(T x, T lo, T hi) {
  T v = x < lo ? lo : x;
  return v > hi ? hi : v;
}

Result<KernelPtr> prepare_clip(PrepareContext& ctx) {
  KILN_RETURN_IF_ERROR(ctx.require_input(0));
  const TensorInfo& x = ctx.input(0);
  if (ctx.opset() < 11) {
    // Bounds are attributes. Opset 6 gave them float32-range defaults; opset 1 had none.
    constexpr float kInf = std::numeric_limits<float>::infinity();
    const bool v1 = ctx.opset() < 6;
    const float lo = ctx.attr_float("min", v1 ? -kInf : std::numeric_limits<float>::lowest());
    const float hi = ctx.attr_float("max", v1 ? kInf : std::numeric_limits<float>::max());
    return prepare_map<FloatTypes>(ctx, [lo, hi](auto tag) {
      using T = typename decltype(tag)::type;
      const T l = static_cast<T>(lo), h = static_cast<T>(hi);
      return [l, h](T v) { return clip_value(v, l, h); };
    });
  }
  // Opset 11+: optional scalar inputs `min` and `max`, read at run time (they may be graph inputs).
  for (size_t i = 1; i <= 2; ++i) {
    if (!ctx.has_input(i)) continue;
    const TensorInfo& b = ctx.input(i);
    if (b.dtype != x.dtype)
      return ctx.invalid("input ", i == 1 ? "min" : "max", " has dtype ", dtype_name(b.dtype), ", expected ",
                         dtype_name(x.dtype), " like the input");
    if (b.num_elements() != 1)
      return ctx.invalid("input ", i == 1 ? "min" : "max", " must be a scalar, got shape ", shape_to_string(b.shape));
  }
  KILN_ASSIGN_OR_RETURN(int64_t n, checked_num_elements(x.shape));
  KernelPtr k;
  bool ok = visit_dtype<NumericTypes>(x.dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    k = make_kernel([n](const KernelContext& kc) {
      T lo = std::numeric_limits<T>::lowest(), hi = std::numeric_limits<T>::max();
      if constexpr (std::is_floating_point_v<T>) {
        lo = -std::numeric_limits<T>::infinity();
        hi = std::numeric_limits<T>::infinity();
      }
      if (kc.has_in(1)) lo = kc.in(1).as<const T>()[0];
      if (kc.has_in(2)) hi = kc.in(2).as<const T>()[0];
      const T* in = kc.in(0).as<const T>();
      T* y = kc.out(0).as<T>();
      for (int64_t i = 0; i < n; ++i) y[i] = clip_value(in[i], lo, hi);
      return Status::ok();
    });
  });
  if (!ok) return ctx.unsupported_dtype(0);
  ctx.set_output(0, x.dtype, x.shape);
  return k;
}

constexpr OpDef kUnaryOps[] = {
    {"", "Abs", 1, kMaxOnnxOpset, prepare_abs},
    {"", "Neg", 1, kMaxOnnxOpset, prepare_neg},
    {"", "Exp", 1, kMaxOnnxOpset, prepare_fn<Fn::kExp>},
    {"", "Log", 1, kMaxOnnxOpset, prepare_fn<Fn::kLog>},
    {"", "Sqrt", 1, kMaxOnnxOpset, prepare_fn<Fn::kSqrt>},
    {"", "Reciprocal", 1, kMaxOnnxOpset, prepare_fn<Fn::kReciprocal>},
    {"", "Sin", 7, kMaxOnnxOpset, prepare_fn<Fn::kSin>},
    {"", "Cos", 7, kMaxOnnxOpset, prepare_fn<Fn::kCos>},
    {"", "Tan", 7, kMaxOnnxOpset, prepare_fn<Fn::kTan>},
    {"", "Asin", 7, kMaxOnnxOpset, prepare_fn<Fn::kAsin>},
    {"", "Acos", 7, kMaxOnnxOpset, prepare_fn<Fn::kAcos>},
    {"", "Atan", 7, kMaxOnnxOpset, prepare_fn<Fn::kAtan>},
    {"", "Sinh", 9, kMaxOnnxOpset, prepare_fn<Fn::kSinh>},
    {"", "Cosh", 9, kMaxOnnxOpset, prepare_fn<Fn::kCosh>},
    {"", "Asinh", 9, kMaxOnnxOpset, prepare_fn<Fn::kAsinh>},
    {"", "Acosh", 9, kMaxOnnxOpset, prepare_fn<Fn::kAcosh>},
    {"", "Atanh", 9, kMaxOnnxOpset, prepare_fn<Fn::kAtanh>},
    {"", "Tanh", 1, kMaxOnnxOpset, prepare_fn<Fn::kTanh>},
    {"", "Sigmoid", 1, kMaxOnnxOpset, prepare_fn<Fn::kSigmoid>},
    {"", "Relu", 1, kMaxOnnxOpset, prepare_relu},
    {"", "LeakyRelu", 1, kMaxOnnxOpset, prepare_leaky_relu},
    {"", "Elu", 1, kMaxOnnxOpset, prepare_elu},
    {"", "Selu", 1, kMaxOnnxOpset, prepare_selu},
    {"", "Celu", 12, kMaxOnnxOpset, prepare_celu},
    {"", "HardSigmoid", 1, kMaxOnnxOpset, prepare_hard_sigmoid},
    {"", "HardSwish", 14, kMaxOnnxOpset, prepare_fn<Fn::kHardSwish>},
    {"", "Softplus", 1, kMaxOnnxOpset, prepare_fn<Fn::kSoftplus>},
    {"", "Softsign", 1, kMaxOnnxOpset, prepare_fn<Fn::kSoftsign>},
    {"", "ThresholdedRelu", 10, kMaxOnnxOpset, prepare_thresholded_relu},
    {"", "Erf", 9, kMaxOnnxOpset, prepare_erf},
    {"", "Floor", 1, kMaxOnnxOpset, prepare_fn<Fn::kFloor>},
    {"", "Ceil", 1, kMaxOnnxOpset, prepare_fn<Fn::kCeil>},
    {"", "Round", 11, kMaxOnnxOpset, prepare_fn<Fn::kRound>},
    {"", "Sign", 9, kMaxOnnxOpset, prepare_sign},
    {"", "Not", 1, kMaxOnnxOpset, prepare_not},
    {"", "IsNaN", 9, kMaxOnnxOpset, prepare_isnan},
    {"", "IsInf", 10, kMaxOnnxOpset, prepare_isinf},
    {"", "Shrink", 9, kMaxOnnxOpset, prepare_shrink},
    {"", "Clip", 1, kMaxOnnxOpset, prepare_clip},
    {"", "Mish", 18, kMaxOnnxOpset, prepare_fn<Fn::kMish>},
    {"", "Gelu", 20, kMaxOnnxOpset, prepare_gelu},
};

}  // namespace

std::span<const OpDef> unary_ops() { return kUnaryOps; }

}  // namespace kiln::nn::ops
