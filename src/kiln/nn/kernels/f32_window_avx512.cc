// NHWC depthwise convolution for AVX-512F: 16 channels per vector, any channel count (the last
// vector of a pixel is a lane-masked load and store, which costs nothing extra with AVX-512).
// Pooling and global average pooling are memory-bound and stay on the AVX2 kernels
// (window.cc puts the three together). Built with -mavx512f (+dq/bw/vl) -mfma; everything here
// has internal linkage and no standard-library template is used, so no AVX-512 code can be
// picked by the linker for a caller on another CPU.
#include <immintrin.h>

#include <cstdint>

#include "kiln/nn/kernels/internal/avx512_math.h"
#include "kiln/nn/kernels/internal/window_span.h"
#include "kiln/nn/kernels/window.h"

namespace kiln::nn::kernels {
namespace {

using avx512::activate;
using avx512::lane_mask;

inline void finish(__m512 v, const float* residual, float* y, __mmask16 m, const GemmParams& p) {
  if (residual) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, residual));
  _mm512_mask_storeu_ps(y, m, activate(v, p));
}

// Channels [c, c + 16 * V) of one output pixel whose taps inside the input are rows
// [kh_lo, kh_hi) x columns [kw_lo, kw_hi) of the kernel (zero padding elsewhere).
template <int V>
inline void dw_pixel_block(const Window2d& s, const float* x_n, const float* w, int64_t ih0, int64_t iw0,
                           int64_t kh_lo, int64_t kh_hi, int64_t kw_lo, int64_t kw_hi, int64_t c,
                           const float* residual, const GemmParams& p, float* y) {
  const int64_t C = s.channels;
  __mmask16 m[V];
  __m512 acc[V];
#pragma GCC unroll 4
  for (int v = 0; v < V; ++v) {
    m[v] = lane_mask(C - c - 16 * v);
    acc[v] = _mm512_maskz_loadu_ps(m[v], w + c + 16 * v);
  }
  for (int64_t kh = kh_lo; kh < kh_hi; ++kh) {
    const float* xrow = x_n + (ih0 + kh * s.dilation_h) * s.in_w * C + c;
    const float* wt = w + C + kh * s.kernel_w * C + c;
    for (int64_t kw = kw_lo; kw < kw_hi; ++kw) {
      const float* xp = xrow + (iw0 + kw * s.dilation_w) * C;
      const float* wp = wt + kw * C;
#pragma GCC unroll 4
      for (int v = 0; v < V; ++v)
        acc[v] = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m[v], xp + 16 * v), _mm512_maskz_loadu_ps(m[v], wp + 16 * v),
                                 acc[v]);
    }
  }
#pragma GCC unroll 4
  for (int v = 0; v < V; ++v)
    finish(acc[v], residual ? residual + c + 16 * v : nullptr, y + c + 16 * v, m[v], p);
}

// One output pixel (any position: taps outside the input are skipped, i.e. zero padding), up to
// 64 channels per pass over the window.
void dw_pixel(const Window2d& s, const float* x_n, const float* w, int64_t ih0, int64_t iw0, const float* residual,
              const GemmParams& p, float* y) {
  int64_t kh_lo, kh_hi, kw_lo, kw_hi;
  taps_inside(ih0, s.kernel_h, s.dilation_h, s.in_h, &kh_lo, &kh_hi);
  taps_inside(iw0, s.kernel_w, s.dilation_w, s.in_w, &kw_lo, &kw_hi);
  const int64_t C = s.channels;
  int64_t c = 0;
  for (; c + 48 < C; c += 64)
    dw_pixel_block<4>(s, x_n, w, ih0, iw0, kh_lo, kh_hi, kw_lo, kw_hi, c, residual, p, y);
  const int64_t rest = C - c;
  if (rest > 32) dw_pixel_block<3>(s, x_n, w, ih0, iw0, kh_lo, kh_hi, kw_lo, kw_hi, c, residual, p, y);
  else if (rest > 16) dw_pixel_block<2>(s, x_n, w, ih0, iw0, kh_lo, kh_hi, kw_lo, kw_hi, c, residual, p, y);
  else if (rest > 0) dw_pixel_block<1>(s, x_n, w, ih0, iw0, kh_lo, kh_hi, kw_lo, kw_hi, c, residual, p, y);
}

// Four neighbouring interior pixels (whole windows inside the input columns; kernel rows
// [kh_lo, kh_hi) inside the input), any kernel size: each weight vector serves four pixels.
void dw_quad(const Window2d& s, const float* x_n, const float* w, int64_t kh_lo, int64_t kh_hi, int64_t ih0,
             int64_t iw0, const float* residual, const GemmParams& p, float* y) {
  const int64_t C = s.channels, step = s.stride_w * C;
  for (int64_t c = 0; c < C; c += 16) {
    const __mmask16 m = lane_mask(C - c);
    const __m512 b = _mm512_maskz_loadu_ps(m, w + c);
    __m512 a[4] = {b, b, b, b};
    for (int64_t kh = kh_lo; kh < kh_hi; ++kh) {
      const float* xrow = x_n + (ih0 + kh * s.dilation_h) * s.in_w * C + iw0 * C + c;
      const float* wt = w + C + kh * s.kernel_w * C + c;
      for (int64_t kw = 0; kw < s.kernel_w; ++kw, wt += C) {
        const __m512 wv = _mm512_maskz_loadu_ps(m, wt);
        const float* xp = xrow + kw * s.dilation_w * C;
#pragma GCC unroll 4
        for (int j = 0; j < 4; ++j) a[j] = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, xp + j * step), wv, a[j]);
      }
    }
