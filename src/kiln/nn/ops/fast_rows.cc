// Row-wise operators on the vectorised math kernels (kernels/vmath.h), created by the fast_ops
// and fuse_patterns passes:
//   com.kiln.Softmax    X -> softmax over the trailing block starting at `axis` (log=1: log-softmax)
//   com.kiln.LayerNorm  X, gamma, beta -> normalised over the trailing block starting at `axis`
//   com.kiln.Gelu       X -> GELU (approximate = "none" | "tanh")
#include "kiln/core/thread_pool.h"
#include "kiln/nn/kernels/vmath.h"
#include "kiln/nn/ops/families.h"
#include "kiln/nn/ops/op_util.h"

namespace kiln::nn::ops {
namespace {

// Rows and columns of X seen as [prod(shape[:axis]), prod(shape[axis:])].
Status rows_cols(PrepareContext& ctx, const TensorInfo& x, int64_t* rows, int64_t* cols) {
  int64_t axis = 0;
  KILN_RETURN_IF_ERROR(normalize_axis(ctx, ctx.attr_int("axis", -1), static_cast<int64_t>(x.rank()), &axis));
  *rows = num_elements(std::span<const int64_t>(x.shape.data(), static_cast<size_t>(axis)));
  *cols = num_elements(std::span<const int64_t>(x.shape.data() + axis, x.rank() - static_cast<size_t>(axis)));
  return Status::ok();
}

template <typename F>
void split_rows(ThreadPool* pool, int64_t rows, F&& f) {
  if (!pool || pool->threads() == 1 || rows < 8) {
    f(0, rows);
    return;
  }
  const int64_t chunks = std::min<int64_t>(rows, pool->threads() * 2);
  pool->parallel_for(chunks, [&](int64_t c) { f(rows * c / chunks, rows * (c + 1) / chunks); });
}

Result<KernelPtr> prepare_softmax(PrepareContext& ctx) {
  KILN_RETURN_IF_ERROR(ctx.require_input(0));
  const TensorInfo& x = ctx.input(0);
  if (x.dtype != DType::kFloat32 || x.rank() == 0) return ctx.unsupported_dtype(0);
  int64_t rows = 0, cols = 0;
  KILN_RETURN_IF_ERROR(rows_cols(ctx, x, &rows, &cols));
  const bool log = ctx.attr_int("log", 0) != 0;
  ctx.set_output(0, DType::kFloat32, x.shape);
  const kernels::VectorMath& vm = kernels::vector_math();
  return make_kernel(
      [=, &vm](const KernelContext& k) {
        const float* xp = k.in(0).as<const float>();
        float* yp = k.out(0).as<float>();
        if (cols > 0)
          split_rows(k.pool, rows, [&](int64_t b, int64_t e) { vm.softmax(xp + b * cols, yp + b * cols, e - b, cols, log); });
        return Status::ok();
      },
      vm.name);
}

Result<KernelPtr> prepare_layernorm(PrepareContext& ctx) {
  for (size_t i = 0; i < 2; ++i) KILN_RETURN_IF_ERROR(ctx.require_input(i));
  const TensorInfo& x = ctx.input(0);
  if (x.dtype != DType::kFloat32 || x.rank() == 0) return ctx.unsupported_dtype(0);
  int64_t rows = 0, cols = 0;
  KILN_RETURN_IF_ERROR(rows_cols(ctx, x, &rows, &cols));
  if (ctx.input(1).dtype != DType::kFloat32 || ctx.input(1).num_elements() != cols)
    return ctx.invalid("gamma must be float32 with ", cols, " elements");
  const bool beta = ctx.has_input(2);
  if (beta && (ctx.input(2).dtype != DType::kFloat32 || ctx.input(2).num_elements() != cols))
    return ctx.invalid("beta must be float32 with ", cols, " elements");
  const float eps = ctx.attr_float("epsilon", 1e-5f);
  ctx.set_output(0, DType::kFloat32, x.shape);
  const kernels::VectorMath& vm = kernels::vector_math();
  return make_kernel(
      [=, &vm](const KernelContext& k) {
        const float* xp = k.in(0).as<const float>();
        const float* g = k.in(1).as<const float>();
        const float* bp = beta ? k.in(2).as<const float>() : nullptr;
        float* yp = k.out(0).as<float>();
        if (cols > 0)
          split_rows(k.pool, rows,
                     [&](int64_t b, int64_t e) { vm.layernorm(xp + b * cols, g, bp, eps, yp + b * cols, e - b, cols); });
        return Status::ok();
      },
      vm.name);
}

Result<KernelPtr> prepare_gelu(PrepareContext& ctx) {
  KILN_RETURN_IF_ERROR(ctx.require_input(0));
  const TensorInfo& x = ctx.input(0);
  if (x.dtype != DType::kFloat32) return ctx.unsupported_dtype(0);
  const std::string approx = ctx.attr_string("approximate", "none");
  if (approx != "none" && approx != "tanh") return ctx.invalid("approximate must be 'none' or 'tanh'");
  const bool tanh_approx = approx == "tanh";
  ctx.set_output(0, DType::kFloat32, x.shape);
  const int64_t n = x.num_elements();
  const kernels::VectorMath& vm = kernels::vector_math();
  return make_kernel(
      [=, &vm](const KernelContext& k) {
        vm.gelu(k.in(0).as<const float>(), k.out(0).as<float>(), n, tanh_approx);
        return Status::ok();
      },
      vm.name);
}

constexpr OpDef kRowOps[] = {
    {"com.kiln", "Softmax", 1, 1, prepare_softmax},
    {"com.kiln", "LayerNorm", 1, 1, prepare_layernorm},
    {"com.kiln", "Gelu", 1, 1, prepare_gelu},
};

}  // namespace

std::span<const OpDef> fast_row_ops() { return kRowOps; }

}  // namespace kiln::nn::ops
