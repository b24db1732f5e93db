// Pooling operators: AveragePool, MaxPool (with the optional Indices output), LpPool over 1 to 3
// spatial dimensions with strides, dilations, explicit or automatic padding and ceil_mode;
// GlobalAveragePool, GlobalMaxPool, GlobalLpPool over any number of spatial dimensions; and
// MaxUnpool.
//
// Windowed pools pad their spatial dimensions at the front to three. For every output position
// along each axis, prepare computes the range of kernel taps that land inside the input (and,
// for count_include_pad, how many land inside the padded input), so the loops never test bounds.
#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "kiln/nn/ops/families.h"
#include "kiln/nn/ops/op_util.h"

namespace kiln::nn::ops {
namespace {

constexpr size_t kMaxSpatial = 3;
// Bound on kernel sizes, strides, dilations and pads: keeps index arithmetic far from overflow.
constexpr int64_t kMaxSpatialAttr = int64_t{1} << 31;
// Bound on an output spatial dimension, which sizes the per-axis tables built in prepare.
constexpr int64_t kMaxOutputAxis = int64_t{1} << 24;

int64_t floor_div(int64_t a, int64_t b) {  // b > 0
  return a >= 0 ? a / b : -((-a + b - 1) / b);
}
int64_t ceil_div(int64_t a, int64_t b) {  // b > 0
  return a >= 0 ? (a + b - 1) / b : -((-a) / b);
}

Result<std::vector<int64_t>> read_ints(PrepareContext& ctx, const char* name, size_t n, int64_t def, int64_t min) {
  std::vector<int64_t> v = ctx.attr_ints(name, std::vector<int64_t>(n, def));
  if (v.size() != n) return ctx.invalid("attribute '", name, "' must have ", n, " values, got ", v.size());
  for (int64_t x : v)
    if (x < min || x > kMaxSpatialAttr)
      return ctx.invalid("attribute '", name, "' has value ", x, ", expected one in [", min, ", ", kMaxSpatialAttr,
                         "]");
  return v;
}

// One spatial axis of a windowed pool: per output position, the kernel taps inside the input
// [lo, hi) and the number of taps inside the padded input.
struct Axis {
  int64_t in = 1, out = 1, kernel = 1, stride = 1, dilation = 1, pad = 0, pad_end = 0;
  std::vector<int64_t> lo, hi, padded;
};

struct PoolGeom {
  int64_t planes = 0;  // N * C
  Axis axis[kMaxSpatial];
  int64_t in_plane() const { return axis[0].in * axis[1].in * axis[2].in; }
  int64_t out_plane() const { return axis[0].out * axis[1].out * axis[2].out; }
};

// Reads kernel_shape, strides, dilations, pads, auto_pad and ceil_mode, computes the output shape
// and the per-axis tap tables.
Status prepare_geometry(PrepareContext& ctx, PoolGeom* g, Shape* out_shape) {
  KILN_RETURN_IF_ERROR(ctx.require_input(0));
  const TensorInfo& x = ctx.input(0);
  if (x.rank() < 3)
    return ctx.invalid("input X must have rank >= 3 (N, C and at least one spatial dimension), got ",
                       shape_to_string(x.shape));
  const size_t ns = x.rank() - 2;
  if (ns > kMaxSpatial) return ctx.unsupported(ns, " spatial dimensions (Kiln supports 1 to 3)");
  if (!ctx.has_attr("kernel_shape")) return ctx.invalid("attribute 'kernel_shape' is required");
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> kernel, read_ints(ctx, "kernel_shape", ns, 1, 1));
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> strides, read_ints(ctx, "strides", ns, 1, 1));
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> dilations, read_ints(ctx, "dilations", ns, 1, 1));
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> pads, read_ints(ctx, "pads", 2 * ns, 0, 0));
  const std::string auto_pad = ctx.attr_string("auto_pad", "NOTSET");
  if (auto_pad != "NOTSET" && auto_pad != "SAME_UPPER" && auto_pad != "SAME_LOWER" && auto_pad != "VALID" &&
      !auto_pad.empty())
    return ctx.invalid("auto_pad must be NOTSET, SAME_UPPER, SAME_LOWER or VALID, got '", auto_pad, "'");
  const bool ceil_mode = ctx.attr_int("ceil_mode", 0) != 0;
  g->planes = x.shape[0] * x.shape[1];
  *out_shape = {x.shape[0], x.shape[1]};
  for (size_t i = 0; i < ns; ++i) {
    Axis& a = g->axis[kMaxSpatial - ns + i];
    a.in = x.shape[2 + i];
    a.kernel = kernel[i];
    a.stride = strides[i];
    a.dilation = dilations[i];
    const int64_t extent = (a.kernel - 1) * a.dilation + 1;
    int64_t begin = pads[i], end = pads[ns + i];
    if (auto_pad == "SAME_UPPER" || auto_pad == "SAME_LOWER") {
      a.out = ceil_div(a.in, a.stride);
      const int64_t total = std::max<int64_t>(0, (a.out - 1) * a.stride + extent - a.in);
      begin = auto_pad == "SAME_UPPER" ? total / 2 : total - total / 2;
      end = total - begin;
    } else {
      if (auto_pad == "VALID") begin = end = 0;
      const int64_t span = a.in + begin + end - extent;
      if (span < 0)
        return ctx.invalid("spatial dimension ", i, " of X (", a.in, " plus padding ", begin, "+", end,
                           ") is smaller than the dilated kernel (", extent, ")");
      a.out = (ceil_mode && auto_pad != "VALID" ? ceil_div(span, a.stride) : span / a.stride) + 1;
      // A last window that would start inside the end padding is dropped (as PyTorch does).
      if (ceil_mode && (a.out - 1) * a.stride >= a.in + begin) --a.out;
    }
    if (a.out > kMaxOutputAxis)
      return ctx.unsupported("output spatial dimension ", i, " of ", a.out, " exceeds Kiln's limit of ",
                             kMaxOutputAxis);
    a.pad = begin;
    a.pad_end = end;
    out_shape->push_back(a.out);
  }
  for (Axis& a : g->axis) {
    const size_t n = static_cast<size_t>(a.out);
    a.lo.resize(n);
    a.hi.resize(n);
    a.padded.resize(n);
    for (int64_t o = 0; o < a.out; ++o) {
      const int64_t start = o * a.stride - a.pad;
      a.lo[o] = std::min(a.kernel, std::max<int64_t>(0, ceil_div(-start, a.dilation)));
      a.hi[o] = std::max(a.lo[o], std::min(a.kernel, floor_div(a.in - 1 - start, a.dilation) + 1));
      a.padded[o] = std::max<int64_t>(0, std::min(a.kernel, floor_div(a.in + a.pad_end - 1 - start, a.dilation) + 1));
    }
  }
  return Status::ok();
}

