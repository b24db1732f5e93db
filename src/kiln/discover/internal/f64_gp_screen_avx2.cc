// The screen with AVX2 + FMA (this file only is built with -mavx2 -mfma): four candidates
// against four observations per step, so four independent r2 chains hide the FMA latency, and
// a vectorised exp. No Eigen or standard-library templates here, so nothing compiled with these
// flags can be merged into code that runs on older CPUs.
#include <immintrin.h>

#include "kiln/discover/internal/f64_vexp.h"
#include "kiln/discover/internal/gp_screen.h"

namespace kiln::discover::internal {
namespace {


template <bool rbf>
inline __m256d kernel_value(__m256d r2, __m256d s2) {
  if (rbf) return _mm256_mul_pd(s2, exp_nonpositive(_mm256_mul_pd(r2, _mm256_set1_pd(-0.5))));
  const __m256d s5 = _mm256_set1_pd(2.23606797749979);
  const __m256d s5r = _mm256_mul_pd(s5, _mm256_sqrt_pd(r2));
  // s2 (1 + sqrt5 r + 5/3 r2) exp(-sqrt5 r)
  const __m256d poly = _mm256_add_pd(_mm256_add_pd(_mm256_set1_pd(1.0), s5r), _mm256_mul_pd(_mm256_set1_pd(5.0 / 3.0), r2));
  return _mm256_mul_pd(_mm256_mul_pd(s2, poly), exp_nonpositive(_mm256_sub_pd(_mm256_setzero_pd(), s5r)));
}

inline double hsum(__m256d v) {
  __m128d lo = _mm256_castpd256_pd128(v), hi = _mm256_extractf128_pd(v, 1);
  lo = _mm_add_pd(lo, hi);
  return _mm_cvtsd_f64(_mm_add_sd(lo, _mm_unpackhi_pd(lo, lo)));
}

struct Nearest {
  double r2[kScreenMaxNear];
  int32_t idx[kScreenMaxNear];
  int found;
  double threshold;  // r2 a new observation must beat (+inf until k_near are found)
};

inline void insert(Nearest& s, int k_near, double r2, int32_t j) {
  if (s.found == k_near && !(r2 < s.r2[k_near - 1])) return;
  int p = s.found < k_near ? s.found++ : k_near - 1;
  while (p > 0 && s.r2[p - 1] > r2) {
    s.r2[p] = s.r2[p - 1];
    s.idx[p] = s.idx[p - 1];
    --p;
  }
  s.r2[p] = r2;
  s.idx[p] = j;
  if (s.found == k_near) s.threshold = s.r2[k_near - 1];
}

template <bool rbf>
void screen(const GpScreenArgs& a) {
  constexpr int kC = 4;  // candidates per step
  const __m256d s2 = _mm256_set1_pd(a.s2);
  // Locals, so the stores into `near` cannot make the compiler reload them.
  const int d = a.d, k_near = a.k_near;
  const int64_t n = a.n, n_pad = a.n_pad, m = a.m, ldc = a.ldc;
  const double *obs = a.obs, *alpha = a.alpha, *cand = a.cand;
  for (int64_t i0 = 0; i0 < m; i0 += kC) {
    int64_t ci[kC];
    for (int c = 0; c < kC; ++c) ci[c] = i0 + c < m ? i0 + c : m - 1;  // the tail repeats the last row
    __m256d macc[kC];
    Nearest near[kC];
#pragma GCC unroll 4
    for (int c = 0; c < kC; ++c) {
      macc[c] = _mm256_setzero_pd();
      near[c].found = 0;
      near[c].threshold = __builtin_inf();
    }
    for (int64_t j = 0; j < n_pad; j += 4) {
      __m256d r2[kC];
#pragma GCC unroll 4
      for (int c = 0; c < kC; ++c) r2[c] = _mm256_setzero_pd();
      for (int k = 0; k < d; ++k) {
        const __m256d o = _mm256_loadu_pd(obs + k * n_pad + j);
        const double* col = cand + k * ldc;
#pragma GCC unroll 4
        for (int c = 0; c < kC; ++c) {
          const __m256d t = _mm256_sub_pd(_mm256_broadcast_sd(col + ci[c]), o);
          r2[c] = _mm256_fmadd_pd(t, t, r2[c]);
        }
      }
      const __m256d al = _mm256_loadu_pd(alpha + j);
#pragma GCC unroll 4
      for (int c = 0; c < kC; ++c) {
        const int mask = _mm256_movemask_pd(_mm256_cmp_pd(r2[c], _mm256_set1_pd(near[c].threshold), _CMP_LT_OQ));
        if (mask) {
          alignas(32) double t[4];
          _mm256_store_pd(t, r2[c]);
          for (int l = 0; l < 4; ++l)
            if ((mask >> l & 1) && j + l < n) insert(near[c], k_near, t[l], static_cast<int32_t>(j + l));
        }
        macc[c] = _mm256_fmadd_pd(kernel_value<rbf>(r2[c], s2), al, macc[c]);
      }
    }
    for (int c = 0; c < kC && i0 + c < m; ++c) {
      const int64_t i = i0 + c;
      a.mean[i] = hsum(macc[c]);
      for (int t = 0; t < k_near; ++t) {
        a.near_r2[i * kScreenMaxNear + t] = near[c].r2[t];
        a.near_idx[i * kScreenMaxNear + t] = near[c].idx[t];
      }
    }
  }
}

void run_avx2(const GpScreenArgs& a) {
  if (a.rbf) screen<true>(a);
  else screen<false>(a);
}

}  // namespace

const GpScreen kF64GpScreenAvx2 = {"f64_gp_screen_avx2", run_avx2};

}  // namespace kiln::discover::internal
