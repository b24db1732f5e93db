// The GP-fit linear algebra (gp_lml.h) with AVX-512F (this file only is built with -mavx512f):
// gp_lml_impl.inc over eight doubles per vector, exp as in f64_gp_screen_avx512.cc.
// No Eigen or standard-library templates here, so nothing compiled with these flags can be
// merged into code that runs on older CPUs.
#include <immintrin.h>

#include "kiln/discover/internal/f64_vexp.h"
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

inline V vexp_nonpositive(V x) { return exp_nonpositive(x); }  // f64_vexp.h

#include "kiln/discover/internal/gp_lml_impl.inc"

}  // namespace

const GpLml kF64GpLmlAvx512 = {"avx512", &evaluate, &kernel_lower, &cholesky};

}  // namespace kiln::discover::internal