enum class PoolKind { kAverage, kMax, kLp };

// Average and Lp pooling. Lp accumulates |x|^p and takes the p-th root.
template <typename T, PoolKind K>
void pool_accumulate(const PoolGeom& g, bool count_include_pad, double p, const T* x, T* y) {
  const Axis &A = g.axis[0], &B = g.axis[1], &C = g.axis[2];
  const int64_t in_plane = g.in_plane(), out_plane = g.out_plane();
  for (int64_t nc = 0; nc < g.planes; ++nc) {
    const T* xp = x + nc * in_plane;
    T* yp = y + nc * out_plane;
    for (int64_t od = 0; od < A.out; ++od) {
      for (int64_t oh = 0; oh < B.out; ++oh) {
        for (int64_t ow = 0; ow < C.out; ++ow) {
          double acc = 0;
          for (int64_t kd = A.lo[od]; kd < A.hi[od]; ++kd) {
            const int64_t id = od * A.stride - A.pad + kd * A.dilation;
            for (int64_t kh = B.lo[oh]; kh < B.hi[oh]; ++kh) {
              const int64_t ih = oh * B.stride - B.pad + kh * B.dilation;
              const int64_t row = (id * B.in + ih) * C.in + (ow * C.stride - C.pad);
              for (int64_t kw = C.lo[ow]; kw < C.hi[ow]; ++kw) {
                const double v = static_cast<double>(xp[row + kw * C.dilation]);
                if constexpr (K == PoolKind::kAverage) acc += v;
                else if (p == 1) acc += std::fabs(v);
                else if (p == 2) acc += v * v;
                else acc += std::pow(std::fabs(v), p);
              }
            }
          }
          double r;
          if constexpr (K == PoolKind::kAverage) {
            const int64_t count = count_include_pad
                                      ? A.padded[od] * B.padded[oh] * C.padded[ow]
                                      : (A.hi[od] - A.lo[od]) * (B.hi[oh] - B.lo[oh]) * (C.hi[ow] - C.lo[ow]);
            // A window entirely in the padding has nothing to average.
            r = count > 0 ? acc / static_cast<double>(count) : 0.0;
          } else {
            r = p == 1 ? acc : p == 2 ? std::sqrt(acc) : std::pow(acc, 1.0 / p);
          }
          yp[(od * B.out + oh) * C.out + ow] = static_cast<T>(r);
        }
      }
    }
  }
}

