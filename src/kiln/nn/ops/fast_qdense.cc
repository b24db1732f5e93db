// com.kiln.QDense: the integer fully-connected layer created by the quantized pass from
// DequantizeLinear -> Gemm / MatMul [+ bias] [-> Relu/Clip] -> QuantizeLinear chains and from
// QLinearMatMul with constant weights.
//
// Inputs: X [..., K] int8/uint8, x_scale, x_zero_point, W int8 [K, N] (or [N, K] with transB=1;
// zero point already removed), w_scale [N], y_scale and y_zero_point (both omitted: float32
// output), bias [N] int32 in units of x_scale * w_scale. Attributes: transB, qmin, qmax,
// int32_output (the raw sums; x_zero_point may then be a runtime value, and input 8 a float
// multiplier of the sums, one value or one per column, making the output float32).
// The weights are packed once here for the int8 micro-kernels (kernels/qgemm.h). With an int16
// x_zero_point, X is int16 (or float32, quantised here to int16: a model input quantised to 16
// bits) and the layer runs on the int16 kernels of kernels/qs16_conv.h.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>

#include "kiln/nn/kernels/qgemm.h"
#include "kiln/nn/kernels/qs16_conv.h"
#include "kiln/nn/ops/families.h"
#include "kiln/nn/ops/op_util.h"
#include "kiln/nn/ops/qparams.h"
#include "kiln/nn/ops/thread_parts.h"

