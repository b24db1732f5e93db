// The AVX-512 int16-activation convolution without VNNI (vpmaddwd + vpaddd;
// internal/qs16_conv_avx512.h) and the int16 QuantizeLinear.
#include <immintrin.h>

#include "kiln/nn/kernels/internal/qs16_conv_avx512.h"

namespace kiln::nn::kernels {
namespace {

struct MaddDot {
  static __m512i add(__m512i acc, __m512i x, __m512i w) { return _mm512_add_epi32(acc, _mm512_madd_epi16(x, w)); }
};

}  // namespace

void qs16_conv_avx512(const Q16Rows& a, const Q16Weights& w, int64_t row_begin, int64_t row_end, void* c,
                      int64_t ldc, const QParams& p) {
  q16_avx512::conv<MaddDot>(a, w, row_begin, row_end, c, ldc, p);
}

void qs16_quantize_avx512(const float* x, int64_t n, float scale, int32_t zero_point, int16_t* y) {
  const __m512 s = _mm512_set1_ps(scale), z = _mm512_set1_ps(static_cast<float>(zero_point));
  const __m512 lo = _mm512_set1_ps(-32768.f), hi = _mm512_set1_ps(32767.f);
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = n - i >= 16 ? __mmask16(0xFFFF) : static_cast<__mmask16>((1u << (n - i)) - 1);
    const __m512 v = _mm512_maskz_loadu_ps(m, x + i);
    __m512 r = _mm512_roundscale_ps(_mm512_div_ps(v, s), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    r = _mm512_min_ps(_mm512_max_ps(_mm512_add_ps(r, z), lo), hi);
    const __mmask16 ordered = _mm512_cmp_ps_mask(v, v, _CMP_ORD_Q);  // NaN -> 0
    _mm512_mask_cvtsepi32_storeu_epi16(y + i, m, _mm512_maskz_cvtps_epi32(ordered, r));
  }
}

}  // namespace kiln::nn::kernels