// Max pooling. Padding never wins; a window with no input element gives the lowest value (and
// index -1). Indices count over the whole tensor, row-major or (storage_order=1) column-major
// within each plane.
template <typename T, bool kIndices>
void pool_max(const PoolGeom& g, bool column_major, const T* x, T* y, int64_t* indices) {
  const Axis &A = g.axis[0], &B = g.axis[1], &C = g.axis[2];
  const int64_t in_plane = g.in_plane(), out_plane = g.out_plane();
  for (int64_t nc = 0; nc < g.planes; ++nc) {
    const T* xp = x + nc * in_plane;
    for (int64_t od = 0; od < A.out; ++od) {
      for (int64_t oh = 0; oh < B.out; ++oh) {
        for (int64_t ow = 0; ow < C.out; ++ow) {
          T best = std::numeric_limits<T>::lowest();
          int64_t best_d = -1, best_h = 0, best_w = 0;
          for (int64_t kd = A.lo[od]; kd < A.hi[od]; ++kd) {
            const int64_t id = od * A.stride - A.pad + kd * A.dilation;
            for (int64_t kh = B.lo[oh]; kh < B.hi[oh]; ++kh) {
              const int64_t ih = oh * B.stride - B.pad + kh * B.dilation;
              const int64_t iw0 = ow * C.stride - C.pad;
              const int64_t row = (id * B.in + ih) * C.in + iw0;
              for (int64_t kw = C.lo[ow]; kw < C.hi[ow]; ++kw) {
                const T v = xp[row + kw * C.dilation];
                if (v > best || best_d < 0) {
                  if (!(v == v)) continue;  // NaN is skipped, like padding
                  best = v;
                  if constexpr (kIndices) {
                    best_d = id;
                    best_h = ih;
                    best_w = iw0 + kw * C.dilation;
                  } else {
                    best_d = 0;
                  }
                }
              }
            }
          }
          const int64_t o = nc * out_plane + (od * B.out + oh) * C.out + ow;
          y[o] = best;
          if constexpr (kIndices) {
            int64_t idx = -1;
            if (best_d >= 0)
              idx = nc * in_plane + (column_major ? best_d + A.in * (best_h + B.in * best_w)
                                                  : (best_d * B.in + best_h) * C.in + best_w);
            indices[o] = idx;
          }
        }
      }
    }
  }
}

Result<double> read_p(PrepareContext& ctx) {
  // LpPool-1 / GlobalLpPool-1 had a float p; later versions an int.
  const double p = ctx.opset() < 2 ? static_cast<double>(ctx.attr_float("p", 2.0f))
                                   : static_cast<double>(ctx.attr_int("p", 2));
  if (!(p > 0) || !std::isfinite(p)) return ctx.invalid("p must be a positive number, got ", p);
  return p;
}

template <PoolKind K>
Result<KernelPtr> prepare_pool(PrepareContext& ctx) {
  PoolGeom g;
  Shape out_shape;
  KILN_RETURN_IF_ERROR(prepare_geometry(ctx, &g, &out_shape));
  const DType dt = ctx.input(0).dtype;
  ctx.set_output(0, dt, out_shape);
  KernelPtr k;
  if constexpr (K == PoolKind::kMax) {
    const int64_t storage_order = ctx.attr_int("storage_order", 0);
    if (storage_order != 0 && storage_order != 1)
      return ctx.invalid("storage_order must be 0 or 1, got ", storage_order);
    const bool indices = ctx.has_output(1);
    if (indices) ctx.set_output(1, DType::kInt64, out_shape);
    const bool column_major = storage_order == 1;
    visit_dtype<TypeList<float, double, int8_t, uint8_t>>(dt, [&](auto tag) {
      using T = typename decltype(tag)::type;
      if (indices) {
        k = make_kernel([g, column_major](const KernelContext& kc) {
          pool_max<T, true>(g, column_major, kc.in(0).as<const T>(), kc.out(0).as<T>(), kc.out(1).as<int64_t>());
          return Status::ok();
        });
      } else {
        k = make_kernel([g](const KernelContext& kc) {
          pool_max<T, false>(g, false, kc.in(0).as<const T>(), kc.out(0).as<T>(), nullptr);
          return Status::ok();
        });
      }
    });
  } else {
    double p = 1;
    if constexpr (K == PoolKind::kLp) {
      KILN_ASSIGN_OR_RETURN(p, read_p(ctx));
    }
    const bool count_include_pad = ctx.attr_int("count_include_pad", 0) != 0;
    visit_dtype<FloatTypes>(dt, [&](auto tag) {
      using T = typename decltype(tag)::type;
      k = make_kernel([g, count_include_pad, p](const KernelContext& kc) {
        pool_accumulate<T, K>(g, count_include_pad, p, kc.in(0).as<const T>(), kc.out(0).as<T>());
        return Status::ok();
      });
    });
  }
  if (!k) return ctx.unsupported_dtype(0);
  return k;
}

