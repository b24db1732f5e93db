// AVX-512F vector math shared by the AVX-512 translation units (exp, sigmoid, fused
// activations). Every function is `static inline`: each including unit gets its own private
// copy, so no AVX-512 code can leak to callers on other CPUs. Include only from files built with
// -mavx512f.
#pragma once

#include <immintrin.h>

#include "kiln/nn/kernels/internal/ukernels.h"

namespace kiln::nn::kernels::avx512 {

static inline __m512 exp512(__m512 x) {
  x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-87.3f)), _mm512_set1_ps(88.3f));
  __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)), _MM_FROUND_TO_NEAREST_INT);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(1.9875691500E-4f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507E-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073E-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894E-2f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459E-1f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201E-1f));
  __m512 r2 = _mm512_mul_ps(r, r);
  p = _mm512_fmadd_ps(p, r2, _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
  return _mm512_scalef_ps(p, n);
}

// 1 / (1 + exp(-v)): the 14-bit reciprocal estimate and one Newton step (about 24 correct
// bits) instead of a division, whose throughput on 512-bit vectors is an order of magnitude worse.
static inline __m512 sigmoid512(__m512 v) {
  const __m512 d = _mm512_add_ps(_mm512_set1_ps(1.f), exp512(_mm512_sub_ps(_mm512_setzero_ps(), v)));
  const __m512 r = _mm512_rcp14_ps(d);
  return _mm512_mul_ps(r, _mm512_fnmadd_ps(d, r, _mm512_set1_ps(2.f)));
}

static inline __m512 activate(__m512 v, const GemmParams& p) {
  switch (p.act) {
    case Activation::kNone: return v;
    case Activation::kRelu: return _mm512_max_ps(v, _mm512_setzero_ps());
    case Activation::kClip: return _mm512_min_ps(_mm512_max_ps(v, _mm512_set1_ps(p.lo)), _mm512_set1_ps(p.hi));
    case Activation::kHardSwish: {
      __m512 t = _mm512_min_ps(_mm512_max_ps(_mm512_add_ps(v, _mm512_set1_ps(3.f)), _mm512_setzero_ps()), _mm512_set1_ps(6.f));
      return _mm512_mul_ps(_mm512_mul_ps(v, t), _mm512_set1_ps(1.f / 6.f));
    }
    case Activation::kSigmoid: return sigmoid512(v);
    case Activation::kSilu: return _mm512_mul_ps(v, sigmoid512(v));
    case Activation::kLeakyRelu: {
      __mmask16 neg = _mm512_cmp_ps_mask(v, _mm512_setzero_ps(), _CMP_LT_OQ);
      return _mm512_mask_mul_ps(v, neg, v, _mm512_set1_ps(p.alpha));
    }
    case Activation::kHardSigmoid:
      return _mm512_min_ps(_mm512_max_ps(_mm512_fmadd_ps(v, _mm512_set1_ps(p.alpha), _mm512_set1_ps(p.beta)),
                                         _mm512_setzero_ps()),
                           _mm512_set1_ps(1.f));
  }
  return v;
}

// The first n lanes (n may be <= 0 or >= 16), for masked loads and stores.
static inline __mmask16 lane_mask(int64_t n) {
  return n >= 16 ? __mmask16(0xFFFF) : n <= 0 ? __mmask16(0) : __mmask16((1u << n) - 1);
}

}  // namespace kiln::nn::kernels::avx512
