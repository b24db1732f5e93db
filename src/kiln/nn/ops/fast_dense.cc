// com.kiln.Dense: Y = act(X * W + bias + residual) with W constant and packed at compile time.
// Graph passes turn Gemm (with a constant B) and MatMul (with a constant 2-D B, plus a following
// bias Add) into this node; it runs on the packed-weight GEMM micro-kernels (kernels/gemm.h).
//
// Inputs: X [..., K] float32, W [K, N] (or [N, K] with transB=1) constant, bias [N] (optional,
// constant), residual [..., N] (optional). Attributes: transB, activation, activation_params.
#include <memory>

#include "kiln/nn/kernels/gemm.h"
#include "kiln/nn/ops/families.h"
#include "kiln/nn/ops/fused_activation.h"
#include "kiln/nn/ops/op_util.h"

namespace kiln::nn::ops {
namespace {

Result<KernelPtr> prepare_dense(PrepareContext& ctx) {
  KILN_RETURN_IF_ERROR(ctx.require_input(0));
  KILN_RETURN_IF_ERROR(ctx.require_input(1));
  const TensorInfo& x = ctx.input(0);
  const Tensor* w = ctx.require_constant(1, "weights");
  if (!w) return ctx.sticky_error();
  if (x.dtype != DType::kFloat32 || w->dtype() != DType::kFloat32) return ctx.unsupported_dtype(0);
  if (x.rank() < 1 || w->rank() != 2) return ctx.invalid("X must have rank >= 1 and W rank 2");
  const bool tb = ctx.attr_int("transB", 0) != 0;
  const int64_t k = tb ? w->shape()[1] : w->shape()[0], n = tb ? w->shape()[0] : w->shape()[1];
  if (x.shape.back() != k)
    return ctx.invalid("X ", shape_to_string(x.shape), " does not match W ", shape_to_string(w->shape()));
  const float* bias = nullptr;
  if (ctx.has_input(2)) {
    const Tensor* b = ctx.require_constant(2, "bias");
    if (!b) return ctx.sticky_error();
    if (b->dtype() != DType::kFloat32 || b->num_elements() != n) return ctx.invalid("bias must be float32[", n, "]");
    bias = b->data<float>();
  }
  Shape out = x.shape;
  out.back() = n;
  if (ctx.has_input(3) && (ctx.input(3).shape != out || ctx.input(3).dtype != DType::kFloat32))
    return ctx.invalid("residual must be float32", shape_to_string(out));
  kernels::GemmParams params;
  KILN_RETURN_IF_ERROR(read_fused_activation(ctx, &params));
  ctx.set_output(0, DType::kFloat32, out);
  const kernels::GemmConfig& cfg = kernels::gemm_config_for(n);
  auto packed = std::make_shared<kernels::PackedWeights>(
      kernels::pack_weights(cfg, w->data<float>(), k, n, tb ? k : n, tb, bias));
  const int64_t m = num_elements(std::span<const int64_t>(x.shape.data(), x.rank() - 1));
  const bool residual = ctx.has_input(3);
  return make_kernel(
      [=, &cfg](const KernelContext& kc) {
        kernels::GemmParams p = params;
        if (residual) {
          p.residual = kc.in(3).as<const float>();
          p.ld_residual = n;
        }
        kernels::gemm(cfg, m, kc.in(0).as<const float>(), k, *packed, kc.out(0).as<float>(), n, p, kc.pool);
        return Status::ok();
      },
      cfg.name);
}

constexpr OpDef kDenseOps[] = {
    {"com.kiln", "Dense", 1, 1, prepare_dense},
};

}  // namespace

std::span<const OpDef> fast_dense_ops() { return kDenseOps; }

}  // namespace kiln::nn::ops