template <PoolKind K>
Result<KernelPtr> prepare_global_pool(PrepareContext& ctx) {
  KILN_RETURN_IF_ERROR(ctx.require_input(0));
  const TensorInfo& x = ctx.input(0);
  if (x.rank() < 2)
    return ctx.invalid("input X must have rank >= 2 (N, C, spatial...), got ", shape_to_string(x.shape));
  Shape out_shape = x.shape;
  for (size_t i = 2; i < out_shape.size(); ++i) out_shape[i] = 1;
  const int64_t planes = x.shape[0] * x.shape[1];
  const int64_t plane = planes == 0 ? 0 : x.num_elements() / planes;
  double p = 1;
  if constexpr (K == PoolKind::kLp) {
    KILN_ASSIGN_OR_RETURN(p, read_p(ctx));
  }
  ctx.set_output(0, x.dtype, out_shape);
  KernelPtr k;
  auto make = [&](auto tag) {
    using T = typename decltype(tag)::type;
    k = make_kernel([planes, plane, p](const KernelContext& kc) {
      const T* xp = kc.in(0).as<const T>();
      T* y = kc.out(0).as<T>();
      for (int64_t nc = 0; nc < planes; ++nc, xp += plane) {
        if constexpr (K == PoolKind::kMax) {
          T best = std::numeric_limits<T>::lowest();
          for (int64_t i = 0; i < plane; ++i)
            if (xp[i] > best) best = xp[i];
          y[nc] = best;
        } else {
          double acc = 0;
          for (int64_t i = 0; i < plane; ++i) {
            const double v = static_cast<double>(xp[i]);
            if constexpr (K == PoolKind::kAverage) acc += v;
            else acc += p == 2 ? v * v : std::pow(std::fabs(v), p);
          }
          double r;
          if constexpr (K == PoolKind::kAverage) r = plane > 0 ? acc / static_cast<double>(plane) : 0.0;
          else r = p == 2 ? std::sqrt(acc) : std::pow(acc, 1.0 / p);
          y[nc] = static_cast<T>(r);
        }
      }
      return Status::ok();
    });
  };
  if (!visit_dtype<FloatTypes>(x.dtype, make)) return ctx.unsupported_dtype(0);
  return k;
}

