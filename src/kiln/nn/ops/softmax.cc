// Softmax, LogSoftmax and the classification losses built on them: NegativeLogLikelihoodLoss and
// SoftmaxCrossEntropyLoss (inference: the loss value and the optional log_prob output).
//
// Every softmax subtracts the maximum along the axis before exponentiating, so large inputs
// do not overflow; sums are accumulated in double.
#include <cmath>
#include <limits>
#include <type_traits>

#include "kiln/nn/ops/families.h"
#include "kiln/nn/ops/op_util.h"

namespace kiln::nn::ops {
namespace {

int64_t product(const Shape& s, size_t begin, size_t end) {
  int64_t p = 1;
  for (size_t i = begin; i < end; ++i) p *= s[i];
  return p;
}

// The input seen as [outer, n, inner] with the softmax taken over n.
struct AxisSplit {
  int64_t outer, n, inner;
};

// For each of the `inner` columns of an [n, inner] block: the maximum and log(sum(exp(x - max))).
// A column holding NaN gets NaN statistics, as in numpy.
template <typename T>
void column_stats(const T* x, int64_t n, int64_t inner, double* max, double* log_sum) {
  for (int64_t j = 0; j < inner; ++j) {
    max[j] = -std::numeric_limits<double>::infinity();
    log_sum[j] = 0;
  }
  for (int64_t a = 0; a < n; ++a) {
    const T* row = x + a * inner;
    for (int64_t j = 0; j < inner; ++j)
      if (static_cast<double>(row[j]) > max[j]) max[j] = static_cast<double>(row[j]);
  }
  for (int64_t a = 0; a < n; ++a) {
    const T* row = x + a * inner;
    for (int64_t j = 0; j < inner; ++j) log_sum[j] += std::exp(static_cast<double>(row[j]) - max[j]);
  }
  for (int64_t j = 0; j < inner; ++j) log_sum[j] = std::log(log_sum[j]);
}

template <typename T, bool kLog>
Status run_softmax(const AxisSplit& s, const KernelContext& k) {
  const T* x = k.in(0).as<const T>();
  T* y = k.out(0).as<T>();
  double* max = static_cast<double*>(k.scratch);
  double* log_sum = max + s.inner;
  for (int64_t o = 0; o < s.outer; ++o) {
    const int64_t base = o * s.n * s.inner;
    column_stats(x + base, s.n, s.inner, max, log_sum);
    for (int64_t a = 0; a < s.n; ++a) {
      const T* row = x + base + a * s.inner;
      T* out = y + base + a * s.inner;
      for (int64_t j = 0; j < s.inner; ++j) {
        const double v = static_cast<double>(row[j]) - max[j] - log_sum[j];
        out[j] = static_cast<T>(kLog ? v : std::exp(v));
      }
    }
  }
  return Status::ok();
}

template <bool kLog>
Result<KernelPtr> prepare_softmax(PrepareContext& ctx) {
  KILN_RETURN_IF_ERROR(ctx.require_input(0));
  const TensorInfo& x = ctx.input(0);
  if (x.rank() == 0) return ctx.invalid("input must have rank >= 1, got a scalar");
  const int64_t r = static_cast<int64_t>(x.rank());
  AxisSplit s;
  if (ctx.opset() < 13) {
    // Before opset 13 the input is coerced to 2-D [prod(shape[:axis]), prod(shape[axis:])].
    const int64_t axis = ctx.attr_int("axis", 1);
    if (axis < -r || axis > r) return ctx.invalid("axis ", axis, " is out of range [", -r, ", ", r, "] for rank ", r);
    const size_t a = static_cast<size_t>(axis < 0 ? axis + r : axis);
    s = {product(x.shape, 0, a), product(x.shape, a, x.rank()), 1};
  } else {
    int64_t axis = 0;
    KILN_RETURN_IF_ERROR(normalize_axis(ctx, ctx.attr_int("axis", -1), r, &axis));
    const size_t a = static_cast<size_t>(axis);
    s = {product(x.shape, 0, a), x.shape[a], product(x.shape, a + 1, x.rank())};
  }
  ctx.set_output(0, x.dtype, x.shape);
  ctx.request_scratch(2 * static_cast<size_t>(s.inner) * sizeof(double));
  KernelPtr kernel;
  bool ok = visit_dtype<FloatTypes>(x.dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    kernel = make_kernel([s](const KernelContext& k) { return run_softmax<T, kLog>(s, k); });
  });
  if (!ok) return ctx.unsupported_dtype(0);
  return kernel;
}

// ---------------------------------------------------------------------------------------------
// NegativeLogLikelihoodLoss and SoftmaxCrossEntropyLoss: input [N, C, d1..dk] seen as
// [N, C, D], target [N, d1..dk] seen as [N, D].

enum class LossReduction { kNone, kSum, kMean };

struct LossParams {
  int64_t n, c, d;
  LossReduction reduction;
  bool has_ignore;
  int64_t ignore_index;
  bool has_weight;
};

Result<LossParams> plan_loss(PrepareContext& ctx) {
  KILN_RETURN_IF_ERROR(ctx.require_input(0));
  KILN_RETURN_IF_ERROR(ctx.require_input(1));
  const TensorInfo& x = ctx.input(0);
  const TensorInfo& t = ctx.input(1);
  if (x.dtype != DType::kFloat32 && x.dtype != DType::kFloat64) return ctx.unsupported_dtype(0);
  if (x.rank() < 2) return ctx.invalid("input must have shape [N, C, d1, ...], got ", shape_to_string(x.shape));
  if (t.dtype != DType::kInt32 && t.dtype != DType::kInt64)
    return ctx.invalid("target must be int32 or int64, got ", dtype_name(t.dtype));
  Shape want{x.shape[0]};
  want.insert(want.end(), x.shape.begin() + 2, x.shape.end());
  if (t.shape != want)
    return ctx.invalid("target must have shape ", shape_to_string(want), " for input ", shape_to_string(x.shape),
                       ", got ", shape_to_string(t.shape));
  LossParams p;
  p.n = x.shape[0];
  p.c = x.shape[1];
  p.d = product(x.shape, 2, x.rank());
  p.has_weight = ctx.has_input(2);
  if (p.has_weight) {
    const TensorInfo& w = ctx.input(2);
    if (w.dtype != x.dtype)
      return ctx.invalid("weight must have the dtype of the input (", dtype_name(x.dtype), "), got ",
                         dtype_name(w.dtype));
    if (w.shape != Shape{p.c})
      return ctx.invalid("weight must have shape [", p.c, "] (one per class), got ", shape_to_string(w.shape));
  }
  const std::string red = ctx.attr_string("reduction", "mean");
  if (red == "none") p.reduction = LossReduction::kNone;
  else if (red == "sum") p.reduction = LossReduction::kSum;
  else if (red == "mean") p.reduction = LossReduction::kMean;
  else return ctx.invalid("reduction must be none, sum or mean, got '", red, "'");
  p.has_ignore = ctx.has_attr("ignore_index");
  p.ignore_index = ctx.attr_int("ignore_index", 0);
  ctx.set_output(0, x.dtype, p.reduction == LossReduction::kNone ? t.shape : Shape{});
  return p;
}

struct LossSums {
  double loss = 0, weight = 0;
};

// Losses of the D positions of sample `i`; `log_prob(c, j)` reads the log-probability of class c
// at position j. A label outside [0, C) that is not ignore_index is an error.
template <typename T, typename I, typename LogProb>
Status loss_sample(const LossParams& p, const char* op, int64_t i, const I* target, const T* weight,
                   LogProb&& log_prob, T* out, LossSums& sums) {
  for (int64_t j = 0; j < p.d; ++j) {
    const int64_t label = static_cast<int64_t>(target[i * p.d + j]);
    double loss = 0, w = 0;
    if (!p.has_ignore || label != p.ignore_index) {
      if (label < 0 || label >= p.c)
        return Status::out_of_range(op, ": target ", label, " at position ", i * p.d + j,
                                    " is not a class in [0, ", p.c, ")");
      w = weight ? static_cast<double>(weight[label]) : 1.0;
      loss = -log_prob(label, j) * w;
    }
    if (p.reduction == LossReduction::kNone) {
      out[i * p.d + j] = static_cast<T>(loss);
    } else {
      sums.loss += loss;
      sums.weight += w;
    }
  }
  return Status::ok();
}

template <typename T>
void finish_loss(const LossParams& p, const LossSums& sums, T* out) {
  // A mean over samples that are all ignored is 0/0 = NaN, as in PyTorch and the ONNX reference.
  if (p.reduction == LossReduction::kSum) out[0] = static_cast<T>(sums.loss);
  if (p.reduction == LossReduction::kMean) out[0] = static_cast<T>(sums.loss / sums.weight);
}

template <typename T, typename I>
Status run_nll(const LossParams& p, const KernelContext& k) {
  const T* x = k.in(0).as<const T>();
  const I* target = k.in(1).as<const I>();
  const T* weight = p.has_weight ? k.in(2).as<const T>() : nullptr;
  T* out = k.out(0).as<T>();
  LossSums sums;
  for (int64_t i = 0; i < p.n; ++i) {
    const T* xi = x + i * p.c * p.d;
    KILN_RETURN_IF_ERROR(loss_sample(p, "NegativeLogLikelihoodLoss", i, target, weight,
                                     [&](int64_t c, int64_t j) { return static_cast<double>(xi[c * p.d + j]); }, out,
                                     sums));
  }
  finish_loss(p, sums, out);
  return Status::ok();
}

template <typename T, typename I>
Status run_sce(const LossParams& p, bool want_log_prob, const KernelContext& k) {
  const T* x = k.in(0).as<const T>();
  const I* target = k.in(1).as<const I>();
  const T* weight = p.has_weight ? k.in(2).as<const T>() : nullptr;
  T* out = k.out(0).as<T>();
  T* log_prob = want_log_prob ? k.out(1).as<T>() : nullptr;
  double* max = static_cast<double*>(k.scratch);
  double* log_sum = max + p.d;
  LossSums sums;
  for (int64_t i = 0; i < p.n; ++i) {
    const T* xi = x + i * p.c * p.d;
    column_stats(xi, p.c, p.d, max, log_sum);
    auto lp = [&](int64_t c, int64_t j) { return static_cast<double>(xi[c * p.d + j]) - max[j] - log_sum[j]; };
    if (log_prob) {
      T* li = log_prob + i * p.c * p.d;
      for (int64_t c = 0; c < p.c; ++c)
        for (int64_t j = 0; j < p.d; ++j) li[c * p.d + j] = static_cast<T>(lp(c, j));
    }
    KILN_RETURN_IF_ERROR(loss_sample(p, "SoftmaxCrossEntropyLoss", i, target, weight, lp, out, sums));
  }
  finish_loss(p, sums, out);
  return Status::ok();
}

Result<KernelPtr> prepare_nll(PrepareContext& ctx) {
  KILN_ASSIGN_OR_RETURN(LossParams p, plan_loss(ctx));
  KernelPtr kernel;
  visit_dtype<FloatTypes>(ctx.input(0).dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    if (ctx.input(1).dtype == DType::kInt32)
      kernel = make_kernel([p](const KernelContext& k) { return run_nll<T, int32_t>(p, k); });
    else
      kernel = make_kernel([p](const KernelContext& k) { return run_nll<T, int64_t>(p, k); });
  });
  return kernel;
}

