// Operators that only move or describe data without computing on it: Identity, Dropout
// (inference), Constant, Shape, Size, Reshape, Flatten, Squeeze, Unsqueeze, ConstantOfShape,
// EyeLike, Range.
#include <cmath>
#include <cstring>
#include <limits>
#include <memory>

#include "kiln/nn/ops/families.h"
#include "kiln/nn/ops/op_util.h"

namespace kiln::nn::ops {
namespace {

// Empty tensors may have null data pointers; memcpy must not see them.
void copy_bytes(void* dst, const void* src, size_t n) {
  if (n != 0 && dst != src) std::memcpy(dst, src, n);
}

KernelPtr copy_kernel() {
  return make_kernel([](const KernelContext& k) {
    copy_bytes(k.out(0).data, k.in(0).data, k.in(0).byte_size());
    return Status::ok();
  });
}

// Kernel writing a value computed at compile time.
KernelPtr holder_kernel(Tensor value) {
  auto holder = std::make_shared<Tensor>(std::move(value));
  return make_kernel([holder](const KernelContext& k) {
    copy_bytes(k.out(0).data, holder->raw(), holder->byte_size());
    return Status::ok();
  });
}

Status require_storable(const PrepareContext& ctx, size_t i) {
  KILN_RETURN_IF_ERROR(ctx.require_input(i));
  if (!dtype_is_supported(ctx.input(i).dtype)) return ctx.unsupported_dtype(i);
  return Status::ok();
}

Result<KernelPtr> prepare_identity(PrepareContext& ctx) {
  KILN_RETURN_IF_ERROR(require_storable(ctx, 0));
  ctx.set_output(0, ctx.input(0).dtype, ctx.input(0).shape);
  return copy_kernel();
}

// Inference-mode Dropout: Y = X, and the optional mask is all true (all ones before opset 10,
// where the mask had the input's type).
Result<KernelPtr> prepare_dropout(PrepareContext& ctx) {
  KILN_RETURN_IF_ERROR(require_storable(ctx, 0));
  if (ctx.has_input(2)) {
    const Tensor* t = ctx.require_constant(2, "training_mode");
    if (!t) return ctx.sticky_error();
    if (t->num_elements() != 1) return ctx.invalid("training_mode must be a scalar, got shape ", shape_to_string(t->shape()));
    // Training with ratio 0 drops nothing, so it is the identity too.
    if (element_as_int64(t->view(), 0) != 0) {
      const Tensor* r = ctx.has_input(1) ? ctx.require_constant(1, "ratio") : nullptr;
      if (ctx.has_input(1) && !r) return ctx.sticky_error();
      if (!r || r->num_elements() != 1 || element_as_double(r->view(), 0) != 0)
        return ctx.unsupported("training_mode=true with a nonzero ratio (random dropout) is not supported");
    }
  }
  if (ctx.opset() < 7 && ctx.attr_int("is_test", 0) == 0 && ctx.has_attr("is_test"))
    return ctx.unsupported("is_test=0 (training mode) is not supported");
  const TensorInfo& x = ctx.input(0);
  ctx.set_output(0, x.dtype, x.shape);
  if (!ctx.has_output(1)) return copy_kernel();
  Tensor one;
  if (ctx.opset() < 10) {
    one = Tensor(x.dtype, {});
    if (!visit_dtype<AllTypes>(x.dtype, [&](auto tag) {
          using T = typename decltype(tag)::type;
          one.data<T>()[0] = T(1);
        }))
      return ctx.unsupported_dtype(0);
  } else {
    one = Tensor(DType::kBool, {});
    one.data<bool>()[0] = true;
  }
  ctx.set_output(1, one.dtype(), x.shape);
  auto holder = std::make_shared<Tensor>(std::move(one));
  return make_kernel([holder](const KernelContext& k) {
    copy_bytes(k.out(0).data, k.in(0).data, k.in(0).byte_size());
    const size_t es = holder->byte_size();
    char* m = static_cast<char*>(k.out(1).data);
    for (int64_t i = 0, n = k.out(1).num_elements(); i < n; ++i) std::memcpy(m + i * es, holder->raw(), es);
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
    copy_bytes(value.raw(), v.data(), v.size() * sizeof(float));
    ++present;
  }
  if (ctx.has_attr("value_ints")) {
    std::vector<int64_t> v = ctx.attr_ints("value_ints");
    value = Tensor(DType::kInt64, {static_cast<int64_t>(v.size())});
    copy_bytes(value.raw(), v.data(), v.size() * sizeof(int64_t));
    ++present;
  }
  if (ctx.has_attr("sparse_value") || ctx.has_attr("value_string") || ctx.has_attr("value_strings"))
    return ctx.unsupported("sparse and string constants are not supported");
  if (!ctx.sticky_error().is_ok()) return ctx.sticky_error();
  if (present != 1) return ctx.invalid("exactly one value attribute must be given, found ", present);
  if (!dtype_is_supported(value.dtype())) return ctx.unsupported("constants of dtype ", dtype_name(value.dtype()));
  ctx.set_output(0, value.dtype(), value.shape());
  return holder_kernel(std::move(value));
}

// Shape and Size never read their input's data: the compiler evaluates them from shapes alone.
Result<KernelPtr> prepare_shape(PrepareContext& ctx) {
  if (!ctx.has_input(0)) return ctx.invalid("input 0 is required but missing");
  const Shape& s = ctx.input(0).shape;
  const int64_t rank = static_cast<int64_t>(s.size());
  int64_t start = 0, end = rank;
  if (ctx.opset() >= 15) {
    start = ctx.attr_int("start", 0);
    end = ctx.attr_int("end", rank);
  }
  // Out-of-range start/end are clamped, as in Python slicing.
  auto clamp_index = [rank](int64_t v) { return v < 0 ? std::max<int64_t>(v + rank, 0) : std::min(v, rank); };
  start = clamp_index(start);
  end = clamp_index(end);
  const int64_t n = std::max<int64_t>(end - start, 0);
  Tensor dims(DType::kInt64, {n});
  for (int64_t i = 0; i < n; ++i) dims.data<int64_t>()[i] = s[static_cast<size_t>(start + i)];
  ctx.set_output(0, DType::kInt64, {n});
  return holder_kernel(std::move(dims));
}

Result<KernelPtr> prepare_size(PrepareContext& ctx) {
  if (!ctx.has_input(0)) return ctx.invalid("input 0 is required but missing");
  Tensor n(DType::kInt64, {});
  n.data<int64_t>()[0] = ctx.input(0).num_elements();
  ctx.set_output(0, DType::kInt64, {});
  return holder_kernel(std::move(n));
}

// Reshape, Flatten, Squeeze and Unsqueeze keep the bytes as they are: the planner makes the output
// a view of the input (no copy) unless it must land in a caller's buffer.
KernelPtr view_kernel(PrepareContext& ctx) {
  ctx.set_output_alias(0);
  return copy_kernel();
}

Result<KernelPtr> prepare_reshape(PrepareContext& ctx) {
  KILN_RETURN_IF_ERROR(require_storable(ctx, 0));
  const Shape& in = ctx.input(0).shape;
  std::vector<int64_t> req;
  if (ctx.opset() < 5) {
    if (!ctx.has_attr("shape")) return ctx.invalid("attribute 'shape' is required before opset 5");
    req = ctx.attr_ints("shape");
  } else {
    KILN_RETURN_IF_ERROR(ctx.require_input(1));
    const Tensor* t = ctx.require_constant(1, "shape");
    if (!t) return ctx.sticky_error();
    if (t->rank() != 1) return ctx.invalid("input 'shape' must be 1-D, got shape ", shape_to_string(t->shape()));
    if (!dtype_is_integer(t->dtype())) return ctx.invalid("input 'shape' must be int64, got ", dtype_name(t->dtype()));
    req = to_int64_vector(*t);
  }
  const bool allowzero = ctx.opset() >= 14 && ctx.attr_int("allowzero", 0) != 0;
  KILN_RETURN_IF_ERROR(check_rank(ctx, req.size()));
  Shape out(req.size());
  int infer = -1;
  int64_t known = 1;
  for (size_t i = 0; i < req.size(); ++i) {
    int64_t d = req[i];
    if (d == -1) {
      if (infer >= 0) return ctx.invalid("shape ", shape_to_string(req), " has more than one -1");
      infer = static_cast<int>(i);
      continue;
    }
    if (d < -1) return ctx.invalid("shape ", shape_to_string(req), " has a negative dimension ", d);
    if (d == 0 && !allowzero) {
      if (i >= in.size())
        return ctx.invalid("shape ", shape_to_string(req), " copies dimension ", i, " (0) but the input ",
                           shape_to_string(in), " has rank ", in.size());
      d = in[i];
    }
    out[i] = d;
    if (__builtin_mul_overflow(known, d, &known))
      return ctx.invalid("shape ", shape_to_string(req), " has too many elements");
  }
  const int64_t total = ctx.input(0).num_elements();
  if (infer >= 0) {
    if (known == 0 || total % known != 0)
      return ctx.invalid("cannot infer the -1 dimension of shape ", shape_to_string(req), " for input ",
                         shape_to_string(in), " (", total, " elements)");
    out[static_cast<size_t>(infer)] = total / known;
  } else if (known != total) {
    return ctx.invalid("cannot reshape input ", shape_to_string(in), " (", total, " elements) to ",
                       shape_to_string(out), " (", known, " elements)");
  }
  ctx.set_output(0, ctx.input(0).dtype, out);
  return view_kernel(ctx);
}

Result<KernelPtr> prepare_flatten(PrepareContext& ctx) {
  KILN_RETURN_IF_ERROR(require_storable(ctx, 0));
  const Shape& in = ctx.input(0).shape;
  const int64_t rank = static_cast<int64_t>(in.size());
  int64_t axis = ctx.attr_int("axis", 1);
  if (axis < -rank || axis > rank)
    return ctx.invalid("axis ", axis, " is out of range [", -rank, ", ", rank, "] for input ", shape_to_string(in));
  if (axis < 0) axis += rank;
  int64_t outer = 1, inner = 1;
  for (int64_t i = 0; i < rank; ++i) (i < axis ? outer : inner) *= in[static_cast<size_t>(i)];
  ctx.set_output(0, ctx.input(0).dtype, {outer, inner});
  return view_kernel(ctx);
}

// Reads the axes of Squeeze/Unsqueeze: an attribute before opset 13, an optional input since.
Status read_axes(PrepareContext& ctx, std::vector<int64_t>* axes, bool* given) {
  *given = false;
  if (ctx.opset() < 13) {
    if (ctx.has_attr("axes")) {
      *axes = ctx.attr_ints("axes");
      *given = true;
    }
    return ctx.sticky_error();
  }
  if (!ctx.has_input(1)) return Status::ok();
  const Tensor* t = ctx.require_constant(1, "axes");
  if (!t) return ctx.sticky_error();
  if (t->rank() > 1 || !dtype_is_integer(t->dtype()))
    return ctx.invalid("input 'axes' must be a 1-D int64 tensor, got ", dtype_name(t->dtype()), " ",
                       shape_to_string(t->shape()));
  *axes = to_int64_vector(*t);
  *given = true;
  return Status::ok();
}

Result<KernelPtr> prepare_squeeze(PrepareContext& ctx) {
  KILN_RETURN_IF_ERROR(require_storable(ctx, 0));
  const Shape& in = ctx.input(0).shape;
  std::vector<int64_t> axes;
  bool given = false;
  KILN_RETURN_IF_ERROR(read_axes(ctx, &axes, &given));
  std::vector<bool> drop(in.size(), false);
  if (given) {
    KILN_RETURN_IF_ERROR(normalize_axes(ctx, axes, static_cast<int64_t>(in.size())));
    for (int64_t a : axes) {
      if (in[static_cast<size_t>(a)] != 1)
        return ctx.invalid("cannot squeeze axis ", a, " of input ", shape_to_string(in), ": its size is not 1");
      drop[static_cast<size_t>(a)] = true;
    }
  } else {
    for (size_t i = 0; i < in.size(); ++i) drop[i] = in[i] == 1;
  }
  Shape out;
  for (size_t i = 0; i < in.size(); ++i)
    if (!drop[i]) out.push_back(in[i]);
  ctx.set_output(0, ctx.input(0).dtype, out);
  return view_kernel(ctx);
}

Result<KernelPtr> prepare_unsqueeze(PrepareContext& ctx) {
  KILN_RETURN_IF_ERROR(require_storable(ctx, 0));
  const Shape& in = ctx.input(0).shape;
  std::vector<int64_t> axes;
  bool given = false;
  KILN_RETURN_IF_ERROR(read_axes(ctx, &axes, &given));
  if (!given) return ctx.invalid("axes are required");
  const size_t out_rank = in.size() + axes.size();
  KILN_RETURN_IF_ERROR(check_rank(ctx, out_rank));
  KILN_RETURN_IF_ERROR(normalize_axes(ctx, axes, static_cast<int64_t>(out_rank)));
  std::vector<bool> inserted(out_rank, false);
  for (int64_t a : axes) inserted[static_cast<size_t>(a)] = true;
  Shape out(out_rank);
  for (size_t i = 0, j = 0; i < out_rank; ++i) out[i] = inserted[i] ? 1 : in[j++];
  ctx.set_output(0, ctx.input(0).dtype, out);
  return view_kernel(ctx);
}

// Fills the output with copies of one element of any dtype.
KernelPtr fill_kernel(Tensor element) {
  auto holder = std::make_shared<Tensor>(std::move(element));
  return make_kernel([holder](const KernelContext& k) {
    const size_t es = holder->byte_size();
    char* y = static_cast<char*>(k.out(0).data);
    for (int64_t i = 0, n = k.out(0).num_elements(); i < n; ++i) std::memcpy(y + i * es, holder->raw(), es);
    return Status::ok();
  });
}

Result<KernelPtr> prepare_constant_of_shape(PrepareContext& ctx) {
  KILN_RETURN_IF_ERROR(ctx.require_input(0));
  const Tensor* t = ctx.require_constant(0, "shape");
  if (!t) return ctx.sticky_error();
  if (t->rank() != 1 || !dtype_is_integer(t->dtype()))
    return ctx.invalid("input 'shape' must be a 1-D int64 tensor, got ", dtype_name(t->dtype()), " ",
                       shape_to_string(t->shape()));
  Shape out = to_int64_vector(*t);
  KILN_RETURN_IF_ERROR(check_rank(ctx, out.size()));
  for (int64_t d : out)
    if (d < 0) return ctx.invalid("shape ", shape_to_string(out), " has a negative dimension");
  Tensor value(DType::kFloat32, {});
  if (const Tensor* v = ctx.attr_tensor("value")) {
    if (v->num_elements() != 1)
      return ctx.invalid("attribute 'value' must hold exactly one element, got shape ", shape_to_string(v->shape()));
    if (!dtype_is_supported(v->dtype())) return ctx.unsupported("attribute 'value' has dtype ", dtype_name(v->dtype()));
    value = Tensor(v->dtype(), {});
    std::memcpy(value.raw(), v->raw(), value.byte_size());
  }
  if (!ctx.sticky_error().is_ok()) return ctx.sticky_error();
  ctx.set_output(0, value.dtype(), out);
  return fill_kernel(std::move(value));
}

Result<KernelPtr> prepare_eye_like(PrepareContext& ctx) {
  KILN_RETURN_IF_ERROR(ctx.require_input(0));
  const TensorInfo& x = ctx.input(0);
  if (x.rank() != 2) return ctx.invalid("input must have rank 2, got ", shape_to_string(x.shape));
  DType dtype = x.dtype;
  if (ctx.has_attr("dtype")) {
    int64_t code = ctx.attr_int("dtype", 0);
    dtype = code >= 0 && code <= 64 ? dtype_from_onnx(static_cast<int32_t>(code)) : DType::kUndefined;
    if (dtype == DType::kUndefined) return ctx.invalid("attribute 'dtype' ", code, " is not a known data type");
  }
  const int64_t k = ctx.attr_int("k", 0);
  const int64_t rows = x.shape[0], cols = x.shape[1];
  ctx.set_output(0, dtype, x.shape);
  KernelPtr kernel;
  bool ok = visit_dtype<AllTypes>(dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    kernel = make_kernel([rows, cols, k](const KernelContext& kc) {
      T* y = kc.out(0).as<T>();
      for (int64_t i = 0; i < rows * cols; ++i) y[i] = T(0);
      if (k >= cols || k <= -rows) return Status::ok();  // the diagonal j = i + k misses the matrix
      for (int64_t i = std::max<int64_t>(0, -k), end = std::min(rows, cols - k); i < end; ++i) y[i * cols + i + k] = T(1);
      return Status::ok();
    });
  });
  if (!ok) return ctx.unsupported("output dtype ", dtype_name(dtype), " is not supported");
  return kernel;
}

Result<KernelPtr> prepare_range(PrepareContext& ctx) {
  const char* names[3] = {"start", "limit", "delta"};
  const Tensor* t[3];
  for (size_t i = 0; i < 3; ++i) {
    KILN_RETURN_IF_ERROR(ctx.require_input(i));
    t[i] = ctx.require_constant(i, names[i]);
    if (!t[i]) return ctx.sticky_error();
    if (t[i]->num_elements() != 1)
      return ctx.invalid("input '", names[i], "' must be a scalar, got shape ", shape_to_string(t[i]->shape()));
    if (t[i]->dtype() != t[0]->dtype())
      return ctx.invalid("inputs have different dtypes ", dtype_name(t[0]->dtype()), " and ", dtype_name(t[i]->dtype()));
  }
  const DType dtype = t[0]->dtype();
  KernelPtr kernel;
  Status err;
  bool ok = visit_dtype<TypeList<float, double, int16_t, int32_t, int64_t>>(dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T start = t[0]->data<T>()[0], limit = t[1]->data<T>()[0], delta = t[2]->data<T>()[0];
    int64_t n = 0;
    if constexpr (std::is_floating_point_v<T>) {
      // Counted in double as the ONNX function body does: ceil((limit - start) / delta).
      double count = std::ceil((static_cast<double>(limit) - static_cast<double>(start)) / static_cast<double>(delta));
      if (!std::isfinite(count) || count > 1e15) {
        err = ctx.invalid("start ", start, ", limit ", limit, " and delta ", delta, " do not give a finite range");
        return;
      }
      n = count > 0 ? static_cast<int64_t>(count) : 0;
    } else {
      // In 128 bits so that limit - start cannot overflow.
      const __int128 span = static_cast<__int128>(limit) - start, d = delta;
      if (d == 0) {
        err = ctx.invalid("delta must not be 0");
        return;
      }
      if (span != 0 && (span > 0) == (d > 0)) {
        const __int128 count = ((span > 0 ? span : -span) - 1) / (d > 0 ? d : -d) + 1;
        if (count > (__int128{1} << 50)) {
          err = ctx.invalid("start ", start, ", limit ", limit, " and delta ", delta, " give too many elements");
          return;
        }
        n = static_cast<int64_t>(count);
      }
    }
    ctx.set_output(0, dtype, {n});
    kernel = make_kernel([start, delta](const KernelContext& k) {
      T* y = k.out(0).as<T>();
      for (int64_t i = 0, m = k.out(0).num_elements(); i < m; ++i) {
        if constexpr (std::is_floating_point_v<T>) {
          y[i] = static_cast<T>(static_cast<double>(start) + static_cast<double>(i) * static_cast<double>(delta));
        } else {
          // Wrapping unsigned arithmetic: the true value fits in T even where i * delta alone does not.
          y[i] = static_cast<T>(static_cast<uint64_t>(start) + static_cast<uint64_t>(i) * static_cast<uint64_t>(delta));
        }
      }
      return Status::ok();
    });
  });
  if (!ok) return ctx.unsupported_dtype(0);
  if (!err.is_ok()) return err;
  return kernel;
}

constexpr OpDef kShapeOps[] = {
    {"", "Identity", 1, kMaxOnnxOpset, prepare_identity},
    {"", "Dropout", 1, kMaxOnnxOpset, prepare_dropout},
    {"", "Constant", 1, kMaxOnnxOpset, prepare_constant},
    {"", "Shape", 1, kMaxOnnxOpset, prepare_shape, true},
    {"", "Size", 1, kMaxOnnxOpset, prepare_size, true},
    {"", "Reshape", 1, kMaxOnnxOpset, prepare_reshape},
    {"", "Flatten", 1, kMaxOnnxOpset, prepare_flatten},
    {"", "Squeeze", 1, kMaxOnnxOpset, prepare_squeeze},
    {"", "Unsqueeze", 1, kMaxOnnxOpset, prepare_unsqueeze},
    {"", "ConstantOfShape", 9, kMaxOnnxOpset, prepare_constant_of_shape},
    {"", "EyeLike", 9, kMaxOnnxOpset, prepare_eye_like},
    {"", "Range", 11, kMaxOnnxOpset, prepare_range},
};

}  // namespace

std::span<const OpDef> shape_ops() { return kShapeOps; }

}  // namespace kiln::nn::ops
