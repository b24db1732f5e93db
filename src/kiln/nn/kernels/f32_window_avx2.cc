// NHWC depthwise convolution and pooling for AVX2 + FMA, 8 channels per vector, up to 4 vectors
// per pass over a window. Built with -mavx2 -mfma only; everything here has internal linkage, and
// no standard-library template is used (an instantiation compiled here could be picked by the
// linker for callers on CPUs without AVX2).
#include <immintrin.h>

#include <cfloat>
#include <cstdint>

#include "kiln/nn/kernels/internal/avx2_math.h"
#include "kiln/nn/kernels/internal/window_span.h"
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
  // Masked loads and stores are slow on some CPUs (stores are microcoded on AMD Zen): only a
  // real tail uses them.
  const bool full = valid_last >= 8;
  __m256 acc[V];
#pragma GCC unroll 4
  for (int v = 0; v < V; ++v)
    acc[v] = v + 1 < V || full ? _mm256_loadu_ps(w + c0 + 8 * v) : _mm256_maskload_ps(w + c0 + 8 * v, mlast);
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
        const bool masked = v + 1 == V && !full;
        __m256 xv = masked ? _mm256_maskload_ps(xp + 8 * v, mlast) : _mm256_loadu_ps(xp + 8 * v);
        __m256 wv = masked ? _mm256_maskload_ps(wt + c0 + 8 * v, mlast) : _mm256_loadu_ps(wt + c0 + 8 * v);
        acc[v] = _mm256_fmadd_ps(xv, wv, acc[v]);
      }
    }
  }
#pragma GCC unroll 4
  for (int v = 0; v < V; ++v) {
    const bool masked = v + 1 == V && !full;
    __m256 r = acc[v];
    if (residual)
      r = _mm256_add_ps(r, masked ? _mm256_maskload_ps(residual + 8 * v, mlast) : _mm256_loadu_ps(residual + 8 * v));
    r = activate(r, p);
    if (masked) _mm256_maskstore_ps(y + 8 * v, mlast, r);
    else _mm256_storeu_ps(y + 8 * v, r);
  }
}

// Interior pixels: four neighbouring output pixels and 16 channels at a time, so each weight
// vector loaded for a tap serves four pixels (10 loads per 8 FMAs instead of 16).
inline void dw_quad(const Window2d& s, const float* x_n, const float* w, int64_t kh_lo, int64_t kh_hi, int64_t ih0,
                    int64_t iw0, const float* residual, const GemmParams& p, float* y) {
  const int64_t C = s.channels, step = s.stride_w * C;
  int64_t c = 0;
  for (; c + 16 <= C; c += 16) {
    __m256 a[4][2];
    const __m256 b0 = _mm256_loadu_ps(w + c), b1 = _mm256_loadu_ps(w + c + 8);
    for (int j = 0; j < 4; ++j) {
      a[j][0] = b0;
      a[j][1] = b1;
    }
    for (int64_t kh = kh_lo; kh < kh_hi; ++kh) {
      const float* xrow = x_n + (ih0 + kh * s.dilation_h) * s.in_w * C + iw0 * C + c;
      const float* wt = w + C + kh * s.kernel_w * C + c;
      for (int64_t kw = 0; kw < s.kernel_w; ++kw, wt += C) {
        const __m256 w0 = _mm256_loadu_ps(wt), w1 = _mm256_loadu_ps(wt + 8);
        const float* xp = xrow + kw * s.dilation_w * C;
#pragma GCC unroll 4
        for (int j = 0; j < 4; ++j) {
          a[j][0] = _mm256_fmadd_ps(_mm256_loadu_ps(xp + j * step), w0, a[j][0]);
          a[j][1] = _mm256_fmadd_ps(_mm256_loadu_ps(xp + j * step + 8), w1, a[j][1]);
        }
      }
    }
#pragma GCC unroll 4
    for (int j = 0; j < 4; ++j) {
      __m256 v0 = a[j][0], v1 = a[j][1];
      if (residual) {
        v0 = _mm256_add_ps(v0, _mm256_loadu_ps(residual + j * C + c));
        v1 = _mm256_add_ps(v1, _mm256_loadu_ps(residual + j * C + c + 8));
      }
      _mm256_storeu_ps(y + j * C + c, activate(v0, p));
      _mm256_storeu_ps(y + j * C + c + 8, activate(v1, p));
    }
  }
  // 8 channels (models with 8 or 24 channels, and the tail of others): one vector per pixel.
  for (; c + 8 <= C; c += 8) {
    const __m256 b0 = _mm256_loadu_ps(w + c);
    __m256 a[4] = {b0, b0, b0, b0};
    for (int64_t kh = kh_lo; kh < kh_hi; ++kh) {
      const float* xrow = x_n + (ih0 + kh * s.dilation_h) * s.in_w * C + iw0 * C + c;
      const float* wt = w + C + kh * s.kernel_w * C + c;
      for (int64_t kw = 0; kw < s.kernel_w; ++kw, wt += C) {
        const __m256 w0 = _mm256_loadu_ps(wt);
        const float* xp = xrow + kw * s.dilation_w * C;
#pragma GCC unroll 4
        for (int j = 0; j < 4; ++j) a[j] = _mm256_fmadd_ps(_mm256_loadu_ps(xp + j * step), w0, a[j]);
      }
    }
#pragma GCC unroll 4
    for (int j = 0; j < 4; ++j) {
      __m256 v = a[j];
      if (residual) v = _mm256_add_ps(v, _mm256_loadu_ps(residual + j * C + c));
      _mm256_storeu_ps(y + j * C + c, activate(v, p));
    }
  }
  // Remaining channels (< 8): one pixel at a time.
  if (c < C) {
    for (int j = 0; j < 4; ++j) {
      const int64_t rest = C - c;
      const float* rp = residual ? residual + j * C + c : nullptr;
      const int64_t iw = iw0 + j * s.stride_w;
      dw_pixel<1>(s, x_n, w, ih0, iw, c, static_cast<int>(rest), rp, p, y + j * C + c);
    }
  }
}

