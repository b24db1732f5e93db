// int8 GEMM / IGEMM micro-kernels for AVX-512 VNNI (vpdpbusd on zmm, Cascade Lake / Ice Lake /
// Zen 4 and later): 8 x 32 tiles, 16 zmm accumulators. Built with -mavx512f -mavx512bw
// -mavx512vl -mavx512vnni only; everything here has internal linkage except the exported
// configuration.
//
// vpdpbusd multiplies unsigned by signed bytes, four products per int32 lane, without
// intermediate saturation: activations are fed as uint8 (int8 inputs XORed with 0x80; the
// packing folds -(zero_point + 128) * sum(w) into the bias).
//
// cpu_features() selects it only on CPUs reporting avx512f + avx512bw + avx512vl + avx512vnni;
// the differential tests (qgemm_test.cc) run it wherever that holds.
#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "kiln/nn/kernels/internal/qs8_ukernels.h"

namespace kiln::nn::kernels {
namespace {

constexpr int kMR = 8;
constexpr int kNR = 32;

// kXor = false (activations stored as the kernel multiplies them, or XORed by the caller, see
// qgemm's a_prexored): a plain broadcast, which the compiler folds into vpdpbusd as an
// embedded-broadcast memory operand: two fused uops per row and k-group instead of four
// (ResNet-8 int8 about 20 % faster at 1 thread).
template <bool kXor>
inline __m512i bcast4(const uint8_t* p, __m512i x) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return kXor ? _mm512_xor_si512(_mm512_set1_epi32(v), x) : _mm512_set1_epi32(v);
}
template <bool kXor>
inline __m512i bcast_partial(const uint8_t* p, int64_t n, __m512i x) {
  // n = 1..3 bytes, assembled by byte loads (a memcpy of run-time length is a library call).
  uint32_t u = p[0];
  if (n > 1) u |= static_cast<uint32_t>(p[1]) << 8;
  if (n > 2) u |= static_cast<uint32_t>(p[2]) << 16;
  const int32_t v = static_cast<int32_t>(u);
  return kXor ? _mm512_xor_si512(_mm512_set1_epi32(v), x) : _mm512_set1_epi32(v);
}

// kTwo = false: the tile has at most 16 columns, the second half of each weight group (zero) is
// skipped and acc1 left alone.
template <int MR, bool kTwo, bool kXor>
inline const uint8_t* accumulate(__m512i (&acc0)[MR], __m512i (&acc1)[MR], const uint8_t* const (&a)[MR],
                                 int64_t kc, const uint8_t* g, __m512i axor) {
  int64_t k = 0;
  for (; k + 4 <= kc; k += 4, g += 128) {
    const __m512i w0 = _mm512_load_si512(g);
    const __m512i w1 = kTwo ? _mm512_load_si512(g + 64) : w0;
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) {
      const __m512i v = bcast4<kXor>(a[i] + k, axor);
      acc0[i] = _mm512_dpbusd_epi32(acc0[i], v, w0);
      if constexpr (kTwo) acc1[i] = _mm512_dpbusd_epi32(acc1[i], v, w1);
    }
  }
  if (k < kc) {
    const __m512i w0 = _mm512_load_si512(g);
    const __m512i w1 = kTwo ? _mm512_load_si512(g + 64) : w0;
    g += 128;
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) {
      const __m512i v = bcast_partial<kXor>(a[i] + k, kc - k, axor);
      acc0[i] = _mm512_dpbusd_epi32(acc0[i], v, w0);
      if constexpr (kTwo) acc1[i] = _mm512_dpbusd_epi32(acc1[i], v, w1);
    }
  }
  return g;
}

struct Epilogue {
  __m512 s0, s1, lo, hi;
  __m512i zp;
  __m128i out_xor;
};

inline Epilogue make_epilogue(const float* scale, const QParams& p) {
  Epilogue e;
  e.s0 = _mm512_loadu_ps(scale);
  e.s1 = _mm512_loadu_ps(scale + 16);
  if (p.out == QOutput::kInt8) {
    e.lo = _mm512_set1_ps(static_cast<float>(p.qmin - p.out_zero_point));
    e.hi = _mm512_set1_ps(static_cast<float>(p.qmax - p.out_zero_point));
  } else {
    e.lo = _mm512_set1_ps(p.flo);
    e.hi = _mm512_set1_ps(p.fhi);
  }
  e.zp = _mm512_set1_epi32(p.out_zero_point);
  e.out_xor = _mm_set1_epi8(static_cast<char>(p.out_xor));
  return e;
}

