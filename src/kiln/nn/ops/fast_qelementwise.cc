// Elementwise integer operators created by the quantized pass (passes/quantized.cc):
//   com.kiln.QAdd / QMul  A, a_scale, a_zero_point, B, b_scale, b_zero_point, y_scale,
//                         y_zero_point -> Y: DequantizeLinear(A), DequantizeLinear(B) -> Add / Mul
//                         [-> Relu/Clip] -> QuantizeLinear as one pass over the bytes. A and B have
//                         the output's shape, or one of them holds a single value.
//   com.kiln.Quantize     X float32, scale, zero_point -> int8/uint8 (per-tensor QuantizeLinear)
//   com.kiln.Dequantize   X int8/uint8, scale, zero_point -> float32 (per-tensor DequantizeLinear)
// Quantize and Dequantize run on the vectorised conversions of kernels/qgemm.h; QAdd and QMul
// compute each element with the float operations the unfused chain would use.
#include <algorithm>
#include <cmath>

#include "kiln/nn/kernels/qgemm.h"
#include "kiln/nn/ops/families.h"
#include "kiln/nn/ops/op_util.h"
#include "kiln/nn/ops/qparams.h"

namespace kiln::nn::ops {
namespace {

template <bool kMul>
Result<KernelPtr> prepare_qbinary(PrepareContext& ctx) {
  for (size_t i = 0; i < 8; ++i) KILN_RETURN_IF_ERROR(ctx.require_input(i));
  const TensorInfo a = ctx.input(0), b = ctx.input(3);
  QScalar aq, bq, yq;
  KILN_RETURN_IF_ERROR(read_qscalar(ctx, 1, 2, &aq));
  KILN_RETURN_IF_ERROR(read_qscalar(ctx, 4, 5, &bq));
  KILN_RETURN_IF_ERROR(read_qscalar(ctx, 6, 7, &yq));
  if (a.dtype != aq.dtype() || b.dtype != bq.dtype()) return ctx.invalid("operand dtypes differ from their zero points");
  int32_t qmin = 0, qmax = 0;
  KILN_RETURN_IF_ERROR(read_qclamp(ctx, yq, &qmin, &qmax));
  const int64_t na = a.num_elements(), nb = b.num_elements();
  Shape out;
  if (a.shape == b.shape) out = a.shape;
  else if (nb == 1) out = a.shape;
  else if (na == 1) out = b.shape;
  else return ctx.invalid("operands ", shape_to_string(a.shape), " and ", shape_to_string(b.shape), " differ");
  ctx.set_output(0, yq.dtype(), out);
  const int64_t n = num_elements(out);
  return make_kernel(
      [=](const KernelContext& k) {
        const uint8_t* pa = static_cast<const uint8_t*>(k.in(0).data);
        const uint8_t* pb = static_cast<const uint8_t*>(k.in(3).data);
        uint8_t* py = static_cast<uint8_t*>(k.out(0).data);
        const int64_t sa = na == 1 ? 0 : 1, sb = nb == 1 ? 0 : 1;
        for (int64_t i = 0; i < n; ++i) {
          const int32_t qa = aq.is_unsigned ? pa[i * sa] : static_cast<int8_t>(pa[i * sa]);
          const int32_t qb = bq.is_unsigned ? pb[i * sb] : static_cast<int8_t>(pb[i * sb]);
          const float va = static_cast<float>(qa - aq.zero_point) * aq.scale;
          const float vb = static_cast<float>(qb - bq.zero_point) * bq.scale;
          const float v = kMul ? va * vb : va + vb;
          float q = round_half_even(v / yq.scale) + static_cast<float>(yq.zero_point);
          q = std::min(std::max(q, static_cast<float>(qmin)), static_cast<float>(qmax));
          const int32_t r = static_cast<int32_t>(q);
          py[i] = yq.is_unsigned ? static_cast<uint8_t>(r) : static_cast<uint8_t>(static_cast<int8_t>(r));
        }
        return Status::ok();
      },
      "qs8_binary_scalar");
}

Result<KernelPtr> prepare_quantize(PrepareContext& ctx) {
  KILN_RETURN_IF_ERROR(ctx.require_input(0));
  const TensorInfo x = ctx.input(0);
  if (x.dtype != DType::kFloat32) return ctx.unsupported_dtype(0);
  QScalar q;
  KILN_RETURN_IF_ERROR(read_qscalar(ctx, 1, 2, &q));
  ctx.set_output(0, q.dtype(), x.shape);
  const kernels::QKernels& qk = kernels::qkernels();
  const int64_t n = x.num_elements();
  return make_kernel(
      [=, &qk](const KernelContext& k) {
        qk.quantize(k.in(0).as<const float>(), n, q.scale, q.zero_point, q.is_unsigned, k.out(0).data);
        return Status::ok();
      },
      qk.name);
}

Result<KernelPtr> prepare_dequantize(PrepareContext& ctx) {
  KILN_RETURN_IF_ERROR(ctx.require_input(0));
  const TensorInfo x = ctx.input(0);
  QScalar q;
  KILN_RETURN_IF_ERROR(read_qscalar(ctx, 1, 2, &q));
  if (x.dtype != q.dtype()) return ctx.unsupported_dtype(0);
  ctx.set_output(0, DType::kFloat32, x.shape);
  const kernels::QKernels& qk = kernels::qkernels();
  const int64_t n = x.num_elements();
  return make_kernel(
      [=, &qk](const KernelContext& k) {
        qk.dequantize(k.in(0).data, n, q.scale, q.zero_point, q.is_unsigned, k.out(0).as<float>());
        return Status::ok();
      },
      qk.name);
}

constexpr OpDef kQElementwiseOps[] = {
    {"com.kiln", "QAdd", 1, 1, prepare_qbinary<false>},
    {"com.kiln", "QMul", 1, 1, prepare_qbinary<true>},
    {"com.kiln", "Quantize", 1, 1, prepare_quantize},
    {"com.kiln", "Dequantize", 1, 1, prepare_dequantize},
};

}  // namespace

std::span<const OpDef> fast_qelementwise_ops() { return kQElementwiseOps; }

}  // namespace kiln::nn::ops
