// Resize (opsets 10 to 19: scales or sizes, roi, nearest / linear / cubic, every coordinate
// transformation mode, nearest_mode, cubic_coeff_a, exclude_outside, extrapolation_value,
// antialias, axes, keep_aspect_ratio_policy) and its deprecated predecessor Upsample (7 to 10).
//
// Interpolation is separable: for every axis and every output coordinate, prepare computes the
// input indices (clamped to the edge) and weights that contribute, following the ONNX reference
// implementation. At run time each output element is the weighted sum over the product of its
// per-axis taps; nearest mode copies the single source element exactly. Leading axes that are
// not resized (usually N and C) are walked as plain blocks.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

#include "kiln/nn/ops/families.h"
#include "kiln/nn/ops/op_util.h"

namespace kiln::nn::ops {
namespace {

// Bound on an output axis, which sizes the per-axis tables built in prepare.
constexpr int64_t kMaxOutputAxis = int64_t{1} << 24;

enum class Mode { kNearest, kLinear, kCubic };
enum class Coord { kHalfPixel, kHalfPixelSymmetric, kPytorchHalfPixel, kAlignCorners, kAsymmetric,
                   kTfHalfPixelForNn, kTfCropAndResize };
// kLegacy: Upsample and Resize-10, which had no nearest_mode: floor when upsampling, ceil when
// downsampling.
enum class Nearest { kRoundPreferFloor, kRoundPreferCeil, kFloor, kCeil, kLegacy };

struct Options {
  Mode mode = Mode::kNearest;
  Coord coord = Coord::kHalfPixel;
  Nearest nearest = Nearest::kRoundPreferFloor;
  double cubic_a = -0.75;
  bool exclude_outside = false;
  bool antialias = false;
  double extrapolation = 0;
};

// Taps of one axis: output coordinate o reads input indices index[begin[o] .. begin[o+1]) with
// the matching weights; outside[o] marks coordinates that tf_crop_and_resize maps outside the
// input (they take extrapolation_value).
struct AxisTaps {
  int64_t in = 1, out = 1;
  std::vector<int64_t> begin, index;
  std::vector<double> weight;
  std::vector<uint8_t> outside;
};

double cubic_weight(double x, double a) {  // Keys' cubic convolution kernel
  x = std::fabs(x);
  if (x <= 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
  if (x < 2) return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a;
  return 0;
}

double source_coordinate(const Options& o, double x, double scale, int64_t in, int64_t out, double roi_start,
                         double roi_end) {
  const double length = scale * static_cast<double>(in);  // the resized length, before rounding
  switch (o.coord) {
    case Coord::kHalfPixel:
      return (x + 0.5) / scale - 0.5;
    case Coord::kHalfPixelSymmetric: {
      const double adjustment = static_cast<double>(out) / length;
      return static_cast<double>(in) / 2 * (1 - adjustment) + (x + 0.5) / scale - 0.5;
    }
    case Coord::kPytorchHalfPixel:
      return out > 1 ? (x + 0.5) / scale - 0.5 : 0.0;
    case Coord::kAlignCorners:
      return length == 1 ? 0.0 : x * static_cast<double>(in - 1) / (length - 1);
    case Coord::kAsymmetric:
      return x / scale;
    case Coord::kTfHalfPixelForNn:
      return (x + 0.5) / scale;
    case Coord::kTfCropAndResize: {
      const double span = (roi_end - roi_start) * static_cast<double>(in - 1);
      return roi_start * static_cast<double>(in - 1) + (length == 1 ? span / 2 : x * span / (length - 1));
    }
  }
  return 0;
}

int64_t nearest_index(Nearest mode, double x, double scale) {
  const double f = std::floor(x);
  if (x == f) return static_cast<int64_t>(f);
  const double frac = x - f;
  switch (mode) {
    case Nearest::kRoundPreferFloor: return static_cast<int64_t>(frac <= 0.5 ? f : f + 1);
    case Nearest::kRoundPreferCeil: return static_cast<int64_t>(frac < 0.5 ? f : f + 1);
    case Nearest::kFloor: return static_cast<int64_t>(f);
    case Nearest::kCeil: return static_cast<int64_t>(f + 1);
    case Nearest::kLegacy: return static_cast<int64_t>(scale < 1 ? f + 1 : f);
  }
  return 0;
}

// Builds the taps of one axis. Coordinates far outside the input are clamped to a band around
// it first, so the integer conversions below stay in range.
AxisTaps plan_axis(const Options& o, int64_t in, int64_t out, double scale, double roi_start, double roi_end) {
  AxisTaps t;
  t.in = in;
  t.out = out;
  t.begin.push_back(0);
  t.outside.assign(static_cast<size_t>(out), 0);
  const double band = static_cast<double>(in) + 8;
  std::vector<double> w;
  for (int64_t x = 0; x < out; ++x) {
    double src = source_coordinate(o, static_cast<double>(x), scale, in, out, roi_start, roi_end);
    if (o.coord == Coord::kTfCropAndResize && (src < 0 || src > static_cast<double>(in - 1))) t.outside[x] = 1;
    if (!(src > -band)) src = -band;  // also catches NaN
    if (src > band) src = band;
    // base + ratio == src with ratio in (0, 1]: the ONNX reference prefers the left neighbour.
    const double base_f = std::ceil(src) - 1;
    const int64_t base = static_cast<int64_t>(base_f);
    const double ratio = src - base_f;
    int64_t first = 0;
    w.clear();
    if (o.mode == Mode::kNearest) {
      first = nearest_index(o.nearest, src, scale);
      w.push_back(1);
    } else if (o.antialias && scale < 1) {
      // The filter is stretched by 1/scale so every input element contributes when downscaling.
      if (o.mode == Mode::kLinear) {
        const int64_t start = static_cast<int64_t>(std::floor(-1 / scale)) + 1;
        first = base + start;
        for (int64_t j = start; j < 2 - start; ++j)
          w.push_back(std::clamp(1 - std::fabs((static_cast<double>(j) - ratio) * scale), 0.0, 1.0));
      } else {
        const int64_t start = static_cast<int64_t>(std::floor(-2 / scale)) + 1;
        first = base + start;
        for (int64_t j = start; j < 2 - start; ++j)
          w.push_back(cubic_weight(scale * (static_cast<double>(j) - ratio), o.cubic_a));
      }
      double sum = 0;
      for (double v : w) sum += v;
      if (sum != 0)
        for (double& v : w) v /= sum;
    } else if (o.mode == Mode::kLinear) {
      first = base;
      w = {1 - ratio, ratio};
    } else {
      const double a = o.cubic_a, r = ratio, s = 1 - ratio;
      first = base - 1;
      w = {((a * (r + 1) - 5 * a) * (r + 1) + 8 * a) * (r + 1) - 4 * a, ((a + 2) * r - (a + 3)) * r * r + 1,
           ((a + 2) * s - (a + 3)) * s * s + 1, ((a * (s + 1) - 5 * a) * (s + 1) + 8 * a) * (s + 1) - 4 * a};
    }
    if (o.exclude_outside && o.mode != Mode::kNearest) {
      double sum = 0;
      for (size_t j = 0; j < w.size(); ++j) {
        const int64_t idx = first + static_cast<int64_t>(j);
        if (idx < 0 || idx >= in) w[j] = 0;
        sum += w[j];
      }
      if (sum != 0)
        for (double& v : w) v /= sum;
    }
    for (size_t j = 0; j < w.size(); ++j) {
      t.index.push_back(std::clamp<int64_t>(first + static_cast<int64_t>(j), 0, in - 1));
      t.weight.push_back(w[j]);
    }
    t.begin.push_back(static_cast<int64_t>(t.index.size()));
  }
  return t;
}

// True when the axis copies input coordinate o to output coordinate o.
bool is_identity(const AxisTaps& t) {
  if (t.in != t.out) return false;
  for (int64_t o = 0; o < t.out; ++o) {
    if (t.outside[o]) return false;
    double own = 0;
    for (int64_t j = t.begin[o]; j < t.begin[o + 1]; ++j) {
      if (t.index[j] == o) own += t.weight[j];
      else if (t.weight[j] != 0) return false;
    }
    if (own != 1) return false;
  }
  return true;
}

struct Plan {
  int64_t blocks = 1;              // product of the leading identity axes
  int64_t in_block = 1, out_block = 1;
  std::vector<AxisTaps> axes;      // the remaining axes; index[] holds element offsets
  bool nearest = true;             // copy one source element (also when nothing is resized)
  double extrapolation = 0;
};

template <typename T>
T from_double(double v) {
  if constexpr (std::is_floating_point_v<T>) {
    return static_cast<T>(v);
  } else if constexpr (std::is_same_v<T, bool>) {
    return v != 0;
  } else {
    // Integer images are rounded to nearest and saturated rather than truncated.
    const double r = std::nearbyint(v);
    if (!(r >= static_cast<double>(std::numeric_limits<T>::lowest()))) return std::numeric_limits<T>::lowest();
    if (r >= static_cast<double>(std::numeric_limits<T>::max())) return std::numeric_limits<T>::max();
    return static_cast<T>(r);
  }
}

template <typename T>
double weighted_sum(const Plan& p, const T* x, const int64_t* pos, size_t a) {
  const AxisTaps& t = p.axes[a];
  double acc = 0;
  const bool last = a + 1 == p.axes.size();
  for (int64_t j = t.begin[pos[a]]; j < t.begin[pos[a] + 1]; ++j)
    acc += t.weight[j] * (last ? static_cast<double>(x[t.index[j]]) : weighted_sum(p, x + t.index[j], pos, a + 1));
  return acc;
}

template <typename T>
void resize_run(const Plan& p, const T* x, T* y) {
  const size_t r = p.axes.size();
  const T extrapolation = from_double<T>(p.extrapolation);
  for (int64_t b = 0; b < p.blocks; ++b) {
    const T* xb = x + b * p.in_block;
    T* yb = y + b * p.out_block;
    int64_t pos[kMaxRank] = {0};
    for (int64_t o = 0; o < p.out_block; ++o) {
      bool outside = false;
      for (size_t a = 0; a < r; ++a) outside = outside || p.axes[a].outside[pos[a]];
      if (outside) {
        yb[o] = extrapolation;
      } else if (p.nearest) {
        int64_t off = 0;
        for (size_t a = 0; a < r; ++a) off += p.axes[a].index[p.axes[a].begin[pos[a]]];
        yb[o] = xb[off];
      } else {
        yb[o] = from_double<T>(weighted_sum(p, xb, pos, 0));
      }
      for (size_t a = r; a-- > 0;) {
        if (++pos[a] < p.axes[a].out) break;
        pos[a] = 0;
      }
    }
  }
}

// Everything a Resize or Upsample node asks for, normalised to one scale and one output size
// per axis of X (and a roi per axis for tf_crop_and_resize).
Result<KernelPtr> build_resize(PrepareContext& ctx, const Options& opt, const std::vector<double>& scales,
                               const Shape& out_shape, const std::vector<double>& roi) {
  const TensorInfo& x = ctx.input(0);
  const size_t rank = x.rank();
  std::vector<AxisTaps> taps;
  for (size_t a = 0; a < rank; ++a) {
    if (out_shape[a] > kMaxOutputAxis)
      return ctx.unsupported("output dimension ", a, " of ", out_shape[a], " exceeds Kiln's limit of ", kMaxOutputAxis);
    taps.push_back(plan_axis(opt, x.shape[a], out_shape[a], scales[a], roi[a], roi[rank + a]));
  }
  Plan p;
  p.nearest = opt.mode == Mode::kNearest;
  p.extrapolation = opt.extrapolation;
  size_t lead = 0;
  while (lead < rank && is_identity(taps[lead])) p.blocks *= x.shape[lead++];
  // The inner axes read from a block of the input: turn their indices into element offsets.
  std::vector<int64_t> in_strides = strides_of(x.shape);
  for (size_t a = lead; a < rank; ++a) {
    for (int64_t& i : taps[a].index) i *= in_strides[a];
    p.in_block *= x.shape[a];
    p.out_block *= out_shape[a];
    p.axes.push_back(std::move(taps[a]));
  }
  if (p.axes.empty()) {  // nothing is resized: one block per element
    p.in_block = p.out_block = 1;
    p.blocks = x.num_elements();
    p.nearest = true;
  }
  ctx.set_output(0, x.dtype, out_shape);
  KernelPtr k;
  auto make = [&](auto tag) {
    using T = typename decltype(tag)::type;
    k = make_kernel([p](const KernelContext& kc) {
      resize_run<T>(p, kc.in(0).as<const T>(), kc.out(0).as<T>());
      return Status::ok();
    });
  };
  const bool ok = opt.mode == Mode::kNearest ? visit_dtype<AllTypes>(x.dtype, make)
                                             : visit_dtype<NumericTypes>(x.dtype, make);
  if (!ok) return ctx.unsupported_dtype(0);
  return k;
}

Status parse_mode(const PrepareContext& ctx, const std::string& s, bool allow_cubic, Mode* m) {
  if (s == "nearest") *m = Mode::kNearest;
  else if (s == "linear" || s == "bilinear") *m = Mode::kLinear;
  else if (s == "cubic" && allow_cubic) *m = Mode::kCubic;
  else return ctx.invalid("mode must be nearest, linear", allow_cubic ? " or cubic" : "", ", got '", s, "'");
  return Status::ok();
}

// Output sizes from scales: floor(in * scale), in double like the ONNX reference.
Result<Shape> sizes_from_scales(const PrepareContext& ctx, const Shape& in, const std::vector<double>& scales) {
  Shape out(in.size());
  for (size_t a = 0; a < in.size(); ++a) {
    const double s = scales[a];
    if (!(s > 0) || !std::isfinite(s)) return ctx.invalid("scale ", s, " for axis ", a, " must be positive and finite");
    const double v = std::floor(static_cast<double>(in[a]) * s);
    if (v > static_cast<double>(kMaxOutputAxis))
      return ctx.unsupported("output dimension ", a, " of ", v, " exceeds Kiln's limit of ", kMaxOutputAxis);
    out[a] = static_cast<int64_t>(v);
  }
  return out;
}

Result<KernelPtr> prepare_resize(PrepareContext& ctx) {
  KILN_RETURN_IF_ERROR(ctx.require_input(0));
  const TensorInfo& x = ctx.input(0);
  const size_t rank = x.rank();
  KILN_RETURN_IF_ERROR(check_rank(ctx, rank));
  if (rank == 0) return ctx.invalid("input X must have rank >= 1");
  Options opt;
  const int opset = ctx.opset();
  KILN_RETURN_IF_ERROR(parse_mode(ctx, ctx.attr_string("mode", "nearest"), opset >= 11, &opt.mode));
  std::vector<double> roi(2 * rank, 0.0);
  for (size_t a = 0; a < rank; ++a) roi[rank + a] = 1.0;
  if (opset < 11) {
    // Resize-10: X and scales, asymmetric coordinates, no nearest_mode.
    opt.coord = Coord::kAsymmetric;
    opt.nearest = Nearest::kLegacy;
    KILN_RETURN_IF_ERROR(ctx.require_input(1));
    const Tensor* t = ctx.require_constant(1, "scales");
    if (!t) return ctx.sticky_error();
    std::vector<double> scales = to_double_vector(*t);
    if (scales.size() != rank) return ctx.invalid("scales must have ", rank, " values, got ", scales.size());
    KILN_ASSIGN_OR_RETURN(Shape out, sizes_from_scales(ctx, x.shape, scales));
    return build_resize(ctx, opt, scales, out, roi);
  }
  const std::string coord = ctx.attr_string("coordinate_transformation_mode", "half_pixel");
  if (coord == "half_pixel") opt.coord = Coord::kHalfPixel;
  else if (coord == "half_pixel_symmetric") opt.coord = Coord::kHalfPixelSymmetric;
  else if (coord == "pytorch_half_pixel") opt.coord = Coord::kPytorchHalfPixel;
  else if (coord == "align_corners") opt.coord = Coord::kAlignCorners;
  else if (coord == "asymmetric") opt.coord = Coord::kAsymmetric;
  else if (coord == "tf_half_pixel_for_nn") opt.coord = Coord::kTfHalfPixelForNn;
  else if (coord == "tf_crop_and_resize") opt.coord = Coord::kTfCropAndResize;
  else return ctx.invalid("unknown coordinate_transformation_mode '", coord, "'");
  const std::string nearest = ctx.attr_string("nearest_mode", "round_prefer_floor");
  if (nearest == "round_prefer_floor") opt.nearest = Nearest::kRoundPreferFloor;
  else if (nearest == "round_prefer_ceil") opt.nearest = Nearest::kRoundPreferCeil;
  else if (nearest == "floor") opt.nearest = Nearest::kFloor;
  else if (nearest == "ceil") opt.nearest = Nearest::kCeil;
  else return ctx.invalid("unknown nearest_mode '", nearest, "'");
  opt.cubic_a = ctx.attr_float("cubic_coeff_a", -0.75f);
  opt.exclude_outside = ctx.attr_int("exclude_outside", 0) != 0;
  opt.extrapolation = ctx.attr_float("extrapolation_value", 0.0f);
  opt.antialias = ctx.attr_int("antialias", 0) != 0;
  const std::string policy = ctx.attr_string("keep_aspect_ratio_policy", "stretch");
  if (policy != "stretch" && policy != "not_larger" && policy != "not_smaller")
    return ctx.invalid("keep_aspect_ratio_policy must be stretch, not_larger or not_smaller, got '", policy, "'");

  std::vector<int64_t> axes;
  if (ctx.has_attr("axes")) {
    axes = ctx.attr_ints("axes");
    KILN_RETURN_IF_ERROR(normalize_axes(ctx, axes, static_cast<int64_t>(rank)));
  } else {
    for (size_t a = 0; a < rank; ++a) axes.push_back(static_cast<int64_t>(a));
  }
  const size_t na = axes.size();

  std::vector<double> scale_values;
  std::vector<int64_t> size_values;
  if (ctx.has_input(2)) {
    const Tensor* t = ctx.require_constant(2, "scales");
    if (!t) return ctx.sticky_error();
    scale_values = to_double_vector(*t);
  }
  if (ctx.has_input(3)) {
    const Tensor* t = ctx.require_constant(3, "sizes");
    if (!t) return ctx.sticky_error();
    size_values = to_int64_vector(*t);
  }
  // An empty scales tensor stands for "not given" (opsets 11 and 12 required the input).
  if (scale_values.empty() == size_values.empty())
    return ctx.invalid("exactly one of scales and sizes must be given, got ",
                       scale_values.empty() ? "neither" : "both");
  if (opt.coord == Coord::kTfCropAndResize) {
    KILN_RETURN_IF_ERROR(ctx.require_input(1));
    const Tensor* t = ctx.require_constant(1, "roi");
    if (!t) return ctx.sticky_error();
    std::vector<double> r = to_double_vector(*t);
    if (r.size() != 2 * na) return ctx.invalid("roi must have ", 2 * na, " values, got ", r.size());
    for (size_t i = 0; i < na; ++i) {
      roi[axes[i]] = r[i];
      roi[rank + axes[i]] = r[na + i];
    }
  }

  std::vector<double> scales(rank, 1.0);
  Shape out = x.shape;
  if (!scale_values.empty()) {
    if (scale_values.size() != na) return ctx.invalid("scales must have ", na, " values, got ", scale_values.size());
    for (size_t i = 0; i < na; ++i) scales[axes[i]] = scale_values[i];
    KILN_ASSIGN_OR_RETURN(out, sizes_from_scales(ctx, x.shape, scales));
  } else {
    if (size_values.size() != na) return ctx.invalid("sizes must have ", na, " values, got ", size_values.size());
    for (size_t i = 0; i < na; ++i) {
      const int64_t a = axes[i], s = size_values[i];
      if (s < 0 || s > kMaxOutputAxis) return ctx.invalid("sizes value ", s, " for axis ", a, " is out of range");
      if (x.shape[a] == 0 && s != 0) return ctx.invalid("axis ", a, " of X is empty and cannot be resized to ", s);
      out[a] = s;
      scales[a] = x.shape[a] == 0 ? 1.0 : static_cast<double>(s) / static_cast<double>(x.shape[a]);
    }
    if (policy != "stretch") {
      // One scale for every resized axis, the smallest (not_larger) or largest (not_smaller).
      double s = scales[axes[0]];
      for (int64_t a : axes) s = policy == "not_larger" ? std::min(s, scales[a]) : std::max(s, scales[a]);
      for (int64_t a : axes) {
        scales[a] = s;
        out[a] = static_cast<int64_t>(s * static_cast<double>(x.shape[a]) + 0.5);
      }
    }
  }
  return build_resize(ctx, opt, scales, out, roi);
}

Result<KernelPtr> prepare_upsample(PrepareContext& ctx) {
  KILN_RETURN_IF_ERROR(ctx.require_input(0));
  const TensorInfo& x = ctx.input(0);
  const size_t rank = x.rank();
  KILN_RETURN_IF_ERROR(check_rank(ctx, rank));
  if (rank == 0) return ctx.invalid("input X must have rank >= 1");
  Options opt;
  opt.coord = Coord::kAsymmetric;
  opt.nearest = Nearest::kLegacy;
  KILN_RETURN_IF_ERROR(parse_mode(ctx, ctx.attr_string("mode", "nearest"), false, &opt.mode));
  std::vector<double> scales;
  if (ctx.opset() < 9) {
    if (!ctx.has_attr("scales")) return ctx.invalid("attribute 'scales' is required");
    for (float s : ctx.attr_floats("scales")) scales.push_back(s);
  } else {
    KILN_RETURN_IF_ERROR(ctx.require_input(1));
    const Tensor* t = ctx.require_constant(1, "scales");
    if (!t) return ctx.sticky_error();
    scales = to_double_vector(*t);
  }
  if (scales.size() != rank) return ctx.invalid("scales must have ", rank, " values, got ", scales.size());
  KILN_ASSIGN_OR_RETURN(Shape out, sizes_from_scales(ctx, x.shape, scales));
  std::vector<double> roi(2 * rank, 0.0);
  return build_resize(ctx, opt, scales, out, roi);
}

constexpr OpDef kResizeOps[] = {
    {"", "Resize", 10, kMaxOnnxOpset, prepare_resize},
    {"", "Upsample", 7, 10, prepare_upsample},
};

}  // namespace

std::span<const OpDef> resize_ops() { return kResizeOps; }

}  // namespace kiln::nn::ops
