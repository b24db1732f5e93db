// The GP-fit linear algebra (gp_lml.h) with AVX2 + FMA (this file only is built with -mavx2
// -mfma): gp_lml_impl.inc over four doubles per vector, exp as in f64_gp_screen_avx2.cc.
// No Eigen or standard-library templates here, so nothing compiled with these flags can be
// merged into code that runs on older CPUs.
#include <immintrin.h>

#include "kiln/discover/internal/f64_vexp.h"
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

inline V vexp_nonpositive(V x) { return exp_nonpositive(x); }  // f64_vexp.h

#include "kiln/discover/internal/gp_lml_impl.inc"

}  // namespace

const GpLml kF64GpLmlAvx2 = {"avx2", &evaluate, &kernel_lower, &cholesky};

}  // namespace kiln::discover::internal