#pragma GCC unroll 4
    for (int j = 0; j < 4; ++j) finish(a[j], residual ? residual + j * C + c : nullptr, y + j * C + c, m, p);
  }
}

// K x K kernels (dilation 1, horizontal stride S) on interior pixels: the K*K weight vectors of a
// 16-channel block stay in registers while the block slides along the row P pixels at a time,
// and each input vector loaded serves every pixel whose window covers it (3x3, stride 1, P = 8:
// 10 loads per kernel row for 24 FMAs).
template <int K, int S, int P>
void dw_span(const Window2d& s, const float* x_n, const float* w, int64_t kh_lo, int64_t kh_hi, int64_t ih0,
             int64_t ow_begin, int64_t blocks, const float* r_row, const GemmParams& p, float* y_row) {
  const int64_t C = s.channels;
  constexpr int kInputs = (P - 1) * S + K;  // input pixels under P neighbouring windows
  for (int64_t c = 0; c < C; c += 16) {
    const __mmask16 m = lane_mask(C - c);
    __m512 wk[K * K];
#pragma GCC unroll 25
    for (int t = 0; t < K * K; ++t) wk[t] = _mm512_maskz_loadu_ps(m, w + C + t * C + c);
    const __m512 bias = _mm512_maskz_loadu_ps(m, w + c);
    for (int64_t q = 0; q < blocks; ++q) {
      const int64_t ow = ow_begin + P * q;
      const int64_t iw0 = ow * S - s.pad_left;
      __m512 a[P];
#pragma GCC unroll 8
      for (int j = 0; j < P; ++j) a[j] = bias;
#pragma GCC unroll 5
      for (int kh = 0; kh < K; ++kh) {
        if (kh < kh_lo || kh >= kh_hi) continue;
        const float* xp = x_n + ((ih0 + kh) * s.in_w + iw0) * C + c;
#pragma GCC unroll 24
        for (int k = 0; k < kInputs; ++k) {
          const __m512 v = _mm512_maskz_loadu_ps(m, xp + k * C);
#pragma GCC unroll 8
          for (int j = 0; j < P; ++j) {
            const int t = k - S * j;
            if (t >= 0 && t < K) a[j] = _mm512_fmadd_ps(v, wk[kh * K + t], a[j]);
          }
        }
      }
#pragma GCC unroll 8
      for (int j = 0; j < P; ++j)
        finish(a[j], r_row ? r_row + (ow + j) * C + c : nullptr, y_row + (ow + j) * C + c, m, p);
    }
  }
}

using SpanFn = void (*)(const Window2d&, const float*, const float*, int64_t, int64_t, int64_t, int64_t, int64_t,
                        const float*, const GemmParams&, float*);

// The register-resident span for this geometry, and how many pixels it handles per step.
SpanFn span_for(const Window2d& s, int* pixels) {
  if (s.dilation_h != 1 || s.dilation_w != 1 || s.kernel_h != s.kernel_w) return nullptr;
  if (s.kernel_w == 3) {
    *pixels = 8;
    if (s.stride_w == 1) return dw_span<3, 1, 8>;
    if (s.stride_w == 2) return dw_span<3, 2, 8>;
  }
  if (s.kernel_w == 5) {
    *pixels = 4;
    if (s.stride_w == 1) return dw_span<5, 1, 4>;
    if (s.stride_w == 2) return dw_span<5, 2, 4>;
  }
  return nullptr;
}

void dwconv(const Window2d& s, const float* x, const float* w, const float* residual, const GemmParams& p, float* y,
            int64_t row_begin, int64_t row_end) {
  const int64_t C = s.channels;
  int64_t ow_lo, ow_hi;  // output columns whose whole window lies inside the input
  interior_columns(s, &ow_lo, &ow_hi);
  int pixels = 0;
  const SpanFn span = span_for(s, &pixels);
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
      dw_pixel(s, x_n, w, ih0, ow * s.stride_w - s.pad_left, r_row ? r_row + ow * C : nullptr, p, y_row + ow * C);
    if (span && ow + pixels <= ow_hi) {
      const int64_t blocks = (ow_hi - ow) / pixels;
      span(s, x_n, w, kh_lo, kh_hi, ih0, ow, blocks, r_row, p, y_row);
      ow += pixels * blocks;
    }
    for (; ow + 4 <= ow_hi; ow += 4)
      dw_quad(s, x_n, w, kh_lo, kh_hi, ih0, ow * s.stride_w - s.pad_left, r_row ? r_row + ow * C : nullptr, p,
              y_row + ow * C);
    for (; ow < s.out_w; ++ow)
      dw_pixel(s, x_n, w, ih0, ow * s.stride_w - s.pad_left, r_row ? r_row + ow * C : nullptr, p, y_row + ow * C);
  }
}

}  // namespace

const DwConvFn kF32DwconvAvx512 = dwconv;

}  // namespace kiln::nn::kernels
