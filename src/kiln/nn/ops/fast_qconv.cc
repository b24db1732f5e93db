// Channels-last integer operators created by the quantized pass (passes/quantized.cc):
//   com.kiln.QConv   X [N,H,W,C] int8/uint8, x_scale, x_zero_point, W [M,C/G,KH,KW] int8 (ONNX
//                    layout, zero point already removed), w_scale [M], y_scale, y_zero_point
//                    (both omitted: float32 output), bias [M] int32 in units of x_scale * w_scale
//                    -> Y [N,OH,OW,M] int8/uint8 (the dtype of y_zero_point) or float32.
//                    X may be float32 where fast_qconv.h says so: quantised here with x_scale /
//                    x_zero_point (a fused QuantizeLinear).
//                    With an int16 x_zero_point X is int16 (or float32, quantised here to int16):
//                    one group, no column dilation, the kernels of kernels/qs16_conv.h.
//   com.kiln.QPool   max / average pooling of int8/uint8 NHWC with requantisation, Y [N,OH,OW,C]
// Attributes use ONNX names (kernel_shape, strides, dilations, pads = [top, left, bottom, right],
// group) plus qmin/qmax, the output clamp of a fused Relu or Clip in the output's own values.
//
// QConv packs the weights once here and runs on the int8 micro-kernels (kernels/qgemm.h): a GEMM
// straight on the input for 1x1 stride-1 unpadded convolutions, an indirect GEMM through a table of
// row pointers (padding taps read a row holding the input zero point) otherwise, and the int8
// depthwise kernel when every channel has its own filter. Accumulation is exact in int32; the
// epilogue multiplies by x_scale * w_scale[m] / y_scale in float and rounds half to even, as
// QLinearConv does.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>

#include "kiln/core/thread_pool.h"
#include "kiln/nn/kernels/qgemm.h"
#include "kiln/nn/kernels/qs16_conv.h"
#include "kiln/nn/ops/conv_geometry.h"
#include "kiln/nn/ops/families.h"
#include "kiln/nn/ops/fast_qconv.h"
#include "kiln/nn/ops/op_util.h"
#include "kiln/nn/ops/qparams.h"
#include "kiln/nn/ops/thread_parts.h"

