// int8 micro-kernels in portable C++: GEMM / IGEMM 4 x 8 tiles, depthwise convolution, per-tensor
// quantize / dequantize. The path for CPUs without AVX2 (and KILN_ISA=portable); the compiler
// vectorises the inner loops with the baseline SSE2 of x86-64.
#include <algorithm>
#include <cmath>
#include <cstdint>

#include "kiln/nn/kernels/internal/qs8_ukernels.h"
#include "kiln/nn/kernels/qgemm.h"

namespace kiln::nn::kernels {
namespace {

constexpr int kMR = 4;
constexpr int kNR = 8;

inline int32_t act(uint8_t raw, uint8_t x) { return static_cast<int8_t>(static_cast<uint8_t>(raw ^ x)); }

template <int MR>
const uint8_t* accumulate(int32_t (&acc)[MR][kNR], const uint8_t* const (&a)[MR], int64_t kc, const uint8_t* g,
                          uint8_t x) {
  for (int64_t k = 0; k < kc; k += 4, g += kNR * 4) {
    const int64_t len = kc - k < 4 ? kc - k : 4;
    for (int i = 0; i < MR; ++i) {
      int32_t av[4] = {0, 0, 0, 0};
      for (int64_t q = 0; q < len; ++q) av[q] = act(a[i][k + q], x);
      for (int j = 0; j < kNR; ++j) {
        const int8_t* wj = reinterpret_cast<const int8_t*>(g + j * 4);
        // Wrapping int32 accumulation (as the reference), without signed-overflow UB.
        acc[i][j] = static_cast<int32_t>(static_cast<uint32_t>(acc[i][j]) +
                                         static_cast<uint32_t>(av[0] * wj[0] + av[1] * wj[1] + av[2] * wj[2] + av[3] * wj[3]));
      }
    }
  }
  return g;
}

template <int MR>
void init(int32_t (&acc)[MR][kNR], const uint8_t* w) {
  const int32_t* b = reinterpret_cast<const int32_t*>(w);
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < kNR; ++j) acc[i][j] = b[j];
}

template <int MR>
void finish(int32_t (&acc)[MR][kNR], const QTile& t) {
  const float* scale = reinterpret_cast<const float*>(t.w + kNR * 4);
  const int64_t es = t.params->out == QOutput::kInt8 ? 1 : 4;
  for (int i = 0; i < MR; ++i) {
    void* row = static_cast<uint8_t*>(t.c) + i * t.ldc * es;
    for (int j = 0; j < t.nc; ++j) qstore_reference(acc[i][j], scale[j], *t.params, row, j);
  }
}

template <int MR>
void gemm_tile(const QTile& t) {
  int32_t acc[MR][kNR];
  init<MR>(acc, t.w);
  const uint8_t* a[MR];
  for (int i = 0; i < MR; ++i) a[i] = t.a + i * t.lda;
  accumulate<MR>(acc, a, t.kc, t.w + kNR * 8, t.params->a_xor);
  finish<MR>(acc, t);
}

template <int MR>
void igemm_tile(const QTile& t) {
  int32_t acc[MR][kNR];
  init<MR>(acc, t.w);
  const uint8_t* g = t.w + kNR * 8;
  const uint8_t* const* ptrs = t.a_ptrs;
  for (int64_t s = 0; s < t.ks; ++s, ptrs += kMR) {
    const uint8_t* a[MR];
    for (int i = 0; i < MR; ++i) a[i] = ptrs[i] == t.zero ? ptrs[i] : ptrs[i] + t.a_offset;
    g = accumulate<MR>(acc, a, t.kc, g, t.params->a_xor);
  }
  finish<MR>(acc, t);
}

void gemm_any(const QTile& t) {
  switch (t.mr) {
    case 1: gemm_tile<1>(t); break;
    case 2: gemm_tile<2>(t); break;
    case 3: gemm_tile<3>(t); break;
    default: gemm_tile<4>(t); break;
  }
}
void igemm_any(const QTile& t) {
  switch (t.mr) {
    case 1: igemm_tile<1>(t); break;
    case 2: igemm_tile<2>(t); break;
    case 3: igemm_tile<3>(t); break;
    default: igemm_tile<4>(t); break;
  }
}

}  // namespace

size_t qs8_dwconv_portable_scratch(const QWindow&) { return 0; }

