// The AVX-512 int16-activation convolution (kernels/qs16_conv.h), shared by qs16_conv_avx512.cc
// (vpmaddwd + vpaddd) and qs16_conv_avx512vnni.cc (vpdpwssd): tiles of 8 output rows x 32 columns,
// 16 zmm of int32 sums. Per pair of input values: one broadcast per row, a multiply-add of the
// pair against the pair's two weight vectors. Everything here has internal linkage: each including
// unit (built with its own flags) gets its own copy. Include only from files built with -mavx512f
// -mavx512bw -mavx512vl.
//
//   struct Dot { static __m512i add(__m512i acc, __m512i x, __m512i w); };
//   void qs16_conv_avx512(...) { q16_avx512::conv<Dot>(a, w, row_begin, row_end, c, ldc, p); }
#pragma once

#include <immintrin.h>

#include "kiln/nn/kernels/internal/qs16_ukernels.h"

namespace kiln::nn::kernels::q16_avx512 {
namespace {

constexpr int kMr = 8;

inline int32_t load_pair(const int16_t* x) {
  int32_t v;
  __builtin_memcpy(&v, x, 4);
  return v;
}

// Requantises or dequantises 16 sums and stores those of `mask`.
inline void store16(__m512i acc, __m512 scale, const QParams& p, void* c, __mmask16 mask) {
  const __m512 f = _mm512_mul_ps(_mm512_cvtepi32_ps(acc), scale);
  if (p.out == QOutput::kFloat) {
    _mm512_mask_storeu_ps(c, mask, _mm512_min_ps(_mm512_max_ps(f, _mm512_set1_ps(p.flo)), _mm512_set1_ps(p.fhi)));
    return;
  }
  const __m512 lo = _mm512_set1_ps(static_cast<float>(p.qmin - p.out_zero_point));
  const __m512 hi = _mm512_set1_ps(static_cast<float>(p.qmax - p.out_zero_point));
  const __m512i q = _mm512_add_epi32(_mm512_cvtps_epi32(_mm512_min_ps(_mm512_max_ps(f, lo), hi)),
                                     _mm512_set1_epi32(p.out_zero_point));
  const __m128i bytes = _mm_xor_si128(_mm512_cvtepi32_epi8(q), _mm_set1_epi8(static_cast<char>(p.out_xor)));
  _mm_mask_storeu_epi8(c, mask, bytes);
}

template <typename Dot>
void conv(const Q16Rows& a, const Q16Weights& w, int64_t row_begin, int64_t row_end, void* c, int64_t ldc,
          const QParams& p) {
  constexpr int64_t nr = kQ16PanelColumns;
  const int64_t es = p.out == QOutput::kFloat ? 4 : 1;
  for (int64_t panel = 0; panel * nr < w.n; ++panel) {
    const uint8_t* pw = w.data + panel * w.panel_stride;
    const __m512i bias0 = _mm512_loadu_si512(pw), bias1 = _mm512_loadu_si512(pw + 64);
    const __m512 scale0 = _mm512_loadu_ps(pw + nr * 4), scale1 = _mm512_loadu_ps(pw + nr * 4 + 64);
    const uint8_t* pairs = pw + nr * 8;
    const int64_t j0 = panel * nr, cols = w.n - j0 < nr ? w.n - j0 : nr;
    const __mmask16 m0 = cols >= 16 ? __mmask16(0xFFFF) : static_cast<__mmask16>((1u << cols) - 1);
    const __mmask16 m1 = cols >= 32 ? __mmask16(0xFFFF) : cols <= 16 ? __mmask16(0) : static_cast<__mmask16>((1u << (cols - 16)) - 1);
    for (int64_t r0 = row_begin; r0 < row_end; r0 += kMr) {
      const int rows = row_end - r0 < kMr ? static_cast<int>(row_end - r0) : kMr;
      const int16_t* x[kMr];
      for (int i = 0; i < kMr; ++i) x[i] = a.base + a.row_offset[r0 + (i < rows ? i : rows - 1)];
      __m512i acc[kMr][2];
      for (int i = 0; i < kMr; ++i) {
        acc[i][0] = bias0;
        acc[i][1] = bias1;
      }
      const uint8_t* wp = pairs;
      for (int64_t t = 0; t < w.ks; ++t) {
        const int64_t off = t * a.tap_stride;
        for (int64_t q = 0; q < w.pairs; ++q, wp += nr * 4) {
          const __m512i w0 = _mm512_load_si512(wp), w1 = _mm512_load_si512(wp + 64);
          for (int i = 0; i < kMr; ++i) {
            const __m512i b = _mm512_set1_epi32(load_pair(x[i] + off + 2 * q));
            acc[i][0] = Dot::add(acc[i][0], b, w0);
            acc[i][1] = Dot::add(acc[i][1], b, w1);
          }
        }
      }
      for (int i = 0; i < rows; ++i) {
        uint8_t* out = static_cast<uint8_t*>(c) + ((r0 + i) * ldc + j0) * es;
        store16(acc[i][0], scale0, p, out, m0);
        if (m1) store16(acc[i][1], scale1, p, out + 16 * es, m1);
      }
    }
  }
}

}  // namespace
}  // namespace kiln::nn::kernels::q16_avx512