Result<KernelPtr> prepare_max_unpool(PrepareContext& ctx) {
  KILN_RETURN_IF_ERROR(ctx.require_input(0));
  KILN_RETURN_IF_ERROR(ctx.require_input(1));
  const TensorInfo& x = ctx.input(0);
  const TensorInfo& ind = ctx.input(1);
  if (x.rank() < 3)
    return ctx.invalid("input X must have rank >= 3 (N, C and at least one spatial dimension), got ",
                       shape_to_string(x.shape));
  if (ind.dtype != DType::kInt64) return ctx.invalid("input I must be int64, got ", dtype_name(ind.dtype));
  if (ind.shape != x.shape)
    return ctx.invalid("input I must have X's shape ", shape_to_string(x.shape), ", got ", shape_to_string(ind.shape));
  const size_t ns = x.rank() - 2;
  if (ns > kMaxSpatial) return ctx.unsupported(ns, " spatial dimensions (Kiln supports 1 to 3)");
  if (!ctx.has_attr("kernel_shape")) return ctx.invalid("attribute 'kernel_shape' is required");
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> kernel, read_ints(ctx, "kernel_shape", ns, 1, 1));
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> strides, read_ints(ctx, "strides", ns, 1, 1));
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> pads, read_ints(ctx, "pads", 2 * ns, 0, 0));
  // The indices address the unpooled tensor of the inferred shape; an explicit output_shape
  // may only enlarge it, and the extra positions (at the end of each axis) stay zero.
  int64_t inferred[kMaxSpatial] = {1, 1, 1}, out[kMaxSpatial] = {1, 1, 1};
  Shape out_shape = {x.shape[0], x.shape[1]};
  for (size_t i = 0; i < ns; ++i) {
    int64_t v = 0;
    if (x.shape[2 + i] < 1 || __builtin_mul_overflow(x.shape[2 + i] - 1, strides[i], &v) || v > (int64_t{1} << 40))
      return ctx.invalid("spatial dimension ", i, " of X (", x.shape[2 + i], ") cannot be unpooled with stride ",
                         strides[i]);
    v += kernel[i] - pads[i] - pads[ns + i];
    if (v < 1 || v > (int64_t{1} << 40))
      return ctx.invalid("spatial dimension ", i, " of the unpooled output would be ", v);
    inferred[kMaxSpatial - ns + i] = out[kMaxSpatial - ns + i] = v;
    out_shape.push_back(v);
  }
  if (ctx.has_input(2)) {
    const Tensor* t = ctx.require_constant(2, "output_shape");
    if (!t) return ctx.sticky_error();
    std::vector<int64_t> req = to_int64_vector(*t);
    if (req.size() != x.rank())
      return ctx.invalid("output_shape must have ", x.rank(), " values, got ", shape_to_string(req));
    if (req[0] != x.shape[0] || req[1] != x.shape[1])
      return ctx.invalid("output_shape ", shape_to_string(req), " must keep X's N and C (", x.shape[0], ", ",
                         x.shape[1], ")");
    for (size_t i = 0; i < ns; ++i) {
      if (req[2 + i] < out_shape[2 + i] || req[2 + i] > (int64_t{1} << 40))
        return ctx.invalid("output_shape ", shape_to_string(req), " is smaller than the unpooled shape ",
                           shape_to_string(out_shape));
      out[kMaxSpatial - ns + i] = req[2 + i];
    }
    out_shape = req;
  }
  ctx.set_output(0, x.dtype, out_shape);
  const int64_t count = x.num_elements();
  const int64_t planes = x.shape[0] * x.shape[1];
  const int64_t inferred_plane = inferred[0] * inferred[1] * inferred[2];
  const int64_t out_plane = out[0] * out[1] * out[2];
  const int64_t limit = planes * inferred_plane;
  const int64_t ih = inferred[1], iw = inferred[2], oh = out[1], ow = out[2];
  KernelPtr k;
  bool ok = visit_dtype<FloatTypes>(x.dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    k = make_kernel([=](const KernelContext& kc) {
      const T* xv = kc.in(0).as<const T>();
      const int64_t* iv = kc.in(1).as<const int64_t>();
      T* y = kc.out(0).as<T>();
      std::fill(y, y + planes * out_plane, T(0));
      for (int64_t i = 0; i < count; ++i) {
        const int64_t idx = iv[i];
        if (idx < 0 || idx >= limit)
          return Status::out_of_range("MaxUnpool: index ", idx, " at position ", i,
                                      " is out of range for an unpooled tensor of ", limit, " elements");
        const int64_t nc = idx / inferred_plane, r = idx % inferred_plane;
        const int64_t d = r / (ih * iw), h = (r / iw) % ih, w = r % iw;
        y[nc * out_plane + (d * oh + h) * ow + w] = xv[i];
      }
      return Status::ok();
    });
  });
  if (!ok) return ctx.unsupported_dtype(0);
  return k;
}

constexpr OpDef kPoolOps[] = {
    {"", "AveragePool", 1, kMaxOnnxOpset, prepare_pool<PoolKind::kAverage>},
    {"", "MaxPool", 1, kMaxOnnxOpset, prepare_pool<PoolKind::kMax>},
    {"", "LpPool", 1, kMaxOnnxOpset, prepare_pool<PoolKind::kLp>},
    {"", "GlobalAveragePool", 1, kMaxOnnxOpset, prepare_global_pool<PoolKind::kAverage>},
    {"", "GlobalMaxPool", 1, kMaxOnnxOpset, prepare_global_pool<PoolKind::kMax>},
    {"", "GlobalLpPool", 1, kMaxOnnxOpset, prepare_global_pool<PoolKind::kLp>},
    {"", "MaxUnpool", 9, kMaxOnnxOpset, prepare_max_unpool},
};

}  // namespace

std::span<const OpDef> pool_ops() { return kPoolOps; }

}  // namespace kiln::nn::ops
