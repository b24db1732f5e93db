// Elementwise integer operators created by the quantized pass (passes/quantized.cc):
//   com.kiln.QAdd / QMul  A, a_scale, a_zero_point, B, b_scale, b_zero_point, y_scale,
//                         y_zero_point -> Y: DequantizeLinear(A), DequantizeLinear(B) -> Add / Mul
//                         [-> Relu/Clip] -> QuantizeLinear as one pass over the bytes. A and B have
//                         the output's shape, or one of them holds a single value.
//   com.kiln.Quantize     X float32, scale, zero_point -> int8/uint8 (per-tensor QuantizeLinear)
//   com.kiln.Dequantize   X int8/uint8, scale, zero_point -> float32 (per-tensor DequantizeLinear)
//   com.kiln.DynamicQuantize  X float32 -> Y uint8, y_scale, y_zero_point (DynamicQuantizeLinear)
//   com.microsoft.QLinearAdd / QLinearMul (ONNX Runtime's QOperator format) run as QAdd / QMul.
// Quantize, Dequantize, QAdd and QMul run on the vectorised kernels of kernels/qgemm.h (same-shaped
// QAdd / QMul of 8 KiB or more in two halves at 2 threads; with a single-value operand, in chunks
// against copies of it). They compute each element with the float operations the unfused chain
// would use.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <utility>

#include "kiln/nn/kernels/qgemm.h"
#include "kiln/nn/ops/families.h"
#include "kiln/nn/ops/op_util.h"
#include "kiln/nn/ops/qparams.h"
#include "kiln/nn/ops/thread_parts.h"

