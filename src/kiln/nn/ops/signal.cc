// Signal processing: HannWindow, HammingWindow, BlackmanWindow, DFT and STFT.
//
// Transforms run in double: radix-2 FFT when the length is a power of two, a direct DFT with a
// precomputed twiddle table otherwise.
#include <algorithm>
#include <cmath>
#include <memory>
#include <numbers>
#include <string>

#include "kiln/nn/ops/families.h"
#include "kiln/nn/ops/op_util.h"

namespace kiln::nn::ops {
namespace {

// ---- Windows ----

enum class Window { kHann, kHamming, kBlackman };

// Reads a compile-time scalar integer input (a size, a step, a length).
Status read_scalar(PrepareContext& ctx, size_t i, const char* what, int64_t* out) {
  const Tensor* t = ctx.require_constant(i, what);
  if (!t) return ctx.sticky_error();
  if (t->num_elements() != 1 || t->rank() > 1)
    return ctx.invalid("input ", what, " must be a scalar, got shape ", shape_to_string(t->shape()));
  if (!dtype_is_integer(t->dtype()))
    return ctx.invalid("input ", what, " must be an integer, got ", dtype_name(t->dtype()));
  *out = element_as_int64(t->view(), 0);
  return Status::ok();
}

template <Window W>
Result<KernelPtr> prepare_window(PrepareContext& ctx) {
  KILN_RETURN_IF_ERROR(ctx.require_input(0));
  int64_t size = 0;
  KILN_RETURN_IF_ERROR(read_scalar(ctx, 0, "size", &size));
  if (size < 0) return ctx.invalid("size must be non-negative, got ", size);
  const bool periodic = ctx.attr_int("periodic", 1) != 0;
  const int64_t code = ctx.attr_int("output_datatype", 1);
  const DType dt = dtype_from_onnx(static_cast<int32_t>(code));
  ctx.set_output(0, dt, {size});
  // A periodic window of length N is the first N points of a symmetric one of length N + 1.
  const double denom = periodic ? static_cast<double>(size) : static_cast<double>(size - 1);
  KernelPtr k;
  bool ok = visit_dtype<NumericTypes>(dt, [&](auto tag) {
    using T = typename decltype(tag)::type;
    k = make_kernel([size, denom](const KernelContext& kc) {
      T* y = kc.out(0).as<T>();
      for (int64_t i = 0; i < size; ++i) {
        double v = 1.0;  // a symmetric window of length 1
        if (denom > 0) {
          const double a = 2.0 * std::numbers::pi * static_cast<double>(i) / denom;
          if constexpr (W == Window::kHann) v = 0.5 - 0.5 * std::cos(a);
          if constexpr (W == Window::kHamming) v = 25.0 / 46.0 - 21.0 / 46.0 * std::cos(a);
          if constexpr (W == Window::kBlackman) v = 0.42 - 0.5 * std::cos(a) + 0.08 * std::cos(2.0 * a);
        }
        y[i] = static_cast<T>(v);
      }
      return Status::ok();
    });
  });
  if (!ok) return ctx.unsupported("output_datatype ", code, " (", dtype_name(dt), ") is not supported");
  return k;
}

// ---- Transforms ----

// Transform lengths above this are refused: the twiddle tables are built at compile time.
constexpr int64_t kMaxTransformLength = int64_t{1} << 24;

// A transform of length n: twiddles cos/sin(2*pi*k/n) for k in [0, n).
struct Transform {
  int64_t n = 0;
  bool pow2 = false;
  std::vector<double> cos_t, sin_t;
};

std::shared_ptr<const Transform> make_transform(int64_t n) {
  auto t = std::make_shared<Transform>();
  t->n = n;
  t->pow2 = n > 0 && (n & (n - 1)) == 0;
  t->cos_t.resize(static_cast<size_t>(n));
  t->sin_t.resize(static_cast<size_t>(n));
  for (int64_t k = 0; k < n; ++k) {
    const double a = 2.0 * std::numbers::pi * static_cast<double>(k) / static_cast<double>(n);
    t->cos_t[static_cast<size_t>(k)] = std::cos(a);
    t->sin_t[static_cast<size_t>(k)] = std::sin(a);
  }
  return t;
}

// Transforms n interleaved complex values `in` into `out` (both 2n doubles, distinct):
// out[k] = sum_j in[j] * exp(-+2*pi*i*j*k/n), unnormalised. `inverse` flips the sign.
void run_transform(const Transform& t, const double* in, double* out, bool inverse) {
  const int64_t n = t.n;
  const double sign = inverse ? 1.0 : -1.0;
  if (!t.pow2) {
    for (int64_t k = 0; k < n; ++k) {
      double re = 0, im = 0;
      for (int64_t j = 0; j < n; ++j) {
        const size_t w = static_cast<size_t>((k * j) % n);
        const double c = t.cos_t[w], s = sign * t.sin_t[w];
        re += in[2 * j] * c - in[2 * j + 1] * s;
        im += in[2 * j] * s + in[2 * j + 1] * c;
      }
      out[2 * k] = re;
      out[2 * k + 1] = im;
    }
    return;
  }
  // Iterative radix-2: bit-reversed copy, then butterflies of growing length.
  int bits = 0;
  while ((int64_t{1} << bits) < n) ++bits;
  for (int64_t j = 0; j < n; ++j) {
    int64_t r = 0;
    for (int b = 0; b < bits; ++b) r |= ((j >> b) & 1) << (bits - 1 - b);
    out[2 * r] = in[2 * j];
    out[2 * r + 1] = in[2 * j + 1];
  }
  for (int64_t len = 2; len <= n; len <<= 1) {
    const int64_t half = len / 2, step = n / len;
    for (int64_t s = 0; s < n; s += len) {
      for (int64_t j = 0; j < half; ++j) {
        const size_t w = static_cast<size_t>(j * step);
        const double c = t.cos_t[w], sn = sign * t.sin_t[w];
        double* a = out + 2 * (s + j);
        double* b = out + 2 * (s + j + half);
        const double br = b[0] * c - b[1] * sn, bi = b[0] * sn + b[1] * c;
        b[0] = a[0] - br;
        b[1] = a[1] - bi;
        a[0] += br;
        a[1] += bi;
      }
    }
  }
}

// Input [outer, len, inner, comp] -> output [outer, bins, inner, 2], transformed along len.
struct DftPlan {
  int64_t outer = 1, len = 0, inner = 1, comp = 1, bins = 0;
  bool inverse = false;
  std::shared_ptr<const Transform> t;
};

Result<KernelPtr> prepare_dft(PrepareContext& ctx) {
  KILN_RETURN_IF_ERROR(ctx.require_input(0));
  const TensorInfo& x = ctx.input(0);
  if (x.dtype != DType::kFloat32 && x.dtype != DType::kFloat64) return ctx.unsupported_dtype(0);
  const int64_t r = static_cast<int64_t>(x.rank());
  if (r < 2 || (x.shape.back() != 1 && x.shape.back() != 2))
    return ctx.invalid("input must have shape [batch, signal..., 1 or 2], got ", shape_to_string(x.shape));
  int64_t axis = 1;
  if (ctx.opset() >= 20) {
    axis = -2;
    if (ctx.has_input(2)) KILN_RETURN_IF_ERROR(read_scalar(ctx, 2, "axis", &axis));
  } else {
    axis = ctx.attr_int("axis", 1);
  }
  // The last dimension holds the real and imaginary parts and cannot be transformed.
  if (axis < -r || axis > r - 2 || axis == -1)
    return ctx.invalid("axis ", axis, " is out of range [", -r, ", -2] or [0, ", r - 2, "] for input ",
                       shape_to_string(x.shape));
  if (axis < 0) axis += r;
  DftPlan p;
  p.inverse = ctx.attr_int("inverse", 0) != 0;
  const bool onesided = ctx.attr_int("onesided", 0) != 0;
  if (onesided && p.inverse) return ctx.unsupported("onesided inverse DFT (a real-valued inverse) is not supported");
  p.len = x.shape[static_cast<size_t>(axis)];
  int64_t n = p.len;
  if (ctx.has_input(1)) {
    KILN_RETURN_IF_ERROR(read_scalar(ctx, 1, "dft_length", &n));
    if (n <= 0) return ctx.invalid("dft_length must be positive, got ", n);
  }
  if (n == 0) return ctx.invalid("the transformed axis ", axis, " of ", shape_to_string(x.shape), " is empty");
  if (n > kMaxTransformLength) return ctx.unsupported("DFT length ", n, " is above the limit of ", kMaxTransformLength);
  // Empty inputs can have dimensions whose partial products overflow: check them.
  KILN_ASSIGN_OR_RETURN(p.outer,
                        checked_num_elements(std::span<const int64_t>(x.shape.data(), static_cast<size_t>(axis))));
  KILN_ASSIGN_OR_RETURN(p.inner, checked_num_elements(std::span<const int64_t>(x.shape.data() + axis + 1,
                                                                               static_cast<size_t>(r - 2 - axis))));
  p.comp = x.shape.back();
  p.bins = onesided ? n / 2 + 1 : n;
  Shape out = x.shape;
  out[static_cast<size_t>(axis)] = p.bins;
  out.back() = 2;
  ctx.set_output(0, x.dtype, out);
  ctx.request_scratch(static_cast<size_t>(4 * n) * sizeof(double));
  p.t = make_transform(n);
  KernelPtr k;
  visit_dtype<FloatTypes>(x.dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    k = make_kernel([p](const KernelContext& kc) {
      const T* x = kc.in(0).as<const T>();
      T* y = kc.out(0).as<T>();
      const int64_t n = p.t->n, used = std::min(p.len, n);
      double* buf = static_cast<double*>(kc.scratch);
      double* res = buf + 2 * n;
      const double scale = p.inverse ? 1.0 / static_cast<double>(n) : 1.0;
      for (int64_t o = 0; o < p.outer; ++o) {
        for (int64_t i = 0; i < p.inner; ++i) {
          for (int64_t j = 0; j < n; ++j) {
            const T* src = x + ((o * p.len + j) * p.inner + i) * p.comp;
            buf[2 * j] = j < used ? static_cast<double>(src[0]) : 0.0;
            buf[2 * j + 1] = j < used && p.comp == 2 ? static_cast<double>(src[1]) : 0.0;
          }
          run_transform(*p.t, buf, res, p.inverse);
          for (int64_t b = 0; b < p.bins; ++b) {
            T* dst = y + ((o * p.bins + b) * p.inner + i) * 2;
            dst[0] = static_cast<T>(res[2 * b] * scale);
            dst[1] = static_cast<T>(res[2 * b + 1] * scale);
          }
        }
      }
      return Status::ok();
    });
  });
  return k;
}

struct StftPlan {
  int64_t batch = 0, len = 0, comp = 1, step = 1, frames = 0, bins = 0;
  bool has_window = false;
  std::shared_ptr<const Transform> t;
};

Result<KernelPtr> prepare_stft(PrepareContext& ctx) {
  KILN_RETURN_IF_ERROR(ctx.require_input(0));
  KILN_RETURN_IF_ERROR(ctx.require_input(1));
  const TensorInfo& x = ctx.input(0);
  if (x.dtype != DType::kFloat32 && x.dtype != DType::kFloat64) return ctx.unsupported_dtype(0);
  if (x.rank() != 3 || (x.shape[2] != 1 && x.shape[2] != 2))
    return ctx.invalid("signal must have shape [batch, length, 1 or 2], got ", shape_to_string(x.shape));
  StftPlan p;
  p.batch = x.shape[0];
  p.len = x.shape[1];
  p.comp = x.shape[2];
  KILN_RETURN_IF_ERROR(read_scalar(ctx, 1, "frame_step", &p.step));
  if (p.step <= 0) return ctx.invalid("frame_step must be positive, got ", p.step);
  p.has_window = ctx.has_input(2);
  int64_t frame = p.len;
  if (p.has_window) {
    const TensorInfo& w = ctx.input(2);
    if (w.dtype != x.dtype) return ctx.invalid("window dtype ", dtype_name(w.dtype), " differs from the signal's");
    if (w.rank() != 1) return ctx.invalid("window must have rank 1, got ", shape_to_string(w.shape));
    frame = w.shape[0];
  }
  if (ctx.has_input(3)) {
    int64_t fl = 0;
    KILN_RETURN_IF_ERROR(read_scalar(ctx, 3, "frame_length", &fl));
    if (p.has_window && fl != frame) return ctx.invalid("frame_length ", fl, " differs from the window length ", frame);
    frame = fl;
  }
  if (frame <= 0 || frame > p.len)
    return ctx.invalid("frame length ", frame, " must be in [1, ", p.len, "] (the signal length)");
  if (frame > kMaxTransformLength)
    return ctx.unsupported("frame length ", frame, " is above the limit of ", kMaxTransformLength);
  p.frames = 1 + (p.len - frame) / p.step;
  const bool onesided = ctx.attr_int("onesided", 1) != 0;
  p.bins = onesided ? frame / 2 + 1 : frame;
  ctx.set_output(0, x.dtype, {p.batch, p.frames, p.bins, 2});
  ctx.request_scratch(static_cast<size_t>(4 * frame) * sizeof(double));
  p.t = make_transform(frame);
  KernelPtr k;
  visit_dtype<FloatTypes>(x.dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    k = make_kernel([p](const KernelContext& kc) {
      const T* x = kc.in(0).as<const T>();
      const T* win = p.has_window ? kc.in(2).as<const T>() : nullptr;
      T* y = kc.out(0).as<T>();
      const int64_t n = p.t->n;
      double* buf = static_cast<double*>(kc.scratch);
      double* res = buf + 2 * n;
      for (int64_t b = 0; b < p.batch; ++b) {
        for (int64_t f = 0; f < p.frames; ++f) {
          const T* src = x + (b * p.len + f * p.step) * p.comp;
          for (int64_t j = 0; j < n; ++j) {
            const double w = win ? static_cast<double>(win[j]) : 1.0;
            buf[2 * j] = static_cast<double>(src[j * p.comp]) * w;
            buf[2 * j + 1] = p.comp == 2 ? static_cast<double>(src[j * p.comp + 1]) * w : 0.0;
          }
          run_transform(*p.t, buf, res, false);
          T* dst = y + (b * p.frames + f) * p.bins * 2;
          for (int64_t i = 0; i < 2 * p.bins; ++i) dst[i] = static_cast<T>(res[i]);
        }
      }
      return Status::ok();
    });
  });
  return k;
}

constexpr OpDef kSignalOps[] = {
    {"", "HannWindow", 17, kMaxOnnxOpset, prepare_window<Window::kHann>},
    {"", "HammingWindow", 17, kMaxOnnxOpset, prepare_window<Window::kHamming>},
    {"", "BlackmanWindow", 17, kMaxOnnxOpset, prepare_window<Window::kBlackman>},
    {"", "DFT", 17, kMaxOnnxOpset, prepare_dft},
    {"", "STFT", 17, kMaxOnnxOpset, prepare_stft},
};

}  // namespace

std::span<const OpDef> signal_ops() { return kSignalOps; }

}  // namespace kiln::nn::ops
