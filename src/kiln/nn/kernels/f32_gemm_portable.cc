// fp32 GEMM / IGEMM micro-kernels in portable C++: 4 x 8 tiles. The path for CPUs without
// AVX2 + FMA (and the KILN_ISA=portable setting); compilers vectorise the inner loops with the
// baseline SSE2 of x86-64.
#include <cmath>
#include <cstdint>

#include "kiln/nn/kernels/internal/ukernels.h"

namespace kiln::nn::kernels {
namespace {

constexpr int kMR = 4;
constexpr int kNR = 8;

template <int MR>
void finish(float (&acc)[MR][kNR], const Tile& t) {
  #pragma GCC unroll 16
  for (int i = 0; i < MR; ++i) {
    float* c = t.c + i * t.ldc;
    const float* r = t.residual ? t.residual + i * t.ld_residual : nullptr;
    for (int j = 0; j < t.nc; ++j) {
      float v = acc[i][j];
      if (r) v += r[j];
      c[j] = apply_activation(v, *t.params);
    }
  }
}

template <int MR>
const float* accumulate(float (&acc)[MR][kNR], const float* const (&a)[MR], int64_t kc, const float* w) {
  for (int64_t k = 0; k < kc; ++k) {
    #pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) {
      const float ai = a[i][k];
      #pragma GCC unroll 16
      for (int j = 0; j < kNR; ++j) acc[i][j] += ai * w[j];
    }
    w += kNR;
  }
  return w;
}

template <int MR>
void init(float (&acc)[MR][kNR], const float* w) {
  #pragma GCC unroll 16
  for (int i = 0; i < MR; ++i)
    #pragma GCC unroll 16
    for (int j = 0; j < kNR; ++j) acc[i][j] = w[j];
}

template <int MR>
void gemm_tile(const Tile& t) {
  float acc[MR][kNR];
  init<MR>(acc, t.w);
  const float* a[MR];
  #pragma GCC unroll 16
  for (int i = 0; i < MR; ++i) a[i] = t.a + i * t.lda;
  accumulate<MR>(acc, a, t.kc, t.w + kNR);
  finish<MR>(acc, t);
}

template <int MR>
void igemm_tile(const Tile& t) {
  float acc[MR][kNR];
  init<MR>(acc, t.w);
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
    w = accumulate<MR>(acc, a, t.kc, w);
  }
  finish<MR>(acc, t);
}

void gemm_any(const Tile& t) { dispatch_rows<kMR>(t.mr, [&](auto r) { gemm_tile<decltype(r)::value>(t); }); }
void igemm_any(const Tile& t) { dispatch_rows<kMR>(t.mr, [&](auto r) { igemm_tile<decltype(r)::value>(t); }); }

}  // namespace

const GemmConfig kF32GemmPortable = {"f32_gemm_portable", kMR, kNR, gemm_any, igemm_any};

}  // namespace kiln::nn::kernels
