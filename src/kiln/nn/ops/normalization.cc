// Normalization operators: BatchNormalization (inference, and training_mode=1 from opset 14 with
// running statistics), InstanceNormalization, LayerNormalization (with the optional Mean and
// InvStdDev outputs), GroupNormalization (opset 18 per-group and opset 21 per-channel affine),
// LRN and MeanVarianceNormalization.
//
// Statistics are accumulated in double, in two passes (mean, then squared deviations), so that
// a large mean does not swamp a small variance.
#include <cmath>
#include <vector>

#include "kiln/nn/ops/families.h"
#include "kiln/nn/ops/op_util.h"

namespace kiln::nn::ops {
namespace {

Status require_float(const PrepareContext& ctx, size_t i) {
  const DType dt = ctx.input(i).dtype;
  if (dt != DType::kFloat32 && dt != DType::kFloat64) return ctx.unsupported_dtype(i);
  return Status::ok();
}

Status require_same_dtype(const PrepareContext& ctx, size_t i, const char* name) {
  KILN_RETURN_IF_ERROR(ctx.require_input(i));
  if (ctx.input(i).dtype != ctx.input(0).dtype)
    return ctx.unsupported("input ", name, " has dtype ", dtype_name(ctx.input(i).dtype), " but X has ",
                           dtype_name(ctx.input(0).dtype), " (mixed precision is not supported)");
  return Status::ok();
}

Status require_elements(const PrepareContext& ctx, size_t i, const char* name, int64_t n) {
  if (ctx.input(i).num_elements() != n)
    return ctx.invalid("input ", name, " must have ", n, " elements, got shape ", shape_to_string(ctx.input(i).shape));
  return Status::ok();
}

// Mean and population variance of n contiguous values.
template <typename T>
void moments(const T* x, int64_t n, double* mean, double* var) {
  double sum = 0;
  for (int64_t i = 0; i < n; ++i) sum += static_cast<double>(x[i]);
  const double m = n > 0 ? sum / static_cast<double>(n) : 0.0;
  double sq = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double d = static_cast<double>(x[i]) - m;
    sq += d * d;
  }
  *mean = m;
  *var = n > 0 ? sq / static_cast<double>(n) : 0.0;
}

// y = x * a + b over n contiguous values.
template <typename T>
void scale_shift(const T* x, T* y, int64_t n, double a, double b) {
  const T ta = static_cast<T>(a), tb = static_cast<T>(b);
  for (int64_t i = 0; i < n; ++i) y[i] = x[i] * ta + tb;
}

Result<KernelPtr> prepare_batch_norm(PrepareContext& ctx) {
  for (size_t i = 0; i < 5; ++i) KILN_RETURN_IF_ERROR(ctx.require_input(i));
  KILN_RETURN_IF_ERROR(require_float(ctx, 0));
  const char* names[] = {"X", "scale", "B", "mean", "var"};
  for (size_t i = 1; i < 5; ++i) KILN_RETURN_IF_ERROR(require_same_dtype(ctx, i, names[i]));
  const TensorInfo& x = ctx.input(0);
  if (x.rank() < 2) return ctx.invalid("input X must have rank >= 2 (N, C, ...), got ", shape_to_string(x.shape));
  const double epsilon = ctx.attr_float("epsilon", 1e-5f);
  const double momentum = ctx.attr_float("momentum", 0.9f);
  const int64_t n = x.shape[0];
  int64_t channels = x.shape[1];
  int64_t inner = x.num_elements() / std::max<int64_t>(1, n * channels);
  if (n * channels == 0) inner = 0;
  // spatial=0 (opsets 6 to 8) keeps one set of statistics per activation: every position of
  // X.shape[1:] is its own channel.
  if (ctx.opset() < 9 && ctx.attr_int("spatial", 1) == 0) {
    channels *= inner;
    inner = 1;
  }
  for (size_t i = 1; i < 5; ++i)
    if (ctx.input(i).num_elements() != channels)
      return ctx.invalid("input ", names[i], " must have ", channels, " elements, got shape ",
                         shape_to_string(ctx.input(i).shape));
  const bool training = ctx.opset() >= 14 && ctx.attr_int("training_mode", 0) != 0;
  bool extra_outputs = false;
  for (size_t i = 1; i < ctx.num_outputs(); ++i) extra_outputs = extra_outputs || ctx.has_output(i);
  if (extra_outputs && !training) {
    if (ctx.opset() >= 14)
      return ctx.invalid("outputs running_mean and running_var are only produced with training_mode=1");
    return ctx.unsupported("the training outputs (mean, var, saved_mean, saved_var) of opset ", ctx.opset(),
                           " are not supported; only Y is produced for inference");
  }
  ctx.set_output(0, x.dtype, x.shape);
  if (training) {
    ctx.set_output(1, x.dtype, ctx.input(3).shape);
    ctx.set_output(2, x.dtype, ctx.input(4).shape);
  }
  const bool want_mean = ctx.has_output(1), want_var = ctx.has_output(2);
  KernelPtr k;
  visit_dtype<FloatTypes>(x.dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    k = make_kernel([=](const KernelContext& kc) {
      const T* xv = kc.in(0).as<const T>();
      const T* scale = kc.in(1).as<const T>();
      const T* bias = kc.in(2).as<const T>();
      const T* mean = kc.in(3).as<const T>();
      const T* var = kc.in(4).as<const T>();
      T* y = kc.out(0).as<T>();
      for (int64_t c = 0; c < channels; ++c) {
        double m = static_cast<double>(mean[c]), v = static_cast<double>(var[c]);
        if (training) {
          double sum = 0, sq = 0;
          for (int64_t b = 0; b < n; ++b) {
            const T* p = xv + (b * channels + c) * inner;
            for (int64_t i = 0; i < inner; ++i) sum += static_cast<double>(p[i]);
          }
          const double count = static_cast<double>(n * inner);
          const double bm = count > 0 ? sum / count : 0.0;
          for (int64_t b = 0; b < n; ++b) {
            const T* p = xv + (b * channels + c) * inner;
            for (int64_t i = 0; i < inner; ++i) {
              const double dv = static_cast<double>(p[i]) - bm;
              sq += dv * dv;
            }
          }
          const double bv = count > 0 ? sq / count : 0.0;
          if (want_mean) kc.out(1).as<T>()[c] = static_cast<T>(m * momentum + bm * (1 - momentum));
          if (want_var) kc.out(2).as<T>()[c] = static_cast<T>(v * momentum + bv * (1 - momentum));
          m = bm;
          v = bv;
        }
        const double a = static_cast<double>(scale[c]) / std::sqrt(v + epsilon);
        const double sh = static_cast<double>(bias[c]) - m * a;
        for (int64_t b = 0; b < n; ++b) {
          const int64_t off = (b * channels + c) * inner;
          scale_shift(xv + off, y + off, inner, a, sh);
        }
      }
      return Status::ok();
    });
  });
  return k;
}

