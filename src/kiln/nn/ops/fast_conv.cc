// Channels-last (NHWC) operators created by the layout pass (passes/layout_nhwc.cc):
//   com.kiln.Conv                X [N,H,W,C], W [M,C/G,KH,KW] (ONNX layout, constant), B [M],
//                                residual [N,OH,OW,M], input_scale [N,1,1,C] -> Y [N,OH,OW,M]
//                                (input_scale: 1x1 group-1 only, passes/fuse_channel_scale.cc)
//   com.kiln.Pool                max / average pooling, Y [N,OH,OW,C]
//   com.kiln.GlobalAveragePool   Y [N,1,1,C]
//   com.kiln.Transpose           NCHW <-> NHWC layout change (a view when only size-1 dims move)
// Attributes use ONNX names (kernel_shape, strides, dilations, pads = [top, left, bottom, right],
// group) plus the fused activation (fused_activation.h); the pass has already resolved auto_pad.
//
// A convolution runs as one of: a GEMM straight on the input (1x1, stride 1, no padding), an
// indirect GEMM through a table of row pointers built here at compile time (any other dense or
// grouped convolution: no im2col copy), or the depthwise window kernel.
#include <cstring>
#include <memory>
#include <utility>

#include "kiln/core/thread_pool.h"
#include "kiln/nn/kernels/gemm.h"
#include "kiln/nn/kernels/window.h"
#include "kiln/nn/ops/conv_geometry.h"
#include "kiln/nn/ops/families.h"
#include "kiln/nn/ops/fused_activation.h"
#include "kiln/nn/ops/op_util.h"

