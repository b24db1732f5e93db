// exp(x) for x <= 0 on vectors of doubles, exactly 0 below -700, shared by the GP units of each
// instruction set (the pool screen, f64_gp_screen_*.cc, and the likelihood, f64_gp_lml_*.cc):
// Taylor to degree 13 after an exact reduction by ln 2 (n = round(x / ln 2), r = x - n ln 2 in two
// parts), times 2^n (scalef on AVX-512, exponent bits on AVX2). Relative error about 2e-16.
// Every function is `static inline` and compiled only when the including unit's flags allow it
// (-mavx512f, or -mavx2 -mfma), so no vector code leaks into units for older CPUs.
//
//   const __m512d e = exp_nonpositive(_mm512_set1_pd(-1.5));  // e^-1.5 in every lane
#pragma once

#include <immintrin.h>

namespace kiln::discover::internal {

#if defined(__AVX512F__)
static inline __m512d exp_nonpositive(__m512d x) {
  const __mmask8 live = _mm512_cmp_pd_mask(x, _mm512_set1_pd(-700.0), _CMP_GE_OQ);
  x = _mm512_max_pd(x, _mm512_set1_pd(-700.0));
  const __m512d n = _mm512_roundscale_pd(_mm512_mul_pd(x, _mm512_set1_pd(1.4426950408889634)),
                                         _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512d r = _mm512_fnmadd_pd(n, _mm512_set1_pd(0.6931471805599453), x);
  r = _mm512_fnmadd_pd(n, _mm512_set1_pd(2.3190468138462996e-17), r);
  // 1/k! for k = 13 .. 2.
  __m512d p = _mm512_set1_pd(1.6059043836821613e-10);
  p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(2.08767569878681e-09));
  p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(2.505210838544172e-08));
  p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(2.755731922398589e-07));
  p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(2.7557319223985893e-06));
  p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(2.48015873015873e-05));
  p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(0.0001984126984126984));
  p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(0.001388888888888889));
  p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(0.008333333333333333));
  p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(0.041666666666666664));
  p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(0.16666666666666666));
  p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(0.5));
  p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(1.0));
  p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(1.0));
  return _mm512_maskz_mov_pd(live, _mm512_scalef_pd(p, n));
}
#endif

#if defined(__AVX2__) && defined(__FMA__)
static inline __m256d exp_nonpositive(__m256d x) {
  const __m256d live = _mm256_cmp_pd(x, _mm256_set1_pd(-700.0), _CMP_GE_OQ);
  x = _mm256_max_pd(x, _mm256_set1_pd(-700.0));
  const __m256d n = _mm256_round_pd(_mm256_mul_pd(x, _mm256_set1_pd(1.4426950408889634)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256d r = _mm256_fnmadd_pd(n, _mm256_set1_pd(0.6931471805599453), x);
  r = _mm256_fnmadd_pd(n, _mm256_set1_pd(2.3190468138462996e-17), r);
  // 1/k! for k = 13 .. 2.
  __m256d p = _mm256_set1_pd(1.6059043836821613e-10);
  p = _mm256_fmadd_pd(p, r, _mm256_set1_pd(2.08767569878681e-09));
  p = _mm256_fmadd_pd(p, r, _mm256_set1_pd(2.505210838544172e-08));
  p = _mm256_fmadd_pd(p, r, _mm256_set1_pd(2.755731922398589e-07));
  p = _mm256_fmadd_pd(p, r, _mm256_set1_pd(2.7557319223985893e-06));
  p = _mm256_fmadd_pd(p, r, _mm256_set1_pd(2.48015873015873e-05));
  p = _mm256_fmadd_pd(p, r, _mm256_set1_pd(0.0001984126984126984));
  p = _mm256_fmadd_pd(p, r, _mm256_set1_pd(0.001388888888888889));
  p = _mm256_fmadd_pd(p, r, _mm256_set1_pd(0.008333333333333333));
  p = _mm256_fmadd_pd(p, r, _mm256_set1_pd(0.041666666666666664));
  p = _mm256_fmadd_pd(p, r, _mm256_set1_pd(0.16666666666666666));
  p = _mm256_fmadd_pd(p, r, _mm256_set1_pd(0.5));
  p = _mm256_fmadd_pd(p, r, _mm256_set1_pd(1.0));
  p = _mm256_fmadd_pd(p, r, _mm256_set1_pd(1.0));
  // n in [-1010, 0]: 2^n is a normal double.
  const __m256i e = _mm256_slli_epi64(
      _mm256_add_epi64(_mm256_cvtepi32_epi64(_mm256_cvtpd_epi32(n)), _mm256_set1_epi64x(1023)), 52);
  return _mm256_and_pd(live, _mm256_mul_pd(p, _mm256_castsi256_pd(e)));
}
#endif

}  // namespace kiln::discover::internal