Result<KernelPtr> prepare_instance_norm(PrepareContext& ctx) {
  KILN_RETURN_IF_ERROR(ctx.require_input(0));
  KILN_RETURN_IF_ERROR(require_float(ctx, 0));
  KILN_RETURN_IF_ERROR(require_same_dtype(ctx, 1, "scale"));
  KILN_RETURN_IF_ERROR(require_same_dtype(ctx, 2, "B"));
  const TensorInfo& x = ctx.input(0);
  if (x.rank() < 3)
    return ctx.invalid("input X must have rank >= 3 (N, C, D1, ...), got ", shape_to_string(x.shape));
  const int64_t n = x.shape[0], channels = x.shape[1];
  const int64_t inner = n * channels == 0 ? 0 : x.num_elements() / (n * channels);
  KILN_RETURN_IF_ERROR(require_elements(ctx, 1, "scale", channels));
  KILN_RETURN_IF_ERROR(require_elements(ctx, 2, "B", channels));
  const double epsilon = ctx.attr_float("epsilon", 1e-5f);
  ctx.set_output(0, x.dtype, x.shape);
  KernelPtr k;
  visit_dtype<FloatTypes>(x.dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    k = make_kernel([=](const KernelContext& kc) {
      const T* xv = kc.in(0).as<const T>();
      const T* scale = kc.in(1).as<const T>();
      const T* bias = kc.in(2).as<const T>();
      T* y = kc.out(0).as<T>();
      for (int64_t i = 0; i < n * channels; ++i) {
        const int64_t c = i % channels;
        double m, v;
        moments(xv + i * inner, inner, &m, &v);
        const double a = static_cast<double>(scale[c]) / std::sqrt(v + epsilon);
        scale_shift(xv + i * inner, y + i * inner, inner, a, static_cast<double>(bias[c]) - m * a);
      }
      return Status::ok();
    });
  });
  return k;
}

