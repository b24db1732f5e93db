// The GP-fit linear algebra (gp_lml.h) with AVX2 + FMA (this file only is built with -mavx2
// -mfma): gp_lml_impl.inc over four doubles per vector, exp as in f64_gp_screen_avx2.cc.
// No Eigen or standard-library templates here, so nothing compiled with these flags can be
// merged into code that runs on older CPUs.
#include <immintrin.h>

#include "kiln/discover/internal/gp_lml.h"

namespace kiln::discover::internal {
namespace {

using V = __m256d;
constexpr int64_t kW = 4;
inline V vload(const double* p) { return _mm256_loadu_pd(p); }
inline void vstore(double* p, V v) { _mm256_storeu_pd(p, v); }
inline V vset(double x) { return _mm256_set1_pd(x); }
inline V vzero() { return _mm256_setzero_pd(); }
inline V vadd(V a, V b) { return _mm256_add_pd(a, b); }
inline V vsub(V a, V b) { return _mm256_sub_pd(a, b); }
inline V vmul(V a, V b) { return _mm256_mul_pd(a, b); }
inline V vfmadd(V a, V b, V c) { return _mm256_fmadd_pd(a, b, c); }
inline V vfnmadd(V a, V b, V c) { return _mm256_fnmadd_pd(a, b, c); }
inline V vsqrt(V a) { return _mm256_sqrt_pd(a); }
inline double vhsum(V v) {
  __m128d lo = _mm256_castpd256_pd128(v), hi = _mm256_extractf128_pd(v, 1);
  lo = _mm_add_pd(lo, hi);
  return _mm_cvtsd_f64(_mm_add_sd(lo, _mm_unpackhi_pd(lo, lo)));
}

// exp(x) for x <= 0, exactly 0 below -700: x = n ln2 + r (ln2 split in two), Taylor to degree
// 13, times 2^n built in the exponent bits (f64_gp_screen_avx2.cc).
inline V vexp_nonpositive(V x) {
  const V live = _mm256_cmp_pd(x, _mm256_set1_pd(-700.0), _CMP_GE_OQ);
  x = _mm256_max_pd(x, _mm256_set1_pd(-700.0));
  const V n = _mm256_round_pd(_mm256_mul_pd(x, _mm256_set1_pd(1.4426950408889634)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  V r = _mm256_fnmadd_pd(n, _mm256_set1_pd(0.6931471805599453), x);
  r = _mm256_fnmadd_pd(n, _mm256_set1_pd(2.3190468138462996e-17), r);
  V p = _mm256_set1_pd(1.6059043836821613e-10);
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
  const __m256i e = _mm256_slli_epi64(_mm256_add_epi64(_mm256_cvtepi32_epi64(_mm256_cvtpd_epi32(n)), _mm256_set1_epi64x(1023)), 52);
  return _mm256_and_pd(live, _mm256_mul_pd(p, _mm256_castsi256_pd(e)));
}

#include "kiln/discover/internal/gp_lml_impl.inc"

}  // namespace

const GpLml kF64GpLmlAvx2 = {"avx2", &evaluate, &kernel_lower, &cholesky};

}  // namespace kiln::discover::internal