Result<KernelPtr> prepare_sce(PrepareContext& ctx) {
  KILN_ASSIGN_OR_RETURN(LossParams p, plan_loss(ctx));
  const bool want_log_prob = ctx.has_output(1);
  ctx.set_output(1, ctx.input(0).dtype, ctx.input(0).shape);
  ctx.request_scratch(2 * static_cast<size_t>(p.d) * sizeof(double));
  KernelPtr kernel;
  visit_dtype<FloatTypes>(ctx.input(0).dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    if (ctx.input(1).dtype == DType::kInt32)
      kernel = make_kernel(
          [p, want_log_prob](const KernelContext& k) { return run_sce<T, int32_t>(p, want_log_prob, k); });
    else
      kernel = make_kernel(
          [p, want_log_prob](const KernelContext& k) { return run_sce<T, int64_t>(p, want_log_prob, k); });
  });
  return kernel;
}

constexpr OpDef kSoftmaxOps[] = {
    {"", "Softmax", 1, kMaxOnnxOpset, prepare_softmax<false>},
    {"", "LogSoftmax", 1, kMaxOnnxOpset, prepare_softmax<true>},
    {"", "NegativeLogLikelihoodLoss", 12, kMaxOnnxOpset, prepare_nll},
    {"", "SoftmaxCrossEntropyLoss", 12, kMaxOnnxOpset, prepare_sce},
};

}  // namespace

std::span<const OpDef> softmax_ops() { return kSoftmaxOps; }

}  // namespace kiln::nn::ops