namespace kiln::nn::ops {
namespace {

kernels::QWindow window_of(const Geometry& g, const Shape& x, const Shape& y) {
  kernels::QWindow w;
  w.batch = x[0];
  w.in_h = x[1];
  w.in_w = x[2];
  w.channels = x[3];
  w.out_h = y[1];
  w.out_w = y[2];
  w.kernel_h = g.kh;
  w.kernel_w = g.kw;
  w.stride_h = g.sh;
  w.stride_w = g.sw;
  w.dilation_h = g.dh;
  w.dilation_w = g.dw;
  w.pad_top = g.pt;
  w.pad_left = g.pl;
  return w;
}

// Row pointers of an indirect convolution, relative to a fake base (kBase) and shifted to the
// real input at run time; padding taps point at `zero`, a row of input zero points.
constexpr uintptr_t kBase = 4096;

struct IndirectConv {
  int64_t m = 0;
  std::vector<const uint8_t*> ptrs;
  std::vector<uint8_t> zero;
};

std::shared_ptr<IndirectConv> build_indirection(const kernels::QWindow& w, int64_t channels_per_group, int mr,
                                                uint8_t zero_byte) {
  auto ic = std::make_shared<IndirectConv>();
  ic->m = w.batch * w.out_h * w.out_w;
  const int64_t ks = w.kernel_h * w.kernel_w;
  ic->zero.assign(static_cast<size_t>(channels_per_group + 64), zero_byte);
  const int64_t blocks = (ic->m + mr - 1) / mr;
  ic->ptrs.resize(static_cast<size_t>(blocks * ks * mr), ic->zero.data());
  for (int64_t row = 0; row < blocks * mr; ++row) {
    const int64_t r = std::min(row, ic->m - 1);
    const int64_t n = r / (w.out_h * w.out_w), rem = r % (w.out_h * w.out_w);
    const int64_t oh = rem / w.out_w, ow = rem % w.out_w;
    const int64_t rb = row / mr, i = row % mr;
    for (int64_t kh = 0; kh < w.kernel_h; ++kh)
      for (int64_t kw = 0; kw < w.kernel_w; ++kw) {
        const int64_t ih = oh * w.stride_h - w.pad_top + kh * w.dilation_h;
        const int64_t iw = ow * w.stride_w - w.pad_left + kw * w.dilation_w;
        const uint8_t* p = ic->zero.data();
        if (ih >= 0 && ih < w.in_h && iw >= 0 && iw < w.in_w)
          p = reinterpret_cast<const uint8_t*>(kBase + static_cast<uintptr_t>(((n * w.in_h + ih) * w.in_w + iw) * w.channels));
        ic->ptrs[static_cast<size_t>((rb * ks + kh * w.kernel_w + kw) * mr + i)] = p;
      }
  }
  return ic;
}

Status out_hw(PrepareContext& ctx, const Geometry& g, const Shape& x, int64_t* oh, int64_t* ow) {
  const int64_t eh = g.dh * (g.kh - 1) + 1, ew = g.dw * (g.kw - 1) + 1;
  if (x[1] + g.pt + g.pb < eh || x[2] + g.pl + g.pr < ew)
    return ctx.invalid("kernel ", g.kh, "x", g.kw, " does not fit input ", shape_to_string(x));
  *oh = (x[1] + g.pt + g.pb - eh) / g.sh + 1;
  *ow = (x[2] + g.pl + g.pr - ew) / g.sw + 1;
  return Status::ok();
}

// Height and width of a zero-point-padded copy of the input that every window of the output lies
// in: the input with its pads, or as far as the last window reaches.
void padded_extent(const Geometry& g, int64_t in_h, int64_t in_w, int64_t out_h, int64_t out_w, int64_t* hp,
                   int64_t* wp) {
  *hp = std::max(in_h + g.pt + g.pb, (out_h - 1) * g.sh + (g.kh - 1) * g.dh + 1);
  *wp = std::max(in_w + g.pl + g.pr, (out_w - 1) * g.sw + (g.kw - 1) * g.dw + 1);
}

// dst[i] = src[i] ^ x over n bytes (dst may be src), in 8-byte words the compiler vectorises.
void xor_bytes(const uint8_t* src, uint8_t* dst, int64_t n, uint8_t x) {
  const uint64_t x8 = 0x0101010101010101ull * x;
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t v;
    std::memcpy(&v, src + i, 8);
    v ^= x8;
    std::memcpy(dst + i, &v, 8);
  }
  for (; i < n; ++i) dst[i] = static_cast<uint8_t>(src[i] ^ x);
}

// n bytes (n >= 1) XORed with x8's repeated byte, in whole 8- or 4-byte words, the last one
// ending at n (overlapping the one before): a run-time-length memcpy of 9 or 10 bytes would be a
// library call.
inline void copy_small(uint8_t* d, const uint8_t* s, int64_t n, uint64_t x8) {
  auto w8 = [&](int64_t i) {
    uint64_t v;
    std::memcpy(&v, s + i, 8);
    v ^= x8;
    std::memcpy(d + i, &v, 8);
  };
  auto w4 = [&](int64_t i) {
    uint32_t v;
    std::memcpy(&v, s + i, 4);
    v ^= static_cast<uint32_t>(x8);
    std::memcpy(d + i, &v, 4);
  };
  if (n >= 8) {
    for (int64_t i = 0; i + 8 <= n; i += 8) w8(i);
    if (n % 8) w8(n - 8);
  } else if (n >= 4) {
    w4(0);
    w4(n - 4);
  } else {
    const uint8_t x = static_cast<uint8_t>(x8);
    d[0] = static_cast<uint8_t>(s[0] ^ x);
    if (n > 1) d[1] = static_cast<uint8_t>(s[1] ^ x);
    if (n > 2) d[2] = static_cast<uint8_t>(s[2] ^ x);
  }
}

// n bytes (n >= 1) of `z8`'s repeated byte, the same way (a byte loop would become a memset call).
inline void fill_small(uint8_t* d, uint64_t z8, int64_t n) {
  if (n >= 8) {
    for (int64_t i = 0; i + 8 <= n; i += 8) std::memcpy(d + i, &z8, 8);
    if (n % 8) std::memcpy(d + n - 8, &z8, 8);
  } else if (n >= 4) {
    std::memcpy(d, &z8, 4);
    std::memcpy(d + n - 4, &z8, 4);
  } else {
    d[0] = static_cast<uint8_t>(z8);
    if (n > 1) d[1] = static_cast<uint8_t>(z8);
    if (n > 2) d[2] = static_cast<uint8_t>(z8);
  }
}

// A few-channel convolution's input gathered into one contiguous row of K = KH*KW*cg bytes per
// output pixel, padded to kk with the zero byte (padding taps too). The taps of one kernel row
// are contiguous in NHWC when the window lies inside the input columns: one copy per kernel row.
// Every value is a local here, so the byte stores cannot make the compiler reload them.
// Every byte is XORed with `a_xor` on the way (the micro-kernel's activation domain, see qgemm's
// a_prexored).
void im2col(const kernels::QWindow& w, int64_t cg, int64_t k_real, int64_t kk, uint8_t zero_byte, uint8_t a_xor,
            const uint8_t* base, uint8_t* col) {
  const int64_t batch = w.batch, in_h = w.in_h, in_w = w.in_w, out_h = w.out_h, out_w = w.out_w;
  const int64_t kh_n = w.kernel_h, kw_n = w.kernel_w, sh = w.stride_h, sw = w.stride_w;
  const int64_t dh = w.dilation_h, dw = w.dilation_w, pt = w.pad_top, pl = w.pad_left, c = w.channels;
  const int64_t span = kw_n * cg, row_bytes = in_w * c;
  const uint64_t z8 = 0x0101010101010101ull * static_cast<uint8_t>(zero_byte ^ a_xor);
  const uint64_t x8 = 0x0101010101010101ull * a_xor;
  // Output columns whose kernel rows are contiguous inside the input: [ow_lo, ow_hi).
  int64_t ow_lo = out_w, ow_hi = out_w;
  if (dw == 1) {
    ow_lo = pl > 0 ? (pl + sw - 1) / sw : 0;
    ow_hi = in_w - kw_n + pl >= 0 ? (in_w - kw_n + pl) / sw + 1 : 0;
    if (ow_hi > out_w) ow_hi = out_w;
    if (ow_lo > ow_hi) ow_lo = ow_hi;
  }
  for (int64_t n = 0; n < batch; ++n)
    for (int64_t oh = 0; oh < out_h; ++oh) {
      const uint8_t* x_n = base + n * in_h * row_bytes;
      uint8_t* row = col + (n * out_h + oh) * out_w * kk;
      const int64_t ih0 = oh * sh - pt;
      auto general = [&](int64_t ow) {  // any pixel, tap by tap
        uint8_t* d = row + ow * kk;
        for (int64_t kh = 0; kh < kh_n; ++kh, d += span) {
          const int64_t ih = ih0 + kh * dh;
          if (ih < 0 || ih >= in_h) {
            fill_small(d, z8, span);
            continue;
          }
          if (dw == 1) {  // taps [k0, k1) inside the input are contiguous: zero fill, one copy, zero fill
            const int64_t iw0 = ow * sw - pl;
            const int64_t k0 = iw0 < 0 ? std::min(-iw0, kw_n) : 0;
            const int64_t k1 = std::max(k0, std::min(kw_n, in_w - iw0));
            if (k0 > 0) fill_small(d, z8, k0 * cg);
            if (k1 > k0) copy_small(d + k0 * cg, x_n + ih * row_bytes + (iw0 + k0) * c, (k1 - k0) * cg, x8);
            if (k1 < kw_n) fill_small(d + k1 * cg, z8, (kw_n - k1) * cg);
            continue;
          }
          for (int64_t kw = 0; kw < kw_n; ++kw) {
            const int64_t iw = ow * sw - pl + kw * dw;
            if (iw < 0 || iw >= in_w) fill_small(d + kw * cg, z8, cg);
            else copy_small(d + kw * cg, x_n + ih * row_bytes + iw * c, cg, x8);
          }
        }
        if (kk > k_real) fill_small(row + ow * kk + k_real, z8, kk - k_real);
      };
      for (int64_t ow = 0; ow < ow_lo; ++ow) general(ow);
      for (int64_t ow = ow_hi; ow < out_w; ++ow) general(ow);
      if (ow_lo >= ow_hi) continue;
      for (int64_t kh = 0; kh < kh_n; ++kh) {
        const int64_t ih = ih0 + kh * dh;
        uint8_t* d = row + ow_lo * kk + kh * span;
        if (ih < 0 || ih >= in_h) {
          for (int64_t ow = ow_lo; ow < ow_hi; ++ow, d += kk) fill_small(d, z8, span);
          continue;
        }
        const uint8_t* src = x_n + ih * row_bytes + (ow_lo * sw - pl) * c;
        for (int64_t ow = ow_lo; ow < ow_hi; ++ow, d += kk, src += sw * c) copy_small(d, src, span, x8);
      }
      if (kk > k_real)
        for (int64_t ow = ow_lo; ow < ow_hi; ++ow) fill_small(row + ow * kk + k_real, z8, kk - k_real);
    }
}

// W (input 3: int8 [M, C / group, KH, KW]) and bias (input 7: int32 [M]) of a QConv.
Status read_conv_weights(PrepareContext& ctx, const Tensor** w, const Tensor** b) {
  *w = ctx.require_constant(3, "weights");
  *b = ctx.require_constant(7, "bias");
  if (!*w || !*b) return ctx.sticky_error();
  if ((*w)->dtype() != DType::kInt8 || (*w)->rank() != 4) return ctx.invalid("W must be int8 of rank 4");
  const int64_t m = (*w)->shape()[0];
  if ((*b)->dtype() != DType::kInt32 || (*b)->num_elements() != m) return ctx.invalid("bias must be int32[", m, "]");
  return Status::ok();
}

// The int16-activation path (x_zero_point int16; kernels/qs16_conv.h): one group, no column
// dilation, so that each kernel row of a window is KW * C contiguous values of a padded copy of the
// input. A float32 X is quantised into that copy (a fused QuantizeLinear, as for the int8 stems).
Result<KernelPtr> prepare_qconv16(PrepareContext& ctx) {
  const TensorInfo x = ctx.input(0);
  const bool float_in = x.dtype == DType::kFloat32;
  if (x.dtype != DType::kInt16 && !float_in) return ctx.invalid("an int16 x_zero_point needs an int16 or float32 X");
  if (x.rank() != 4) return ctx.invalid("X must be NHWC rank 4");
  float x_scale = 1.f;
  int32_t x_zero = 0;
  KILN_RETURN_IF_ERROR(read_q16scalar(ctx, 1, 2, &x_scale, &x_zero));
  const Tensor* w = nullptr;
  const Tensor* b = nullptr;
  KILN_RETURN_IF_ERROR(read_conv_weights(ctx, &w, &b));
  const int64_t m = w->shape()[0], c = x.shape[3];
  Geometry g;
  KILN_RETURN_IF_ERROR(read_geometry(ctx, &g));
  if (ctx.attr_int("group", 1) != 1 || g.dw != 1 || ctx.attr_int("int32_output", 0) != 0)
    return ctx.invalid("int16 activations need one group, no column dilation and no int32 output");
  if (w->shape()[1] != c || w->shape()[2] != g.kh || w->shape()[3] != g.kw)
    return ctx.invalid("weights ", shape_to_string(w->shape()), " do not match input channels ", c, " with kernel ",
                       g.kh, "x", g.kw);
  int64_t oh = 0, ow = 0;
  KILN_RETURN_IF_ERROR(out_hw(ctx, g, x.shape, &oh, &ow));
  QOutputSide os;
  KILN_RETURN_IF_ERROR(read_output_side(ctx, x_scale, m, &os));
  const kernels::QParams params = os.params;
  const int64_t kc = g.kw * c, ks = g.kh;
  std::vector<int8_t> mat(static_cast<size_t>(ks * kc * m));  // row kh * kc + kw * C + c, as the window lies in NHWC
  for (int64_t j = 0; j < m; ++j)
    for (int64_t cc = 0; cc < c; ++cc)
      for (int64_t kh = 0; kh < g.kh; ++kh)
        for (int64_t kw = 0; kw < g.kw; ++kw)
          mat[static_cast<size_t>((kh * kc + kw * c + cc) * m + j)] = w->data<int8_t>()[((j * c + cc) * g.kh + kh) * g.kw + kw];
  if (!kernels::q16_sums_fit(mat.data(), ks * kc, m, b->data<int32_t>(), x_zero))
    return ctx.invalid("the int16 sums of some output channel could overflow int32 (kernels/qs16_conv.h)");
  auto packed = std::make_shared<kernels::Q16PackedWeights>(
      kernels::pack_q16weights(mat.data(), ks, kc, m, b->data<int32_t>(), os.scale.data(), x_zero));
  ctx.set_output(0, os.dtype, {x.shape[0], oh, ow, m});
  // The padded copy: hp x wp pixels per image, padding and slack (an odd kc reads one value past a
  // tap) holding the zero point.
  const int64_t batch = x.shape[0], in_h = x.shape[1], in_w = x.shape[2];
  int64_t hp = 0, wp = 0;
  padded_extent(g, in_h, in_w, oh, ow, &hp, &wp);
  const int64_t rows = batch * oh * ow, copy = batch * hp * wp * c;
  auto offsets = std::make_shared<std::vector<int64_t>>(static_cast<size_t>(rows));
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t n = r / (oh * ow), y = r % (oh * ow) / ow, xw = r % ow;
    (*offsets)[static_cast<size_t>(r)] = ((n * hp + y * g.sh) * wp + xw * g.sw) * c;
  }
  constexpr int64_t kSlack = 32;
  ctx.request_scratch(static_cast<size_t>(copy + kSlack) * sizeof(int16_t));
  const kernels::Q16Kernels& qk = kernels::q16kernels();
  const int64_t tap_stride = g.dh * wp * c, pt = g.pt, pl = g.pl;
  // Rows per thread part: at least 2^19 multiply-adds each, so that, as in qgemm, only layers of
  // 2^20 or more are split (the KWS stem, 0.3 M, at 2 threads: the whole model took 16.7 us
  // with it split, 14.3 us without).
  const int64_t min_rows = std::max<int64_t>(8, (int64_t{1} << 19) / std::max<int64_t>(1, ks * kc * m));
  return make_kernel(
      [=, &qk](const KernelContext& k) {
        int16_t* pad = static_cast<int16_t*>(k.scratch);
        const int16_t z = static_cast<int16_t>(x_zero);
        const int64_t in_row = in_w * c, pad_row = wp * c, left = pl * c;
        for (int64_t n = 0; n < batch; ++n)
          for (int64_t yy = 0; yy < hp; ++yy) {
            int16_t* d = pad + (n * hp + yy) * pad_row;
            const int64_t ih = yy - pt;
            if (ih < 0 || ih >= in_h) {
              std::fill(d, d + pad_row, z);
              continue;
            }
            std::fill(d, d + left, z);
            if (float_in) qk.quantize(static_cast<const float*>(k.in(0).data) + (n * in_h + ih) * in_row, in_row, x_scale, x_zero, d + left);
            else std::memcpy(d + left, static_cast<const int16_t*>(k.in(0).data) + (n * in_h + ih) * in_row, static_cast<size_t>(in_row) * 2);
            std::fill(d + left + in_row, d + pad_row, z);
          }
        std::fill(pad + copy, pad + copy + kSlack, z);
        const kernels::Q16Rows a{pad, offsets->data(), tap_stride};
        const kernels::Q16Weights wv = packed->view();
        for_thread_parts(k.pool, rows, min_rows, 8, [&](int64_t, int64_t begin, int64_t end) {
          qk.conv(a, wv, begin, end, k.out(0).data, m, params);
        });
        return Status::ok();
      },
      qk.name);
}

