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

#include "kiln/nn/kernels/internal/qs8_avx512_requant.h"
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

// Requantises the tile from `spill` (row i: acc0 at spill + 32 * i, acc1 16 further on).
template <int MR>
inline void store_tile_packed(const int32_t* spill, const QTile& t, const Epilogue& e) {
  const auto acc = [&](int i, int half) { return _mm512_load_si512(spill + 32 * i + 16 * half); };
  const avx512::PackedEpilogue pe = avx512::make_packed_epilogue(*t.params);
  uint8_t* c = static_cast<uint8_t*>(t.c);
  if (t.nc > 16) {  // two rows of 32 columns per vector
    const __mmask32 m = _cvtu32_mask32(~0u >> (32 - t.nc));
#pragma GCC unroll 4
    for (int i = 0; i < MR; i += 2) {
      const __m512i a = avx512::round_scaled(acc(i, 0), e.s0), b = avx512::round_scaled(acc(i, 1), e.s1);
      const __m512i cc = i + 1 < MR ? avx512::round_scaled(acc(i + 1, 0), e.s0) : a;
      const __m512i d = i + 1 < MR ? avx512::round_scaled(acc(i + 1, 1), e.s1) : b;
      const __m512i v = avx512::pack4(a, b, cc, d, pe);
      _mm256_mask_storeu_epi8(c + i * t.ldc, m, _mm512_castsi512_si256(v));
      if (i + 1 < MR) _mm256_mask_storeu_epi8(c + (i + 1) * t.ldc, m, _mm512_extracti64x4_epi64(v, 1));
    }
    return;
  }
  const __mmask16 m = static_cast<__mmask16>(0xFFFFu >> (16 - t.nc));  // four rows of at most 16 columns
#pragma GCC unroll 2
  for (int i = 0; i < MR; i += 4) {
    const __m512i a = avx512::round_scaled(acc(i, 0), e.s0);
    const __m512i b = i + 1 < MR ? avx512::round_scaled(acc(i + 1, 0), e.s0) : a;
    const __m512i cc = i + 2 < MR ? avx512::round_scaled(acc(i + 2, 0), e.s0) : a;
    const __m512i d = i + 3 < MR ? avx512::round_scaled(acc(i + 3, 0), e.s0) : a;
    const __m512i v = avx512::pack4(a, b, cc, d, pe);
    _mm_mask_storeu_epi8(c + i * t.ldc, m, _mm512_castsi512_si128(v));
    if (i + 1 < MR) _mm_mask_storeu_epi8(c + (i + 1) * t.ldc, m, _mm512_extracti32x4_epi32(v, 1));
    if (i + 2 < MR) _mm_mask_storeu_epi8(c + (i + 2) * t.ldc, m, _mm512_extracti32x4_epi32(v, 2));
    if (i + 3 < MR) _mm_mask_storeu_epi8(c + (i + 3) * t.ldc, m, _mm512_extracti32x4_epi32(v, 3));
  }
}

template <int MR>
inline void store_tile(const int32_t* spill, const QTile& t) {
  const QParams& p = *t.params;
  const Epilogue e = make_epilogue(reinterpret_cast<const float*>(t.w + kNR * 4), p);
  if (p.out == QOutput::kInt8 && avx512::packable_scales(e.s0) && avx512::packable_scales(e.s1)) {
    store_tile_packed<MR>(spill, t, e);
    return;
  }
  const int64_t es = p.out == QOutput::kInt8 ? 1 : 4;
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i) {
    uint8_t* row = static_cast<uint8_t*>(t.c) + i * t.ldc * es;
    store16(_mm512_load_si512(spill + 32 * i), e.s0, e, p, row, t.nc);
    if (t.nc > 16) store16(_mm512_load_si512(spill + 32 * i + 16), e.s1, e, p, row + 16 * es, t.nc - 16);
  }
}

template <int MR>
inline void spill_acc(const __m512i (&acc0)[MR], const __m512i (&acc1)[MR], int32_t* spill) {
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i) {
    _mm512_store_si512(spill + 32 * i, acc0[i]);
    _mm512_store_si512(spill + 32 * i + 16, acc1[i]);
  }
}

// The multiply-adds of a tile, left in `spill`. Not inlined into the epilogue: sharing a function
// with the packed epilogue, GCC copied the 16 accumulators between registers and spilled two of
// them in every iteration of the K loop (large-K layers 5-15 % slower).
template <int MR, bool kTwo, bool kXor>
__attribute__((noinline)) void gemm_acc(const QTile& t, int32_t* spill) {
  __m512i acc0[MR], acc1[MR];
  init_acc<MR>(acc0, acc1, t.w);
  const uint8_t* a[MR];
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i) a[i] = t.a + i * t.lda;
  accumulate<MR, kTwo, kXor>(acc0, acc1, a, t.kc, t.w + kNR * 8, _mm512_set1_epi8(static_cast<char>(t.params->a_xor)));
  spill_acc<MR>(acc0, acc1, spill);
}

template <int MR, bool kTwo, bool kXor>
__attribute__((noinline)) void igemm_acc(const QTile& t, int32_t* spill) {
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
  spill_acc<MR>(acc0, acc1, spill);
}

// Tiles of at most 16 columns (layers with few output channels, the last panel of others) skip
// the second accumulator vector; activations that need no XOR skip it.
template <int MR>
void gemm_tile(const QTile& t) {
  alignas(64) int32_t spill[2 * MR * 16];
  const bool x = t.params->a_xor != 0;
  if (t.nc > 16) x ? gemm_acc<MR, true, true>(t, spill) : gemm_acc<MR, true, false>(t, spill);
  else x ? gemm_acc<MR, false, true>(t, spill) : gemm_acc<MR, false, false>(t, spill);
  store_tile<MR>(spill, t);
}
template <int MR>
void igemm_tile(const QTile& t) {
  alignas(64) int32_t spill[2 * MR * 16];
  const bool x = t.params->a_xor != 0;
  if (t.nc > 16) x ? igemm_acc<MR, true, true>(t, spill) : igemm_acc<MR, true, false>(t, spill);
  else x ? igemm_acc<MR, false, true>(t, spill) : igemm_acc<MR, false, false>(t, spill);
  store_tile<MR>(spill, t);
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
