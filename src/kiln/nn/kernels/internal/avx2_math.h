// AVX2 + FMA vector math shared by the AVX2 translation units (exp, fused activations, lane
// masks). Every function is `static inline`: each including unit gets its own private copy, so
// no AVX2 code can leak to callers on CPUs without AVX2. Include only from files built with
// -mavx2 -mfma.
#pragma once

#include <immintrin.h>

#include "kiln/nn/kernels/internal/ukernels.h"

namespace kiln::nn::kernels::avx2 {

static inline __m256 exp256(__m256 x) {
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

// 1 / d for d >= 1 (finite): the 12-bit reciprocal estimate and one Newton step (about 23
// correct bits), instead of a division, whose throughput is several times worse.
static inline __m256 reciprocal(__m256 d) {
  const __m256 r = _mm256_rcp_ps(d);
  return _mm256_mul_ps(r, _mm256_fnmadd_ps(d, r, _mm256_set1_ps(2.f)));
}

// 1 / (1 + exp(-v)).
static inline __m256 sigmoid(__m256 v) {
  return reciprocal(_mm256_add_ps(_mm256_set1_ps(1.f), exp256(_mm256_sub_ps(_mm256_setzero_ps(), v))));
}

static inline __m256 activate(__m256 v, const GemmParams& p) {
  switch (p.act) {
    case Activation::kNone: return v;
    case Activation::kRelu: return _mm256_max_ps(v, _mm256_setzero_ps());
    case Activation::kClip: return _mm256_min_ps(_mm256_max_ps(v, _mm256_set1_ps(p.lo)), _mm256_set1_ps(p.hi));
    case Activation::kHardSwish: {
      __m256 t = _mm256_min_ps(_mm256_max_ps(_mm256_add_ps(v, _mm256_set1_ps(3.f)), _mm256_setzero_ps()), _mm256_set1_ps(6.f));
      return _mm256_mul_ps(_mm256_mul_ps(v, t), _mm256_set1_ps(1.f / 6.f));
    }
    case Activation::kSigmoid: return sigmoid(v);
    case Activation::kSilu: return _mm256_mul_ps(v, sigmoid(v));
    case Activation::kLeakyRelu: {
      __m256 neg = _mm256_cmp_ps(v, _mm256_setzero_ps(), _CMP_LT_OQ);
      return _mm256_blendv_ps(v, _mm256_mul_ps(v, _mm256_set1_ps(p.alpha)), neg);
    }
    case Activation::kHardSigmoid:
      return _mm256_min_ps(_mm256_max_ps(_mm256_fmadd_ps(v, _mm256_set1_ps(p.alpha), _mm256_set1_ps(p.beta)),
                                         _mm256_setzero_ps()),
                           _mm256_set1_ps(1.f));
  }
  return v;
}

// The first n lanes set (n may be <= 0 or >= 8), for masked loads and stores.
static inline __m256i lane_mask(int n) {
  const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), idx);
}

}  // namespace kiln::nn::kernels::avx2
