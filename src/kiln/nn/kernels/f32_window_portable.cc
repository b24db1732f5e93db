// NHWC depthwise convolution and pooling in portable C++ (the path without AVX2). The channel
// loops are plain and contiguous so the compiler vectorises them with the baseline ISA.
#include <algorithm>
#include <cfloat>
#include <cstdint>

#include "kiln/nn/kernels/window.h"

namespace kiln::nn::kernels {
namespace {

void dwconv(const Window2d& s, const float* x, const float* w, const float* residual, const GemmParams& p, float* y,
            int64_t row_begin, int64_t row_end) {
  const int64_t C = s.channels;
  for (int64_t r = row_begin; r < row_end; ++r) {
    const int64_t n = r / s.out_h, oh = r % s.out_h;
    const float* x_n = x + n * s.in_h * s.in_w * C;
    for (int64_t ow = 0; ow < s.out_w; ++ow) {
      float* yp = y + (r * s.out_w + ow) * C;
      std::copy(w, w + C, yp);
      const float* wt = w + C;
      for (int64_t kh = 0; kh < s.kernel_h; ++kh) {
        const int64_t ih = oh * s.stride_h - s.pad_top + kh * s.dilation_h;
        for (int64_t kw = 0; kw < s.kernel_w; ++kw, wt += C) {
          const int64_t iw = ow * s.stride_w - s.pad_left + kw * s.dilation_w;
          if (ih < 0 || ih >= s.in_h || iw < 0 || iw >= s.in_w) continue;
          const float* xp = x_n + (ih * s.in_w + iw) * C;
          for (int64_t c = 0; c < C; ++c) yp[c] += xp[c] * wt[c];
        }
      }
      const float* rp = residual ? residual + (r * s.out_w + ow) * C : nullptr;
      for (int64_t c = 0; c < C; ++c) yp[c] = apply_activation(rp ? yp[c] + rp[c] : yp[c], p);
    }
  }
}

void pool(const Window2d& s, PoolKind kind, const float* x, float* y, int64_t row_begin, int64_t row_end) {
  const int64_t C = s.channels;
  for (int64_t r = row_begin; r < row_end; ++r) {
    const int64_t n = r / s.out_h, oh = r % s.out_h;
    const float* x_n = x + n * s.in_h * s.in_w * C;
    for (int64_t ow = 0; ow < s.out_w; ++ow) {
      float* yp = y + (r * s.out_w + ow) * C;
      std::fill(yp, yp + C, kind == PoolKind::kMax ? -FLT_MAX : 0.f);
      const int64_t ih0 = oh * s.stride_h - s.pad_top, iw0 = ow * s.stride_w - s.pad_left;
      int64_t count = 0;
      for (int64_t kh = 0; kh < s.kernel_h; ++kh) {
        const int64_t ih = ih0 + kh * s.dilation_h;
        for (int64_t kw = 0; kw < s.kernel_w; ++kw) {
          const int64_t iw = iw0 + kw * s.dilation_w;
          if (ih < 0 || ih >= s.in_h || iw < 0 || iw >= s.in_w) continue;
          ++count;
          const float* xp = x_n + (ih * s.in_w + iw) * C;
          if (kind == PoolKind::kMax)
            for (int64_t c = 0; c < C; ++c) yp[c] = std::max(yp[c], xp[c]);
          else
            for (int64_t c = 0; c < C; ++c) yp[c] += xp[c];
        }
      }
      if (kind == PoolKind::kMax) continue;
      int64_t divisor = count;
      if (kind == PoolKind::kAverageIncludePad) {
        const int64_t h1 = std::min(ih0 + (s.kernel_h - 1) * s.dilation_h + 1, s.in_h + s.pad_bottom);
        const int64_t w1 = std::min(iw0 + (s.kernel_w - 1) * s.dilation_w + 1, s.in_w + s.pad_right);
        divisor = ((h1 - ih0 + s.dilation_h - 1) / s.dilation_h) * ((w1 - iw0 + s.dilation_w - 1) / s.dilation_w);
      }
      const float inv = divisor > 0 ? 1.f / static_cast<float>(divisor) : 0.f;
      for (int64_t c = 0; c < C; ++c) yp[c] *= inv;
    }
  }
}

void global_avg(int64_t batch, int64_t hw, int64_t channels, const float* x, float* y) {
  for (int64_t n = 0; n < batch; ++n) {
    float* yn = y + n * channels;
    std::fill(yn, yn + channels, 0.f);
    for (int64_t i = 0; i < hw; ++i) {
      const float* p = x + (n * hw + i) * channels;
      for (int64_t c = 0; c < channels; ++c) yn[c] += p[c];
    }
    const float inv = hw > 0 ? 1.f / static_cast<float>(hw) : 0.f;
    for (int64_t c = 0; c < channels; ++c) yn[c] *= inv;
  }
}

}  // namespace

const WindowKernels kF32WindowPortable = {"f32_window_portable", dwconv, pool, global_avg};

}  // namespace kiln::nn::kernels
