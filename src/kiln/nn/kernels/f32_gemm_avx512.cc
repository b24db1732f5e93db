// fp32 GEMM / IGEMM micro-kernels for AVX-512F: 12 x 32 tiles (24 zmm accumulators).
// Built with -mavx512f -mfma only; everything here has internal linkage so that no AVX-512
// code can be picked by the linker for a caller on another CPU.
#include <immintrin.h>

#include "kiln/nn/kernels/internal/ukernels.h"

namespace kiln::nn::kernels {
namespace {

constexpr int kMR = 12;
constexpr int kNR = 32;

inline __m512 exp512(__m512 x) {
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

inline __m512 activate(__m512 v, const GemmParams& p) {
  switch (p.act) {
    case Activation::kNone: return v;
    case Activation::kRelu: return _mm512_max_ps(v, _mm512_setzero_ps());
    case Activation::kClip: return _mm512_min_ps(_mm512_max_ps(v, _mm512_set1_ps(p.lo)), _mm512_set1_ps(p.hi));
    case Activation::kHardSwish: {
      __m512 t = _mm512_min_ps(_mm512_max_ps(_mm512_add_ps(v, _mm512_set1_ps(3.f)), _mm512_setzero_ps()), _mm512_set1_ps(6.f));
      return _mm512_div_ps(_mm512_mul_ps(v, t), _mm512_set1_ps(6.f));
    }
    case Activation::kSigmoid:
      return _mm512_div_ps(_mm512_set1_ps(1.f), _mm512_add_ps(_mm512_set1_ps(1.f), exp512(_mm512_sub_ps(_mm512_setzero_ps(), v))));
    case Activation::kSilu:
      return _mm512_div_ps(v, _mm512_add_ps(_mm512_set1_ps(1.f), exp512(_mm512_sub_ps(_mm512_setzero_ps(), v))));
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

template <int MR>
inline void store_tile(__m512 (&acc0)[MR], __m512 (&acc1)[MR], const Tile& t) {
  const GemmParams& p = *t.params;
  const __mmask16 m0 = t.nc >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << t.nc) - 1);
  const __mmask16 m1 = t.nc >= 32 ? __mmask16(0xFFFF) : t.nc <= 16 ? __mmask16(0) : __mmask16((1u << (t.nc - 16)) - 1);
  #pragma GCC unroll 16
  for (int i = 0; i < MR; ++i) {
    __m512 v0 = acc0[i], v1 = acc1[i];
    if (t.residual) {
      const float* r = t.residual + i * t.ld_residual;
      v0 = _mm512_add_ps(v0, _mm512_maskz_loadu_ps(m0, r));
      v1 = _mm512_add_ps(v1, _mm512_maskz_loadu_ps(m1, r + 16));
    }
    v0 = activate(v0, p);
    v1 = activate(v1, p);
    float* c = t.c + i * t.ldc;
    _mm512_mask_storeu_ps(c, m0, v0);
    _mm512_mask_storeu_ps(c + 16, m1, v1);
  }
}

template <int MR>
inline void init_acc(__m512 (&acc0)[MR], __m512 (&acc1)[MR], const float* w) {
  const __m512 b0 = _mm512_load_ps(w), b1 = _mm512_load_ps(w + 16);
  #pragma GCC unroll 16
  for (int i = 0; i < MR; ++i) {
    acc0[i] = b0;
    acc1[i] = b1;
  }
}

template <int MR>
inline const float* accumulate(__m512 (&acc0)[MR], __m512 (&acc1)[MR], const float* const (&a)[MR], int64_t kc,
                               const float* w) {
  for (int64_t k = 0; k < kc; ++k) {
    const __m512 b0 = _mm512_load_ps(w), b1 = _mm512_load_ps(w + 16);
    w += kNR;
    #pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) {
      const __m512 ai = _mm512_set1_ps(a[i][k]);
      acc0[i] = _mm512_fmadd_ps(ai, b0, acc0[i]);
      acc1[i] = _mm512_fmadd_ps(ai, b1, acc1[i]);
    }
  }
  return w;
}

template <int MR>
void gemm_tile(const Tile& t) {
  __m512 acc0[MR], acc1[MR];
  init_acc<MR>(acc0, acc1, t.w);
  const float* a[MR];
  #pragma GCC unroll 16
  for (int i = 0; i < MR; ++i) a[i] = t.a + i * t.lda;
  accumulate<MR>(acc0, acc1, a, t.kc, t.w + kNR);
  store_tile<MR>(acc0, acc1, t);
}

template <int MR>
void igemm_tile(const Tile& t) {
  __m512 acc0[MR], acc1[MR];
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

const GemmConfig kF32GemmAvx512 = {"f32_gemm_avx512", kMR, kNR, gemm_any, igemm_any};

}  // namespace kiln::nn::kernels
