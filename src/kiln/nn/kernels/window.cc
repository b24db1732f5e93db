#include "kiln/nn/kernels/window.h"

#include <algorithm>
#include <cfloat>

#include "kiln/core/cpu_features.h"

namespace kiln::nn::kernels {

std::vector<const WindowKernels*> available_window_kernels() {
  const CpuFeatures& f = cpu_features();
  std::vector<const WindowKernels*> out;
  static const WindowKernels avx512 = {"f32_window_avx512", kF32DwconvAvx512, kF32WindowAvx2.pool,
                                       kF32WindowAvx2.global_avg};
  if (f.avx512f && f.avx2 && f.fma) out.push_back(&avx512);
  if (f.avx2 && f.fma) out.push_back(&kF32WindowAvx2);
  out.push_back(&kF32WindowPortable);
  return out;
}

const WindowKernels& window_kernels() {
  static const WindowKernels* best = available_window_kernels().front();
  return *best;
}

std::vector<float> pack_depthwise(const float* w, const float* bias, int64_t channels, int64_t kh, int64_t kw) {
  std::vector<float> out(static_cast<size_t>(channels * (1 + kh * kw)), 0.f);
  for (int64_t c = 0; c < channels; ++c) out[c] = bias ? bias[c] : 0.f;
  for (int64_t t = 0; t < kh * kw; ++t)
    for (int64_t c = 0; c < channels; ++c) out[(1 + t) * channels + c] = w[c * kh * kw + t];
  return out;
}

void dwconv_reference(const Window2d& s, const float* x, const float* w, const float* residual, const GemmParams& p,
                      float* y) {
  const int64_t C = s.channels;
  for (int64_t n = 0; n < s.batch; ++n)
    for (int64_t oh = 0; oh < s.out_h; ++oh)
      for (int64_t ow = 0; ow < s.out_w; ++ow)
        for (int64_t c = 0; c < C; ++c) {
          double acc = w[c];
          for (int64_t kh = 0; kh < s.kernel_h; ++kh)
            for (int64_t kw = 0; kw < s.kernel_w; ++kw) {
              int64_t ih = oh * s.stride_h - s.pad_top + kh * s.dilation_h;
              int64_t iw = ow * s.stride_w - s.pad_left + kw * s.dilation_w;
              if (ih < 0 || ih >= s.in_h || iw < 0 || iw >= s.in_w) continue;
              acc += static_cast<double>(x[((n * s.in_h + ih) * s.in_w + iw) * C + c]) *
                     w[(1 + kh * s.kernel_w + kw) * C + c];
            }
          int64_t o = ((n * s.out_h + oh) * s.out_w + ow) * C + c;
          float v = static_cast<float>(acc);
          if (residual) v += residual[o];
          y[o] = apply_activation(v, p);
        }
}

void pool_reference(const Window2d& s, PoolKind kind, const float* x, float* y) {
  const int64_t C = s.channels;
  for (int64_t n = 0; n < s.batch; ++n)
    for (int64_t oh = 0; oh < s.out_h; ++oh)
      for (int64_t ow = 0; ow < s.out_w; ++ow)
        for (int64_t c = 0; c < C; ++c) {
          double acc = kind == PoolKind::kMax ? -DBL_MAX : 0.0;
          int64_t count = 0, padded = 0;
          for (int64_t kh = 0; kh < s.kernel_h; ++kh)
            for (int64_t kw = 0; kw < s.kernel_w; ++kw) {
              int64_t ih = oh * s.stride_h - s.pad_top + kh * s.dilation_h;
              int64_t iw = ow * s.stride_w - s.pad_left + kw * s.dilation_w;
              if (ih < s.in_h + s.pad_bottom && iw < s.in_w + s.pad_right) ++padded;
              if (ih < 0 || ih >= s.in_h || iw < 0 || iw >= s.in_w) continue;
              double v = x[((n * s.in_h + ih) * s.in_w + iw) * C + c];
              acc = kind == PoolKind::kMax ? std::max(acc, v) : acc + v;
              ++count;
            }
          if (kind == PoolKind::kAverageExcludePad) acc = count ? acc / count : 0;
          if (kind == PoolKind::kAverageIncludePad) acc = padded ? acc / padded : 0;
          y[((n * s.out_h + oh) * s.out_w + ow) * C + c] = static_cast<float>(acc);
        }
}

}  // namespace kiln::nn::kernels
