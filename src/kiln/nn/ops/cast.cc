// Type conversion: Cast and CastLike, between all numeric types, bool, float16 and bfloat16.
//
// float -> integer truncates toward zero and saturates at the target's range; NaN becomes 0
// (C++ leaves both undefined, ONNX does not specify them). Integer -> integer keeps the low bits,
// like numpy's astype. float16/bfloat16 are converted bit-exactly with round-to-nearest-even;
// see bf16_truncates() for the one exception. string, complex, float8 and int4 are unsupported.
#include <bit>
#include <cmath>
#include <cstring>
#include <limits>
#include <type_traits>

#include "kiln/nn/ops/families.h"
#include "kiln/nn/ops/op_util.h"

namespace kiln::nn::ops {
namespace {

// Storage-only element types: the bit pattern of an IEEE binary16 / a bfloat16.
struct Half {
  uint16_t bits;
};
struct BFloat16 {
  uint16_t bits;
};

template <typename T> constexpr bool kIsHalfLike = std::is_same_v<T, Half> || std::is_same_v<T, BFloat16>;

// Layout of a 16-bit float format: 1 sign bit, ExpBits exponent bits, ManBits mantissa bits.
template <int ExpBits, int ManBits>
struct Format16 {
  static_assert(1 + ExpBits + ManBits == 16);
  static constexpr int kManBits = ManBits;
  static constexpr int kBias = (1 << (ExpBits - 1)) - 1;
  static constexpr int kMinExp = 1 - kBias;  // exponent of the smallest normal number
  static constexpr uint16_t kInf = static_cast<uint16_t>(((1 << ExpBits) - 1) << ManBits);
  static constexpr uint16_t kQuietNaN = kInf | (1 << (ManBits - 1));
};
using HalfFormat = Format16<5, 10>;
using BFloat16Format = Format16<8, 7>;

// Encodes (-1)^neg * mag * 2^exp2 (mag != 0), rounding to nearest even, or toward zero when
// `truncate` is set. Working from an exact integer significand avoids the double rounding of
// going through float.
template <typename F>
uint16_t encode_finite(bool neg, uint64_t mag, int exp2, bool truncate) {
  constexpr int kMan = F::kManBits;
  const uint16_t sign = neg ? 0x8000 : 0;
  const int top = 63 - std::countl_zero(mag);
  const int e = top + exp2;  // value is in [2^e, 2^(e+1))
  if (e > F::kBias) return sign | (truncate ? F::kInf - 1 : F::kInf);
  if (e < F::kMinExp - kMan - 1) return sign;  // below half the smallest subnormal
  const int quantum = (e < F::kMinExp ? F::kMinExp : e) - kMan;
  const int shift = quantum - exp2;
  uint64_t q;
  if (shift <= 0) {
    q = mag << -shift;
  } else {
    uint64_t rem, half;
    if (shift >= 64) {  // only when top == 63 and the result is at most the smallest subnormal
      q = 0, rem = mag, half = uint64_t{1} << 63;
    } else {
      q = mag >> shift, rem = mag & ((uint64_t{1} << shift) - 1), half = uint64_t{1} << (shift - 1);
    }
    if (!truncate && (rem > half || (rem == half && (q & 1)))) ++q;
  }
  // Normal numbers: the implicit leading bit of q carries into the exponent field, so a
  // rounding overflow of the mantissa correctly bumps the exponent. Subnormals: q is the field.
  uint64_t field = e < F::kMinExp ? q : (static_cast<uint64_t>(e + F::kBias - 1) << kMan) + q;
  if (field >= F::kInf) return sign | (truncate ? F::kInf - 1 : F::kInf);
  return sign | static_cast<uint16_t>(field);
}

template <typename F>
uint16_t encode_double(double v, bool truncate) {
  const uint64_t bits = std::bit_cast<uint64_t>(v);
  const bool neg = bits >> 63;
  const int biased = static_cast<int>((bits >> 52) & 0x7ff);
  const uint64_t frac = bits & ((uint64_t{1} << 52) - 1);
  const uint16_t sign = neg ? 0x8000 : 0;
  if (biased == 0x7ff) return sign | (frac ? F::kQuietNaN : F::kInf);
  if (biased == 0) return frac ? encode_finite<F>(neg, frac, -1074, truncate) : sign;
  return encode_finite<F>(neg, frac | (uint64_t{1} << 52), biased - 1075, truncate);
}

template <typename F, typename S>
uint16_t encode(S v, bool truncate) {
  if constexpr (std::is_floating_point_v<S>) {
    return encode_double<F>(static_cast<double>(v), truncate);  // float -> double is exact
  } else if constexpr (std::is_same_v<S, bool>) {
    return v ? encode_finite<F>(false, 1, 0, truncate) : 0;
  } else {
    if (v == 0) return 0;
    using U = std::make_unsigned_t<S>;
    if constexpr (std::is_signed_v<S>)
      if (v < 0) return encode_finite<F>(true, static_cast<U>(U(0) - static_cast<U>(v)), 0, truncate);
    return encode_finite<F>(false, static_cast<U>(v), 0, truncate);
  }
}

float decode(Half h) {
  const bool neg = h.bits >> 15;
  const int biased = (h.bits >> 10) & 0x1f;
  const int frac = h.bits & 0x3ff;
  float v;
  if (biased == 0x1f) v = frac ? std::numeric_limits<float>::quiet_NaN() : std::numeric_limits<float>::infinity();
  else if (biased == 0) v = std::ldexp(static_cast<float>(frac), -24);
  else v = std::ldexp(static_cast<float>(frac | 0x400), biased - 25);
  return neg ? -v : v;
}

float decode(BFloat16 b) { return std::bit_cast<float>(static_cast<uint32_t>(b.bits) << 16); }

// Truncation toward zero with saturation; NaN -> 0.
template <typename D>
D float_to_int(double v) {
  if (std::isnan(v)) return 0;
  if (v <= static_cast<double>(std::numeric_limits<D>::lowest())) return std::numeric_limits<D>::lowest();
  // max() + 1 is a power of two, so it is exact in double.
  if (v >= static_cast<double>(std::numeric_limits<D>::max()) + 1.0) return std::numeric_limits<D>::max();
  return static_cast<D>(v);
}

template <typename D, typename S>
D cast_value(S v, bool bf16_truncate) {
  if constexpr (kIsHalfLike<S>) {
    return cast_value<D>(decode(v), bf16_truncate);
  } else if constexpr (std::is_same_v<D, bool>) {
    return v != S(0);  // NaN is true, as in C++ and numpy
  } else if constexpr (std::is_same_v<D, Half>) {
    return Half{encode<HalfFormat>(v, false)};
  } else if constexpr (std::is_same_v<D, BFloat16>) {
    return BFloat16{encode<BFloat16Format>(v, bf16_truncate)};
  } else if constexpr (std::is_floating_point_v<S> && std::is_integral_v<D>) {
    return float_to_int<D>(static_cast<double>(v));
  } else {
    // int -> int is modular (C++20); int -> float rounds; double -> float overflows to inf (IEC 559).
    return static_cast<D>(v);
  }
}

// Calls f(std::type_identity<T>{}) for the element type of every dtype Cast handles.
template <typename F>
bool visit_cast_dtype(DType t, F&& f) {
  if (t == DType::kFloat16) {
    f(std::type_identity<Half>{});
    return true;
  }
  if (t == DType::kBFloat16) {
    f(std::type_identity<BFloat16>{});
    return true;
  }
  return visit_dtype<AllTypes>(t, f);
}

bool castable(DType t) {
  return t == DType::kFloat16 || t == DType::kBFloat16 || t == DType::kBool || dtype_is_float(t) ||
         dtype_is_integer(t);
}

// ONNX's reference for opsets <= 18 (numpy bit slicing, the data of the opset-13 backend tests)
// truncates float -> bfloat16; from opset 19 the reference rounds to nearest even.
bool bf16_truncates(const PrepareContext& ctx) { return ctx.opset() < 19; }

Result<KernelPtr> make_cast(PrepareContext& ctx, DType to) {
  KILN_RETURN_IF_ERROR(ctx.require_input(0));
  const TensorInfo& x = ctx.input(0);
  if (!castable(x.dtype)) return ctx.unsupported_dtype(0);
  if (!castable(to)) return ctx.unsupported("casting to ", dtype_name(to), " is not supported");
  KILN_ASSIGN_OR_RETURN(int64_t n, checked_num_elements(x.shape));
  ctx.set_output(0, to, x.shape);
  if (to == x.dtype) {
    return make_kernel([](const KernelContext& k) {
      if (k.in(0).byte_size() != 0) std::memcpy(k.out(0).data, k.in(0).data, k.in(0).byte_size());
      return Status::ok();
    });
  }
  const bool bf16_truncate = bf16_truncates(ctx);
  KernelPtr kernel;
  visit_cast_dtype(x.dtype, [&](auto src) {
    using S = typename decltype(src)::type;
    visit_cast_dtype(to, [&](auto dst) {
      using D = typename decltype(dst)::type;
      kernel = make_kernel([n, bf16_truncate](const KernelContext& k) {
        const S* in = k.in(0).as<const S>();
        D* y = k.out(0).as<D>();
        for (int64_t i = 0; i < n; ++i) y[i] = cast_value<D>(in[i], bf16_truncate);
        return Status::ok();
      });
    });
  });
  return kernel;
}

// TensorProto.DataType names, for the string-valued `to` of Cast-1.
DType dtype_from_onnx_name(const std::string& s) {
  static constexpr const char* kNames[] = {"UNDEFINED", "FLOAT", "UINT8", "INT8", "UINT16", "INT16",
                                           "INT32", "INT64", "STRING", "BOOL", "FLOAT16", "DOUBLE",
                                           "UINT32", "UINT64", "COMPLEX64", "COMPLEX128", "BFLOAT16"};
  for (int i = 1; i < static_cast<int>(std::size(kNames)); ++i)
    if (s == kNames[i]) return dtype_from_onnx(i);
  return DType::kUndefined;
}

Result<KernelPtr> prepare_cast(PrepareContext& ctx) {
  const Attribute* a = ctx.node().attribute("to");
  if (!a) return ctx.invalid("attribute 'to' is required");
  // Cast-1 named the type as a string; later versions use the TensorProto.DataType code.
  if (a->kind == Attribute::Kind::kString) {
    DType to = dtype_from_onnx_name(a->s);
    if (to == DType::kUndefined) return ctx.invalid("attribute 'to' names an unknown type '", a->s, "'");
    return make_cast(ctx, to);
  }
  if (a->kind != Attribute::Kind::kInt)
    return ctx.invalid("attribute 'to' must be an int (or a string before opset 6), got ", attribute_kind_name(a->kind));
  const int64_t code = a->i;
  // 17..23: float8 variants, uint4, int4, float4 (opsets 19 and 21); newer formats follow.
  if (code > 16 && code <= 26)
    return ctx.unsupported("casting to ONNX data type ", code, " (float8/int4/float4) is not supported");
  const DType to = code >= 1 && code <= 16 ? dtype_from_onnx(static_cast<int32_t>(code)) : DType::kUndefined;
  if (to == DType::kUndefined) return ctx.invalid("attribute 'to' = ", code, " is not an ONNX data type");
  return make_cast(ctx, to);
}

Result<KernelPtr> prepare_cast_like(PrepareContext& ctx) {
  KILN_RETURN_IF_ERROR(ctx.require_input(1));
  return make_cast(ctx, ctx.input(1).dtype);
}

constexpr OpDef kCastOps[] = {
    {"", "Cast", 1, kMaxOnnxOpset, prepare_cast},
    {"", "CastLike", 15, kMaxOnnxOpset, prepare_cast_like},
};

}  // namespace

std::span<const OpDef> cast_ops() { return kCastOps; }

}  // namespace kiln::nn::ops