namespace kiln::nn::ops {
namespace {

// A same-shaped QAdd / QMul runs in one part per thread of at least this many bytes, cut at cache
// lines (so from 8 KiB in halves at 2 threads). 8 KiB is about 2 us of work, where a split starts
// to pay on a VM whose cores hand data over slowly (bench/cross_core.cc), and a residual Add reads
// what the convolutions before it wrote, mostly in each thread's own cache: ResNet-8 int8 at 2
// threads 53.3 -> 47.3 us (its three Adds: 16, 8 and 4 KiB; splitting from 4 KiB and 16 KiB gave
// 47.9 and 48.7 us), MobileNetV2 1325 -> 1315 us, 15 alternating rounds.
constexpr int64_t kMinPartBytes = 4096;
// DynamicQuantize: at least 2^15 values (about 7 us) per part.
constexpr int64_t kMinPartValues = int64_t{1} << 15;
// Elements per call when one operand is a single value (its copies live on the stack).
constexpr int64_t kChunk = 256;

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
  else
    return ctx.unsupported("operands ", shape_to_string(a.shape), " and ", shape_to_string(b.shape),
                           " (only equal shapes or a single value are supported)");
  ctx.set_output(0, yq.dtype(), out);
  const int64_t n = num_elements(out);
  const kernels::QKernels& qk = kernels::qkernels();
  kernels::QBinaryParams p{aq.scale, bq.scale, yq.scale, aq.zero_point, bq.zero_point, yq.zero_point,
                           qmin, qmax, kMul, aq.is_unsigned, bq.is_unsigned, yq.is_unsigned};
  if (a.shape == b.shape) {  // same shapes (a residual Add)
    return make_kernel(
        [=, &qk](const KernelContext& kc) {
          const uint8_t* pa = static_cast<const uint8_t*>(kc.in(0).data);
          const uint8_t* pb = static_cast<const uint8_t*>(kc.in(3).data);
          uint8_t* py = static_cast<uint8_t*>(kc.out(0).data);
          for_thread_parts(kc.pool, n, kMinPartBytes, 64, [&](int64_t, int64_t b0, int64_t b1) {
            qk.binary(pa + b0, pb + b0, b1 - b0, p, py + b0);
          });
          return Status::ok();
        },
        qk.name);
  }
  // One operand a single value: it becomes the second (Add and Mul of two floats commute exactly),
  // and the same kernel runs over chunks of kChunk elements against a chunk of copies of it.
  const bool swap = na == 1 && nb != 1;
  if (swap) {
    std::swap(p.a_scale, p.b_scale);
    std::swap(p.a_zero, p.b_zero);
    std::swap(p.a_unsigned, p.b_unsigned);
  }
  const size_t vec_in = swap ? 3 : 0, one_in = swap ? 0 : 3;
  return make_kernel(
      [=, &qk](const KernelContext& kc) {
        const uint8_t* pa = static_cast<const uint8_t*>(kc.in(vec_in).data);
        alignas(64) uint8_t copies[kChunk];
        std::memset(copies, *static_cast<const uint8_t*>(kc.in(one_in).data), kChunk);
        uint8_t* py = static_cast<uint8_t*>(kc.out(0).data);
        for (int64_t i = 0; i < n; i += kChunk) qk.binary(pa + i, copies, std::min(kChunk, n - i), p, py + i);
        return Status::ok();
      },
      qk.name);
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

// The range [min(x, 0), max(x, 0)] of n floats: 16 running extremes in four 4-float vectors (SSE2,
// the baseline this file is built for; the compiler would not reorder a float reduction itself),
// then one. The result does not depend on the order: NaN is never taken (x < lo ? x : lo is what
// std::min does), and -0 never replaces the starting +0.
void float_range(const float* xp, int64_t n, float* lo_out, float* hi_out) {
  typedef float F4 __attribute__((vector_size(16)));
  F4 lo4[4] = {}, hi4[4] = {};
  int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    for (int j = 0; j < 4; ++j) {
      F4 v;
      std::memcpy(&v, xp + i + 4 * j, sizeof v);
      lo4[j] = v < lo4[j] ? v : lo4[j];
      hi4[j] = hi4[j] < v ? v : hi4[j];
    }
  float lo = 0.f, hi = 0.f;
  for (int j = 0; j < 4; ++j)
    for (int l = 0; l < 4; ++l) {
      lo = lo4[j][l] < lo ? lo4[j][l] : lo;
      hi = hi < hi4[j][l] ? hi4[j][l] : hi;
    }
  for (; i < n; ++i) {
    lo = xp[i] < lo ? xp[i] : lo;
    hi = hi < xp[i] ? xp[i] : hi;
  }
  *lo_out = lo;
  *hi_out = hi;
}

// DynamicQuantizeLinear (ONNX) on the vectorised Quantize kernel: the range [min(x, 0), max(x, 0)]
// in a loop the compiler vectorises (x < lo ? x : lo is what std::min does, NaN never taken), then
// scale and zero point by the reference's rule (qparams.h), then the
// per-tensor QuantizeLinear kernel, whose results are the definition's bit for bit.
Result<KernelPtr> prepare_dynamic_quantize(PrepareContext& ctx) {
  KILN_RETURN_IF_ERROR(prepare_dynamic_quantize_outputs(ctx));
  const bool out_scale = ctx.has_output(1), out_zp = ctx.has_output(2);
  const int64_t n = ctx.input(0).num_elements();
  const kernels::QKernels& qk = kernels::qkernels();
  return make_kernel(
      [=, &qk](const KernelContext& kc) {
        const float* xp = kc.in(0).as<const float>();
        uint8_t* yp = static_cast<uint8_t*>(kc.out(0).data);
        // In parts per thread: the range of each part (the order of the extremes does not
        // matter, see float_range), then each part quantised.
        float los[kMaxThreadParts], his[kMaxThreadParts];
        const int64_t parts = for_thread_parts(kc.pool, n, kMinPartValues, 1, [&](int64_t i, int64_t b0, int64_t b1) {
          float_range(xp + b0, b1 - b0, &los[i], &his[i]);
        });
        float lo = 0.f, hi = 0.f;
        for (int64_t i = 0; i < parts; ++i) {
          lo = los[i] < lo ? los[i] : lo;
          hi = hi < his[i] ? his[i] : hi;
        }
        float scale = 1.f;
        uint8_t zp = 0;
        dynamic_quantize_params(lo, hi, &scale, &zp);
        for_thread_parts(kc.pool, n, kMinPartValues, 64, [&](int64_t, int64_t b0, int64_t b1) {
          qk.quantize(xp + b0, b1 - b0, scale, zp, true, yp + b0);
        });
        if (out_scale) kc.out(1).as<float>()[0] = scale;
        if (out_zp) kc.out(2).as<uint8_t>()[0] = zp;
        return Status::ok();
      },
      qk.name);
}

constexpr OpDef kQElementwiseOps[] = {
    {"com.kiln", "DynamicQuantize", 1, 1, prepare_dynamic_quantize},
    {"com.kiln", "QAdd", 1, 1, prepare_qbinary<false>},
    {"com.kiln", "QMul", 1, 1, prepare_qbinary<true>},
    {"com.kiln", "Quantize", 1, 1, prepare_quantize},
    {"com.kiln", "Dequantize", 1, 1, prepare_dequantize},
    // ONNX Runtime's QOperator contrib ops: the same inputs in the same order (zero points given;
    // operands of the same shape or one of them a single value).
    {"com.microsoft", "QLinearAdd", 1, 1, prepare_qbinary<false>},
    {"com.microsoft", "QLinearMul", 1, 1, prepare_qbinary<true>},
};

}  // namespace

std::span<const OpDef> fast_qelementwise_ops() { return kQElementwiseOps; }

}  // namespace kiln::nn::ops