// 3x3 kernels (dilation 1, stride 1 or 2) on interior pixels, channel counts that are a multiple
// of 8: the nine weight vectors of an 8-channel block stay in registers while the block slides
// along the row four pixels at a time, and each input vector loaded serves every pixel whose
// window covers it (stride 1: 6 loads per kernel row for 12 FMAs, instead of 15).
template <int S>
void dw3x3_span(const Window2d& s, const float* x_n, const float* w, int64_t kh_lo, int64_t kh_hi, int64_t ih0,
                int64_t ow_begin, int64_t quads, const float* r_row, const GemmParams& p, float* y_row) {
  const int64_t C = s.channels;
  constexpr int kInputs = 3 * S + 3;  // input pixels under four neighbouring windows
  for (int64_t c = 0; c < C; c += 8) {
    __m256 wk[9];
#pragma GCC unroll 9
    for (int t = 0; t < 9; ++t) wk[t] = _mm256_loadu_ps(w + C + t * C + c);
    const __m256 bias = _mm256_loadu_ps(w + c);
    for (int64_t q = 0; q < quads; ++q) {
      const int64_t ow = ow_begin + 4 * q;
      const int64_t iw0 = ow * S - s.pad_left;
      __m256 a[4] = {bias, bias, bias, bias};
#pragma GCC unroll 3
      for (int kh = 0; kh < 3; ++kh) {
        if (kh < kh_lo || kh >= kh_hi) continue;
        const float* xp = x_n + ((ih0 + kh) * s.in_w + iw0) * C + c;
#pragma GCC unroll 9
        for (int k = 0; k < kInputs; ++k) {
          const __m256 v = _mm256_loadu_ps(xp + k * C);
#pragma GCC unroll 4
          for (int j = 0; j < 4; ++j) {
            const int t = k - S * j;
            if (t >= 0 && t < 3) a[j] = _mm256_fmadd_ps(v, wk[kh * 3 + t], a[j]);
          }
        }
      }
#pragma GCC unroll 4
      for (int j = 0; j < 4; ++j) {
        __m256 v = a[j];
        if (r_row) v = _mm256_add_ps(v, _mm256_loadu_ps(r_row + (ow + j) * C + c));
        _mm256_storeu_ps(y_row + (ow + j) * C + c, activate(v, p));
      }
    }
  }
}

