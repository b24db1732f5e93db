// Linear quantization: QuantizeLinear, DequantizeLinear, DynamicQuantizeLinear, and the integer
// operators MatMulInteger, QLinearMatMul, ConvInteger and QLinearConv.
//
// These are the reference kernels that optimised int8 kernels are tested against: products are
// exact, accumulation is int32 (wrapping, as the spec allows), and requantization is
// round-half-to-even then saturation, computed in float like ONNX Runtime.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <type_traits>

#include "kiln/nn/ops/families.h"
#include "kiln/nn/ops/op_util.h"
#include "kiln/nn/ops/qparams.h"

namespace kiln::nn::ops {
namespace {

using Int8Types = TypeList<int8_t, uint8_t>;
using QuantTypes = TypeList<int8_t, uint8_t, int16_t, uint16_t>;

// Rounds half to even (the default rounding mode) and saturates to Q; NaN becomes 0.
template <typename Q, typename F>
Q saturate_round(F v) {
  if (std::isnan(v)) return Q(0);
  v = std::nearbyint(v);
  constexpr F lo = static_cast<F>(std::numeric_limits<Q>::min());
  constexpr F hi = static_cast<F>(std::numeric_limits<Q>::max());
  return static_cast<Q>(v < lo ? lo : (v > hi ? hi : v));
}

// Wrapping int32 accumulation without signed-overflow UB.
inline int32_t wrap_add(int32_t a, int32_t b) {
  return static_cast<int32_t>(static_cast<uint32_t>(a) + static_cast<uint32_t>(b));
}

bool is_scalar_like(const TensorInfo& t) { return t.num_elements() == 1 && t.rank() <= 1; }

// ---- QuantizeLinear / DequantizeLinear ----

// The granularity of a scale/zero-point pair: one value, or one per index of `axis`.
struct AxisPlan {
  int64_t outer = 1, channels = 1, inner = 1;
};

Result<AxisPlan> plan_axis(PrepareContext& ctx, const TensorInfo& x, size_t scale_input, size_t zp_input) {
  AxisPlan p;
  p.inner = x.num_elements();
  if (ctx.opset() >= 21 && ctx.attr_int("block_size", 0) != 0)
    return ctx.unsupported("blocked quantization (block_size != 0) is not supported");
  const TensorInfo& s = ctx.input(scale_input);
  if (ctx.has_input(zp_input) && ctx.input(zp_input).shape != s.shape &&
      !(is_scalar_like(ctx.input(zp_input)) && is_scalar_like(s)))
    return ctx.invalid("zero point shape ", shape_to_string(ctx.input(zp_input).shape), " differs from scale shape ",
                       shape_to_string(s.shape));
  if (is_scalar_like(s)) return p;
  if (ctx.opset() < 13) return ctx.invalid("scale must be a scalar before opset 13, got ", shape_to_string(s.shape));
  if (s.rank() != 1 || x.rank() == 0)
    return ctx.invalid("scale must be a scalar, or a 1-D tensor (per axis) for an input of rank >= 1, got ",
                       shape_to_string(s.shape));
  int64_t axis = 0;
  KILN_RETURN_IF_ERROR(normalize_axis(ctx, ctx.attr_int("axis", 1), static_cast<int64_t>(x.rank()), &axis));
  if (s.shape[0] != x.shape[static_cast<size_t>(axis)]) {
    return ctx.invalid("scale has ", s.shape[0], " values but axis ", axis, " of input ", shape_to_string(x.shape),
                       " has a different size");
  }
  // Empty inputs can have dimensions whose partial products overflow: check them.
  KILN_ASSIGN_OR_RETURN(p.outer,
                        checked_num_elements(std::span<const int64_t>(x.shape.data(), static_cast<size_t>(axis))));
  p.channels = x.shape[static_cast<size_t>(axis)];
  KILN_ASSIGN_OR_RETURN(p.inner, checked_num_elements(std::span<const int64_t>(
                                     x.shape.data() + axis + 1, x.rank() - static_cast<size_t>(axis) - 1)));
  return p;
}

// A scale known at compile time must be usable: zero, infinite or NaN scales (a damaged or badly
// calibrated model) are an error naming the node rather than outputs full of NaN or saturation.
Status check_constant_scale(PrepareContext& ctx, size_t input) {
  const Tensor* s = ctx.constant(input);
  if (!s || s->dtype() != DType::kFloat32) return Status::ok();
  for (int64_t i = 0; i < s->num_elements(); ++i) {
    const float v = s->data<float>()[i];
    if (v == 0.f || !std::isfinite(v))
      return ctx.invalid("scale ", i, " is ", v, "; a quantisation scale must be finite and non-zero");
  }
  return Status::ok();
}

Result<KernelPtr> prepare_quantize(PrepareContext& ctx) {
  KILN_RETURN_IF_ERROR(ctx.require_input(0));
  KILN_RETURN_IF_ERROR(ctx.require_input(1));
  const TensorInfo& x = ctx.input(0);
  if (x.dtype != DType::kFloat32 && x.dtype != DType::kInt32) return ctx.unsupported_dtype(0);
  if (ctx.input(1).dtype != DType::kFloat32) return ctx.unsupported_dtype(1);
  const bool has_zp = ctx.has_input(2);
  DType qt = has_zp ? ctx.input(2).dtype : DType::kUInt8;
  const int64_t out_code = ctx.opset() >= 21 ? ctx.attr_int("output_dtype", 0) : 0;
  if (out_code != 0) {
    const DType want = dtype_from_onnx(static_cast<int32_t>(out_code));
    if (want == DType::kUndefined)
      return ctx.unsupported("output_dtype ", out_code, " (a float8 or 4-bit type) is not supported");
    if (has_zp && want != qt)
      return ctx.invalid("output_dtype ", dtype_name(want), " differs from the zero point dtype ", dtype_name(qt));
    qt = want;
  }
  KILN_ASSIGN_OR_RETURN(AxisPlan p, plan_axis(ctx, x, 1, 2));
  KILN_RETURN_IF_ERROR(check_constant_scale(ctx, 1));
  ctx.set_output(0, qt, x.shape);
  KernelPtr k;
  bool ok = visit_dtype<QuantTypes>(qt, [&](auto qtag) {
    using Q = typename decltype(qtag)::type;
    visit_dtype<TypeList<float, int32_t>>(x.dtype, [&](auto xtag) {
      using X = typename decltype(xtag)::type;
      // Integer inputs divide in double so that large values stay exact.
      using F = std::conditional_t<std::is_same_v<X, float>, float, double>;
      k = make_kernel([p, has_zp](const KernelContext& kc) {
        const X* x = kc.in(0).as<const X>();
        const float* scale = kc.in(1).as<const float>();
        const Q* zp = has_zp ? kc.in(2).as<const Q>() : nullptr;
        Q* y = kc.out(0).as<Q>();
        for (int64_t o = 0, i = 0; o < p.outer; ++o) {
          for (int64_t c = 0; c < p.channels; ++c) {
            const F s = static_cast<F>(scale[c]);
            const F z = zp ? static_cast<F>(zp[c]) : F(0);
            for (int64_t e = 0; e < p.inner; ++e, ++i)
              y[i] = saturate_round<Q>(std::nearbyint(static_cast<F>(x[i]) / s) + z);
          }
        }
        return Status::ok();
      });
    });
  });
  if (!ok) return ctx.unsupported("output dtype ", dtype_name(qt), " is not supported (int8, uint8, int16, uint16)");
  if (!k) return ctx.unsupported_dtype(0);
  return k;
}

Result<KernelPtr> prepare_dequantize(PrepareContext& ctx) {
  KILN_RETURN_IF_ERROR(ctx.require_input(0));
  KILN_RETURN_IF_ERROR(ctx.require_input(1));
  const TensorInfo& x = ctx.input(0);
  if (ctx.input(1).dtype != DType::kFloat32) return ctx.unsupported_dtype(1);
  const bool has_zp = ctx.has_input(2);
  if (has_zp && ctx.input(2).dtype != x.dtype)
    return ctx.invalid("zero point dtype ", dtype_name(ctx.input(2).dtype), " differs from input dtype ",
                       dtype_name(x.dtype));
  KILN_ASSIGN_OR_RETURN(AxisPlan p, plan_axis(ctx, x, 1, 2));
  KILN_RETURN_IF_ERROR(check_constant_scale(ctx, 1));
  ctx.set_output(0, DType::kFloat32, x.shape);
  KernelPtr k;
  bool ok = visit_dtype<TypeList<int8_t, uint8_t, int16_t, uint16_t, int32_t>>(x.dtype, [&](auto tag) {
    using Q = typename decltype(tag)::type;
    k = make_kernel([p, has_zp](const KernelContext& kc) {
      const Q* x = kc.in(0).as<const Q>();
      const float* scale = kc.in(1).as<const float>();
      const Q* zp = has_zp ? kc.in(2).as<const Q>() : nullptr;
      float* y = kc.out(0).as<float>();
      for (int64_t o = 0, i = 0; o < p.outer; ++o) {
        for (int64_t c = 0; c < p.channels; ++c) {
          const float s = scale[c];
          const int64_t z = zp ? static_cast<int64_t>(zp[c]) : 0;
          for (int64_t e = 0; e < p.inner; ++e, ++i) y[i] = static_cast<float>(static_cast<int64_t>(x[i]) - z) * s;
        }
      }
      return Status::ok();
    });
  });
  if (!ok) return ctx.unsupported_dtype(0);
  return k;
}

Result<KernelPtr> prepare_dynamic_quantize(PrepareContext& ctx) {
  KILN_RETURN_IF_ERROR(prepare_dynamic_quantize_outputs(ctx));
  const bool out_scale = ctx.has_output(1), out_zp = ctx.has_output(2);
  const int64_t n = ctx.input(0).num_elements();
  return make_kernel([n, out_scale, out_zp](const KernelContext& kc) {
    const float* x = kc.in(0).as<const float>();
    // The range always includes 0 so that 0 is exactly representable.
    float lo = 0.0f, hi = 0.0f;
    for (int64_t i = 0; i < n; ++i) {
      lo = std::min(lo, x[i]);
      hi = std::max(hi, x[i]);
    }
    float scale = 1.f;
    uint8_t zp = 0;
    dynamic_quantize_params(lo, hi, &scale, &zp);
    uint8_t* y = kc.out(0).as<uint8_t>();
    for (int64_t i = 0; i < n; ++i) y[i] = saturate_round<uint8_t>(std::nearbyint(x[i] / scale) + float(zp));
    if (out_scale) kc.out(1).as<float>()[0] = scale;
    if (out_zp) kc.out(2).as<uint8_t>()[0] = zp;
    return Status::ok();
  });
}

// ---- MatMulInteger / QLinearMatMul ----

// numpy.matmul broadcasting, plus where each batch's per-row (A) or per-column (B) quantization
// parameters start.
struct QMatmulPlan {
  Shape out;
  int64_t m = 0, k = 0, n = 0;
  std::vector<int64_t> a_off, b_off;  // per output batch, in elements of A and B
};

// Where a quantization parameter of operand A (rows) or B (columns) is read: index
// `batch_off[b] + m` (or `+ n`), or always 0 when per-tensor.
struct QParamIndex {
  bool per_tensor = true;
  std::vector<int64_t> batch_off;
};

Result<QMatmulPlan> plan_qmatmul(const PrepareContext& ctx, const Shape& a_in, const Shape& b_in) {
  if (a_in.empty() || b_in.empty())
    return ctx.invalid("inputs must have rank >= 1, got ", shape_to_string(a_in), " and ", shape_to_string(b_in));
  Shape a = a_in, b = b_in;
  if (a.size() == 1) a.insert(a.begin(), 1);
  if (b.size() == 1) b.push_back(1);
  QMatmulPlan p;
  p.m = a[a.size() - 2];
  p.k = a[a.size() - 1];
  p.n = b[b.size() - 1];
  if (b[b.size() - 2] != p.k)
    return ctx.invalid("inner dimensions differ: A ", shape_to_string(a_in), " and B ", shape_to_string(b_in));
  Shape ab(a.begin(), a.end() - 2), bb(b.begin(), b.end() - 2);
  KILN_ASSIGN_OR_RETURN(Shape batch, broadcast_shapes(ctx, ab, bb));
  KILN_RETURN_IF_ERROR(check_rank(ctx, batch.size() + 2));
  p.out = batch;
  if (a_in.size() > 1) p.out.push_back(p.m);
  if (b_in.size() > 1) p.out.push_back(p.n);
  KILN_ASSIGN_OR_RETURN(int64_t total, checked_num_elements(p.out));
  if (total == 0) return p;
  std::vector<int64_t> sa = broadcast_strides(ab, batch), sb = broadcast_strides(bb, batch), so = strides_of(batch);
  const int64_t nb = num_elements(batch);
  p.a_off.resize(static_cast<size_t>(nb));
  p.b_off.resize(static_cast<size_t>(nb));
  for_each_strided<3>(batch, {sa.data(), sb.data(), so.data()}, [&](int64_t ia, int64_t ib, int64_t io) {
    p.a_off[static_cast<size_t>(io)] = ia * p.m * p.k;
    p.b_off[static_cast<size_t>(io)] = ib * p.k * p.n;
  });
  return p;
}

// A parameter of A may be per tensor, a vector of M (per row), or [..., M, 1]; one of B may be
// per tensor, a vector of N (per column), or [..., 1, N].
Result<QParamIndex> plan_qparam(const PrepareContext& ctx, const char* name, const Shape& param, const Shape& operand,
                                const QMatmulPlan& p, bool rows) {
  QParamIndex q;
  const int64_t len = rows ? p.m : p.n;
  if (num_elements(param) == 1 && param.size() <= 1) return q;
  const size_t nb = p.a_off.size();
  q.per_tensor = false;
  if (param.size() == 1 && param[0] == len && operand.size() >= 2) {
    q.batch_off.assign(nb, 0);
    return q;
  }
  const bool shape_ok = param.size() == operand.size() && param.size() >= 2 &&
                        param[param.size() - (rows ? 2 : 1)] == len && param[param.size() - (rows ? 1 : 2)] == 1;
  if (!shape_ok)
    return ctx.invalid(name, " of shape ", shape_to_string(param), " is neither per tensor nor per ",
                       rows ? "row" : "column", " of an operand of shape ", shape_to_string(operand));
  Shape pb(param.begin(), param.end() - 2);
  Shape ob(operand.begin(), operand.end() - 2);
  Result<Shape> bc = broadcast_shapes(ctx, pb, ob);
  if (!bc.is_ok() || *bc != ob)
    return ctx.invalid(name, " of shape ", shape_to_string(param), " does not broadcast to the batch of ",
                       shape_to_string(operand));
  // Batch of the output, whose leading dimensions may exceed the operand's.
  Shape out_batch(p.out.begin(), p.out.end() - 2);
  std::vector<int64_t> sp = broadcast_strides(pb, out_batch), so = strides_of(out_batch);
  q.batch_off.assign(nb, 0);
  if (nb == 0) return q;
  for_each_strided<2>(out_batch, {sp.data(), so.data()},
                      [&](int64_t ip, int64_t io) { q.batch_off[static_cast<size_t>(io)] = ip * len; });
  return q;
}

inline int64_t qindex(const QParamIndex& q, size_t batch, int64_t i) {
  return q.per_tensor ? 0 : q.batch_off[batch] + i;
}

// acc[m, n] = sum_k (a[m, k] - za[m]) * (b[k, n] - zb[n]) for one batch.
template <typename TA, typename TB>
void int_matmul(const TA* a, const TB* b, const TA* za, const QParamIndex& qa, const TB* zb, const QParamIndex& qb,
                size_t batch, int64_t m, int64_t k, int64_t n, int32_t* acc) {
  for (int64_t i = 0; i < m * n; ++i) acc[i] = 0;
  for (int64_t i = 0; i < m; ++i) {
    const int32_t zai = za ? static_cast<int32_t>(za[qindex(qa, batch, i)]) : 0;
    int32_t* row = acc + i * n;
    for (int64_t p = 0; p < k; ++p) {
      const int32_t av = static_cast<int32_t>(a[i * k + p]) - zai;
      const TB* brow = b + p * n;
      if (zb && !qb.per_tensor) {
        for (int64_t j = 0; j < n; ++j)
          row[j] =
              wrap_add(row[j], av * (static_cast<int32_t>(brow[j]) - static_cast<int32_t>(zb[qindex(qb, batch, j)])));
      } else {
        const int32_t zbv = zb ? static_cast<int32_t>(zb[0]) : 0;
        for (int64_t j = 0; j < n; ++j) row[j] = wrap_add(row[j], av * (static_cast<int32_t>(brow[j]) - zbv));
      }
    }
  }
}

Result<KernelPtr> prepare_matmul_integer(PrepareContext& ctx) {
  KILN_RETURN_IF_ERROR(ctx.require_input(0));
  KILN_RETURN_IF_ERROR(ctx.require_input(1));
  const TensorInfo& a = ctx.input(0);
  const TensorInfo& b = ctx.input(1);
  KILN_ASSIGN_OR_RETURN(QMatmulPlan p, plan_qmatmul(ctx, a.shape, b.shape));
  const bool has_za = ctx.has_input(2), has_zb = ctx.has_input(3);
  QParamIndex qa, qb;
  if (has_za) {
    if (ctx.input(2).dtype != a.dtype) return ctx.invalid("a_zero_point dtype differs from A");
    KILN_ASSIGN_OR_RETURN(qa, plan_qparam(ctx, "a_zero_point", ctx.input(2).shape, a.shape, p, true));
  }
  if (has_zb) {
    if (ctx.input(3).dtype != b.dtype) return ctx.invalid("b_zero_point dtype differs from B");
    KILN_ASSIGN_OR_RETURN(qb, plan_qparam(ctx, "b_zero_point", ctx.input(3).shape, b.shape, p, false));
  }
  ctx.set_output(0, DType::kInt32, p.out);
  KernelPtr k;
  visit_dtype<Int8Types>(a.dtype, [&](auto at) {
    using TA = typename decltype(at)::type;
    visit_dtype<Int8Types>(b.dtype, [&](auto bt) {
      using TB = typename decltype(bt)::type;
      k = make_kernel([p, qa, qb, has_za, has_zb](const KernelContext& kc) {
        const TA* a = kc.in(0).as<const TA>();
        const TB* b = kc.in(1).as<const TB>();
        const TA* za = has_za ? kc.in(2).as<const TA>() : nullptr;
        const TB* zb = has_zb ? kc.in(3).as<const TB>() : nullptr;
        int32_t* y = kc.out(0).as<int32_t>();
        for (size_t i = 0; i < p.a_off.size(); ++i)
          int_matmul(a + p.a_off[i], b + p.b_off[i], za, qa, zb, qb, i, p.m, p.k, p.n,
                     y + static_cast<int64_t>(i) * p.m * p.n);
        return Status::ok();
      });
    });
  });
  if (!k)
    return ctx.unsupported("inputs of dtypes ", dtype_name(a.dtype), " and ", dtype_name(b.dtype),
                           " (expected int8 or uint8)");
  return k;
}

Result<KernelPtr> prepare_qlinear_matmul(PrepareContext& ctx) {
  for (size_t i = 0; i < 8; ++i) KILN_RETURN_IF_ERROR(ctx.require_input(i));
  const TensorInfo& a = ctx.input(0);
  const TensorInfo& b = ctx.input(3);
  for (size_t i : {1, 4, 6})
    if (ctx.input(i).dtype != DType::kFloat32) return ctx.unsupported_dtype(i);
  if (ctx.input(2).dtype != a.dtype) return ctx.invalid("a_zero_point dtype differs from a");
  if (ctx.input(5).dtype != b.dtype) return ctx.invalid("b_zero_point dtype differs from b");
  if (!is_scalar_like(ctx.input(6)) || !is_scalar_like(ctx.input(7)))
    return ctx.invalid("y_scale and y_zero_point must be scalars (per tensor)");
  KILN_ASSIGN_OR_RETURN(QMatmulPlan p, plan_qmatmul(ctx, a.shape, b.shape));
  KILN_ASSIGN_OR_RETURN(QParamIndex qas, plan_qparam(ctx, "a_scale", ctx.input(1).shape, a.shape, p, true));
  KILN_ASSIGN_OR_RETURN(QParamIndex qaz, plan_qparam(ctx, "a_zero_point", ctx.input(2).shape, a.shape, p, true));
  KILN_ASSIGN_OR_RETURN(QParamIndex qbs, plan_qparam(ctx, "b_scale", ctx.input(4).shape, b.shape, p, false));
  KILN_ASSIGN_OR_RETURN(QParamIndex qbz, plan_qparam(ctx, "b_zero_point", ctx.input(5).shape, b.shape, p, false));
  const DType yt = ctx.input(7).dtype;
  ctx.set_output(0, yt, p.out);
  ctx.request_scratch(static_cast<size_t>(p.m * p.n) * sizeof(int32_t));
  KernelPtr k;
  visit_dtype<Int8Types>(a.dtype, [&](auto at) {
    using TA = typename decltype(at)::type;
    visit_dtype<Int8Types>(b.dtype, [&](auto bt) {
      using TB = typename decltype(bt)::type;
      visit_dtype<Int8Types>(yt, [&](auto yt_tag) {
        using TY = typename decltype(yt_tag)::type;
        k = make_kernel([p, qas, qaz, qbs, qbz](const KernelContext& kc) {
          const TA* a = kc.in(0).as<const TA>();
          const float* as = kc.in(1).as<const float>();
          const TA* az = kc.in(2).as<const TA>();
          const TB* b = kc.in(3).as<const TB>();
          const float* bs = kc.in(4).as<const float>();
          const TB* bz = kc.in(5).as<const TB>();
          const float ys = kc.in(6).as<const float>()[0];
          const float yz = static_cast<float>(kc.in(7).as<const TY>()[0]);
          TY* y = kc.out(0).as<TY>();
          int32_t* acc = static_cast<int32_t*>(kc.scratch);
          for (size_t bi = 0; bi < p.a_off.size(); ++bi) {
            int_matmul(a + p.a_off[bi], b + p.b_off[bi], az, qaz, bz, qbz, bi, p.m, p.k, p.n, acc);
            TY* out = y + static_cast<int64_t>(bi) * p.m * p.n;
            for (int64_t i = 0; i < p.m; ++i) {
              const float sa = as[qindex(qas, bi, i)];
              for (int64_t j = 0; j < p.n; ++j) {
                const float mult = sa * bs[qindex(qbs, bi, j)] / ys;
                out[i * p.n + j] = saturate_round<TY>(std::nearbyint(static_cast<float>(acc[i * p.n + j]) * mult) + yz);
              }
            }
          }
          return Status::ok();
        });
      });
    });
  });
  if (!k)
    return ctx.unsupported("dtypes ", dtype_name(a.dtype), ", ", dtype_name(b.dtype), " -> ", dtype_name(yt),
                           " (expected int8 or uint8)");
  return k;
}

// ---- ConvInteger / QLinearConv ----

// Convolution geometry with 1 to 3 spatial dimensions, padded at the front to exactly 3 (size-1
// dimensions with kernel 1) so that one loop nest serves them all.
struct ConvPlan {
  int64_t batch = 0, in_c = 0, out_c = 0, group = 1;
  int64_t in[3] = {1, 1, 1}, out[3] = {1, 1, 1}, kernel[3] = {1, 1, 1};
  int64_t stride[3] = {1, 1, 1}, dilation[3] = {1, 1, 1}, pad[3] = {0, 0, 0};
  Shape out_shape;
};

// For kernel tap k along dimension d, the input index is o * stride + off; it is inside the
// input for the outputs o in [lo, hi).
inline void tap_range(const ConvPlan& p, int d, int64_t k, int64_t* lo, int64_t* hi, int64_t* off) {
  const int64_t s = p.stride[d], in = p.in[d];
  *off = k * p.dilation[d] - p.pad[d];
  const int64_t l = *off >= 0 ? 0 : (-*off + s - 1) / s;
  const int64_t h = in - *off <= 0 ? 0 : (in - *off + s - 1) / s;
  *hi = std::min(h, p.out[d]);
  *lo = std::min(l, *hi);
}

// x input 0 and w input `w_input`; reads the Conv attributes.
Result<ConvPlan> plan_conv(PrepareContext& ctx, size_t w_input) {
  const TensorInfo& x = ctx.input(0);
  const TensorInfo& w = ctx.input(w_input);
  if (x.rank() < 3)
    return ctx.invalid("input x must have rank >= 3 (N, C, spatial...), got ", shape_to_string(x.shape));
  if (w.rank() != x.rank())
    return ctx.invalid("weight of shape ", shape_to_string(w.shape), " must have the rank of x ",
                       shape_to_string(x.shape));
  const size_t nsp = x.rank() - 2;
  if (nsp > 3) return ctx.unsupported(nsp, " spatial dimensions (at most 3 are supported)");
  ConvPlan p;
  p.batch = x.shape[0];
  p.in_c = x.shape[1];
  p.out_c = w.shape[0];
  p.group = ctx.attr_int("group", 1);
  if (p.group <= 0) return ctx.invalid("group must be positive, got ", p.group);
  if (p.in_c % p.group != 0 || p.out_c % p.group != 0)
    return ctx.invalid("group ", p.group, " does not divide the ", p.in_c, " input and ", p.out_c, " output channels");
  if (w.shape[1] != p.in_c / p.group)
    return ctx.invalid("weight of shape ", shape_to_string(w.shape), " must have ", p.in_c / p.group,
                       " input channels per group");
  std::vector<int64_t> ks = ctx.attr_ints("kernel_shape", Shape(w.shape.begin() + 2, w.shape.end()));
  std::vector<int64_t> strides = ctx.attr_ints("strides", std::vector<int64_t>(nsp, 1));
  std::vector<int64_t> dils = ctx.attr_ints("dilations", std::vector<int64_t>(nsp, 1));
  std::vector<int64_t> pads = ctx.attr_ints("pads", std::vector<int64_t>(2 * nsp, 0));
  const std::string auto_pad = ctx.attr_string("auto_pad", "NOTSET");
  if (ks.size() != nsp || strides.size() != nsp || dils.size() != nsp || pads.size() != 2 * nsp)
    return ctx.invalid("kernel_shape, strides, dilations must have ", nsp, " values and pads ", 2 * nsp);
  if (auto_pad != "NOTSET" && auto_pad != "VALID" && auto_pad != "SAME_UPPER" && auto_pad != "SAME_LOWER")
    return ctx.invalid("auto_pad must be NOTSET, VALID, SAME_UPPER or SAME_LOWER, got '", auto_pad, "'");
  // Bounds that keep the geometry arithmetic far from overflow.
  constexpr int64_t kMaxGeom = int64_t{1} << 31;
  auto too_big = [&](const std::vector<int64_t>& v) {
    return std::any_of(v.begin(), v.end(), [&](int64_t e) { return e > kMaxGeom; });
  };
  if (too_big(strides) || too_big(dils) || too_big(pads))
    return ctx.invalid("strides, dilations and pads must be at most ", kMaxGeom);
  p.out_shape = {p.batch, p.out_c};
  for (size_t i = 0; i < nsp; ++i) {
    const int64_t in = x.shape[2 + i], k = w.shape[2 + i];
    if (ks[i] != k) return ctx.invalid("kernel_shape ", ks[i], " differs from the weight's spatial size ", k);
    if (in > kMaxGeom || k > kMaxGeom) return ctx.unsupported("spatial sizes above ", kMaxGeom, " are not supported");
    if (strides[i] <= 0 || dils[i] <= 0) return ctx.invalid("strides and dilations must be positive");
    if (pads[i] < 0 || pads[i + nsp] < 0) return ctx.invalid("pads must be non-negative");
    const int64_t span = dils[i] * (k - 1) + 1;
    int64_t pb = pads[i], pe = pads[i + nsp], out = 0;
    if (auto_pad == "VALID") pb = pe = 0;
    if (auto_pad == "SAME_UPPER" || auto_pad == "SAME_LOWER") {
      out = (in + strides[i] - 1) / strides[i];
      const int64_t total = std::max<int64_t>(0, (out - 1) * strides[i] + span - in);
      pb = auto_pad == "SAME_UPPER" ? total / 2 : total - total / 2;
    } else {
      if (in + pb + pe < span)
        return ctx.invalid("kernel extent ", span, " exceeds the padded input size ", in + pb + pe);
      out = (in + pb + pe - span) / strides[i] + 1;
    }
    const size_t d = 3 - nsp + i;
    p.in[d] = in;
    p.out[d] = out;
    p.kernel[d] = k;
    p.stride[d] = strides[i];
    p.dilation[d] = dils[i];
    p.pad[d] = pb;
    p.out_shape.push_back(out);
  }
  // Nothing to compute for an empty output, however large the other dimensions.
  KILN_ASSIGN_OR_RETURN(int64_t total, checked_num_elements(p.out_shape));
  if (total == 0) p.batch = 0;
  return p;
}

// Integer convolution of one image into acc [out_c, out spatial]; the zero point of w may be
// per output channel. Weight-stationary: each kernel tap adds a shifted input row to a run of
// outputs, so the innermost loop is a plain (vectorisable) multiply-add.
template <typename TX, typename TW>
void int_conv(const ConvPlan& p, const TX* x, int32_t xz, const TW* w, const TW* wz, bool wz_per_channel,
              int32_t* acc) {
  const int64_t cg = p.in_c / p.group, mg = p.out_c / p.group;
  const int64_t in_plane = p.in[0] * p.in[1] * p.in[2], out_plane = p.out[0] * p.out[1] * p.out[2];
  const int64_t k_plane = p.kernel[0] * p.kernel[1] * p.kernel[2];
  for (int64_t m = 0; m < p.out_c; ++m) {
    const int64_t g = m / mg;
    const int32_t wzm = wz ? static_cast<int32_t>(wz[wz_per_channel ? m : 0]) : 0;
    // Accumulate modulo 2^32 (unsigned, so wrapping is defined); same bits as int32.
    uint32_t* out = reinterpret_cast<uint32_t*>(acc + m * out_plane);
    for (int64_t i = 0; i < out_plane; ++i) out[i] = 0;
    for (int64_t c = 0; c < cg; ++c) {
      const TX* xc = x + (g * cg + c) * in_plane;
      const TW* wc = w + (m * cg + c) * k_plane;
      for (int64_t kd = 0; kd < p.kernel[0]; ++kd) {
        int64_t d0, d1, off_d;
        tap_range(p, 0, kd, &d0, &d1, &off_d);
        for (int64_t kh = 0; kh < p.kernel[1]; ++kh) {
          int64_t h0, h1, off_h;
          tap_range(p, 1, kh, &h0, &h1, &off_h);
          for (int64_t kw = 0; kw < p.kernel[2]; ++kw) {
            const int32_t wv = static_cast<int32_t>(wc[(kd * p.kernel[1] + kh) * p.kernel[2] + kw]) - wzm;
            if (wv == 0) continue;
            int64_t w0, w1, off_w;
            tap_range(p, 2, kw, &w0, &w1, &off_w);
            const int64_t sw = p.stride[2];
            for (int64_t od = d0; od < d1; ++od) {
              for (int64_t oh = h0; oh < h1; ++oh) {
                const TX* xrow = xc + ((od * p.stride[0] + off_d) * p.in[1] + oh * p.stride[1] + off_h) * p.in[2];
                uint32_t* orow = out + (od * p.out[1] + oh) * p.out[2];
                for (int64_t ow = w0; ow < w1; ++ow)
                  orow[ow] += static_cast<uint32_t>((static_cast<int32_t>(xrow[ow * sw + off_w]) - xz) * wv);
              }
            }
          }
        }
      }
    }
  }
}

// The zero point (or scale) of w: per tensor, or a vector with one value per output channel.
Status check_w_param(const PrepareContext& ctx, const char* name, const TensorInfo& t, int64_t out_c,
                     bool* per_channel) {
  *per_channel = false;
  if (is_scalar_like(t)) return Status::ok();
  if (t.rank() == 1 && t.shape[0] == out_c) {
    *per_channel = true;
    return Status::ok();
  }
  return ctx.invalid(name, " must be a scalar or have one value per output channel (", out_c, "), got ",
                     shape_to_string(t.shape));
}

Result<KernelPtr> prepare_conv_integer(PrepareContext& ctx) {
  KILN_RETURN_IF_ERROR(ctx.require_input(0));
  KILN_RETURN_IF_ERROR(ctx.require_input(1));
  const TensorInfo& x = ctx.input(0);
  const TensorInfo& w = ctx.input(1);
  KILN_ASSIGN_OR_RETURN(ConvPlan p, plan_conv(ctx, 1));
  const bool has_xz = ctx.has_input(2), has_wz = ctx.has_input(3);
  bool wz_per_channel = false;
  if (has_xz) {
    if (ctx.input(2).dtype != x.dtype) return ctx.invalid("x_zero_point dtype differs from x");
    if (!is_scalar_like(ctx.input(2))) return ctx.invalid("x_zero_point must be a scalar");
  }
  if (has_wz) {
    if (ctx.input(3).dtype != w.dtype) return ctx.invalid("w_zero_point dtype differs from w");
    KILN_RETURN_IF_ERROR(check_w_param(ctx, "w_zero_point", ctx.input(3), p.out_c, &wz_per_channel));
  }
  ctx.set_output(0, DType::kInt32, p.out_shape);
  KernelPtr k;
  visit_dtype<Int8Types>(x.dtype, [&](auto xt) {
    using TX = typename decltype(xt)::type;
    visit_dtype<Int8Types>(w.dtype, [&](auto wt) {
      using TW = typename decltype(wt)::type;
      k = make_kernel([p, has_xz, has_wz, wz_per_channel](const KernelContext& kc) {
        const TX* x = kc.in(0).as<const TX>();
        const TW* w = kc.in(1).as<const TW>();
        const int32_t xz = has_xz ? static_cast<int32_t>(kc.in(2).as<const TX>()[0]) : 0;
        const TW* wz = has_wz ? kc.in(3).as<const TW>() : nullptr;
        int32_t* y = kc.out(0).as<int32_t>();
        const int64_t x_image = p.in_c * p.in[0] * p.in[1] * p.in[2];
        const int64_t y_image = p.out_c * p.out[0] * p.out[1] * p.out[2];
        for (int64_t n = 0; n < p.batch; ++n) int_conv(p, x + n * x_image, xz, w, wz, wz_per_channel, y + n * y_image);
        return Status::ok();
      });
    });
  });
  if (!k)
    return ctx.unsupported("inputs of dtypes ", dtype_name(x.dtype), " and ", dtype_name(w.dtype),
                           " (expected int8 or uint8)");
  return k;
}

Result<KernelPtr> prepare_qlinear_conv(PrepareContext& ctx) {
  for (size_t i = 0; i < 8; ++i) KILN_RETURN_IF_ERROR(ctx.require_input(i));
  const TensorInfo& x = ctx.input(0);
  const TensorInfo& w = ctx.input(3);
  for (size_t i : {1, 4, 6})
    if (ctx.input(i).dtype != DType::kFloat32) return ctx.unsupported_dtype(i);
  if (ctx.input(2).dtype != x.dtype) return ctx.invalid("x_zero_point dtype differs from x");
  if (ctx.input(5).dtype != w.dtype) return ctx.invalid("w_zero_point dtype differs from w");
  if (!is_scalar_like(ctx.input(1)) || !is_scalar_like(ctx.input(2)))
    return ctx.invalid("x_scale and x_zero_point must be scalars");
  if (!is_scalar_like(ctx.input(6)) || !is_scalar_like(ctx.input(7)))
    return ctx.invalid("y_scale and y_zero_point must be scalars");
  KILN_ASSIGN_OR_RETURN(ConvPlan p, plan_conv(ctx, 3));
  bool ws_per_channel = false, wz_per_channel = false;
  KILN_RETURN_IF_ERROR(check_w_param(ctx, "w_scale", ctx.input(4), p.out_c, &ws_per_channel));
  KILN_RETURN_IF_ERROR(check_w_param(ctx, "w_zero_point", ctx.input(5), p.out_c, &wz_per_channel));
  const bool has_bias = ctx.has_input(8);
  if (has_bias) {
    if (ctx.input(8).dtype != DType::kInt32)
      return ctx.invalid("bias B must be int32, got ", dtype_name(ctx.input(8).dtype));
    if (ctx.input(8).shape != Shape{p.out_c})
      return ctx.invalid("bias B must have shape [", p.out_c, "], got ", shape_to_string(ctx.input(8).shape));
  }
  const DType yt = ctx.input(7).dtype;
  ctx.set_output(0, yt, p.out_shape);
  const int64_t out_plane = p.out[0] * p.out[1] * p.out[2];
  ctx.request_scratch(static_cast<size_t>(p.out_c * out_plane) * sizeof(int32_t));
  KernelPtr k;
  visit_dtype<Int8Types>(x.dtype, [&](auto xt) {
    using TX = typename decltype(xt)::type;
    visit_dtype<Int8Types>(w.dtype, [&](auto wt) {
      using TW = typename decltype(wt)::type;
      visit_dtype<Int8Types>(yt, [&](auto yt_tag) {
        using TY = typename decltype(yt_tag)::type;
        k = make_kernel([p, ws_per_channel, wz_per_channel, has_bias, out_plane](const KernelContext& kc) {
          const TX* x = kc.in(0).as<const TX>();
          const float xs = kc.in(1).as<const float>()[0];
          const int32_t xz = static_cast<int32_t>(kc.in(2).as<const TX>()[0]);
          const TW* w = kc.in(3).as<const TW>();
          const float* ws = kc.in(4).as<const float>();
          const TW* wz = kc.in(5).as<const TW>();
          const float ys = kc.in(6).as<const float>()[0];
          const float yz = static_cast<float>(kc.in(7).as<const TY>()[0]);
          const int32_t* bias = has_bias ? kc.in(8).as<const int32_t>() : nullptr;
          TY* y = kc.out(0).as<TY>();
          int32_t* acc = static_cast<int32_t*>(kc.scratch);
          const int64_t x_image = p.in_c * p.in[0] * p.in[1] * p.in[2];
          for (int64_t n = 0; n < p.batch; ++n) {
            int_conv(p, x + n * x_image, xz, w, wz, wz_per_channel, acc);
            TY* out = y + n * p.out_c * out_plane;
            for (int64_t m = 0; m < p.out_c; ++m) {
              const float mult = xs * ws[ws_per_channel ? m : 0] / ys;
              const int32_t b = bias ? bias[m] : 0;
              for (int64_t i = 0; i < out_plane; ++i) {
                const int32_t v = wrap_add(acc[m * out_plane + i], b);
                out[m * out_plane + i] = saturate_round<TY>(std::nearbyint(static_cast<float>(v) * mult) + yz);
              }
            }
          }
          return Status::ok();
        });
      });
    });
  });
  if (!k)
    return ctx.unsupported("dtypes ", dtype_name(x.dtype), ", ", dtype_name(w.dtype), " -> ", dtype_name(yt),
                           " (expected int8 or uint8)");
  return k;
}

constexpr OpDef kQuantizeOps[] = {
    {"", "QuantizeLinear", 10, kMaxOnnxOpset, prepare_quantize},
    {"", "DequantizeLinear", 10, kMaxOnnxOpset, prepare_dequantize},
    {"", "DynamicQuantizeLinear", 11, kMaxOnnxOpset, prepare_dynamic_quantize},
    {"", "MatMulInteger", 10, kMaxOnnxOpset, prepare_matmul_integer},
    {"", "QLinearMatMul", 10, kMaxOnnxOpset, prepare_qlinear_matmul},
    {"", "ConvInteger", 10, kMaxOnnxOpset, prepare_conv_integer},
    {"", "QLinearConv", 10, kMaxOnnxOpset, prepare_qlinear_conv},
};

}  // namespace

std::span<const OpDef> quantize_ops() { return kQuantizeOps; }

}  // namespace kiln::nn::ops
