// Convolution operators: Conv and ConvTranspose over 1 to 3 spatial dimensions, with groups
// (depthwise included), strides, dilations, explicit or automatic padding, optional bias, and
// (ConvTranspose) output_padding and output_shape.
//
// The kernels are direct convolutions. Spatial dimensions are padded at the front to three, so
// one loop nest serves 1-D, 2-D and 3-D. The innermost loop is a multiply-add along an output
// row over the range of positions whose input lies inside the tensor; that range is computed in
// prepare for every kernel column, so no padding test is left in it.
#include <algorithm>
#include <string>
#include <vector>

#include "kiln/nn/ops/families.h"
#include "kiln/nn/ops/op_util.h"

namespace kiln::nn::ops {
namespace {

constexpr size_t kMaxSpatial = 3;
// Bound on strides, dilations and pads: keeps every index computation far from int64 overflow.
constexpr int64_t kMaxSpatialAttr = int64_t{1} << 31;

int64_t floor_div(int64_t a, int64_t b) {  // b > 0
  return a >= 0 ? a / b : -((-a + b - 1) / b);
}
int64_t ceil_div(int64_t a, int64_t b) {  // b > 0
  return a >= 0 ? (a + b - 1) / b : -((-a) / b);
}

// The positions i in [0, count) for which i * stride + offset lies in [0, size).
void valid_range(int64_t offset, int64_t stride, int64_t count, int64_t size, int64_t* lo, int64_t* hi) {
  *lo = std::max<int64_t>(0, ceil_div(-offset, stride));
  *hi = std::min<int64_t>(count, floor_div(size - 1 - offset, stride) + 1);
  if (*hi < *lo) *hi = *lo;
}

enum class AutoPad { kNotSet, kSameUpper, kSameLower, kValid };

Result<AutoPad> read_auto_pad(PrepareContext& ctx) {
  std::string s = ctx.attr_string("auto_pad", "NOTSET");
  if (s == "NOTSET" || s.empty()) return AutoPad::kNotSet;
  if (s == "SAME_UPPER") return AutoPad::kSameUpper;
  if (s == "SAME_LOWER") return AutoPad::kSameLower;
  if (s == "VALID") return AutoPad::kValid;
  return ctx.invalid("auto_pad must be NOTSET, SAME_UPPER, SAME_LOWER or VALID, got '", s, "'");
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

// (kernel - 1) * dilation + 1, or an error when it does not fit comfortably in int64.
Result<int64_t> dilated_extent(const PrepareContext& ctx, int64_t kernel, int64_t dilation) {
  int64_t span = 0;
  if (__builtin_mul_overflow(kernel - 1, dilation, &span) || span > (int64_t{1} << 60))
    return ctx.invalid("kernel size ", kernel, " with dilation ", dilation, " is too large");
  return span + 1;
}

// Geometry with spatial dimensions front-padded to three.
struct Geom {
  int64_t batch = 0, in_channels = 0, out_channels = 0, group = 1;
  int64_t in[kMaxSpatial] = {1, 1, 1};
  int64_t out[kMaxSpatial] = {1, 1, 1};
  int64_t kernel[kMaxSpatial] = {1, 1, 1};
  int64_t stride[kMaxSpatial] = {1, 1, 1};
  int64_t dilation[kMaxSpatial] = {1, 1, 1};
  int64_t pad[kMaxSpatial] = {0, 0, 0};  // at the beginning; the end follows from the sizes
  // For each kernel column kw, the range of the innermost loop that stays inside the tensor.
  std::vector<int64_t> lo, hi;

  int64_t in_plane() const { return in[0] * in[1] * in[2]; }
  int64_t out_plane() const { return out[0] * out[1] * out[2]; }
  int64_t kernel_size() const { return kernel[0] * kernel[1] * kernel[2]; }
};

// Checks what Conv and ConvTranspose share: dtypes, ranks, group, kernel_shape, and the
// strides / dilations attributes. Fills the channel and kernel parts of `g`.
Status check_common(PrepareContext& ctx, bool transpose, Geom* g, std::vector<int64_t>* strides,
                    std::vector<int64_t>* dilations) {
  KILN_RETURN_IF_ERROR(ctx.require_input(0));
  KILN_RETURN_IF_ERROR(ctx.require_input(1));
  const TensorInfo& x = ctx.input(0);
  const TensorInfo& w = ctx.input(1);
  if (x.dtype != DType::kFloat32 && x.dtype != DType::kFloat64) return ctx.unsupported_dtype(0);
  if (w.dtype != x.dtype)
    return ctx.invalid("W has dtype ", dtype_name(w.dtype), " but X has dtype ", dtype_name(x.dtype));
  if (x.rank() < 3)
    return ctx.invalid("input X must have rank >= 3 (N, C and at least one spatial dimension), got ",
                       shape_to_string(x.shape));
  const size_t ns = x.rank() - 2;
  if (ns > kMaxSpatial) return ctx.unsupported(ns, " spatial dimensions (Kiln supports 1 to 3)");
  if (w.rank() != x.rank())
    return ctx.invalid("input W must have rank ", x.rank(), " like X, got ", shape_to_string(w.shape));
  const int64_t group = ctx.attr_int("group", 1);
  if (group < 1) return ctx.invalid("group must be >= 1, got ", group);
  const int64_t c = x.shape[1];
  if (c % group != 0) return ctx.invalid("input channels ", c, " are not divisible by group ", group);
  int64_t m = 0;
  if (!transpose) {
    if (w.shape[1] * group != c)
      return ctx.invalid("W of shape ", shape_to_string(w.shape), " expects ", w.shape[1] * group,
                         " input channels (W.shape[1] * group), but X has ", c);
    m = w.shape[0];
    if (m % group != 0) return ctx.invalid("output channels ", m, " are not divisible by group ", group);
  } else {
    if (w.shape[0] != c)
      return ctx.invalid("W of shape ", shape_to_string(w.shape), " must have X's ", c, " channels as dimension 0");
    if (__builtin_mul_overflow(w.shape[1], group, &m)) return ctx.invalid("group ", group, " is too large");
  }
  g->batch = x.shape[0];
  g->in_channels = c;
  g->out_channels = m;
  g->group = group;
  const size_t off = kMaxSpatial - ns;
  for (size_t i = 0; i < ns; ++i) {
    if (w.shape[2 + i] < 1) return ctx.invalid("W has an empty kernel dimension: ", shape_to_string(w.shape));
    g->kernel[off + i] = w.shape[2 + i];
    g->in[off + i] = x.shape[2 + i];
  }
  if (ctx.has_attr("kernel_shape")) {
    std::vector<int64_t> ks = ctx.attr_ints("kernel_shape");
    if (ks != Shape(w.shape.begin() + 2, w.shape.end()))
      return ctx.invalid("kernel_shape ", shape_to_string(ks), " does not match W's spatial dimensions ",
                         shape_to_string(std::span<const int64_t>(w.shape).subspan(2)));
  }
  if (ctx.has_input(2)) {
    const TensorInfo& b = ctx.input(2);
    if (b.dtype != x.dtype) return ctx.invalid("B has dtype ", dtype_name(b.dtype), ", expected ", dtype_name(x.dtype));
    if (b.shape != Shape{m}) return ctx.invalid("B must have shape [", m, "], got ", shape_to_string(b.shape));
  }
  KILN_ASSIGN_OR_RETURN(*strides, read_ints(ctx, "strides", ns, 1, 1));
  KILN_ASSIGN_OR_RETURN(*dilations, read_ints(ctx, "dilations", ns, 1, 1));
  for (size_t i = 0; i < ns; ++i) {
    g->stride[off + i] = (*strides)[i];
    g->dilation[off + i] = (*dilations)[i];
  }
  return Status::ok();
}

// y[0..n) += a * x[0..n). Written four at a time because GCC's -O2 cost model does not vectorize
// a loop that needs a remainder, but does vectorize the straight-line group of four.
template <typename T>
inline void axpy_contiguous(T* __restrict y, const T* __restrict x, T a, int64_t n) {
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) {
    y[i] += a * x[i];
    y[i + 1] += a * x[i + 1];
    y[i + 2] += a * x[i + 2];
    y[i + 3] += a * x[i + 3];
  }
  for (; i < n; ++i) y[i] += a * x[i];
}

template <typename T>
inline void axpy(T* __restrict y, const T* __restrict x, T a, int64_t n, int64_t x_stride) {
  if (x_stride == 1) {
    axpy_contiguous(y, x, a, n);
  } else {
    for (int64_t i = 0; i < n; ++i) y[i] += a * x[i * x_stride];
  }
}

template <typename T>
inline void axpy_scatter(T* __restrict y, const T* __restrict x, T a, int64_t n, int64_t y_stride) {
  if (y_stride == 1) {
    axpy_contiguous(y, x, a, n);
  } else {
    for (int64_t i = 0; i < n; ++i) y[i * y_stride] += a * x[i];
  }
}

// Y[n, oc] row by row: each output row is set to the bias, then every (input channel, kernel
// row) whose input row exists adds its kernel columns as multiply-adds over the row.
template <typename T>
void conv_forward(const Geom& g, const T* x, const T* w, const T* b, T* y) {
  const int64_t cg = g.in_channels / g.group, mg = g.out_channels / g.group;
  const int64_t in_plane = g.in_plane(), out_plane = g.out_plane(), ksize = g.kernel_size();
  const int64_t ID = g.in[0], IH = g.in[1], IW = g.in[2];
  const int64_t OD = g.out[0], OH = g.out[1], OW = g.out[2];
  const int64_t KD = g.kernel[0], KH = g.kernel[1], KW = g.kernel[2];
  for (int64_t n = 0; n < g.batch; ++n) {
    for (int64_t oc = 0; oc < g.out_channels; ++oc) {
      const T* xg = x + (n * g.in_channels + (oc / mg) * cg) * in_plane;
      const T* wo = w + oc * cg * ksize;
      T* yo = y + (n * g.out_channels + oc) * out_plane;
      const T bias = b ? b[oc] : T(0);
      for (int64_t od = 0; od < OD; ++od) {
        for (int64_t oh = 0; oh < OH; ++oh) {
          T* yrow = yo + (od * OH + oh) * OW;
          std::fill(yrow, yrow + OW, bias);
          for (int64_t ic = 0; ic < cg; ++ic) {
            const T* xc = xg + ic * in_plane;
            const T* wc = wo + ic * ksize;
            for (int64_t kd = 0; kd < KD; ++kd) {
              const int64_t id = od * g.stride[0] + kd * g.dilation[0] - g.pad[0];
              if (id < 0 || id >= ID) continue;
              for (int64_t kh = 0; kh < KH; ++kh) {
                const int64_t ih = oh * g.stride[1] + kh * g.dilation[1] - g.pad[1];
                if (ih < 0 || ih >= IH) continue;
                const T* xrow = xc + (id * IH + ih) * IW;
                const T* wrow = wc + (kd * KH + kh) * KW;
                for (int64_t kw = 0; kw < KW; ++kw) {
                  const int64_t lo = g.lo[kw], hi = g.hi[kw];
                  if (lo >= hi) continue;
                  axpy(yrow + lo, xrow + lo * g.stride[2] + kw * g.dilation[2] - g.pad[2], wrow[kw], hi - lo,
                       g.stride[2]);
                }
              }
            }
          }
        }
      }
    }
  }
}

// Y starts as the bias; every input pixel then scatters its contribution through the kernel.
template <typename T>
void conv_transpose_forward(const Geom& g, const T* x, const T* w, const T* b, T* y) {
  const int64_t cg = g.in_channels / g.group, mg = g.out_channels / g.group;
  const int64_t in_plane = g.in_plane(), out_plane = g.out_plane(), ksize = g.kernel_size();
  const int64_t ID = g.in[0], IH = g.in[1], IW = g.in[2];
  const int64_t OD = g.out[0], OH = g.out[1], OW = g.out[2];
  const int64_t KD = g.kernel[0], KH = g.kernel[1], KW = g.kernel[2];
  for (int64_t n = 0; n < g.batch; ++n) {
    for (int64_t oc = 0; oc < g.out_channels; ++oc) {
      T* yo = y + (n * g.out_channels + oc) * out_plane;
      std::fill(yo, yo + out_plane, b ? b[oc] : T(0));
    }
    for (int64_t ic = 0; ic < g.in_channels; ++ic) {
      const T* xc = x + (n * g.in_channels + ic) * in_plane;
      const int64_t grp = ic / cg;
      for (int64_t ocl = 0; ocl < mg; ++ocl) {
        T* yo = y + (n * g.out_channels + grp * mg + ocl) * out_plane;
        const T* wk = w + (ic * mg + ocl) * ksize;
        for (int64_t id = 0; id < ID; ++id) {
          for (int64_t kd = 0; kd < KD; ++kd) {
            const int64_t od = id * g.stride[0] + kd * g.dilation[0] - g.pad[0];
            if (od < 0 || od >= OD) continue;
            for (int64_t ih = 0; ih < IH; ++ih) {
              const T* xrow = xc + (id * IH + ih) * IW;
              for (int64_t kh = 0; kh < KH; ++kh) {
                const int64_t oh = ih * g.stride[1] + kh * g.dilation[1] - g.pad[1];
                if (oh < 0 || oh >= OH) continue;
                T* yrow = yo + (od * OH + oh) * OW;
                const T* wrow = wk + (kd * KH + kh) * KW;
                for (int64_t kw = 0; kw < KW; ++kw) {
                  const int64_t lo = g.lo[kw], hi = g.hi[kw];
                  if (lo >= hi) continue;
                  axpy_scatter(yrow + lo * g.stride[2] + kw * g.dilation[2] - g.pad[2], xrow + lo, wrow[kw], hi - lo,
                               g.stride[2]);
                }
              }
            }
          }
        }
      }
    }
  }
}

template <bool kTranspose>
KernelPtr make_conv_kernel(DType dtype, Geom g) {
  KernelPtr k;
  visit_dtype<FloatTypes>(dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    k = make_kernel([g](const KernelContext& kc) {
      const T* b = kc.has_in(2) ? kc.in(2).as<const T>() : nullptr;
      if constexpr (kTranspose) {
        conv_transpose_forward<T>(g, kc.in(0).as<const T>(), kc.in(1).as<const T>(), b, kc.out(0).as<T>());
      } else {
        conv_forward<T>(g, kc.in(0).as<const T>(), kc.in(1).as<const T>(), b, kc.out(0).as<T>());
      }
      return Status::ok();
    });
  });
  return k;
}

Result<KernelPtr> prepare_conv(PrepareContext& ctx) {
  Geom g;
  std::vector<int64_t> strides, dilations;
  KILN_RETURN_IF_ERROR(check_common(ctx, false, &g, &strides, &dilations));
  KILN_ASSIGN_OR_RETURN(AutoPad auto_pad, read_auto_pad(ctx));
  const TensorInfo& x = ctx.input(0);
  const size_t ns = x.rank() - 2, off = kMaxSpatial - ns;
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> pads, read_ints(ctx, "pads", 2 * ns, 0, 0));
  Shape out_shape = {x.shape[0], g.out_channels};
  for (size_t i = 0; i < ns; ++i) {
    const size_t d = off + i;
    const int64_t in = g.in[d], s = g.stride[d];
    KILN_ASSIGN_OR_RETURN(int64_t extent, dilated_extent(ctx, g.kernel[d], g.dilation[d]));
    int64_t begin = pads[i], end = pads[ns + i];
    if (auto_pad == AutoPad::kSameUpper || auto_pad == AutoPad::kSameLower) {
      const int64_t out = ceil_div(in, s);
      const int64_t total = std::max<int64_t>(0, (out - 1) * s + extent - in);
      begin = auto_pad == AutoPad::kSameUpper ? total / 2 : total - total / 2;
      end = total - begin;
    } else if (auto_pad == AutoPad::kValid) {
      begin = end = 0;
    }
    if (in + begin + end < extent)
      return ctx.invalid("spatial dimension ", i, " of X (", in, " plus padding ", begin, "+", end,
                         ") is smaller than the dilated kernel (", extent, ")");
    g.out[d] = (in + begin + end - extent) / s + 1;
    g.pad[d] = begin;
    out_shape.push_back(g.out[d]);
  }
  // A 1x1 convolution with unit strides and no padding is a per-pixel matrix product: treat each
  // plane as one row so that the innermost loop runs over all of it.
  bool pointwise = true;
  for (size_t d = 0; d < kMaxSpatial; ++d)
    pointwise = pointwise && g.kernel[d] == 1 && g.stride[d] == 1 && g.pad[d] == 0 && g.out[d] == g.in[d];
  if (pointwise) {
    const int64_t plane = g.in_plane();
    g.in[0] = g.in[1] = g.out[0] = g.out[1] = 1;
    g.in[2] = g.out[2] = plane;
  }
  g.lo.resize(static_cast<size_t>(g.kernel[2]));
  g.hi.resize(g.lo.size());
  for (int64_t kw = 0; kw < g.kernel[2]; ++kw)
    valid_range(kw * g.dilation[2] - g.pad[2], g.stride[2], g.out[2], g.in[2], &g.lo[kw], &g.hi[kw]);
  ctx.set_output(0, x.dtype, out_shape);
  return make_conv_kernel<false>(x.dtype, std::move(g));
}