void dw_any_pixel(const Window2d& s, const float* x_n, const float* w, int64_t ih0, int64_t iw0, const float* rp,
                  const GemmParams& p, float* yp) {
  const int64_t C = s.channels;
  int64_t c = 0;
  for (; c + 32 <= C; c += 32) dw_pixel<4>(s, x_n, w, ih0, iw0, c, 8, rp ? rp + c : nullptr, p, yp + c);
  const int64_t rest = C - c;
  if (rest > 24) dw_pixel<4>(s, x_n, w, ih0, iw0, c, static_cast<int>(rest - 24), rp ? rp + c : nullptr, p, yp + c);
  else if (rest > 16) dw_pixel<3>(s, x_n, w, ih0, iw0, c, static_cast<int>(rest - 16), rp ? rp + c : nullptr, p, yp + c);
  else if (rest > 8) dw_pixel<2>(s, x_n, w, ih0, iw0, c, static_cast<int>(rest - 8), rp ? rp + c : nullptr, p, yp + c);
  else if (rest > 0) dw_pixel<1>(s, x_n, w, ih0, iw0, c, static_cast<int>(rest), rp ? rp + c : nullptr, p, yp + c);
}

void dwconv(const Window2d& s, const float* x, const float* w, const float* residual, const GemmParams& p, float* y,
            int64_t row_begin, int64_t row_end) {
  const int64_t C = s.channels;
  int64_t ow_lo, ow_hi;  // output columns whose whole window lies inside the input
  interior_columns(s, &ow_lo, &ow_hi);
  const bool k3x3 = s.kernel_h == 3 && s.kernel_w == 3 && s.dilation_h == 1 && s.dilation_w == 1 && C % 8 == 0 &&
                    (s.stride_w == 1 || s.stride_w == 2);
  for (int64_t r = row_begin; r < row_end; ++r) {
    const int64_t n = r / s.out_h, oh = r % s.out_h;
    const float* x_n = x + n * s.in_h * s.in_w * C;
    const int64_t ih0 = oh * s.stride_h - s.pad_top;
    int64_t kh_lo, kh_hi;  // kernel rows inside the input, the same for the whole output row
    taps_inside(ih0, s.kernel_h, s.dilation_h, s.in_h, &kh_lo, &kh_hi);
    float* y_row = y + r * s.out_w * C;
    const float* r_row = residual ? residual + r * s.out_w * C : nullptr;
    int64_t ow = 0;
    for (; ow < ow_lo; ++ow)
      dw_any_pixel(s, x_n, w, ih0, ow * s.stride_w - s.pad_left, r_row ? r_row + ow * C : nullptr, p, y_row + ow * C);
    if (k3x3 && ow + 4 <= ow_hi) {
      const int64_t quads = (ow_hi - ow) / 4;
      if (s.stride_w == 1) dw3x3_span<1>(s, x_n, w, kh_lo, kh_hi, ih0, ow, quads, r_row, p, y_row);
      else dw3x3_span<2>(s, x_n, w, kh_lo, kh_hi, ih0, ow, quads, r_row, p, y_row);
      ow += 4 * quads;
    }
    for (; ow + 4 <= ow_hi; ow += 4)
      dw_quad(s, x_n, w, kh_lo, kh_hi, ih0, ow * s.stride_w - s.pad_left, r_row ? r_row + ow * C : nullptr, p,
              y_row + ow * C);
    for (; ow < s.out_w; ++ow)
      dw_any_pixel(s, x_n, w, ih0, ow * s.stride_w - s.pad_left, r_row ? r_row + ow * C : nullptr, p, y_row + ow * C);
  }
}

template <int V>
inline void pool_pixel(const Window2d& s, PoolKind kind, const float* x_n, int64_t ih0, int64_t iw0, int64_t c0,
                       int valid_last, float* y) {
  const int64_t C = s.channels;
  const __m256i mlast = lane_mask(valid_last);
  const bool full = valid_last >= 8;
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
        __m256 xv = v + 1 == V && !full ? _mm256_maskload_ps(xp + 8 * v, mlast) : _mm256_loadu_ps(xp + 8 * v);
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
    if (v + 1 == V && !full) _mm256_maskstore_ps(y + 8 * v, mlast, acc[v]);
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
