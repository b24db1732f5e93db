// fp32 GEMM / IGEMM micro-kernels for AVX-512F, in two shapes that share one body:
//   12 x 32 tiles (24 zmm accumulators), the default;
//   14 x 16 tiles (14 accumulators), for layers with at most 16 output channels (MobileNet's and
//   ResNet-8's 16-channel convolutions), where a 32-wide tile would compute half zeros.
// Built with -mavx512f -mfma only; everything here has internal linkage so that no AVX-512
// code can be picked by the linker for a caller on another CPU.
#include <immintrin.h>

#include "kiln/nn/kernels/internal/avx512_math.h"
#include "kiln/nn/kernels/internal/ukernels.h"

namespace kiln::nn::kernels {
namespace {

using avx512::activate;
using avx512::lane_mask;

// NV vectors of 16 columns per row (NR = 16 * NV), MR rows in this tile.
template <int NV, int MR>
inline void store_tile(__m512 (&acc)[MR][NV], const Tile& t) {
  const GemmParams& p = *t.params;
  __mmask16 mask[NV];
#pragma GCC unroll 2
  for (int v = 0; v < NV; ++v) mask[v] = lane_mask(t.nc - 16 * v);
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i) {
    float* c = t.c + i * t.ldc;
#pragma GCC unroll 2
    for (int v = 0; v < NV; ++v) {
      __m512 x = acc[i][v];
      if (t.residual) x = _mm512_add_ps(x, _mm512_maskz_loadu_ps(mask[v], t.residual + i * t.ld_residual + 16 * v));
      _mm512_mask_storeu_ps(c + 16 * v, mask[v], activate(x, p));
    }
  }
}

template <int NV, int MR>
inline void init_acc(__m512 (&acc)[MR][NV], const float* w) {
#pragma GCC unroll 2
  for (int v = 0; v < NV; ++v) {
    const __m512 b = _mm512_load_ps(w + 16 * v);
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) acc[i][v] = b;
  }
}

// PF: also pull one line per k step into L2, from pf on (Tile::prefetch). A separate
// instantiation, so that tiles without a prefetch keep the tight loop.
template <int NV, int MR, bool PF>
inline const float* accumulate(__m512 (&acc)[MR][NV], const float* const (&a)[MR], int64_t kc, const float* w,
                               const char*& pf) {
  for (int64_t k = 0; k < kc; ++k) {
    if constexpr (PF) {
      _mm_prefetch(pf, _MM_HINT_T1);
      pf += 64;
    }
    __m512 b[NV];
#pragma GCC unroll 2
    for (int v = 0; v < NV; ++v) b[v] = _mm512_load_ps(w + 16 * v);
    w += 16 * NV;
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) {
      const __m512 ai = _mm512_set1_ps(a[i][k]);
#pragma GCC unroll 2
      for (int v = 0; v < NV; ++v) acc[i][v] = _mm512_fmadd_ps(ai, b[v], acc[i][v]);
    }
  }
  return w;
}

template <int NV, int MR, bool PF>
void gemm_tile(const Tile& t) {
  __m512 acc[MR][NV];
  init_acc<NV, MR>(acc, t.w);
  const float* a[MR];
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i) a[i] = t.a + i * t.lda;
  const char* pf = t.prefetch;
  accumulate<NV, MR, PF>(acc, a, t.kc, t.w + 16 * NV, pf);
  store_tile<NV, MR>(acc, t);
}

// MAXR: the configuration's MR, the stride of the pointer table.
template <int NV, int MAXR, int MR, bool PF>
void igemm_tile(const Tile& t) {
  __m512 acc[MR][NV];
  init_acc<NV, MR>(acc, t.w);
  const float* w = t.w + 16 * NV;
  const char* pf = t.prefetch;
  const float* const* ptrs = t.a_ptrs;
  for (int64_t s = 0; s < t.ks; ++s) {
    const float* a[MR];
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) {
      const float* p = ptrs[i];
      a[i] = p == t.zero ? p : reinterpret_cast<const float*>(reinterpret_cast<const char*>(p) + t.a_offset);
    }
    ptrs += MAXR;
    w = accumulate<NV, MR, PF>(acc, a, t.kc, w, pf);
  }
  store_tile<NV, MR>(acc, t);
}

template <int NV, int MAXR>
void gemm_any(const Tile& t) {
  dispatch_rows<MAXR>(t.mr, [&](auto r) {
    if (t.prefetch) gemm_tile<NV, decltype(r)::value, true>(t);
    else gemm_tile<NV, decltype(r)::value, false>(t);
  });
}
template <int NV, int MAXR>
void igemm_any(const Tile& t) {
  dispatch_rows<MAXR>(t.mr, [&](auto r) {
    if (t.prefetch) igemm_tile<NV, MAXR, decltype(r)::value, true>(t);
    else igemm_tile<NV, MAXR, decltype(r)::value, false>(t);
  });
}

}  // namespace

const GemmConfig kF32GemmAvx512 = {"f32_gemm_avx512", 12, 32, gemm_any<2, 12>, igemm_any<2, 12>};
const GemmConfig kF32GemmAvx512Narrow = {"f32_gemm_avx512_n16", 14, 16, gemm_any<1, 14>, igemm_any<1, 14>};

}  // namespace kiln::nn::kernels
