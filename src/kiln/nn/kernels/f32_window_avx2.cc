// NHWC depthwise convolution and pooling for AVX2 + FMA, 8 channels per vector, up to 4 vectors
// per pass over a window. Built with -mavx2 -mfma only; everything here has internal linkage, and
// no standard-library template is used (an instantiation compiled here could be picked by the
// linker for callers on CPUs without AVX2).
#include <immintrin.h>

#include <cfloat>
#include <cstdint>

#include "kiln/nn/kernels/internal/avx2_math.h"
#include "kiln/nn/kernels/window.h"

namespace kiln::nn::kernels {
namespace {

using avx2::activate;
using avx2::lane_mask;

// Channels [c0, c0 + 8 * V) of one output pixel (the last vector masked to `valid` lanes).
template <int V>
inline void dw_pixel(const Window2d& s, const float* x_n, const float* w, int64_t ih0, int64_t iw0, int64_t c0,
                     int valid_last, const float* residual, const GemmParams& p, float* y) {
  const int64_t C = s.channels;
  const __m256i mlast = lane_mask(valid_last);
  __m256 acc[V];
#pragma GCC unroll 4
  for (int v = 0; v < V; ++v)
    acc[v] = v + 1 < V ? _mm256_loadu_ps(w + c0 + 8 * v) : _mm256_maskload_ps(w + c0 + 8 * v, mlast);
  const float* wt = w + C;
  for (int64_t kh = 0; kh < s.kernel_h; ++kh) {
    const int64_t ih = ih0 + kh * s.dilation_h;
    if (ih < 0 || ih >= s.in_h) {
      wt += s.kernel_w * C;
      continue;
    }
    const float* xrow = x_n + ih * s.in_w * C;
    for (int64_t kw = 0; kw < s.kernel_w; ++kw, wt += C) {
      const int64_t iw = iw0 + kw * s.dilation_w;
      if (iw < 0 || iw >= s.in_w) continue;
      const float* xp = xrow + iw * C + c0;
#pragma GCC unroll 4
      for (int v = 0; v < V; ++v) {
        const bool last = v + 1 == V;
        __m256 xv = last ? _mm256_maskload_ps(xp + 8 * v, mlast) : _mm256_loadu_ps(xp + 8 * v);
        __m256 wv = last ? _mm256_maskload_ps(wt + c0 + 8 * v, mlast) : _mm256_loadu_ps(wt + c0 + 8 * v);
        acc[v] = _mm256_fmadd_ps(xv, wv, acc[v]);
      }
    }
  }
#pragma GCC unroll 4
  for (int v = 0; v < V; ++v) {
    const bool last = v + 1 == V;
    __m256 r = acc[v];
    if (residual) r = _mm256_add_ps(r, last ? _mm256_maskload_ps(residual + 8 * v, mlast) : _mm256_loadu_ps(residual + 8 * v));
    r = activate(r, p);
    if (last) _mm256_maskstore_ps(y + 8 * v, mlast, r);
    else _mm256_storeu_ps(y + 8 * v, r);
  }
}

void dwconv(const Window2d& s, const float* x, const float* w, const float* residual, const GemmParams& p, float* y,
            int64_t row_begin, int64_t row_end) {
  const int64_t C = s.channels;
  for (int64_t r = row_begin; r < row_end; ++r) {
    const int64_t n = r / s.out_h, oh = r % s.out_h;
    const float* x_n = x + n * s.in_h * s.in_w * C;
    const int64_t ih0 = oh * s.stride_h - s.pad_top;
    for (int64_t ow = 0; ow < s.out_w; ++ow) {
      const int64_t iw0 = ow * s.stride_w - s.pad_left;
      const int64_t pix = (r * s.out_w + ow) * C;
      float* yp = y + pix;
      const float* rp = residual ? residual + pix : nullptr;
      int64_t c = 0;
      for (; c + 32 <= C; c += 32) dw_pixel<4>(s, x_n, w, ih0, iw0, c, 8, rp ? rp + c : nullptr, p, yp + c);
      const int64_t rest = C - c;
      if (rest > 24) dw_pixel<4>(s, x_n, w, ih0, iw0, c, static_cast<int>(rest - 24), rp ? rp + c : nullptr, p, yp + c);
      else if (rest > 16) dw_pixel<3>(s, x_n, w, ih0, iw0, c, static_cast<int>(rest - 16), rp ? rp + c : nullptr, p, yp + c);
      else if (rest > 8) dw_pixel<2>(s, x_n, w, ih0, iw0, c, static_cast<int>(rest - 8), rp ? rp + c : nullptr, p, yp + c);
      else if (rest > 0) dw_pixel<1>(s, x_n, w, ih0, iw0, c, static_cast<int>(rest), rp ? rp + c : nullptr, p, yp + c);
    }
  }
}

template <int V>
inline void pool_pixel(const Window2d& s, PoolKind kind, const float* x_n, int64_t ih0, int64_t iw0, int64_t c0,
                       int valid_last, float* y) {
  const int64_t C = s.channels;
  const __m256i mlast = lane_mask(valid_last);
  const bool is_max = kind == PoolKind::kMax;
  __m256 acc[V];
#pragma GCC unroll 4
  for (int v = 0; v < V; ++v) acc[v] = is_max ? _mm256_set1_ps(-FLT_MAX) : _mm256_setzero_ps();
  int64_t count = 0;
  for (int64_t kh = 0; kh < s.kernel_h; ++kh) {
    const int64_t ih = ih0 + kh * s.dilation_h;
    if (ih < 0 || ih >= s.in_h) continue;
    const float* xrow = x_n + ih * s.in_w * C;
    for (int64_t kw = 0; kw < s.kernel_w; ++kw) {
      const int64_t iw = iw0 + kw * s.dilation_w;
      if (iw < 0 || iw >= s.in_w) continue;
      ++count;
      const float* xp = xrow + iw * C + c0;
#pragma GCC unroll 4
      for (int v = 0; v < V; ++v) {
        __m256 xv = v + 1 == V ? _mm256_maskload_ps(xp + 8 * v, mlast) : _mm256_loadu_ps(xp + 8 * v);
        acc[v] = is_max ? _mm256_max_ps(acc[v], xv) : _mm256_add_ps(acc[v], xv);
      }
    }
  }
  if (!is_max) {
    int64_t divisor = count;
    if (kind == PoolKind::kAverageIncludePad) {
      // Window clipped to the padded input (ceil_mode may run past it), as ONNX Runtime does.
      const int64_t h_end = ih0 + (s.kernel_h - 1) * s.dilation_h + 1, w_end = iw0 + (s.kernel_w - 1) * s.dilation_w + 1;
      const int64_t h0 = ih0, h1 = h_end < s.in_h + s.pad_bottom ? h_end : s.in_h + s.pad_bottom;
      const int64_t w0 = iw0, w1 = w_end < s.in_w + s.pad_right ? w_end : s.in_w + s.pad_right;
      divisor = ((h1 - h0 + s.dilation_h - 1) / s.dilation_h) * ((w1 - w0 + s.dilation_w - 1) / s.dilation_w);
    }
    const __m256 inv = _mm256_set1_ps(divisor > 0 ? 1.f / static_cast<float>(divisor) : 0.f);
#pragma GCC unroll 4
    for (int v = 0; v < V; ++v) acc[v] = _mm256_mul_ps(acc[v], inv);
  }
#pragma GCC unroll 4
  for (int v = 0; v < V; ++v) {
    if (v + 1 == V) _mm256_maskstore_ps(y + 8 * v, mlast, acc[v]);
    else _mm256_storeu_ps(y + 8 * v, acc[v]);
  }
}

void pool(const Window2d& s, PoolKind kind, const float* x, float* y, int64_t row_begin, int64_t row_end) {
  const int64_t C = s.channels;
  for (int64_t r = row_begin; r < row_end; ++r) {
    const int64_t n = r / s.out_h, oh = r % s.out_h;
    const float* x_n = x + n * s.in_h * s.in_w * C;
    const int64_t ih0 = oh * s.stride_h - s.pad_top;
    for (int64_t ow = 0; ow < s.out_w; ++ow) {
      const int64_t iw0 = ow * s.stride_w - s.pad_left;
      float* yp = y + (r * s.out_w + ow) * C;
      int64_t c = 0;
      for (; c + 32 <= C; c += 32) pool_pixel<4>(s, kind, x_n, ih0, iw0, c, 8, yp + c);
      const int64_t rest = C - c;
      if (rest > 24) pool_pixel<4>(s, kind, x_n, ih0, iw0, c, static_cast<int>(rest - 24), yp + c);
      else if (rest > 16) pool_pixel<3>(s, kind, x_n, ih0, iw0, c, static_cast<int>(rest - 16), yp + c);
      else if (rest > 8) pool_pixel<2>(s, kind, x_n, ih0, iw0, c, static_cast<int>(rest - 8), yp + c);
      else if (rest > 0) pool_pixel<1>(s, kind, x_n, ih0, iw0, c, static_cast<int>(rest), yp + c);
    }
  }
}

void global_avg(int64_t batch, int64_t hw, int64_t channels, const float* x, float* y) {
  const float inv = hw > 0 ? 1.f / static_cast<float>(hw) : 0.f;
  for (int64_t n = 0; n < batch; ++n) {
    const float* xn = x + n * hw * channels;
    float* yn = y + n * channels;
    int64_t c = 0;
    for (; c + 32 <= channels; c += 32) {
      __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
      for (int64_t i = 0; i < hw; ++i) {
        const float* p = xn + i * channels + c;
        a0 = _mm256_add_ps(a0, _mm256_loadu_ps(p));
        a1 = _mm256_add_ps(a1, _mm256_loadu_ps(p + 8));
        a2 = _mm256_add_ps(a2, _mm256_loadu_ps(p + 16));
        a3 = _mm256_add_ps(a3, _mm256_loadu_ps(p + 24));
      }
      const __m256 s = _mm256_set1_ps(inv);
      _mm256_storeu_ps(yn + c, _mm256_mul_ps(a0, s));
      _mm256_storeu_ps(yn + c + 8, _mm256_mul_ps(a1, s));
      _mm256_storeu_ps(yn + c + 16, _mm256_mul_ps(a2, s));
      _mm256_storeu_ps(yn + c + 24, _mm256_mul_ps(a3, s));
    }
    for (; c < channels; c += 8) {
      const __m256i m = lane_mask(static_cast<int>(channels - c));
      __m256 a = _mm256_setzero_ps();
      for (int64_t i = 0; i < hw; ++i) a = _mm256_add_ps(a, _mm256_maskload_ps(xn + i * channels + c, m));
      _mm256_maskstore_ps(yn + c, m, _mm256_mul_ps(a, _mm256_set1_ps(inv)));
    }
  }
}

}  // namespace

const WindowKernels kF32WindowAvx2 = {"f32_window_avx2", dwconv, pool, global_avg};

}  // namespace kiln::nn::kernels