namespace kiln::nn::ops {
namespace {

// `rows` rows of n int32 sums at y: each minus zp * cs[j] (wrapping like the reference's int32
// accumulation), and with `mult` converted in place to float(sum) * mult[j * mstep]. The
// restrict-qualified parameters let the compiler vectorise both loops (the byte-wise stores could
// otherwise alias cs and mult).
void correct_sums(char* __restrict y, int64_t rows, int64_t n, int32_t zp, const int32_t* __restrict cs,
                  const float* __restrict mult, int64_t mstep) {
  const auto corrected = [&](const char* e, int64_t j) {
    int32_t v;
    std::memcpy(&v, e, 4);
    return static_cast<int32_t>(static_cast<uint32_t>(v) - static_cast<uint32_t>(zp) * static_cast<uint32_t>(cs[j]));
  };
  for (int64_t r = 0; r < rows; ++r, y += n * 4) {
    if (!mult) {
      for (int64_t j = 0; j < n; ++j) {
        const int32_t v = corrected(y + j * 4, j);
        std::memcpy(y + j * 4, &v, 4);
      }
    } else if (mstep == 0) {
      const float m = mult[0];
      for (int64_t j = 0; j < n; ++j) {
        const float f = static_cast<float>(corrected(y + j * 4, j)) * m;
        std::memcpy(y + j * 4, &f, 4);
      }
    } else {
      for (int64_t j = 0; j < n; ++j) {
        const float f = static_cast<float>(corrected(y + j * 4, j)) * mult[j];
        std::memcpy(y + j * 4, &f, 4);
      }
    }
  }
}

// W (input 3: int8 [K, N], or [N, K] with transB=1) and bias (input 7: int32 [N]) of a QDense
// whose X ends in K.
struct DenseWeights {
  const Tensor* w = nullptr;
  const Tensor* b = nullptr;
  bool tb = false;
  int64_t k = 0, n = 0;
};
Status read_dense_weights(PrepareContext& ctx, const TensorInfo& x, DenseWeights* d) {
  d->w = ctx.require_constant(3, "weights");
  d->b = ctx.require_constant(7, "bias");
  if (!d->w || !d->b) return ctx.sticky_error();
  if (d->w->dtype() != DType::kInt8 || d->w->rank() != 2) return ctx.invalid("W must be int8 of rank 2");
  d->tb = ctx.attr_int("transB", 0) != 0;
  d->k = d->w->shape()[d->tb ? 1 : 0];
  d->n = d->w->shape()[d->tb ? 0 : 1];
  if (x.shape.back() != d->k)
    return ctx.invalid("X ", shape_to_string(x.shape), " does not match W ", shape_to_string(d->w->shape()));
  if (d->b->dtype() != DType::kInt32 || d->b->num_elements() != d->n) return ctx.invalid("bias must be int32[", d->n, "]");
  return Status::ok();
}

// The int16-activation path: a dense layer is the int16 convolution kernel with one tap of K
// values per row. A float32 X is quantised into scratch; an int16 X is read in place, or staged
// with one value of slack when K is odd (the last pair reads one value past the row, against a
// zero weight).
Result<KernelPtr> prepare_qdense16(PrepareContext& ctx) {
  const TensorInfo x = ctx.input(0);
  const bool float_in = x.dtype == DType::kFloat32;
  if (x.dtype != DType::kInt16 && !float_in) return ctx.invalid("an int16 x_zero_point needs an int16 or float32 X");
  if (x.rank() < 1) return ctx.invalid("X must have rank >= 1");
  float x_scale = 1.f;
  int32_t x_zero = 0;
  KILN_RETURN_IF_ERROR(read_q16scalar(ctx, 1, 2, &x_scale, &x_zero));
  DenseWeights dw;
  KILN_RETURN_IF_ERROR(read_dense_weights(ctx, x, &dw));
  const Tensor *w = dw.w, *b = dw.b;  // (not a structured binding: clang cannot capture those in lambdas)
  const bool tb = dw.tb;
  const int64_t k = dw.k, n = dw.n;
  if (ctx.attr_int("int32_output", 0) != 0 || ctx.has_input(8))
    return ctx.invalid("int16 activations need an int8 or float output");
  QOutputSide os;
  KILN_RETURN_IF_ERROR(read_output_side(ctx, x_scale, n, &os));
  std::vector<int8_t> mat(static_cast<size_t>(k * n));  // [K][N]
  for (int64_t kk = 0; kk < k; ++kk)
    for (int64_t j = 0; j < n; ++j) mat[static_cast<size_t>(kk * n + j)] = w->data<int8_t>()[tb ? j * k + kk : kk * n + j];
  if (!kernels::q16_sums_fit(mat.data(), k, n, b->data<int32_t>(), x_zero))
    return ctx.invalid("the int16 sums of some output column could overflow int32 (kernels/qs16_conv.h)");
  auto packed = std::make_shared<kernels::Q16PackedWeights>(
      kernels::pack_q16weights(mat.data(), 1, k, n, b->data<int32_t>(), os.scale.data(), x_zero));
  Shape out = x.shape;
  out.back() = n;
  ctx.set_output(0, os.dtype, out);
  const int64_t m = num_elements(std::span<const int64_t>(x.shape.data(), x.rank() - 1));
  auto offsets = std::make_shared<std::vector<int64_t>>(static_cast<size_t>(m));
  for (int64_t r = 0; r < m; ++r) (*offsets)[static_cast<size_t>(r)] = r * k;
  constexpr int64_t kSlack = 32;
  // An int16 X with even K is read in place (the pairs never pass its end); otherwise it is staged.
  const bool in_place = !float_in && k % 2 == 0;
  if (!in_place) ctx.request_scratch(static_cast<size_t>(m * k + kSlack) * sizeof(int16_t));
  const kernels::Q16Kernels& qk = kernels::q16kernels();
  const kernels::QParams params = os.params;
  // Rows per thread part: at least 2^19 multiply-adds each (as the int16 convolution).
  const int64_t min_rows = std::max<int64_t>(8, (int64_t{1} << 19) / std::max<int64_t>(1, k * n));
  return make_kernel(
      [=, &qk](const KernelContext& kc) {
        const int16_t* rows = kc.in(0).as<const int16_t>();
        if (!in_place) {
          int16_t* buf = static_cast<int16_t*>(kc.scratch);
          if (float_in) qk.quantize(kc.in(0).as<const float>(), m * k, x_scale, x_zero, buf);
          else std::memcpy(buf, rows, static_cast<size_t>(m * k) * sizeof(int16_t));
          std::fill(buf + m * k, buf + m * k + kSlack, static_cast<int16_t>(x_zero));
          rows = buf;
        }
        const kernels::Q16Rows a{rows, offsets->data(), 0};
        const kernels::Q16Weights wv = packed->view();
        for_thread_parts(kc.pool, m, min_rows, 8, [&](int64_t, int64_t begin, int64_t end) {
          qk.conv(a, wv, begin, end, kc.out(0).data, n, params);
        });
        return Status::ok();
      },
      qk.name);
}

Result<KernelPtr> prepare_qdense(PrepareContext& ctx) {
  KILN_RETURN_IF_ERROR(ctx.require_input(0));
  if (ctx.has_input(2) && ctx.input(2).dtype == DType::kInt16) return prepare_qdense16(ctx);
  const TensorInfo x = ctx.input(0);
  if (x.dtype != DType::kInt8 && x.dtype != DType::kUInt8) return ctx.unsupported_dtype(0);
  if (x.rank() < 1) return ctx.invalid("X must have rank >= 1");
  QScalar xq;
  // int32_output may take x_zero_point at run time (a DynamicQuantizeLinear's): the weights are
  // packed for zero point 0 and zero_point * (column sum of W) leaves the sums after the GEMM.
  const bool runtime_zero = ctx.attr_int("int32_output", 0) != 0 && ctx.has_input(2) && !ctx.constant(2);
  if (runtime_zero) {
    KILN_RETURN_IF_ERROR(ctx.require_input(2));
    const TensorInfo z = ctx.input(2);
    if (z.dtype != x.dtype || z.num_elements() != 1) return ctx.invalid("x_zero_point must be one value of X's type");
    xq.is_unsigned = x.dtype == DType::kUInt8;
  } else {
    KILN_RETURN_IF_ERROR(read_qscalar(ctx, 1, 2, &xq));
  }
  if (xq.dtype() != x.dtype) return ctx.invalid("x_zero_point dtype differs from X");
  DenseWeights dw;
  KILN_RETURN_IF_ERROR(read_dense_weights(ctx, x, &dw));
  const Tensor *w = dw.w, *b = dw.b;  // (not a structured binding: clang cannot capture those in lambdas)
  const bool tb = dw.tb;
  const int64_t k = dw.k, n = dw.n;
  QOutputSide os;
  KILN_RETURN_IF_ERROR(read_output_side(ctx, xq.scale, n, &os));
  const kernels::QParams params = os.params;
  const std::vector<float>& scale = os.scale;
  Shape out = x.shape;
  out.back() = n;
  // With a runtime zero point, input 8 may give a float multiplier (one value or one per column):
  // Y = float(sum) * multiplier, float32 (a dynamic quantisation's Cast -> Mul).
  const bool scaled = runtime_zero && ctx.has_input(8);
  int64_t mult_count = 0;
  if (scaled) {
    KILN_RETURN_IF_ERROR(ctx.require_input(8));
    const TensorInfo mi = ctx.input(8);
    mult_count = mi.num_elements();
    if (mi.dtype != DType::kFloat32 || (mult_count != 1 && mult_count != n))
      return ctx.invalid("multiplier must be float32 of 1 or ", n, " values");
  }
  ctx.set_output(0, scaled && !os.int_out ? DType::kFloat32 : os.dtype, out);
  const kernels::QGemmConfig& cfg = kernels::qgemm_config_for(kernels::qkernels(), w->data<int8_t>(), w->num_elements());
  auto packed = std::make_shared<kernels::QPackedWeights>(kernels::pack_qweights(
      cfg, w->data<int8_t>(), 1, k, n, tb ? k : n, tb, b->data<int32_t>(), scale.data(), xq.zero_point, xq.is_unsigned));
  const int64_t m = num_elements(std::span<const int64_t>(x.shape.data(), x.rank() - 1));
  if (runtime_zero) {
    auto colsum = std::make_shared<std::vector<int32_t>>(static_cast<size_t>(n), 0);
    for (int64_t kk = 0; kk < k; ++kk)
      for (int64_t j = 0; j < n; ++j) (*colsum)[j] += w->data<int8_t>()[tb ? j * k + kk : kk * n + j];
    const bool u8 = xq.is_unsigned;
    const int64_t min_part_rows = std::max<int64_t>(1, ((int64_t{1} << 14) + n - 1) / n);
    return make_kernel(
        [=, &cfg](const KernelContext& kc) {
          // The int32 sums go into the output buffer (4-byte elements either way), then are
          // corrected (wrapping like the reference's int32 accumulation) and, when scaled,
          // converted in place.
          kernels::qgemm(cfg, m, kc.in(0).data, k, *packed, kc.out(0).data, n, params, kc.pool);
          const int32_t zp = u8 ? kc.in(2).as<const uint8_t>()[0] : kc.in(2).as<const int8_t>()[0];
          const int32_t* cs = colsum->data();
          const float* mult = scaled ? kc.in(8).as<const float>() : nullptr;
          const int64_t mstep = mult_count == 1 ? 0 : 1;
          // Rows in one part per thread of at least 2^14 values (about 5 us): the rows each GEMM
          // thread just wrote are mostly its own.
          for_thread_parts(kc.pool, m, min_part_rows, 1, [&](int64_t, int64_t r0, int64_t r1) {
            correct_sums(static_cast<char*>(kc.out(0).data) + r0 * n * 4, r1 - r0, n, zp, cs, mult, mstep);
          });
          return Status::ok();
        },
        cfg.name);
  }
  return make_kernel(
      [=, &cfg](const KernelContext& kc) {
        kernels::qgemm(cfg, m, kc.in(0).data, k, *packed, kc.out(0).data, n, params, kc.pool);
        return Status::ok();
      },
      cfg.name);
}

constexpr OpDef kQDenseOps[] = {
    {"com.kiln", "QDense", 1, 1, prepare_qdense},
};

}  // namespace

std::span<const OpDef> fast_qdense_ops() { return kQDenseOps; }

}  // namespace kiln::nn::ops