// 16 columns of one row; `valid` lanes are stored.
inline void store16(__m512i acc, __m512 scale, const Epilogue& e, const QParams& p, uint8_t* c, int valid) {
  const __mmask16 m = valid >= 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << valid) - 1u);
  switch (p.out) {
    case QOutput::kInt8: {
      __m512 f = _mm512_min_ps(_mm512_max_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(acc), scale), e.lo), e.hi);
      const __m512i q = _mm512_add_epi32(_mm512_cvtps_epi32(f), e.zp);  // rounds half to even (MXCSR)
      const __m128i b = _mm_xor_si128(_mm512_cvtsepi32_epi8(q), e.out_xor);
      _mm_mask_storeu_epi8(c, m, b);
      return;
    }
    case QOutput::kFloat: {
      __m512 f = _mm512_min_ps(_mm512_max_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(acc), scale), e.lo), e.hi);
      _mm512_mask_storeu_ps(c, m, f);
      return;
    }
    case QOutput::kInt32:
      _mm512_mask_storeu_epi32(c, m, acc);
      return;
  }
}

template <int MR>
inline void init_acc(__m512i (&acc0)[MR], __m512i (&acc1)[MR], const uint8_t* w) {
  const __m512i b0 = _mm512_load_si512(w);
  const __m512i b1 = _mm512_load_si512(w + 64);
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i) {
    acc0[i] = b0;
    acc1[i] = b1;
  }
}

template <int MR>
inline void store_tile(__m512i (&acc0)[MR], __m512i (&acc1)[MR], const QTile& t) {
  const QParams& p = *t.params;
  const Epilogue e = make_epilogue(reinterpret_cast<const float*>(t.w + kNR * 4), p);
  const int64_t es = p.out == QOutput::kInt8 ? 1 : 4;
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i) {
    uint8_t* row = static_cast<uint8_t*>(t.c) + i * t.ldc * es;
    store16(acc0[i], e.s0, e, p, row, t.nc);
    if (t.nc > 16) store16(acc1[i], e.s1, e, p, row + 16 * es, t.nc - 16);
  }
}

template <int MR, bool kTwo, bool kXor>
void gemm_tile_n(const QTile& t) {
  __m512i acc0[MR], acc1[MR];
  init_acc<MR>(acc0, acc1, t.w);
  const uint8_t* a[MR];
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i) a[i] = t.a + i * t.lda;
  accumulate<MR, kTwo, kXor>(acc0, acc1, a, t.kc, t.w + kNR * 8, _mm512_set1_epi8(static_cast<char>(t.params->a_xor)));
  store_tile<MR>(acc0, acc1, t);
}

template <int MR, bool kTwo, bool kXor>
void igemm_tile_n(const QTile& t) {
  __m512i acc0[MR], acc1[MR];
  init_acc<MR>(acc0, acc1, t.w);
  const __m512i axor = _mm512_set1_epi8(static_cast<char>(t.params->a_xor));
  const uint8_t* g = t.w + kNR * 8;
  const uint8_t* const* ptrs = t.a_ptrs;
  for (int64_t s = 0; s < t.ks; ++s, ptrs += kMR) {
    const uint8_t* a[MR];
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) a[i] = ptrs[i] == t.zero ? ptrs[i] : ptrs[i] + t.a_offset;
    g = accumulate<MR, kTwo, kXor>(acc0, acc1, a, t.kc, g, axor);
  }
  store_tile<MR>(acc0, acc1, t);
}

// Tiles of at most 16 columns (layers with few output channels, the last panel of others) skip
// the second accumulator vector; activations that need no XOR skip it.
template <int MR>
void gemm_tile(const QTile& t) {
  const bool x = t.params->a_xor != 0;
  if (t.nc > 16) x ? gemm_tile_n<MR, true, true>(t) : gemm_tile_n<MR, true, false>(t);
  else x ? gemm_tile_n<MR, false, true>(t) : gemm_tile_n<MR, false, false>(t);
}
template <int MR>
void igemm_tile(const QTile& t) {
  const bool x = t.params->a_xor != 0;
  if (t.nc > 16) x ? igemm_tile_n<MR, true, true>(t) : igemm_tile_n<MR, true, false>(t);
  else x ? igemm_tile_n<MR, false, true>(t) : igemm_tile_n<MR, false, false>(t);
}

void gemm_any(const QTile& t) {
  switch (t.mr) {
    case 1: gemm_tile<1>(t); break;
    case 2: gemm_tile<2>(t); break;
    case 3: gemm_tile<3>(t); break;
    case 4: gemm_tile<4>(t); break;
    case 5: gemm_tile<5>(t); break;
    case 6: gemm_tile<6>(t); break;
    case 7: gemm_tile<7>(t); break;
    default: gemm_tile<8>(t); break;
  }
}
void igemm_any(const QTile& t) {
  switch (t.mr) {
    case 1: igemm_tile<1>(t); break;
    case 2: igemm_tile<2>(t); break;
    case 3: igemm_tile<3>(t); break;
    case 4: igemm_tile<4>(t); break;
    case 5: igemm_tile<5>(t); break;
    case 6: igemm_tile<6>(t); break;
    case 7: igemm_tile<7>(t); break;
    default: igemm_tile<8>(t); break;
  }
}

}  // namespace

const QGemmConfig kQs8GemmAvx512Vnni = {"qs8_gemm_avx512vnni", kMR, kNR, true, QWeightLayout::kGroup4, gemm_any,
                                        igemm_any};

}  // namespace kiln::nn::kernels
