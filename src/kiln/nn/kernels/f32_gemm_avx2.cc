// fp32 GEMM / IGEMM micro-kernels for AVX2 + FMA: 6 x 16 tiles (12 ymm accumulators).
// Built with -mavx2 -mfma only; everything here has internal linkage.
#include <immintrin.h>

#include <cstdint>

#include "kiln/nn/kernels/internal/avx2_math.h"
#include "kiln/nn/kernels/internal/ukernels.h"

namespace kiln::nn::kernels {
namespace {

using avx2::activate;
using avx2::lane_mask;

constexpr int kMR = 6;
constexpr int kNR = 16;


template <int MR>
inline void store_tile(__m256 (&acc0)[MR], __m256 (&acc1)[MR], const Tile& t) {
  const GemmParams& p = *t.params;
  // Masked stores are slow on some CPUs (microcoded on AMD Zen): full vectors use plain stores
  // and only a real tail is masked.
  const bool full0 = t.nc >= 8, full1 = t.nc >= 16, any1 = t.nc > 8;
  const __m256i m0 = lane_mask(t.nc), m1 = lane_mask(t.nc - 8);
  #pragma GCC unroll 16
  for (int i = 0; i < MR; ++i) {
    __m256 v0 = acc0[i], v1 = acc1[i];
    if (t.residual) {
      const float* r = t.residual + i * t.ld_residual;
      v0 = _mm256_add_ps(v0, full0 ? _mm256_loadu_ps(r) : _mm256_maskload_ps(r, m0));
      if (any1) v1 = _mm256_add_ps(v1, full1 ? _mm256_loadu_ps(r + 8) : _mm256_maskload_ps(r + 8, m1));
    }
    v0 = activate(v0, p);
    float* c = t.c + i * t.ldc;
    if (full0) _mm256_storeu_ps(c, v0);
    else _mm256_maskstore_ps(c, m0, v0);
    if (any1) {
      v1 = activate(v1, p);
      if (full1) _mm256_storeu_ps(c + 8, v1);
      else _mm256_maskstore_ps(c + 8, m1, v1);
    }
  }
}

template <int MR>
inline const float* accumulate(__m256 (&acc0)[MR], __m256 (&acc1)[MR], const float* const (&a)[MR], int64_t kc,
                               const float* w) {
  int64_t k = 0;
  if constexpr (MR <= 2) {
    // Few rows (a batch-1 fully connected layer, an RNN step): 2 * MR accumulator chains cannot
    // hide the FMA latency, so split K four ways into independent chains and add them at the end.
    __m256 p0[3][MR], p1[3][MR];
    for (int j = 0; j < 3; ++j)
      for (int i = 0; i < MR; ++i) p0[j][i] = p1[j][i] = _mm256_setzero_ps();
    for (; k + 4 <= kc; k += 4) {
      const __m256 b00 = _mm256_load_ps(w), b01 = _mm256_load_ps(w + 8);
      const __m256 b10 = _mm256_load_ps(w + 16), b11 = _mm256_load_ps(w + 24);
      const __m256 b20 = _mm256_load_ps(w + 32), b21 = _mm256_load_ps(w + 40);
      const __m256 b30 = _mm256_load_ps(w + 48), b31 = _mm256_load_ps(w + 56);
      w += 4 * kNR;
      for (int i = 0; i < MR; ++i) {
        const float* ai = a[i] + k;
        acc0[i] = _mm256_fmadd_ps(_mm256_broadcast_ss(ai), b00, acc0[i]);
        acc1[i] = _mm256_fmadd_ps(_mm256_broadcast_ss(ai), b01, acc1[i]);
        p0[0][i] = _mm256_fmadd_ps(_mm256_broadcast_ss(ai + 1), b10, p0[0][i]);
        p1[0][i] = _mm256_fmadd_ps(_mm256_broadcast_ss(ai + 1), b11, p1[0][i]);
        p0[1][i] = _mm256_fmadd_ps(_mm256_broadcast_ss(ai + 2), b20, p0[1][i]);
        p1[1][i] = _mm256_fmadd_ps(_mm256_broadcast_ss(ai + 2), b21, p1[1][i]);
        p0[2][i] = _mm256_fmadd_ps(_mm256_broadcast_ss(ai + 3), b30, p0[2][i]);
        p1[2][i] = _mm256_fmadd_ps(_mm256_broadcast_ss(ai + 3), b31, p1[2][i]);
      }
    }
    for (int i = 0; i < MR; ++i) {
      acc0[i] = _mm256_add_ps(acc0[i], _mm256_add_ps(p0[0][i], _mm256_add_ps(p0[1][i], p0[2][i])));
      acc1[i] = _mm256_add_ps(acc1[i], _mm256_add_ps(p1[0][i], _mm256_add_ps(p1[1][i], p1[2][i])));
    }
  }
  for (; k < kc; ++k) {
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
