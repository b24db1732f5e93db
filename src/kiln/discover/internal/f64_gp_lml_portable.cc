// The GP-fit linear algebra (gp_lml.h) for the baseline ISA: gp_lml_impl.inc over SSE2 pairs of
// doubles (plain doubles elsewhere), fused multiply-adds as a multiply and an add, exp rounded by
// the 1.5 * 2^52 shift (no SSE4.1 round) and otherwise the other files' series. Tested, like the
// others, against Eigen and the definitions (gp_lml_test.cc).
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "kiln/discover/internal/gp_lml.h"

namespace kiln::discover::internal {
namespace {

#if defined(__SSE2__)
using V = __m128d;
constexpr int64_t kW = 2;
inline V vload(const double* p) { return _mm_loadu_pd(p); }
inline void vstore(double* p, V v) { _mm_storeu_pd(p, v); }
inline V vset(double x) { return _mm_set1_pd(x); }
inline V vzero() { return _mm_setzero_pd(); }
inline V vadd(V a, V b) { return _mm_add_pd(a, b); }
inline V vsub(V a, V b) { return _mm_sub_pd(a, b); }
inline V vmul(V a, V b) { return _mm_mul_pd(a, b); }
inline V vfmadd(V a, V b, V c) { return _mm_add_pd(_mm_mul_pd(a, b), c); }
inline V vfnmadd(V a, V b, V c) { return _mm_sub_pd(c, _mm_mul_pd(a, b)); }
inline V vsqrt(V a) { return _mm_sqrt_pd(a); }
inline double vhsum(V v) { return _mm_cvtsd_f64(_mm_add_sd(v, _mm_unpackhi_pd(v, v))); }
inline V vexp_nonpositive(V x) {
  const V live = _mm_cmpge_pd(x, _mm_set1_pd(-700.0));
  x = _mm_max_pd(x, _mm_set1_pd(-700.0));
  // t = x log2(e) + 1.5 2^52 rounds to an integer n in the low mantissa bits.
  const V shift = _mm_set1_pd(6755399441055744.0);
  const V t = _mm_add_pd(_mm_mul_pd(x, _mm_set1_pd(1.4426950408889634)), shift);
  const V n = _mm_sub_pd(t, shift);
  V r = _mm_sub_pd(x, _mm_mul_pd(n, _mm_set1_pd(0.6931471805599453)));
  r = _mm_sub_pd(r, _mm_mul_pd(n, _mm_set1_pd(2.3190468138462996e-17)));
  static const double c[13] = {2.08767569878681e-09, 2.505210838544172e-08, 2.755731922398589e-07,
                               2.7557319223985893e-06, 2.48015873015873e-05, 0.0001984126984126984,
                               0.001388888888888889, 0.008333333333333333, 0.041666666666666664,
                               0.16666666666666666, 0.5, 1.0, 1.0};
  V p = _mm_set1_pd(1.6059043836821613e-10);
  for (int q = 0; q < 13; ++q) p = _mm_add_pd(_mm_mul_pd(p, r), _mm_set1_pd(c[q]));
  const __m128i e = _mm_slli_epi64(_mm_add_epi64(_mm_sub_epi64(_mm_castpd_si128(t), _mm_castpd_si128(shift)), _mm_set1_epi64x(1023)), 52);
  return _mm_and_pd(live, _mm_mul_pd(p, _mm_castsi128_pd(e)));
}
#else
using V = double;
constexpr int64_t kW = 1;
inline V vload(const double* p) { return *p; }
inline void vstore(double* p, V v) { *p = v; }
inline V vset(double x) { return x; }
inline V vzero() { return 0.0; }
inline V vadd(V a, V b) { return a + b; }
inline V vsub(V a, V b) { return a - b; }
inline V vmul(V a, V b) { return a * b; }
inline V vfmadd(V a, V b, V c) { return a * b + c; }
inline V vfnmadd(V a, V b, V c) { return c - a * b; }
inline V vsqrt(V a) { return __builtin_sqrt(a); }
inline double vhsum(V v) { return v; }
inline V vexp_nonpositive(V x) { return x < -700.0 ? 0.0 : __builtin_exp(x); }
#endif

#include "kiln/discover/internal/gp_lml_impl.inc"

}  // namespace

const GpLml kF64GpLmlPortable = {"portable", &evaluate, &kernel_lower, &cholesky};

}  // namespace kiln::discover::internal
