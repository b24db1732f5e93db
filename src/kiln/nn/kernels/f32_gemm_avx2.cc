// fp32 GEMM / IGEMM micro-kernels for AVX2 + FMA: 6 x 16 tiles (12 ymm accumulators).
// Built with -mavx2 -mfma only; everything here has internal linkage.
#include <immintrin.h>

#include <cstdint>

#include "kiln/nn/kernels/internal/ukernels.h"

namespace kiln::nn::kernels {
namespace {

constexpr int kMR = 6;
constexpr int kNR = 16;

inline __m256 exp256(__m256 x) {
  x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-87.3f)), _mm256_set1_ps(88.3f));
  __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                             _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 p = _mm256_set1_ps(1.9875691500E-4f);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507E-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073E-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894E-2f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459E-1f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201E-1f));
  p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
  // 2^n through the exponent bits; n is within [-126, 128] after the clamp above, split in two
  // halves so that neither leaves the normal range.
  __m256i ni = _mm256_cvtps_epi32(n);
  __m256i h = _mm256_srai_epi32(ni, 1);
  __m256 s1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(h, _mm256_set1_epi32(127)), 23));
  __m256 s2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(_mm256_sub_epi32(ni, h), _mm256_set1_epi32(127)), 23));
  return _mm256_mul_ps(_mm256_mul_ps(p, s1), s2);
}

inline __m256 activate(__m256 v, const GemmParams& p) {
  switch (p.act) {
    case Activation::kNone: return v;
    case Activation::kRelu: return _mm256_max_ps(v, _mm256_setzero_ps());
    case Activation::kClip: return _mm256_min_ps(_mm256_max_ps(v, _mm256_set1_ps(p.lo)), _mm256_set1_ps(p.hi));
    case Activation::kHardSwish: {
      __m256 t = _mm256_min_ps(_mm256_max_ps(_mm256_add_ps(v, _mm256_set1_ps(3.f)), _mm256_setzero_ps()), _mm256_set1_ps(6.f));
      return _mm256_div_ps(_mm256_mul_ps(v, t), _mm256_set1_ps(6.f));
    }
    case Activation::kSigmoid:
      return _mm256_div_ps(_mm256_set1_ps(1.f), _mm256_add_ps(_mm256_set1_ps(1.f), exp256(_mm256_sub_ps(_mm256_setzero_ps(), v))));
    case Activation::kSilu:
      return _mm256_div_ps(v, _mm256_add_ps(_mm256_set1_ps(1.f), exp256(_mm256_sub_ps(_mm256_setzero_ps(), v))));
    case Activation::kLeakyRelu: {
      __m256 neg = _mm256_cmp_ps(v, _mm256_setzero_ps(), _CMP_LT_OQ);
      return _mm256_blendv_ps(v, _mm256_mul_ps(v, _mm256_set1_ps(p.alpha)), neg);
    }
  }
  return v;
}

inline __m256i lane_mask(int n) {  // first n lanes on (n may be <= 0 or >= 8)
  const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), idx);
}

template <int MR>
inline void store_tile(__m256 (&acc0)[MR], __m256 (&acc1)[MR], const Tile& t) {
  const GemmParams& p = *t.params;
  const bool full = t.nc == kNR;
  const __m256i m0 = lane_mask(t.nc), m1 = lane_mask(t.nc - 8);
  #pragma GCC unroll 16
  for (int i = 0; i < MR; ++i) {
    __m256 v0 = acc0[i], v1 = acc1[i];
    if (t.residual) {
      const float* r = t.residual + i * t.ld_residual;
      v0 = _mm256_add_ps(v0, full ? _mm256_loadu_ps(r) : _mm256_maskload_ps(r, m0));
      v1 = _mm256_add_ps(v1, full ? _mm256_loadu_ps(r + 8) : _mm256_maskload_ps(r + 8, m1));
    }
    v0 = activate(v0, p);
    v1 = activate(v1, p);
    float* c = t.c + i * t.ldc;
    if (full) {
      _mm256_storeu_ps(c, v0);
      _mm256_storeu_ps(c + 8, v1);
    } else {
      _mm256_maskstore_ps(c, m0, v0);
      _mm256_maskstore_ps(c + 8, m1, v1);
    }
  }
}

template <int MR>
inline const float* accumulate(__m256 (&acc0)[MR], __m256 (&acc1)[MR], const float* const (&a)[MR], int64_t kc,
                               const float* w) {
  for (int64_t k = 0; k < kc; ++k) {
    const __m256 b0 = _mm256_load_ps(w), b1 = _mm256_load_ps(w + 8);
    w += kNR;
    #pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) {
      const __m256 ai = _mm256_broadcast_ss(a[i] + k);
      acc0[i] = _mm256_fmadd_ps(ai, b0, acc0[i]);
      acc1[i] = _mm256_fmadd_ps(ai, b1, acc1[i]);
    }
  }
  return w;
}

template <int MR>
inline void init_acc(__m256 (&acc0)[MR], __m256 (&acc1)[MR], const float* w) {
  const __m256 b0 = _mm256_load_ps(w), b1 = _mm256_load_ps(w + 8);
  #pragma GCC unroll 16
  for (int i = 0; i < MR; ++i) {
    acc0[i] = b0;
    acc1[i] = b1;
  }
}

template <int MR>
void gemm_tile(const Tile& t) {
  __m256 acc0[MR], acc1[MR];
  init_acc<MR>(acc0, acc1, t.w);
  const float* a[MR];
  #pragma GCC unroll 16
  for (int i = 0; i < MR; ++i) a[i] = t.a + i * t.lda;
  accumulate<MR>(acc0, acc1, a, t.kc, t.w + kNR);
  store_tile<MR>(acc0, acc1, t);
}

template <int MR>
void igemm_tile(const Tile& t) {
  __m256 acc0[MR], acc1[MR];
  init_acc<MR>(acc0, acc1, t.w);
  const float* w = t.w + kNR;
  const float* const* ptrs = t.a_ptrs;
  for (int64_t s = 0; s < t.ks; ++s) {
    const float* a[MR];
    #pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) {
      const float* p = ptrs[i];
      a[i] = p == t.zero ? p : reinterpret_cast<const float*>(reinterpret_cast<const char*>(p) + t.a_offset);
    }
    ptrs += kMR;
    w = accumulate<MR>(acc0, acc1, a, t.kc, w);
  }
  store_tile<MR>(acc0, acc1, t);
}

void gemm_any(const Tile& t) { dispatch_rows<kMR>(t.mr, [&](auto r) { gemm_tile<decltype(r)::value>(t); }); }
void igemm_any(const Tile& t) { dispatch_rows<kMR>(t.mr, [&](auto r) { igemm_tile<decltype(r)::value>(t); }); }

}  // namespace

const GemmConfig kF32GemmAvx2 = {"f32_gemm_avx2", kMR, kNR, gemm_any, igemm_any};

}  // namespace kiln::nn::kernels
