// Operators that only move or describe data without computing on it: Identity, Dropout
// (inference), Constant, Shape, Size, Reshape, Flatten, Squeeze, Unsqueeze, ConstantOfShape,
// EyeLike, Range.
#include <cstring>

#include "kiln/nn/ops/families.h"
#include "kiln/nn/ops/op_util.h"

namespace kiln::nn::ops {
namespace {

KernelPtr copy_kernel() {
  return make_kernel([](const KernelContext& k) {
    if (k.out(0).data != k.in(0).data) std::memcpy(k.out(0).data, k.in(0).data, k.in(0).byte_size());
    return Status::ok();
  });
}

Result<KernelPtr> prepare_identity(PrepareContext& ctx) {
  KILN_RETURN_IF_ERROR(ctx.require_input(0));
  if (!dtype_is_supported(ctx.input(0).dtype)) return ctx.unsupported_dtype(0);
  ctx.set_output(0, ctx.input(0).dtype, ctx.input(0).shape);
  return copy_kernel();
}

// Inference-mode Dropout: Y = X, and the optional mask is all true.
Result<KernelPtr> prepare_dropout(PrepareContext& ctx) {
  KILN_RETURN_IF_ERROR(ctx.require_input(0));
  if (ctx.has_input(2)) {
    const Tensor* t = ctx.require_constant(2, "training_mode");
    if (!t) return ctx.sticky_error();
    if (t->num_elements() != 1 || element_as_int64(t->view(), 0) != 0)
      return ctx.unsupported("training_mode=true (random dropout) is not supported for inference");
  }
  if (ctx.opset() < 7 && ctx.attr_int("is_test", 0) == 0 && ctx.has_attr("is_test"))
    return ctx.unsupported("is_test=0 (training mode) is not supported");
  ctx.set_output(0, ctx.input(0).dtype, ctx.input(0).shape);
  ctx.set_output(1, DType::kBool, ctx.input(0).shape);
  bool mask = ctx.has_output(1);
  return make_kernel([mask](const KernelContext& k) {
    std::memcpy(k.out(0).data, k.in(0).data, k.in(0).byte_size());
    if (mask) std::memset(k.out(1).data, 1, static_cast<size_t>(k.out(1).num_elements()));
    return Status::ok();
  });
}

Result<KernelPtr> prepare_constant(PrepareContext& ctx) {
  Tensor value;
  int present = 0;
  if (const Tensor* t = ctx.attr_tensor("value")) {
    value = *t;
    ++present;
  }
  if (ctx.has_attr("value_float")) {
    value = Tensor(DType::kFloat32, {});
    value.data<float>()[0] = ctx.attr_float("value_float", 0);
    ++present;
  }
  if (ctx.has_attr("value_int")) {
    value = Tensor(DType::kInt64, {});
    value.data<int64_t>()[0] = ctx.attr_int("value_int", 0);
    ++present;
  }
  if (ctx.has_attr("value_floats")) {
    std::vector<float> v = ctx.attr_floats("value_floats");
    value = Tensor(DType::kFloat32, {static_cast<int64_t>(v.size())});
    std::memcpy(value.raw(), v.data(), v.size() * sizeof(float));
    ++present;
  }
  if (ctx.has_attr("value_ints")) {
    std::vector<int64_t> v = ctx.attr_ints("value_ints");
    value = Tensor(DType::kInt64, {static_cast<int64_t>(v.size())});
    std::memcpy(value.raw(), v.data(), v.size() * sizeof(int64_t));
    ++present;
  }
  if (ctx.has_attr("sparse_value") || ctx.has_attr("value_string") || ctx.has_attr("value_strings"))
    return ctx.unsupported("sparse and string constants are not supported");
  if (present != 1) return ctx.invalid("exactly one value attribute must be given, found ", present);
  ctx.set_output(0, value.dtype(), value.shape());
  auto holder = std::make_shared<Tensor>(std::move(value));
  return make_kernel([holder](const KernelContext& k) {
    std::memcpy(k.out(0).data, holder->raw(), holder->byte_size());
    return Status::ok();
  });
}

constexpr OpDef kShapeOps[] = {
    {"", "Identity", 1, kMaxOnnxOpset, prepare_identity},
    {"", "Dropout", 1, kMaxOnnxOpset, prepare_dropout},
    {"", "Constant", 1, kMaxOnnxOpset, prepare_constant},
};

}  // namespace

std::span<const OpDef> shape_ops() { return kShapeOps; }

}  // namespace kiln::nn::ops
