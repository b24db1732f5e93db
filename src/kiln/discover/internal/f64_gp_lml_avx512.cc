// The GP-fit linear algebra (gp_lml.h) with AVX-512F (this file only is built with -mavx512f):
// gp_lml_impl.inc over eight doubles per vector, exp as in f64_gp_screen_avx512.cc.
// No Eigen or standard-library templates here, so nothing compiled with these flags can be
// merged into code that runs on older CPUs.
#include <immintrin.h>

#include "kiln/discover/internal/gp_lml.h"

namespace kiln::discover::internal {
namespace {

using V = __m512d;
constexpr int64_t kW = 8;
inline V vload(const double* p) { return _mm512_loadu_pd(p); }
inline void vstore(double* p, V v) { _mm512_storeu_pd(p, v); }
inline V vset(double x) { return _mm512_set1_pd(x); }
inline V vzero() { return _mm512_setzero_pd(); }
inline V vadd(V a, V b) { return _mm512_add_pd(a, b); }
inline V vsub(V a, V b) { return _mm512_sub_pd(a, b); }
inline V vmul(V a, V b) { return _mm512_mul_pd(a, b); }
inline V vfmadd(V a, V b, V c) { return _mm512_fmadd_pd(a, b, c); }
inline V vfnmadd(V a, V b, V c) { return _mm512_fnmadd_pd(a, b, c); }
inline V vsqrt(V a) { return _mm512_sqrt_pd(a); }
inline double vhsum(V v) {
  __m256d h = _mm256_add_pd(_mm512_castpd512_pd256(v), _mm512_extractf64x4_pd(v, 1));
  __m128d lo = _mm_add_pd(_mm256_castpd256_pd128(h), _mm256_extractf128_pd(h, 1));
  return _mm_cvtsd_f64(_mm_add_sd(lo, _mm_unpackhi_pd(lo, lo)));
}

// exp(x) for x <= 0, exactly 0 below -700 (f64_gp_screen_avx512.cc): Taylor to degree 13 after
// an exact reduction by ln2, p * 2^n by scalef.
inline V vexp_nonpositive(V x) {
  const __mmask8 live = _mm512_cmp_pd_mask(x, _mm512_set1_pd(-700.0), _CMP_GE_OQ);
  x = _mm512_max_pd(x, _mm512_set1_pd(-700.0));
  const V n = _mm512_roundscale_pd(_mm512_mul_pd(x, _mm512_set1_pd(1.4426950408889634)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  V r = _mm512_fnmadd_pd(n, _mm512_set1_pd(0.6931471805599453), x);
  r = _mm512_fnmadd_pd(n, _mm512_set1_pd(2.3190468138462996e-17), r);
  V p = _mm512_set1_pd(1.6059043836821613e-10);
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

#include "kiln/discover/internal/gp_lml_impl.inc"

}  // namespace

const GpLml kF64GpLmlAvx512 = {"avx512", &evaluate, &kernel_lower, &cholesky};

}  // namespace kiln::discover::internal