// Offsets into a parameter of shape `param` broadcast (numpy-style, towards the right) over
// `target`, one per element of `target` in row-major order. Empty when the parameter already
// has one element per target element in the same order.
Result<std::vector<int64_t>> broadcast_index(const PrepareContext& ctx, const char* name, const Shape& param,
                                             const Shape& target) {
  KILN_ASSIGN_OR_RETURN(Shape b, broadcast_shapes(ctx, param, target));
  if (b != target)
    return ctx.invalid("input ", name, " of shape ", shape_to_string(param), " does not broadcast to ",
                       shape_to_string(target));
  if (num_elements(param) == num_elements(target)) return std::vector<int64_t>{};
  std::vector<int64_t> index(static_cast<size_t>(num_elements(target)));
  std::vector<int64_t> sp = broadcast_strides(param, target), so = strides_of(target);
  for_each_strided<2>(target, {sp.data(), so.data()}, [&](int64_t ip, int64_t io) { index[io] = ip; });
  return index;
}

Result<KernelPtr> prepare_layer_norm(PrepareContext& ctx) {
  KILN_RETURN_IF_ERROR(ctx.require_input(0));
  KILN_RETURN_IF_ERROR(require_float(ctx, 0));
  KILN_RETURN_IF_ERROR(require_same_dtype(ctx, 1, "Scale"));
  const bool has_bias = ctx.has_input(2);
  if (has_bias) KILN_RETURN_IF_ERROR(require_same_dtype(ctx, 2, "B"));
  const TensorInfo& x = ctx.input(0);
  KILN_RETURN_IF_ERROR(check_rank(ctx, x.rank()));
  int64_t axis = 0;
  if (x.rank() == 0) return ctx.invalid("input X must have rank >= 1");
  KILN_RETURN_IF_ERROR(normalize_axis(ctx, ctx.attr_int("axis", -1), static_cast<int64_t>(x.rank()), &axis));
  const double epsilon = ctx.attr_float("epsilon", 1e-5f);
  const int64_t stash = ctx.attr_int("stash_type", 1);
  DType stat_dtype;
  if (stash == 1) stat_dtype = DType::kFloat32;
  else if (stash == 11) stat_dtype = DType::kFloat64;
  else return ctx.unsupported("stash_type ", stash, " (Kiln computes statistics in float or double)");
  const Shape normalized(x.shape.begin() + axis, x.shape.end());
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> scale_index,
                        broadcast_index(ctx, "Scale", ctx.input(1).shape, normalized));
  std::vector<int64_t> bias_index;
  if (has_bias) {
    KILN_ASSIGN_OR_RETURN(bias_index, broadcast_index(ctx, "B", ctx.input(2).shape, normalized));
  }
  const int64_t cols = num_elements(normalized);
  const int64_t rows = cols == 0 ? 0 : x.num_elements() / cols;
  Shape stat_shape(x.shape.begin(), x.shape.begin() + axis);
  stat_shape.resize(x.rank(), 1);
  ctx.set_output(0, x.dtype, x.shape);
  ctx.set_output(1, stat_dtype, stat_shape);
  ctx.set_output(2, stat_dtype, stat_shape);
  const bool want_mean = ctx.has_output(1), want_inv = ctx.has_output(2);
  KernelPtr k;
  visit_dtype<FloatTypes>(x.dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    k = make_kernel([=](const KernelContext& kc) {
      const T* xv = kc.in(0).as<const T>();
      const T* scale = kc.in(1).as<const T>();
      const T* bias = has_bias ? kc.in(2).as<const T>() : nullptr;
      T* y = kc.out(0).as<T>();
      for (int64_t r = 0; r < rows; ++r) {
        const T* xr = xv + r * cols;
        T* yr = y + r * cols;
        double m, v;
        moments(xr, cols, &m, &v);
        const double inv = 1.0 / std::sqrt(v + epsilon);
        for (int64_t j = 0; j < cols; ++j) {
          const double s = static_cast<double>(scale[scale_index.empty() ? j : scale_index[j]]);
          const double b = bias ? static_cast<double>(bias[bias_index.empty() ? j : bias_index[j]]) : 0.0;
          yr[j] = static_cast<T>((static_cast<double>(xr[j]) - m) * inv * s + b);
        }
        if (stat_dtype == DType::kFloat32) {
          if (want_mean) kc.out(1).as<float>()[r] = static_cast<float>(m);
          if (want_inv) kc.out(2).as<float>()[r] = static_cast<float>(inv);
        } else {
          if (want_mean) kc.out(1).as<double>()[r] = m;
          if (want_inv) kc.out(2).as<double>()[r] = inv;
        }
      }
      return Status::ok();
    });
  });
  return k;
}