namespace kiln::nn::ops {
namespace {

kernels::Window2d window_of(const Geometry& g, const Shape& x, const Shape& y) {
  kernels::Window2d w;
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
  w.pad_bottom = g.pb;
  w.pad_right = g.pr;
  return w;
}

// The pointer table of an indirect convolution. Pointers are stored relative to a fake base
// address (kBase) and shifted to the real input at run time through Tile::a_offset; padding taps
// point at a real zero row. kBase is non-null so that no null pointer is ever offset.
constexpr uintptr_t kBase = 4096;

struct IndirectConv {
  int64_t m = 0, ks = 0, kc = 0;
  std::vector<const float*> ptrs;
  std::vector<float> zero;
};

std::shared_ptr<IndirectConv> build_indirection(const kernels::Window2d& w, int64_t channels_per_group, int mr) {
  auto ic = std::make_shared<IndirectConv>();
  ic->m = w.batch * w.out_h * w.out_w;
  ic->ks = w.kernel_h * w.kernel_w;
  ic->kc = channels_per_group;
  ic->zero.assign(static_cast<size_t>(channels_per_group + 16), 0.f);
  const int64_t blocks = (ic->m + mr - 1) / mr;
  ic->ptrs.resize(static_cast<size_t>(blocks * ic->ks * mr), ic->zero.data());
  for (int64_t row = 0; row < blocks * mr; ++row) {
    const int64_t r = std::min(row, ic->m - 1);  // rows past M repeat the last real row
    const int64_t n = r / (w.out_h * w.out_w), rem = r % (w.out_h * w.out_w);
    const int64_t oh = rem / w.out_w, ow = rem % w.out_w;
    const int64_t rb = row / mr, i = row % mr;
    for (int64_t kh = 0; kh < w.kernel_h; ++kh)
      for (int64_t kw = 0; kw < w.kernel_w; ++kw) {
        const int64_t ih = oh * w.stride_h - w.pad_top + kh * w.dilation_h;
        const int64_t iw = ow * w.stride_w - w.pad_left + kw * w.dilation_w;
        const int64_t t = kh * w.kernel_w + kw;
        const float* p = ic->zero.data();
        if (ih >= 0 && ih < w.in_h && iw >= 0 && iw < w.in_w) {
          uintptr_t off = static_cast<uintptr_t>(((n * w.in_h + ih) * w.in_w + iw) * w.channels) * sizeof(float);
          p = reinterpret_cast<const float*>(kBase + off);
        }
        ic->ptrs[static_cast<size_t>((rb * ic->ks + t) * mr + i)] = p;
      }
  }
  return ic;
}

// Convolutions with few input channels (a network's RGB stem: 7x7x3 -> kc = 3 per tap) spend
// more on switching taps than on multiply-adds. They run on a zero-padded copy of the input
// instead: there the kernel_w taps of one kernel row are kernel_w * C contiguous floats, so each
// kernel row is one tap (ResNet-18's stem: 7 taps of 21 instead of 49 of 3). Same weights.
struct PaddedInput {
  int64_t h = 0, w = 0;  // padded extent
  bool use = false;
  bool copy = false;     // false: no padding, the taps read the input itself
};

PaddedInput padded_input_for(const kernels::Window2d& w, int64_t groups) {
  PaddedInput p;
  p.h = w.in_h + w.pad_top + w.pad_bottom;
  p.w = w.in_w + w.pad_left + w.pad_right;
  p.copy = w.pad_top || w.pad_left || w.pad_bottom || w.pad_right;
  // With padding, only for many taps (7x7, the 10x4 KWS stem, 5x5): on a 3x3 stem the copy costs
  // more than it saves. Without padding (SqueezeNet's stem) there is nothing to copy.
  p.use = groups == 1 && w.channels <= 8 && w.kernel_w > 1 && w.dilation_w == 1 &&
          (!p.copy || w.kernel_h * w.kernel_w >= 16);
  return p;
}

std::shared_ptr<IndirectConv> build_row_taps(const kernels::Window2d& w, const PaddedInput& pad, int mr) {
  auto ic = std::make_shared<IndirectConv>();
  ic->m = w.batch * w.out_h * w.out_w;
  ic->ks = w.kernel_h;
  ic->kc = w.kernel_w * w.channels;
  ic->zero.assign(static_cast<size_t>(ic->kc + 16), 0.f);  // never pointed at: every tap is real
  const int64_t blocks = (ic->m + mr - 1) / mr;
  ic->ptrs.resize(static_cast<size_t>(blocks * ic->ks * mr));
  for (int64_t row = 0; row < blocks * mr; ++row) {
    const int64_t r = std::min(row, ic->m - 1);
    const int64_t n = r / (w.out_h * w.out_w), rem = r % (w.out_h * w.out_w);
    const int64_t oh = rem / w.out_w, ow = rem % w.out_w;
    for (int64_t kh = 0; kh < w.kernel_h; ++kh) {
      const int64_t ph = oh * w.stride_h + kh * w.dilation_h, pw = ow * w.stride_w;
      const uintptr_t off = static_cast<uintptr_t>(((n * pad.h + ph) * pad.w + pw) * w.channels) * sizeof(float);
      ic->ptrs[static_cast<size_t>(((row / mr) * ic->ks + kh) * mr + row % mr)] =
          reinterpret_cast<const float*>(kBase + off);
    }
  }
  return ic;
}

// x [N, H, W, C] into the middle of y [N, H + pt + pb, W + pl + pr, C], zeros around it.
void pad_input(const kernels::Window2d& w, const PaddedInput& pad, const float* x, float* y) {
  const int64_t C = w.channels, row = pad.w * C;
  for (int64_t n = 0; n < w.batch; ++n) {
    float* yn = y + n * pad.h * row;
    std::memset(yn, 0, static_cast<size_t>(w.pad_top * row) * sizeof(float));
    for (int64_t h = 0; h < w.in_h; ++h) {
      float* yr = yn + (w.pad_top + h) * row;
      std::memset(yr, 0, static_cast<size_t>(w.pad_left * C) * sizeof(float));
      std::memcpy(yr + w.pad_left * C, x + (n * w.in_h + h) * w.in_w * C, static_cast<size_t>(w.in_w * C) * sizeof(float));
      std::memset(yr + (w.pad_left + w.in_w) * C, 0, static_cast<size_t>(w.pad_right * C) * sizeof(float));
    }
    std::memset(yn + (w.pad_top + w.in_h) * row, 0, static_cast<size_t>(w.pad_bottom * row) * sizeof(float));
  }
}

Result<KernelPtr> prepare_conv(PrepareContext& ctx) {
  KILN_RETURN_IF_ERROR(ctx.require_input(0));
  const TensorInfo& x = ctx.input(0);
  const Tensor* w = ctx.require_constant(1, "weights");
  if (!w) return ctx.sticky_error();
  if (x.dtype != DType::kFloat32 || w->dtype() != DType::kFloat32) return ctx.unsupported_dtype(0);
  if (x.rank() != 4 || w->rank() != 4) return ctx.invalid("X must be NHWC rank 4 and W rank 4");
  Geometry g;
  KILN_RETURN_IF_ERROR(read_geometry(ctx, &g));
  const int64_t groups = ctx.attr_int("group", 1);
  const int64_t c = x.shape[3], m = w->shape()[0];
  if (groups < 1 || c % groups || m % groups || w->shape()[1] * groups != c || w->shape()[2] != g.kh ||
      w->shape()[3] != g.kw)
    return ctx.invalid("weights ", shape_to_string(w->shape()), " do not match input channels ", c, " in ", groups,
                       " groups with kernel ", g.kh, "x", g.kw);
  const float* bias = nullptr;
  if (ctx.has_input(2)) {
    const Tensor* b = ctx.require_constant(2, "bias");
    if (!b) return ctx.sticky_error();
    if (b->dtype() != DType::kFloat32 || b->num_elements() != m) return ctx.invalid("bias must be float32[", m, "]");
    bias = b->data<float>();
  }
  const int64_t eh = g.dh * (g.kh - 1) + 1, ew = g.dw * (g.kw - 1) + 1;
  const int64_t oh = (x.shape[1] + g.pt + g.pb - eh) / g.sh + 1, ow = (x.shape[2] + g.pl + g.pr - ew) / g.sw + 1;
  if (x.shape[1] + g.pt + g.pb < eh || x.shape[2] + g.pl + g.pr < ew || oh < 1 || ow < 1)
    return ctx.invalid("kernel ", g.kh, "x", g.kw, " does not fit input ", shape_to_string(x.shape));
  const Shape out{x.shape[0], oh, ow, m};
  const bool residual = ctx.has_input(3);
  if (residual && (ctx.input(3).shape != out || ctx.input(3).dtype != DType::kFloat32))
    return ctx.invalid("residual must be float32", shape_to_string(out));
  kernels::GemmParams params;
  KILN_RETURN_IF_ERROR(read_fused_activation(ctx, &params));
  ctx.set_output(0, DType::kFloat32, out);
  const kernels::Window2d win = window_of(g, x.shape, out);
  const int64_t cg = c / groups, mg = m / groups;

  // Depthwise: one filter per channel.
  if (groups == c && m == c) {
    const kernels::WindowKernels& wk = kernels::window_kernels();
    auto packed = std::make_shared<std::vector<float>>(
        kernels::pack_depthwise(w->data<float>(), bias, c, g.kh, g.kw));
    return make_kernel(
        [=, &wk](const KernelContext& k) {
          const float* r = residual ? k.in(3).as<const float>() : nullptr;
          const float* xp = k.in(0).as<const float>();
          float* yp = k.out(0).as<float>();
          for_rows(k.pool, win.batch * win.out_h, win.batch * win.out_h * win.out_w * c * g.kh * g.kw, [&](int64_t b, int64_t e) {
            wk.dwconv(win, xp, packed->data(), r, params, yp, b, e);
          });
          return Status::ok();
        },
        wk.name);
  }

  // Dense or grouped: weights as a (KH*KW*Cg) x Mg matrix per group, rows ordered tap-major.
  const kernels::GemmConfig& cfg = kernels::gemm_config_for(mg);
  auto packs = std::make_shared<std::vector<kernels::PackedWeights>>();
  {
    std::vector<float> mat(static_cast<size_t>(g.kh * g.kw * cg * mg));
    const float* wd = w->data<float>();
    for (int64_t gi = 0; gi < groups; ++gi) {
      for (int64_t mm = 0; mm < mg; ++mm)
        for (int64_t cc = 0; cc < cg; ++cc)
          for (int64_t t = 0; t < g.kh * g.kw; ++t)
            mat[static_cast<size_t>((t * cg + cc) * mg + mm)] = wd[((gi * mg + mm) * cg + cc) * g.kh * g.kw + t];
      packs->push_back(kernels::pack_weights(cfg, mat.data(), g.kh * g.kw * cg, mg, mg, false,
                                             bias ? bias + gi * mg : nullptr));
    }
  }
  const int64_t rows = x.shape[0] * oh * ow;
  const bool pointwise = g.kh == 1 && g.kw == 1 && g.sh == 1 && g.sw == 1 && g.pt == 0 && g.pl == 0 && g.pb == 0 &&
                         g.pr == 0;
  if (ctx.has_input(4)) {
    // x * input_scale -> 1x1 conv: each image scales the packed weights' rows (one per input
    // channel) into scratch, then runs the GEMM on the unscaled input.
    const TensorInfo& sc = ctx.input(4);
    if (!pointwise || groups != 1 || sc.dtype != DType::kFloat32 || sc.shape != Shape{x.shape[0], 1, 1, c})
      return ctx.invalid("input_scale needs a 1x1 group-1 convolution and float32[", x.shape[0], ",1,1,", c, "]");
    const kernels::PackedWeights& pw = (*packs)[0];
    ctx.request_scratch(static_cast<size_t>(pw.data.num_elements()) * sizeof(float));
    const int64_t pixels = oh * ow;
    return make_kernel(
        [=, &cfg](const KernelContext& k) {
          const kernels::PackedWeights& src = (*packs)[0];
          float* scaled = static_cast<float*>(k.scratch);
          for (int64_t n = 0; n < x.shape[0]; ++n) {
            const float* s = k.in(4).as<const float>() + n * c;
            auto scale_panel = [&](int64_t panel) {
              const float* from = src.panel(panel);
              float* to = scaled + panel * src.panel_stride;
              for (int64_t j = 0; j < src.nr; ++j) to[j] = from[j];  // bias row
              for (int64_t kk = 0; kk < c; ++kk) {
                const float f = s[kk];
                const float* fr = from + src.nr + kk * src.nr;
                float* tr = to + src.nr + kk * src.nr;
                for (int64_t j = 0; j < src.nr; ++j) tr[j] = fr[j] * f;
              }
            };
            // The threads share the scaling when there is enough of it (EfficientNet's mid stages:
            // 672 x 112 weights).
            if (k.pool && k.pool->threads() > 1 && src.panels() >= 2 && src.panels() * src.panel_stride >= (1 << 15))
              k.pool->parallel_for(src.panels(), [&](int64_t panel) { scale_panel(panel); });
            else
              for (int64_t panel = 0; panel < src.panels(); ++panel) scale_panel(panel);
            kernels::GemmParams p = params;
            if (residual) {
              p.residual = k.in(3).as<const float>() + n * pixels * m;
              p.ld_residual = m;
            }
            kernels::gemm_view(cfg, pixels, k.in(0).as<const float>() + n * pixels * c, c,
                               kernels::PackedView{src.k, src.n, src.nr, src.panel_stride, scaled},
                               k.out(0).as<float>() + n * pixels * m, m, p, k.pool);
          }
          return Status::ok();
        },
        cfg.name);
  }
  if (pointwise) {
    return make_kernel(
        [=, &cfg](const KernelContext& k) {
          const float* xp = k.in(0).as<const float>();
          float* yp = k.out(0).as<float>();
          for (int64_t gi = 0; gi < groups; ++gi) {
            kernels::GemmParams p = params;
            if (residual) {
              p.residual = k.in(3).as<const float>() + gi * mg;
              p.ld_residual = m;
            }
            kernels::gemm(cfg, rows, xp + gi * cg, c, (*packs)[gi], yp + gi * mg, m, p, k.pool);
          }
          return Status::ok();
        },
        cfg.name);
  }
  const PaddedInput pad = padded_input_for(win, groups);
  if (pad.use) {
    std::shared_ptr<IndirectConv> ic = build_row_taps(win, pad, cfg.mr);
    if (pad.copy) ctx.request_scratch(static_cast<size_t>(win.batch * pad.h * pad.w * c) * sizeof(float));
    return make_kernel(
        [=, &cfg](const KernelContext& k) {
          const float* padded = k.in(0).as<const float>();
          if (pad.copy) {
            pad_input(win, pad, padded, static_cast<float*>(k.scratch));
            padded = static_cast<const float*>(k.scratch);
          }
          kernels::GemmParams p = params;
          if (residual) {
            p.residual = k.in(3).as<const float>();
            p.ld_residual = m;
          }
          const ptrdiff_t offset = reinterpret_cast<const char*>(padded) - reinterpret_cast<const char*>(kBase);
          kernels::igemm(cfg, ic->m, ic->ks, ic->kc, ic->ptrs.data(), offset, ic->zero.data(), (*packs)[0],
                         k.out(0).as<float>(), m, p, k.pool);
          return Status::ok();
        },
        cfg.name);
  }
  std::shared_ptr<IndirectConv> ic = build_indirection(win, cg, cfg.mr);
  return make_kernel(
      [=, &cfg](const KernelContext& k) {
        const char* base = static_cast<const char*>(k.in(0).data);
        float* yp = k.out(0).as<float>();
        for (int64_t gi = 0; gi < groups; ++gi) {
          kernels::GemmParams p = params;
          if (residual) {
            p.residual = k.in(3).as<const float>() + gi * mg;
            p.ld_residual = m;
          }
          const ptrdiff_t offset = (base - reinterpret_cast<const char*>(kBase)) + gi * cg * static_cast<ptrdiff_t>(sizeof(float));
          kernels::igemm(cfg, ic->m, ic->ks, ic->kc, ic->ptrs.data(), offset, ic->zero.data(), (*packs)[gi],
                         yp + gi * mg, m, p, k.pool);
        }
        return Status::ok();
      },
      cfg.name);
}

Result<KernelPtr> prepare_pool(PrepareContext& ctx) {
  KILN_RETURN_IF_ERROR(ctx.require_input(0));
  const TensorInfo& x = ctx.input(0);
  if (x.dtype != DType::kFloat32) return ctx.unsupported_dtype(0);
  if (x.rank() != 4) return ctx.invalid("X must be NHWC rank 4");
  Geometry g;
  KILN_RETURN_IF_ERROR(read_geometry(ctx, &g));
  std::string kind_name = ctx.attr_string("kind", "");
  kernels::PoolKind kind;
  if (kind_name == "max") kind = kernels::PoolKind::kMax;
  else if (kind_name == "average") kind = ctx.attr_int("count_include_pad", 0) ? kernels::PoolKind::kAverageIncludePad
                                                                              : kernels::PoolKind::kAverageExcludePad;
  else return ctx.invalid("kind must be 'max' or 'average'");
  std::vector<int64_t> out_hw = ctx.attr_ints("output_hw");
  if (out_hw.size() != 2 || out_hw[0] < 1 || out_hw[1] < 1) return ctx.invalid("needs output_hw [OH, OW]");
  // The output size may come from ceil_mode: each window must still start inside the padded input.
  if ((out_hw[0] - 1) * g.sh >= x.shape[1] + g.pt + g.pb || (out_hw[1] - 1) * g.sw >= x.shape[2] + g.pl + g.pr)
    return ctx.invalid("output_hw ", out_hw[0], "x", out_hw[1], " does not fit input ", shape_to_string(x.shape));
  const Shape out{x.shape[0], out_hw[0], out_hw[1], x.shape[3]};
  ctx.set_output(0, DType::kFloat32, out);
  const kernels::Window2d win = window_of(g, x.shape, out);
  const kernels::WindowKernels& wk = kernels::window_kernels();
  return make_kernel(
      [=, &wk](const KernelContext& k) {
        const float* xp = k.in(0).as<const float>();
        float* yp = k.out(0).as<float>();
        for_rows(k.pool, win.batch * win.out_h, win.batch * win.out_h * win.out_w * win.channels * g.kh * g.kw,
                 [&](int64_t b, int64_t e) { wk.pool(win, kind, xp, yp, b, e); });
        return Status::ok();
      },
      wk.name);
}

Result<KernelPtr> prepare_global_average(PrepareContext& ctx) {
  KILN_RETURN_IF_ERROR(ctx.require_input(0));
  const TensorInfo& x = ctx.input(0);
  if (x.dtype != DType::kFloat32) return ctx.unsupported_dtype(0);
  if (x.rank() != 4) return ctx.invalid("X must be NHWC rank 4");
  ctx.set_output(0, DType::kFloat32, {x.shape[0], 1, 1, x.shape[3]});
  const int64_t n = x.shape[0], hw = x.shape[1] * x.shape[2], c = x.shape[3];
  const kernels::WindowKernels& wk = kernels::window_kernels();
  // With threads, each takes a range of pixels (the rows the threads of the producing layer just
  // wrote, still in their caches) and the partial means are combined.
  constexpr int64_t kMaxParts = 8;
  ctx.request_scratch(static_cast<size_t>(kMaxParts * n * c) * sizeof(float));
  return make_kernel(
      [=, &wk](const KernelContext& k) {
        const float* xp = k.in(0).as<const float>();
        float* yp = k.out(0).as<float>();
        const int64_t parts = k.pool ? std::min<int64_t>(kMaxParts, k.pool->threads()) : 1;
        if (parts < 2 || hw * c < (1 << 16) || hw < 2 * parts) {
          wk.global_avg(n, hw, c, xp, yp);
          return Status::ok();
        }
        float* partial = static_cast<float*>(k.scratch);  // [part][n][c]: mean over the part's pixels
        auto range = [&](int64_t part) { return std::pair<int64_t, int64_t>{hw * part / parts, hw * (part + 1) / parts}; };
        k.pool->parallel_for(parts * n, [&](int64_t t) {
          const int64_t part = t % parts, b = t / parts;
          const auto [i0, i1] = range(part);
          wk.global_avg(1, i1 - i0, c, xp + (b * hw + i0) * c, partial + (part * n + b) * c);
        });
        for (int64_t b = 0; b < n; ++b)
          for (int64_t ch = 0; ch < c; ++ch) {
            float sum = 0.f;
            for (int64_t part = 0; part < parts; ++part) {
              const auto [i0, i1] = range(part);
              sum += partial[(part * n + b) * c + ch] * static_cast<float>(i1 - i0);
            }
            yp[b * c + ch] = sum / static_cast<float>(hw);
          }
        return Status::ok();
      },
      wk.name);
}

// d[p * A + c] = s[c * pixels + p]: A planes of `pixels` elements into channels-last order.
template <int A, typename T>
void interleave_planes(const T* __restrict s, int64_t pixels, T* __restrict d) {
  for (int64_t p = 0; p < pixels; ++p)
#pragma GCC unroll 4
    for (int c = 0; c < A; ++c) d[p * A + c] = s[c * pixels + p];
}

template <typename T>
void interleave_planes(const T* s, int64_t planes, int64_t pixels, T* d) {
  switch (planes) {
    case 2: interleave_planes<2>(s, pixels, d); break;
    case 3: interleave_planes<3>(s, pixels, d); break;
    case 4: interleave_planes<4>(s, pixels, d); break;
    default: break;
  }
}

// NCHW -> NHWC ("to": "nhwc") or back ("nchw") for a rank-4 tensor of any 4- or 1-byte... type.
Result<KernelPtr> prepare_transpose(PrepareContext& ctx) {
  KILN_RETURN_IF_ERROR(ctx.require_input(0));
  const TensorInfo& x = ctx.input(0);
  if (x.rank() != 4) return ctx.invalid("layout change needs rank 4, got ", shape_to_string(x.shape));
  const std::string to = ctx.attr_string("to", "");
  if (to != "nhwc" && to != "nchw") return ctx.invalid("'to' must be 'nhwc' or 'nchw'");
  const size_t es = dtype_size(x.dtype);
  if (es == 0) return ctx.unsupported_dtype(0);
  // Viewed as [N, A, B] -> [N, B, A]: NCHW->NHWC has A = C, B = H*W; the reverse A = H*W, B = C.
  const int64_t n = x.shape[0];
  const int64_t a = to == "nhwc" ? x.shape[1] : x.shape[1] * x.shape[2];
  const int64_t b = to == "nhwc" ? x.shape[2] * x.shape[3] : x.shape[3];
  const Shape out = to == "nhwc" ? Shape{x.shape[0], x.shape[2], x.shape[3], x.shape[1]}
                                 : Shape{x.shape[0], x.shape[3], x.shape[1], x.shape[2]};
  ctx.set_output(0, x.dtype, out);
  if (a == 1 || b == 1) ctx.set_output_alias(0);  // same bytes in both layouts
  return make_kernel(
      [=](const KernelContext& k) {
    const char* src = static_cast<const char*>(k.in(0).data);
    char* dst = static_cast<char*>(k.out(0).data);
    if (a == 1 || b == 1) {
      std::memcpy(dst, src, static_cast<size_t>(n * a * b) * es);
      return Status::ok();
    }
    // A network's NCHW image input (3 channels, or 2 to 4; float or int8): interleave the planes in one pass,
    // a loop the compiler vectorises, instead of blocks whose inner loop is 3 long.
    if (to == "nhwc" && (es == 4 || es == 1) && a <= 4) {
      for (int64_t i = 0; i < n; ++i) {
        if (es == 4)
          interleave_planes(reinterpret_cast<const float*>(src) + i * a * b, a, b,
                            reinterpret_cast<float*>(dst) + i * a * b);
        else  // the int8 input of a quantised model
          interleave_planes(reinterpret_cast<const int8_t*>(src) + i * a * b, a, b,
                            reinterpret_cast<int8_t*>(dst) + i * a * b);
      }
      return Status::ok();
    }
    // Blocked so that both the reads and the writes stay within a few cache lines.
    constexpr int64_t kBlock = 32;
    for (int64_t i = 0; i < n; ++i) {
      const char* s = src + i * a * b * es;
      char* d = dst + i * a * b * es;
      for (int64_t a0 = 0; a0 < a; a0 += kBlock)
        for (int64_t b0 = 0; b0 < b; b0 += kBlock) {
          const int64_t a1 = std::min(a, a0 + kBlock), b1 = std::min(b, b0 + kBlock);
          if (es == 4) {
            const float* sf = reinterpret_cast<const float*>(s);
            float* df = reinterpret_cast<float*>(d);
            for (int64_t y = b0; y < b1; ++y)
              for (int64_t xx = a0; xx < a1; ++xx) df[y * a + xx] = sf[xx * b + y];
          } else if (es == 1) {  // int8 tensors of quantised models
            for (int64_t y = b0; y < b1; ++y)
              for (int64_t xx = a0; xx < a1; ++xx) d[y * a + xx] = s[xx * b + y];
          } else {
            for (int64_t y = b0; y < b1; ++y)
              for (int64_t xx = a0; xx < a1; ++xx) std::memcpy(d + (y * a + xx) * es, s + (xx * b + y) * es, es);
          }
        }
    }
    return Status::ok();
  },
      "blocked_transpose");
}

constexpr OpDef kConvOps[] = {
    {"com.kiln", "Conv", 1, 1, prepare_conv},
    {"com.kiln", "Pool", 1, 1, prepare_pool},
    {"com.kiln", "GlobalAveragePool", 1, 1, prepare_global_average},
    {"com.kiln", "Transpose", 1, 1, prepare_transpose},
};

}  // namespace

std::span<const OpDef> fast_conv_ops() { return kConvOps; }

}  // namespace kiln::nn::ops
