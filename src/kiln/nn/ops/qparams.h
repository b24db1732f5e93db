// kiln/nn/ops/qparams.h — reading the quantisation parameters of the com.kiln integer operators
// (internal to nn; the quantized pass writes them as constant scalars).
//
//   QScalar x;
//   KILN_RETURN_IF_ERROR(read_qscalar(ctx, 1, 2, &x));   // x_scale, x_zero_point
//   kernels::QParams p = kernels::int8_output(y.zero_point, y.is_unsigned, qmin, qmax);
#pragma once

#include <algorithm>
#include <cmath>

#include <vector>

#include "kiln/core/status.h"
#include "kiln/nn/kernel.h"
#include "kiln/nn/kernels/qgemm.h"

namespace kiln::nn::ops {

// real = scale * (q - zero_point), q stored as int8 or uint8.
struct QScalar {
  float scale = 1.f;
  int32_t zero_point = 0;
  bool is_unsigned = false;
  DType dtype() const { return is_unsigned ? DType::kUInt8 : DType::kInt8; }
};

// Reads a constant float32 scale (input `scale_input`, finite and > 0) and a constant int8 or
// uint8 zero point (input `zp_input`), both single values.
inline Status read_qscalar(PrepareContext& ctx, size_t scale_input, size_t zp_input, QScalar* q) {
  const Tensor* s = ctx.require_constant(scale_input, "scale");
  const Tensor* z = ctx.require_constant(zp_input, "zero point");
  if (!s || !z) return ctx.sticky_error();
  if (s->dtype() != DType::kFloat32 || s->num_elements() != 1) return ctx.invalid("scale must be one float32");
  if ((z->dtype() != DType::kInt8 && z->dtype() != DType::kUInt8) || z->num_elements() != 1)
    return ctx.invalid("zero point must be one int8 or uint8");
  q->scale = s->data<float>()[0];
  if (!std::isfinite(q->scale) || !(q->scale > 0.f)) return ctx.invalid("scale must be finite and positive, got ", q->scale);
  q->is_unsigned = z->dtype() == DType::kUInt8;
  q->zero_point = q->is_unsigned ? z->data<uint8_t>()[0] : z->data<int8_t>()[0];
  return Status::ok();
}

// The int16 counterpart of read_qscalar (an input quantised to 16 bits, kernels/qs16_conv.h): a
// constant float32 scale (finite, > 0) and a constant int16 zero point, both single values.
inline Status read_q16scalar(PrepareContext& ctx, size_t scale_input, size_t zp_input, float* scale,
                             int32_t* zero_point) {
  const Tensor* s = ctx.require_constant(scale_input, "scale");
  const Tensor* z = ctx.require_constant(zp_input, "zero point");
  if (!s || !z) return ctx.sticky_error();
  if (s->dtype() != DType::kFloat32 || s->num_elements() != 1) return ctx.invalid("scale must be one float32");
  if (z->dtype() != DType::kInt16 || z->num_elements() != 1) return ctx.invalid("zero point must be one int16");
  *scale = s->data<float>()[0];
  if (!std::isfinite(*scale) || !(*scale > 0.f)) return ctx.invalid("scale must be finite and positive, got ", *scale);
  *zero_point = z->data<int16_t>()[0];
  return Status::ok();
}

// DynamicQuantizeLinear, shared by its reference (quantize.cc) and fast (fast_qelementwise.cc)
// kernels. Declares Y uint8 of X's shape, y_scale and y_zero_point (scalars); X must be float32.
inline Status prepare_dynamic_quantize_outputs(PrepareContext& ctx) {
  KILN_RETURN_IF_ERROR(ctx.require_input(0));
  const TensorInfo& x = ctx.input(0);
  if (x.dtype != DType::kFloat32) return ctx.unsupported_dtype(0);
  ctx.set_output(0, DType::kUInt8, x.shape);
  ctx.set_output(1, DType::kFloat32, {});
  ctx.set_output(2, DType::kUInt8, {});
  return Status::ok();
}
// Its scale and zero point for the range [lo, hi] (lo <= 0 <= hi): (hi - lo) / 255, or 1 for an
// all-zero input (as ONNX Runtime does) rather than a scale of 0 that later divisions would trip
// over; the zero point -lo / scale rounded half to even into [0, 255].
inline void dynamic_quantize_params(float lo, float hi, float* scale, uint8_t* zero_point) {
  *scale = hi == lo ? 1.0f : (hi - lo) / 255.0f;
  const float z = std::nearbyint(std::min(255.0f, std::max(0.0f, 0.0f - lo / *scale)));
  *zero_point = std::isnan(z) ? 0 : static_cast<uint8_t>(z);
}

// Rounds half to even like std::nearbyint in the default rounding mode, without the libm call
// that baseline x86-64 code makes for it (no SSE4.1 roundss): adding and subtracting 1.5 * 2^23
// leaves the nearest integer for |v| < 2^22; larger values are clamped first (they saturate the
// int8 output anyway). NaN stays NaN.
inline float round_half_even(float v) {
  v = std::min(std::max(v, -4.0e6f), 4.0e6f);  // minss / maxss: no data-dependent branch
  constexpr float m = 12582912.f;  // not folded: Kiln is built without -ffast-math
  return (v + m) - m;
}

// The integer range an output may take: attributes qmin/qmax (a fused Relu or Clip), within the
// dtype's own range.
inline Status read_qclamp(PrepareContext& ctx, const QScalar& y, int32_t* qmin, int32_t* qmax) {
  const int32_t lo = y.is_unsigned ? 0 : -128, hi = y.is_unsigned ? 255 : 127;
  *qmin = static_cast<int32_t>(ctx.attr_int("qmin", lo));
  *qmax = static_cast<int32_t>(ctx.attr_int("qmax", hi));
  if (*qmin < lo || *qmax > hi || *qmin > *qmax) return ctx.invalid("qmin/qmax ", *qmin, "/", *qmax, " out of range");
  return Status::ok();
}

// The output side of com.kiln.QConv / QDense: the epilogue, its per-column multiplier and the
// output dtype, from w_scale (input 4: `channels` floats, finite and positive), the optional
// y_scale / y_zero_point (inputs 5, 6; an int8 / uint8 output clamped to the qmin / qmax
// attributes) and int32_output=1 (the raw sums of ConvInteger / MatMulInteger; w_scale unused).
// The multiplier is the float expression of QLinearConv's reference, x_scale * w_scale[j] /
// y_scale (x_scale * w_scale[j] for a float output), so that results agree bit for bit.
struct QOutputSide {
  kernels::QParams params;
  std::vector<float> scale;
  DType dtype = DType::kFloat32;
  bool int_out = false, sums_out = false;
};

inline Status read_output_side(PrepareContext& ctx, float x_scale, int64_t channels, QOutputSide* o) {
  const Tensor* ws = ctx.require_constant(4, "w_scale");
  if (!ws) return ctx.sticky_error();
  if (ws->dtype() != DType::kFloat32 || ws->num_elements() != channels)
    return ctx.invalid("w_scale must be float32[", channels, "]");
  o->int_out = ctx.has_input(5);
  o->sums_out = ctx.attr_int("int32_output", 0) != 0;
  if (o->sums_out && o->int_out) return ctx.invalid("int32_output excludes y_scale / y_zero_point");
  o->params = o->sums_out ? kernels::int32_output() : kernels::float_output(-3.4e38f, 3.4e38f);
  o->dtype = o->sums_out ? DType::kInt32 : DType::kFloat32;
  QScalar yq;
  if (o->int_out) {
    KILN_RETURN_IF_ERROR(read_qscalar(ctx, 5, 6, &yq));
    int32_t qmin = 0, qmax = 0;
    KILN_RETURN_IF_ERROR(read_qclamp(ctx, yq, &qmin, &qmax));
    o->params = kernels::int8_output(yq.zero_point, yq.is_unsigned, qmin, qmax);
    o->dtype = yq.dtype();
  }
  o->scale.assign(static_cast<size_t>(channels), 0.f);
  for (int64_t j = 0; j < channels; ++j) {
    const float wsj = ws->data<float>()[j];
    if (!std::isfinite(wsj) || !(wsj > 0.f)) return ctx.invalid("w_scale must be finite and positive");
    o->scale[static_cast<size_t>(j)] = o->int_out ? x_scale * wsj / yq.scale : x_scale * wsj;
  }
  return Status::ok();
}

}  // namespace kiln::nn::ops