Result<KernelPtr> prepare_group_norm(PrepareContext& ctx) {
  KILN_RETURN_IF_ERROR(ctx.require_input(0));
  KILN_RETURN_IF_ERROR(require_float(ctx, 0));
  KILN_RETURN_IF_ERROR(require_same_dtype(ctx, 1, "scale"));
  KILN_RETURN_IF_ERROR(require_same_dtype(ctx, 2, "bias"));
  const TensorInfo& x = ctx.input(0);
  if (x.rank() < 2) return ctx.invalid("input X must have rank >= 2 (N, C, ...), got ", shape_to_string(x.shape));
  if (!ctx.has_attr("num_groups")) return ctx.invalid("attribute 'num_groups' is required");
  const int64_t groups = ctx.attr_int("num_groups", 1);
  const int64_t n = x.shape[0], channels = x.shape[1];
  if (groups < 1 || channels % groups != 0)
    return ctx.invalid("num_groups ", groups, " must be positive and divide the ", channels, " channels");
  const int64_t stash = ctx.attr_int("stash_type", 1);
  if (stash != 1 && stash != 11) return ctx.unsupported("stash_type ", stash);
  // Opset 18 had one scale and bias per group; opset 21 made them per channel.
  const bool per_channel = ctx.opset() >= 21;
  KILN_RETURN_IF_ERROR(require_elements(ctx, 1, "scale", per_channel ? channels : groups));
  KILN_RETURN_IF_ERROR(require_elements(ctx, 2, "bias", per_channel ? channels : groups));
  const double epsilon = ctx.attr_float("epsilon", 1e-5f);
  const int64_t per_group = channels / groups;
  const int64_t inner = n * channels == 0 ? 0 : x.num_elements() / (n * channels);
  ctx.set_output(0, x.dtype, x.shape);
  KernelPtr k;
  visit_dtype<FloatTypes>(x.dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    k = make_kernel([=](const KernelContext& kc) {
      const T* xv = kc.in(0).as<const T>();
      const T* scale = kc.in(1).as<const T>();
      const T* bias = kc.in(2).as<const T>();
      T* y = kc.out(0).as<T>();
      for (int64_t b = 0; b < n; ++b) {
        for (int64_t g = 0; g < groups; ++g) {
          const int64_t off = (b * channels + g * per_group) * inner;
          double m, v;
          moments(xv + off, per_group * inner, &m, &v);
          const double inv = 1.0 / std::sqrt(v + epsilon);
          for (int64_t c = 0; c < per_group; ++c) {
            const int64_t p = per_channel ? g * per_group + c : g;
            const double a = static_cast<double>(scale[p]) * inv;
            const int64_t o = off + c * inner;
            scale_shift(xv + o, y + o, inner, a, static_cast<double>(bias[p]) - m * a);
          }
        }
      }
      return Status::ok();
    });
  });
  return k;
}

Result<KernelPtr> prepare_lrn(PrepareContext& ctx) {
  KILN_RETURN_IF_ERROR(ctx.require_input(0));
  KILN_RETURN_IF_ERROR(require_float(ctx, 0));
  const TensorInfo& x = ctx.input(0);
  if (x.rank() < 2) return ctx.invalid("input X must have rank >= 2 (N, C, ...), got ", shape_to_string(x.shape));
  if (!ctx.has_attr("size")) return ctx.invalid("attribute 'size' is required");
  const int64_t size = ctx.attr_int("size", 1);
  if (size < 1) return ctx.invalid("size must be >= 1, got ", size);
  const double alpha = ctx.attr_float("alpha", 1e-4f), beta = ctx.attr_float("beta", 0.75f);
  const double bias = ctx.attr_float("bias", 1.0f);
  const int64_t n = x.shape[0], channels = x.shape[1];
  const int64_t inner = n * channels == 0 ? 0 : x.num_elements() / (n * channels);
  // The window over channels is [c - floor((size-1)/2), c + ceil((size-1)/2)].
  const int64_t before = (size - 1) / 2, after = size - 1 - before;
  ctx.set_output(0, x.dtype, x.shape);
  KernelPtr k;
  visit_dtype<FloatTypes>(x.dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    k = make_kernel([=](const KernelContext& kc) {
      const T* xv = kc.in(0).as<const T>();
      T* y = kc.out(0).as<T>();
      for (int64_t b = 0; b < n; ++b) {
        for (int64_t c = 0; c < channels; ++c) {
          T* yc = y + (b * channels + c) * inner;
          const int64_t c0 = std::max<int64_t>(0, c - before), c1 = std::min(channels - 1, c + after);
          // The output plane holds the sum of squares until the last step.
          std::fill(yc, yc + inner, T(0));
          for (int64_t j = c0; j <= c1; ++j) {
            const T* xj = xv + (b * channels + j) * inner;
            for (int64_t i = 0; i < inner; ++i) yc[i] += xj[i] * xj[i];
          }
          const T* xc = xv + (b * channels + c) * inner;
          for (int64_t i = 0; i < inner; ++i) {
            const double norm = bias + alpha / static_cast<double>(size) * static_cast<double>(yc[i]);
            yc[i] = static_cast<T>(static_cast<double>(xc[i]) / std::pow(norm, beta));
          }
        }
      }
      return Status::ok();
    });
  });
  return k;
}