Result<KernelPtr> prepare_qconv(PrepareContext& ctx) {
  KILN_RETURN_IF_ERROR(ctx.require_input(0));
  if (ctx.has_input(2) && ctx.input(2).dtype == DType::kInt16) return prepare_qconv16(ctx);
  const TensorInfo x = ctx.input(0);
  const bool float_in = x.dtype == DType::kFloat32;
  if (x.dtype != DType::kInt8 && x.dtype != DType::kUInt8 && !float_in) return ctx.unsupported_dtype(0);
  if (x.rank() != 4) return ctx.invalid("X must be NHWC rank 4");
  QScalar xq;
  KILN_RETURN_IF_ERROR(read_qscalar(ctx, 1, 2, &xq));
  if (!float_in && xq.dtype() != x.dtype) return ctx.invalid("x_zero_point dtype differs from X");
  const Tensor* w = nullptr;
  const Tensor* b = nullptr;
  KILN_RETURN_IF_ERROR(read_conv_weights(ctx, &w, &b));
  const int64_t m = w->shape()[0], c = x.shape[3];
  Geometry g;
  KILN_RETURN_IF_ERROR(read_geometry(ctx, &g));
  const int64_t groups = ctx.attr_int("group", 1);
  if (groups < 1 || c % groups || m % groups || w->shape()[1] * groups != c || w->shape()[2] != g.kh ||
      w->shape()[3] != g.kw)
    return ctx.invalid("weights ", shape_to_string(w->shape()), " do not match input channels ", c, " in ", groups,
                       " groups with kernel ", g.kh, "x", g.kw);
  int64_t oh = 0, ow = 0;
  KILN_RETURN_IF_ERROR(out_hw(ctx, g, x.shape, &oh, &ow));
  const Shape out{x.shape[0], oh, ow, m};
  QOutputSide os;
  KILN_RETURN_IF_ERROR(read_output_side(ctx, xq.scale, m, &os));
  const kernels::QParams params = os.params;
  const std::vector<float>& scale = os.scale;
  ctx.set_output(0, os.dtype, out);
  const int32_t* bias = b->data<int32_t>();
  const int64_t out_es = os.int_out ? 1 : 4;
  const kernels::QWindow win = window_of(g, x.shape, out);
  const kernels::QKernels& qk = kernels::qkernels();
  if (float_in && !qconv_row_taps(c, groups, win.kernel_w, win.dilation_w))
    return ctx.invalid("a float32 X needs fewer than 4 input channels in one group, kernel rows of at least 3 "
                       "values and no column dilation (fast_qconv.h)");

  if (groups == c && m == c && !float_in) {  // (one channel, one filter, float X: the row-tap path)
    auto packed = std::make_shared<kernels::QPackedDepthwise>(kernels::pack_qdepthwise(
        w->data<int8_t>(), bias, scale.data(), c, g.kh, g.kw, xq.zero_point, xq.is_unsigned));
    // One contiguous range of output rows per thread, and threads only from the set's
    // dw_min_parallel_work multiply-adds (2^18 on AVX-512 VNNI, 2^15 on the 3-4x slower AVX2 set):
    // the kernels carry work across the rows of a call (prepared weights, padded input rows that
    // neighbouring output rows share, output rows in pairs), which smaller chunks would redo. KWS
    // int8 at 2 threads 27-35 -> 23 us, VWW 87 -> 83 us against 4 chunks per thread. Each range
    // has its own scratch (the kernels' row copies and prepared weights, not on the stack).
    const int64_t rows = win.batch * win.out_h, work = rows * win.out_w * c * g.kh * g.kw;
    const int64_t parts = work >= qk.dw_min_parallel_work ? std::min<int64_t>(ctx.threads(), rows) : 1;
    const size_t part_bytes = kernels::qdwconv_scratch_bytes(qk, win);
    ctx.request_scratch(part_bytes * static_cast<size_t>(parts));
    return make_kernel(
        [=, &qk](const KernelContext& k) {
          const void* xp = k.in(0).data;
          void* yp = k.out(0).data;
          uint8_t* scratch = static_cast<uint8_t*>(k.scratch);
          const int64_t t = k.pool ? std::min<int64_t>(k.pool->threads(), parts) : 1;
          if (t <= 1) {
            kernels::qdwconv(qk, win, xp, *packed, params, yp, 0, rows, scratch);
          } else {
            k.pool->parallel_for(t, [&](int64_t i) {
              kernels::qdwconv(qk, win, xp, *packed, params, yp, rows * i / t, rows * (i + 1) / t,
                               scratch + static_cast<size_t>(i) * part_bytes);
            });
          }
          return Status::ok();
        },
        qk.dwconv_name);
  }

  const int64_t cg = c / groups, mg = m / groups, taps = g.kh * g.kw;
  const kernels::QGemmConfig& cfg = kernels::qgemm_config_for(qk, w->data<int8_t>(), w->num_elements());
  auto packs = std::make_shared<std::vector<kernels::QPackedWeights>>();
  std::vector<int8_t> mat(static_cast<size_t>(taps * cg * mg));
  {
    const int8_t* wd = w->data<int8_t>();
    for (int64_t gi = 0; gi < groups; ++gi) {
      for (int64_t mm = 0; mm < mg; ++mm)
        for (int64_t cc = 0; cc < cg; ++cc)
          for (int64_t t = 0; t < taps; ++t)
            mat[static_cast<size_t>((t * cg + cc) * mg + mm)] = wd[((gi * mg + mm) * cg + cc) * taps + t];
      packs->push_back(kernels::pack_qweights(cfg, mat.data(), taps, cg, mg, mg, false, bias + gi * mg,
                                              scale.data() + gi * mg, xq.zero_point, xq.is_unsigned));
    }
  }
  const int64_t rows = x.shape[0] * oh * ow;
  const bool pointwise = !float_in && taps == 1 && g.sh == 1 && g.sw == 1 && g.pt == 0 && g.pl == 0 && g.pb == 0 && g.pr == 0;
  // The micro-kernel wants the activation bytes XORed (int8 inputs on the VNNI kernels, which
  // multiply uint8 by int8): one pass over the input into scratch instead of a vpxord per broadcast
  // in every tile (ResNet-8 int8 about 20 % faster at 1 thread).
  const uint8_t a_xor = (*packs)[0].a_xor;
  const int64_t in_bytes = x.shape[0] * x.shape[1] * x.shape[2] * c;
  if (pointwise) {
    if (a_xor) ctx.request_scratch(static_cast<size_t>(in_bytes));
    return make_kernel(
        [=, &cfg](const KernelContext& k) {
          const uint8_t* xp = static_cast<const uint8_t*>(k.in(0).data);
          if (a_xor) {
            xor_bytes(xp, static_cast<uint8_t*>(k.scratch), in_bytes, a_xor);
            xp = static_cast<const uint8_t*>(k.scratch);
          }
          uint8_t* yp = static_cast<uint8_t*>(k.out(0).data);
          for (int64_t gi = 0; gi < groups; ++gi)
            kernels::qgemm(cfg, rows, xp + gi * cg, c, (*packs)[gi], yp + gi * mg * out_es, m, params, k.pool,
                           a_xor != 0);
          return Status::ok();
        },
        cfg.name);
  }
  const uint8_t zero_byte = static_cast<uint8_t>(xq.zero_point);
  // Few input channels (the first layer of an image or audio model): each tap would be a reduction
  // of fewer than 4 bytes, padded to 4 in the micro-kernel. Gathering the taps of a row into one
  // contiguous K = KH*KW*C row (im2col, in scratch) gives the kernel full-width reductions.
  if (qconv_row_taps(c, groups, win.kernel_w, win.dilation_w)) {
    // Few input channels, whole kernel rows as taps: the input is copied once into a zero-point
    // padded buffer (XORed for the micro-kernel on the way), where each kernel row of each window
    // is kw * cg contiguous bytes; an indirect GEMM over KH taps of kc = KW * C bytes then needs no
    // im2col. `mat` (one group) is already tap-major with those taps: k = kh * (KW * C) + kw * C + c.
    // kc >= 3 (3x3x3 RGB stems: 9-byte taps; the KWS stem 10x4x1: 4-byte taps; the 3x3 stem of one
    // channel: 3-byte taps, 1.69 -> 1.15 us for the whole digits CNN against im2col). A tap is read as
    // kc rounded up to a multiple of 4 bytes with zero weights on the extra ones (they belong to
    // the next column, or to the slack after the copy), so that the micro-kernel broadcasts whole
    // groups of 4 instead of assembling a partial last group byte by byte (the 3x3x3 stems:
    // 12-byte taps, 3 groups).
    // At most 8 filters (VWW's stem): the kernel set's narrow GEMM, two groups of K per vector, with
    // taps padded to a multiple of 8 bytes so that it too reads whole blocks.
    const kernels::QGemmConfig& tcfg = m <= 8 && qk.gemm_narrow ? *qk.gemm_narrow : cfg;
    const int64_t align = &tcfg == &cfg ? 4 : 8;
    const int64_t kc_real = win.kernel_w * cg, kc = (kc_real + align - 1) / align * align, ks = win.kernel_h;
    std::vector<int8_t> taps_mat(static_cast<size_t>(ks * kc * m), 0);
    for (int64_t kh = 0; kh < ks; ++kh)
      for (int64_t k = 0; k < kc_real; ++k)
        for (int64_t j = 0; j < m; ++j)
          taps_mat[static_cast<size_t>((kh * kc + k) * m + j)] = mat[static_cast<size_t>((kh * kc_real + k) * m + j)];
    auto packed = std::make_shared<kernels::QPackedWeights>(kernels::pack_qweights(
        tcfg, taps_mat.data(), ks, kc, m, m, false, bias, scale.data(), xq.zero_point, xq.is_unsigned));
    int64_t hp = 0, wp = 0;
    padded_extent(g, win.in_h, win.in_w, win.out_h, win.out_w, &hp, &wp);
    const int64_t mr = tcfg.mr, blocks = (rows + mr - 1) / mr;
    auto ic = std::make_shared<IndirectConv>();
    ic->m = rows;
    ic->zero.assign(64, 0);  // never pointed at: every tap lies inside the padded copy
    ic->ptrs.resize(static_cast<size_t>(blocks * ks * mr));
    for (int64_t row = 0; row < blocks * mr; ++row) {
      const int64_t r = std::min(row, rows - 1);
      const int64_t n = r / (win.out_h * win.out_w), rem = r % (win.out_h * win.out_w);
      const int64_t oh = rem / win.out_w, ow = rem % win.out_w;
      for (int64_t kh = 0; kh < ks; ++kh)
        ic->ptrs[static_cast<size_t>(((row / mr) * ks + kh) * mr + row % mr)] = reinterpret_cast<const uint8_t*>(
            kBase + static_cast<uintptr_t>(((n * hp + oh * win.stride_h + kh * win.dilation_h) * wp + ow * win.stride_w) * c));
    }
    // A float X is quantised straight into the kernel's domain: bytes XORed with 0x80 are the
    // other signedness with the zero point moved by 128.
    const bool fu = packed->a_xor ? !xq.is_unsigned : xq.is_unsigned;
    const int32_t fz = packed->a_xor ? xq.zero_point + (xq.is_unsigned ? -128 : 128) : xq.zero_point;
    constexpr int64_t kSlack = 64;  // the last tap's extra bytes read past the copy (zero weights)
    const int64_t copy_bytes = win.batch * hp * wp * c;
    ctx.request_scratch(static_cast<size_t>(copy_bytes + kSlack));
    const int64_t pt = g.pt, pl = g.pl;
    return make_kernel(
        [=, &tcfg](const KernelContext& k) {
          const uint8_t* src = static_cast<const uint8_t*>(k.in(0).data);
          const float* src_f = static_cast<const float*>(k.in(0).data);
          uint8_t* pad = static_cast<uint8_t*>(k.scratch);
          const uint8_t xr = packed->a_xor;
          const uint64_t z8 = 0x0101010101010101ull * static_cast<uint8_t>(zero_byte ^ xr);
          const uint64_t x8 = 0x0101010101010101ull * xr;
          const int64_t in_row = win.in_w * c, pad_row = wp * c, left = pl * c, right = pad_row - left - in_row;
          // Small rows (the digits CNN's 8 bytes) inline, without a library call per piece: a
          // memset and a copy per row were most of that layer's 0.3 us.
          for (int64_t n = 0; n < win.batch; ++n)
            for (int64_t y = 0; y < hp; ++y) {
              uint8_t* d = pad + (n * hp + y) * pad_row;
              const int64_t ih = y - pt;
              if (ih < 0 || ih >= win.in_h) {
                fill_small(d, z8, pad_row);
                continue;
              }
              if (left) fill_small(d, z8, left);
              if (float_in) {
                qk.quantize(src_f + (n * win.in_h + ih) * in_row, in_row, xq.scale, fz, fu, d + left);
              } else {
                const uint8_t* s = src + (n * win.in_h + ih) * in_row;
                if (in_row >= 64) xor_bytes(s, d + left, in_row, xr);
                else copy_small(d + left, s, in_row, x8);
              }
              if (right) fill_small(d + left + in_row, z8, right);
            }
          fill_small(pad + copy_bytes, z8, kSlack);  // defined bytes, though their weights are zero
          const ptrdiff_t offset = reinterpret_cast<const char*>(pad) - reinterpret_cast<const char*>(kBase);
          kernels::qigemm(tcfg, rows, ic->ptrs.data(), offset, nullptr, *packed, k.out(0).data, m, params,
                          k.pool, true);
          return Status::ok();
        },
        tcfg.name);
  }
  if (groups == 1 && cg < 4) {
    // With one group, `mat` is the (KH*KW*C) x M matrix, rows tap-major. K is padded to a multiple
    // of 4 (zero weights; the padding bytes hold the input zero point) so that no row ends in a
    // partial group of 4.
    const int64_t k_real = taps * cg, kk = (k_real + 3) / 4 * 4;
    mat.resize(static_cast<size_t>(kk * m), 0);
    auto flat = std::make_shared<kernels::QPackedWeights>(kernels::pack_qweights(
        cfg, mat.data(), 1, kk, m, m, false, bias, scale.data(), xq.zero_point, xq.is_unsigned));
    ctx.request_scratch(static_cast<size_t>(rows * kk));
    return make_kernel(
        [=, &cfg](const KernelContext& k) {
          const uint8_t* base = static_cast<const uint8_t*>(k.in(0).data);
          uint8_t* col = static_cast<uint8_t*>(k.scratch);
          im2col(win, cg, k_real, kk, zero_byte, flat->a_xor, base, col);
          kernels::qgemm(cfg, rows, col, kk, *flat, k.out(0).data, m, params, k.pool, flat->a_xor != 0);
          return Status::ok();
        },
        cfg.name);
  }
  // Pre-XORed input: the padding row holds the XORed zero point too.
  std::shared_ptr<IndirectConv> ic = build_indirection(win, cg, cfg.mr, static_cast<uint8_t>(zero_byte ^ a_xor));
  if (a_xor) ctx.request_scratch(static_cast<size_t>(in_bytes));
  return make_kernel(
      [=, &cfg](const KernelContext& k) {
        const char* base = static_cast<const char*>(k.in(0).data);
        if (a_xor) {
          xor_bytes(static_cast<const uint8_t*>(k.in(0).data), static_cast<uint8_t*>(k.scratch), in_bytes, a_xor);
          base = static_cast<const char*>(k.scratch);
        }
        uint8_t* yp = static_cast<uint8_t*>(k.out(0).data);
        for (int64_t gi = 0; gi < groups; ++gi) {
          const ptrdiff_t offset = (base - reinterpret_cast<const char*>(kBase)) + gi * cg;
          kernels::qigemm(cfg, ic->m, ic->ptrs.data(), offset, ic->zero.data(), (*packs)[gi], yp + gi * mg * out_es,
                          m, params, k.pool, a_xor != 0);
        }
        return Status::ok();
      },
      cfg.name);
}