void qs8_dwconv_portable(const QWindow& s, const uint8_t* x, const uint8_t* w, int32_t a_zero, const QParams& p,
                         void* y, int64_t row_begin, int64_t row_end, void*) {
  const int64_t C = s.channels, taps = s.kernel_h * s.kernel_w;
  const int64_t block_bytes = 16 * 8 + taps * 16 * 2;
  const int64_t es = p.out == QOutput::kInt8 ? 1 : 4;
  for (int64_t row = row_begin; row < row_end; ++row) {
    const int64_t n = row / s.out_h, oh = row % s.out_h;
    for (int64_t ow = 0; ow < s.out_w; ++ow) {
      void* yp = static_cast<uint8_t*>(y) + ((n * s.out_h + oh) * s.out_w + ow) * C * es;
      for (int64_t c = 0; c < C; ++c) {
        const uint8_t* blk = w + (c / 16) * block_bytes;
        const int64_t j = c % 16;
        int32_t acc = reinterpret_cast<const int32_t*>(blk)[j];
        const int16_t* wt = reinterpret_cast<const int16_t*>(blk + 128);
        for (int64_t kh = 0; kh < s.kernel_h; ++kh) {
          const int64_t ih = oh * s.stride_h - s.pad_top + kh * s.dilation_h;
          if (ih < 0 || ih >= s.in_h) continue;
          for (int64_t kw = 0; kw < s.kernel_w; ++kw) {
            const int64_t iw = ow * s.stride_w - s.pad_left + kw * s.dilation_w;
            if (iw < 0 || iw >= s.in_w) continue;
            const int32_t xv = act(x[((n * s.in_h + ih) * s.in_w + iw) * C + c], p.a_xor) - a_zero;
            acc = static_cast<int32_t>(static_cast<uint32_t>(acc) + static_cast<uint32_t>(xv * wt[(kh * s.kernel_w + kw) * 16 + j]));
          }
        }
        qstore_reference(acc, reinterpret_cast<const float*>(blk + 64)[j], p, yp, c);
      }
    }
  }
}

void qs8_quantize_portable(const float* x, int64_t n, float scale, int32_t zero_point, bool is_unsigned, void* y) {
  const float lo = is_unsigned ? 0.f : -128.f, hi = is_unsigned ? 255.f : 127.f;
  uint8_t* out = static_cast<uint8_t*>(y);
  for (int64_t i = 0; i < n; ++i) {
    float v = std::nearbyint(x[i] / scale) + static_cast<float>(zero_point);
    if (std::isnan(v)) v = 0.f;
    v = v < lo ? lo : (v > hi ? hi : v);
    out[i] = static_cast<uint8_t>(static_cast<int32_t>(v));
  }
}

void qs8_dequantize_portable(const void* x, int64_t n, float scale, int32_t zero_point, bool is_unsigned, float* y) {
  const uint8_t* in = static_cast<const uint8_t*>(x);
  for (int64_t i = 0; i < n; ++i) {
    const int32_t v = is_unsigned ? static_cast<int32_t>(in[i]) : static_cast<int32_t>(static_cast<int8_t>(in[i]));
    y[i] = static_cast<float>(v - zero_point) * scale;
  }
}

const QGemmConfig kQs8GemmPortable = {"qs8_gemm_portable", kMR, kNR, false, QWeightLayout::kGroup4, gemm_any,
                                      igemm_any};

}  // namespace kiln::nn::kernels

namespace kiln::nn::kernels {

void qs8_binary_portable(const uint8_t* a, const uint8_t* b, int64_t n, const QBinaryParams& p, uint8_t* y) {
  for (int64_t i = 0; i < n; ++i) {
    const int32_t qa = p.a_unsigned ? a[i] : static_cast<int8_t>(a[i]);
    const int32_t qb = p.b_unsigned ? b[i] : static_cast<int8_t>(b[i]);
    const float va = static_cast<float>(qa - p.a_zero) * p.a_scale;
    const float vb = static_cast<float>(qb - p.b_zero) * p.b_scale;
    const float v = p.mul ? va * vb : va + vb;
    float q = std::nearbyint(v / p.y_scale) + static_cast<float>(p.y_zero);
    q = std::min(std::max(q, static_cast<float>(p.qmin)), static_cast<float>(p.qmax));
    y[i] = static_cast<uint8_t>(static_cast<int32_t>(q));
  }
}

}  // namespace kiln::nn::kernels