Result<KernelPtr> prepare_mvn(PrepareContext& ctx) {
  KILN_RETURN_IF_ERROR(ctx.require_input(0));
  KILN_RETURN_IF_ERROR(require_float(ctx, 0));
  const TensorInfo& x = ctx.input(0);
  KILN_RETURN_IF_ERROR(check_rank(ctx, x.rank()));
  std::vector<int64_t> axes = ctx.attr_ints("axes", {0, 2, 3});
  KILN_RETURN_IF_ERROR(normalize_axes(ctx, axes, static_cast<int64_t>(x.rank())));
  Shape kept = x.shape;
  for (int64_t a : axes) kept[a] = 1;
  const int64_t groups = num_elements(kept);
  const int64_t count = groups == 0 ? 0 : x.num_elements() / groups;
  std::vector<int64_t> sx = strides_of(x.shape), sk = broadcast_strides(kept, x.shape);
  // Scratch: per kept position, the mean and then the standard deviation.
  ctx.request_scratch(static_cast<size_t>(groups) * 2 * sizeof(double));
  ctx.set_output(0, x.dtype, x.shape);
  const Shape shape = x.shape;
  KernelPtr k;
  visit_dtype<FloatTypes>(x.dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    k = make_kernel([=](const KernelContext& kc) {
      const T* xv = kc.in(0).as<const T>();
      T* y = kc.out(0).as<T>();
      double* mean = static_cast<double*>(kc.scratch);
      double* dev = mean + groups;
      std::fill(mean, mean + 2 * groups, 0.0);
      const double inv_count = count > 0 ? 1.0 / static_cast<double>(count) : 0.0;
      for_each_strided<2>(shape, {sx.data(), sk.data()},
                          [&](int64_t i, int64_t g) { mean[g] += static_cast<double>(xv[i]); });
      for (int64_t g = 0; g < groups; ++g) mean[g] *= inv_count;
      for_each_strided<2>(shape, {sx.data(), sk.data()}, [&](int64_t i, int64_t g) {
        const double d = static_cast<double>(xv[i]) - mean[g];
        dev[g] += d * d;
      });
      for (int64_t g = 0; g < groups; ++g) dev[g] = std::sqrt(dev[g] * inv_count) + 1e-9;
      for_each_strided<2>(shape, {sx.data(), sk.data()}, [&](int64_t i, int64_t g) {
        y[i] = static_cast<T>((static_cast<double>(xv[i]) - mean[g]) / dev[g]);
      });
      return Status::ok();
    });
  });
  return k;
}

constexpr OpDef kNormalizationOps[] = {
    {"", "BatchNormalization", 1, kMaxOnnxOpset, prepare_batch_norm},
    {"", "InstanceNormalization", 1, kMaxOnnxOpset, prepare_instance_norm},
    {"", "LayerNormalization", 17, kMaxOnnxOpset, prepare_layer_norm},
    {"", "GroupNormalization", 18, kMaxOnnxOpset, prepare_group_norm},
    {"", "LRN", 1, kMaxOnnxOpset, prepare_lrn},
    {"", "MeanVarianceNormalization", 9, kMaxOnnxOpset, prepare_mvn},
};

}  // namespace

std::span<const OpDef> normalization_ops() { return kNormalizationOps; }

}  // namespace kiln::nn::ops
