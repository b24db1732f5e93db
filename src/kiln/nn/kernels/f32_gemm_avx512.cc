// fp32 GEMM / IGEMM micro-kernels for AVX-512F: 12 x 32 tiles (24 zmm accumulators).
// Built with -mavx512f -mfma only; everything here has internal linkage so that no AVX-512
// code can be picked by the linker for a caller on another CPU.
#include <immintrin.h>

#include "kiln/nn/kernels/internal/avx512_math.h"
#include "kiln/nn/kernels/internal/ukernels.h"

namespace kiln::nn::kernels {
namespace {

constexpr int kMR = 12;
constexpr int kNR = 32;

using avx512::activate;

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