Result<KernelPtr> prepare_conv_transpose(PrepareContext& ctx) {
  Geom g;
  std::vector<int64_t> strides, dilations;
  KILN_RETURN_IF_ERROR(check_common(ctx, true, &g, &strides, &dilations));
  KILN_ASSIGN_OR_RETURN(AutoPad auto_pad, read_auto_pad(ctx));
  const TensorInfo& x = ctx.input(0);
  const size_t ns = x.rank() - 2, off = kMaxSpatial - ns;
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> pads, read_ints(ctx, "pads", 2 * ns, 0, 0));
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> output_padding, read_ints(ctx, "output_padding", ns, 0, 0));
  std::vector<int64_t> output_shape = ctx.attr_ints("output_shape");
  // Some exporters give the whole output shape (N, C, spatial...); only the spatial part matters.
  if (output_shape.size() == ns + 2) output_shape.erase(output_shape.begin(), output_shape.begin() + 2);
  if (!output_shape.empty() && output_shape.size() != ns)
    return ctx.invalid("output_shape must have ", ns, " values, got ", output_shape.size());
  Shape out_shape = {x.shape[0], g.out_channels};
  for (size_t i = 0; i < ns; ++i) {
    const size_t d = off + i;
    const int64_t in = g.in[d], s = g.stride[d], op = output_padding[i];
    if (in < 1) return ctx.invalid("spatial dimension ", i, " of X is empty: ", shape_to_string(x.shape));
    if (op >= std::max(s, g.dilation[d]))
      return ctx.invalid("output_padding ", op, " must be smaller than the stride (", s, ") or the dilation (",
                         g.dilation[d], ")");
    KILN_ASSIGN_OR_RETURN(int64_t extent, dilated_extent(ctx, g.kernel[d], g.dilation[d]));
    int64_t full = 0;  // output size with no padding
    if (__builtin_mul_overflow(s, in - 1, &full) || full > (int64_t{1} << 60))
      return ctx.invalid("stride ", s, " is too large for spatial dimension ", i, " of size ", in);
    full += op + extent;
    int64_t begin = pads[i], end = pads[ns + i], out = 0;
    const bool same = auto_pad == AutoPad::kSameUpper || auto_pad == AutoPad::kSameLower;
    if (!output_shape.empty() || same) {
      if (!output_shape.empty()) {
        out = output_shape[i];
        if (out < 1 || out > (int64_t{1} << 40)) return ctx.invalid("output_shape value ", out, " is out of range");
      } else {
        out = in * s;
      }
      // Padding follows from the requested size; it may be negative (the output extends past
      // what the input reaches, and those positions get only the bias).
      const int64_t total = full - out;
      const int64_t half = floor_div(total, 2);
      begin = auto_pad == AutoPad::kSameUpper ? half : total - half;
      end = total - begin;
    } else {
      if (auto_pad == AutoPad::kValid) begin = end = 0;
      out = full - begin - end;
      if (out < 1)
        return ctx.invalid("padding ", begin, "+", end, " leaves no output along spatial dimension ", i);
    }
    g.out[d] = out;
    g.pad[d] = begin;
    out_shape.push_back(out);
  }
  g.lo.resize(static_cast<size_t>(g.kernel[2]));
  g.hi.resize(g.lo.size());
  for (int64_t kw = 0; kw < g.kernel[2]; ++kw)
    valid_range(kw * g.dilation[2] - g.pad[2], g.stride[2], g.in[2], g.out[2], &g.lo[kw], &g.hi[kw]);
  ctx.set_output(0, x.dtype, out_shape);
  return make_conv_kernel<true>(x.dtype, std::move(g));
}

constexpr OpDef kConvOps[] = {
    {"", "Conv", 1, kMaxOnnxOpset, prepare_conv},
    {"", "ConvTranspose", 1, kMaxOnnxOpset, prepare_conv_transpose},
};

}  // namespace

std::span<const OpDef> conv_ops() { return kConvOps; }

}  // namespace kiln::nn::ops
