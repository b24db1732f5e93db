// com.kiln.MatMul: float32 MatMul whose second operand is only known at run time (attention:
// Q*K^T, scores*V). Each batch's B is packed into scratch memory, then multiplied on the GEMM
// micro-kernels. A: [..., M, K]; B: [K, N] (shared) or the same batch dimensions as A.
#include "kiln/nn/kernels/gemm.h"
#include "kiln/nn/ops/families.h"
#include "kiln/nn/ops/op_util.h"

namespace kiln::nn::ops {
namespace {

Result<KernelPtr> prepare_matmul(PrepareContext& ctx) {
  KILN_RETURN_IF_ERROR(ctx.require_input(0));
  KILN_RETURN_IF_ERROR(ctx.require_input(1));
  const TensorInfo& a = ctx.input(0);
  const TensorInfo& b = ctx.input(1);
  if (a.dtype != DType::kFloat32 || b.dtype != DType::kFloat32) return ctx.unsupported_dtype(0);
  if (a.rank() < 2 || b.rank() < 2) return ctx.invalid("needs A and B of rank >= 2");
  const int64_t m = a.shape[a.rank() - 2], k = a.shape.back(), n = b.shape.back();
  if (b.shape[b.rank() - 2] != k) return ctx.invalid("inner dimensions differ");
  const Shape batch(a.shape.begin(), a.shape.end() - 2);
  const bool shared_b = b.rank() == 2;
  if (!shared_b && Shape(b.shape.begin(), b.shape.end() - 2) != batch)
    return ctx.invalid("B's batch dimensions must be A's or absent");
  Shape out = batch;
  out.push_back(m);
  out.push_back(n);
  ctx.set_output(0, DType::kFloat32, out);
  const kernels::GemmConfig& cfg = kernels::gemm_config();
  const int64_t packed = kernels::packed_floats(cfg, k, n);
  ctx.request_scratch(static_cast<size_t>(packed) * sizeof(float));
  const int64_t batches = num_elements(batch);
  kernels::GemmParams params;
  return make_kernel(
      [=, &cfg](const KernelContext& kc) {
        const float* ap = kc.in(0).as<const float>();
        const float* bp = kc.in(1).as<const float>();
        float* yp = kc.out(0).as<float>();
        float* pk = static_cast<float*>(kc.scratch);
        const kernels::PackedView view{k, n, cfg.nr, cfg.nr + k * cfg.nr, pk};
        for (int64_t i = 0; i < batches; ++i) {
          if (i == 0 || !shared_b) kernels::pack_weights_into(cfg, bp + (shared_b ? 0 : i * k * n), k, n, n, false, nullptr, pk);
          kernels::gemm_view(cfg, m, ap + i * m * k, k, view, yp + i * m * n, n, params, kc.pool);
        }
        return Status::ok();
      },
      cfg.name);
}

constexpr OpDef kMatmulOps[] = {
    {"com.kiln", "MatMul", 1, 1, prepare_matmul},
};

}  // namespace

std::span<const OpDef> fast_matmul_ops() { return kMatmulOps; }

}  // namespace kiln::nn::ops