// Max pooling commutes with the (monotone) dequantisation, so it runs on the stored integers;
// average pooling sums exactly in int32. Both then requantise as DequantizeLinear -> float pool ->
// QuantizeLinear would: y = clamp(rint(real / y_scale) + y_zero_point) (kernels/qgemm.h, QPoolFn).
Result<KernelPtr> prepare_qpool(PrepareContext& ctx) {
  KILN_RETURN_IF_ERROR(ctx.require_input(0));
  const TensorInfo x = ctx.input(0);
  if (x.dtype != DType::kInt8 && x.dtype != DType::kUInt8) return ctx.unsupported_dtype(0);
  if (x.rank() != 4) return ctx.invalid("X must be NHWC rank 4");
  QScalar xq, yq;
  KILN_RETURN_IF_ERROR(read_qscalar(ctx, 1, 2, &xq));
  KILN_RETURN_IF_ERROR(read_qscalar(ctx, 3, 4, &yq));
  if (xq.dtype() != x.dtype) return ctx.invalid("x_zero_point dtype differs from X");
  int32_t qmin = 0, qmax = 0;
  KILN_RETURN_IF_ERROR(read_qclamp(ctx, yq, &qmin, &qmax));
  Geometry g;
  KILN_RETURN_IF_ERROR(read_geometry(ctx, &g));
  const std::string kind = ctx.attr_string("kind", "");
  if (kind != "max" && kind != "average") return ctx.invalid("kind must be 'max' or 'average'");
  const bool include_pad = ctx.attr_int("count_include_pad", 0) != 0;
  std::vector<int64_t> hw = ctx.attr_ints("output_hw");
  if (hw.size() != 2 || hw[0] < 1 || hw[1] < 1) return ctx.invalid("needs output_hw [OH, OW]");
  if ((hw[0] - 1) * g.sh >= x.shape[1] + g.pt + g.pb || (hw[1] - 1) * g.sw >= x.shape[2] + g.pl + g.pr)
    return ctx.invalid("output_hw ", hw[0], "x", hw[1], " does not fit input ", shape_to_string(x.shape));
  const Shape out{x.shape[0], hw[0], hw[1], x.shape[3]};
  ctx.set_output(0, yq.dtype(), out);
  const kernels::QWindow s = window_of(g, x.shape, out);
  kernels::QPoolParams pp;
  pp.is_max = kind == "max";
  pp.count_include_pad = include_pad;
  pp.same_params = xq.scale == yq.scale && xq.zero_point == yq.zero_point && xq.is_unsigned == yq.is_unsigned;
  pp.x_unsigned = xq.is_unsigned;
  pp.y_unsigned = yq.is_unsigned;
  pp.x_scale = xq.scale;
  pp.y_scale = yq.scale;
  pp.x_zero = xq.zero_point;
  pp.y_zero = yq.zero_point;
  pp.qmin = qmin;
  pp.qmax = qmax;
  pp.pad_bottom = g.pb;
  pp.pad_right = g.pr;
  ctx.request_scratch(static_cast<size_t>(x.shape[3]) * sizeof(int32_t));
  const kernels::QKernels& qk = kernels::qkernels();
  return make_kernel(
      [=, &qk](const KernelContext& k) {
        qk.pool(s, static_cast<const uint8_t*>(k.in(0).data), pp, static_cast<uint8_t*>(k.out(0).data),
                static_cast<int32_t*>(k.scratch));
        return Status::ok();
      },
      qk.pool_name);
}

constexpr OpDef kQConvOps[] = {
    {"com.kiln", "QConv", 1, 1, prepare_qconv},
    {"com.kiln", "QPool", 1, 1, prepare_qpool},
};

}  // namespace

std::span<const OpDef> fast_qconv_ops() { return kQConvOps; }

}  // namespace kiln::nn::ops
