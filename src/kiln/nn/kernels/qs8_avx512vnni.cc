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
#include "kiln/nn/kernels/internal/qgemm_rows.h"
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

// The clamp bounds, zero point and XOR of the output (s0 / s1 left unset).
inline Epilogue make_bounds(const QParams& p) {
  Epilogue e;
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

inline Epilogue make_epilogue(const float* scale, const QParams& p) {
  Epilogue e = make_bounds(p);
  e.s0 = _mm512_loadu_ps(scale);
  e.s1 = _mm512_loadu_ps(scale + 16);
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
      if (t.nc == 32 && t.ldc == 32 && i + 1 < MR) {  // two whole, adjacent output rows
        _mm512_storeu_si512(c + i * 32, v);
        continue;
      }
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
    if (t.nc == 16 && t.ldc == 16 && i + 3 < MR) {  // four whole, adjacent output rows
      _mm512_storeu_si512(c + i * 16, v);
      continue;
    }
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

// kTwo = false (at most 16 columns): acc1 is not read back, and not stored.
template <int MR, bool kTwo>
inline void spill_acc(const __m512i (&acc0)[MR], const __m512i (&acc1)[MR], int32_t* spill) {
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i) {
    _mm512_store_si512(spill + 32 * i, acc0[i]);
    if constexpr (kTwo) _mm512_store_si512(spill + 32 * i + 16, acc1[i]);
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
  spill_acc<MR, kTwo>(acc0, acc1, spill);
}

// kNoZero: the indirection has no padding rows (t.zero is null), every pointer takes the offset.
template <int MR, bool kTwo, bool kXor, bool kNoZero>
__attribute__((noinline)) void igemm_acc(const QTile& t, int32_t* spill) {
  __m512i acc0[MR], acc1[MR];
  init_acc<MR>(acc0, acc1, t.w);
  const __m512i axor = _mm512_set1_epi8(static_cast<char>(t.params->a_xor));
  const uint8_t* g = t.w + kNR * 8;
  const uint8_t* const* ptrs = t.a_ptrs;
  for (int64_t s = 0; s < t.ks; ++s, ptrs += kMR) {
    const uint8_t* a[MR];
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) a[i] = kNoZero || ptrs[i] != t.zero ? ptrs[i] + t.a_offset : ptrs[i];
    g = accumulate<MR, kTwo, kXor>(acc0, acc1, a, t.kc, g, axor);
  }
  spill_acc<MR, kTwo>(acc0, acc1, spill);
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
  if (!t.zero && !x) {  // the row-tap stems: pre-XORed, no padding rows
    t.nc > 16 ? igemm_acc<MR, true, false, true>(t, spill) : igemm_acc<MR, false, false, true>(t, spill);
  } else if (t.nc > 16) {
    x ? igemm_acc<MR, true, true, false>(t, spill) : igemm_acc<MR, true, false, false>(t, spill);
  } else {
    x ? igemm_acc<MR, false, true, false>(t, spill) : igemm_acc<MR, false, false, false>(t, spill);
  }
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

// ---- At most 8 columns (stems with 8 filters): two groups of K per vector ----
//
// With 8 columns a 16-lane tile wastes half of every vpdpbusd. Here lane 2 c + j accumulates
// group 2 p + j of column c (QWeightLayout::kGroupPairs), so one vpdpbusd with an 8-byte
// broadcast (two groups of a row) does 64 useful products: a 3x3x3 stem row tap of 12 bytes is 2
// instead of 3 instructions per row, and 8 rows are 16 instead of 24. At the end the two lanes of a
// column are added and two rows share one vector, which also halves the epilogue's vectors.
constexpr int kMR8 = 16;

// Bytes [0, n) of p, n = 1..7, as the low bytes of a 64-bit lane (the rest zero). Callers that
// can read whole groups pad kc to a multiple of 8 instead (the row-tap stems do).
inline uint64_t partial8(const uint8_t* p, int64_t n) {
  uint64_t u = 0;
  int64_t i = 0;
  if (n >= 4) {
    uint32_t w;
    std::memcpy(&w, p, 4);
    u = w;
    i = 4;
  }
  for (; i < n; ++i) u |= static_cast<uint64_t>(p[i]) << (8 * i);
  return u;
}

template <bool kXor>
inline __m512i bcast8(uint64_t v, __m512i x) {
  const __m512i b = _mm512_set1_epi64(static_cast<long long>(v));
  return kXor ? _mm512_xor_si512(b, x) : b;
}

// One tap of kc bytes per row: ceil(kc / 8) blocks of 64 weight bytes from g (the padding group
// of an odd count has zero weights, so the bytes read with it do not matter; reads stop at kc).
template <int MR, bool kXor>
inline const uint8_t* accumulate8(__m512i (&acc)[MR], const uint8_t* const (&a)[MR], int64_t kc, const uint8_t* g,
                                  __m512i axor) {
  int64_t k = 0;
  for (; k + 8 <= kc; k += 8, g += 64) {
    const __m512i w = _mm512_load_si512(g);
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) {
      uint64_t v;
      std::memcpy(&v, a[i] + k, 8);
      acc[i] = _mm512_dpbusd_epi32(acc[i], bcast8<kXor>(v, axor), w);
    }
  }
  if (k < kc) {
    const __m512i w = _mm512_load_si512(g);
    g += 64;
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) acc[i] = _mm512_dpbusd_epi32(acc[i], bcast8<kXor>(partial8(a[i] + k, kc - k), axor), w);
  }
  return g;
}

// Lane 2 c of the initial accumulators holds column c's bias, lane 2 c + 1 zero.
template <int MR>
inline void init_acc8(__m512i (&acc)[MR], const uint8_t* w) {
  const __m512i b = _mm512_cvtepu32_epi64(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(w)));
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i) acc[i] = b;
}

// Column sums of rows i (lanes 0-7) and i + 1 (lanes 8-15), for rows in pairs, into `out`.
template <int MR>
inline void fold_pairs8(const __m512i (&acc)[MR], int32_t* out) {
  const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  const __m512i odd = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
#pragma GCC unroll 8
  for (int i = 0; i < MR; i += 2) {
    const __m512i lo = acc[i], hi = i + 1 < MR ? acc[i + 1] : acc[i];
    const __m512i sum = _mm512_add_epi32(_mm512_permutex2var_epi32(lo, even, hi), _mm512_permutex2var_epi32(lo, odd, hi));
    _mm512_store_si512(out + 8 * i, sum);
  }
}

// The multiply-adds of a tile into `out` (row pair i, i + 1 at out + 8 i). Not inlined into the
// epilogue, for the register allocation reason of gemm_acc.
template <int MR, bool kXor>
__attribute__((noinline)) void gemm_acc8(const QTile& t, int32_t* out) {
  __m512i acc[MR];
  init_acc8<MR>(acc, t.w);
  const uint8_t* a[MR];
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i) a[i] = t.a + i * t.lda;
  accumulate8<MR, kXor>(acc, a, t.kc, t.w + 8 * 8, _mm512_set1_epi8(static_cast<char>(t.params->a_xor)));
  fold_pairs8<MR>(acc, out);
}

// One tap of NB whole 8-byte blocks (kc = 8 NB) row by row: the NB weight vectors stay in
// registers and each row's pointer is live for its NB broadcasts only. Row by row rather than
// block by block (accumulate8), because 16 row pointers do not fit the general registers: GCC
// spilled them and reloaded one per broadcast (VWW's stem 9.2 -> 6.x us in isolation).
template <int MR, bool kXor, bool kNoZero, int NB>
inline const uint8_t* tap_rows8(__m512i (&acc)[MR], const uint8_t* const* ptrs, const QTile& t, const uint8_t* g,
                                __m512i axor) {
  __m512i w[NB];
#pragma GCC unroll 4
  for (int b = 0; b < NB; ++b) w[b] = _mm512_load_si512(g + 64 * b);
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i) {
    const uint8_t* p = kNoZero || ptrs[i] != t.zero ? ptrs[i] + t.a_offset : ptrs[i];
#pragma GCC unroll 4
    for (int b = 0; b < NB; ++b) {
      uint64_t v;
      std::memcpy(&v, p + 8 * b, 8);
      acc[i] = _mm512_dpbusd_epi32(acc[i], bcast8<kXor>(v, axor), w[b]);
    }
  }
  return g + 64 * NB;
}

// kNoZero: the indirection has no padding rows (t.zero is null), every pointer takes the offset.
template <int MR, bool kXor, bool kNoZero>
__attribute__((noinline)) void igemm_acc8(const QTile& t, int32_t* out) {
  __m512i acc[MR];
  init_acc8<MR>(acc, t.w);
  const __m512i axor = _mm512_set1_epi8(static_cast<char>(t.params->a_xor));
  const uint8_t* g = t.w + 8 * 8;
  const uint8_t* const* ptrs = t.a_ptrs;
  const int64_t nb = t.kc % 8 == 0 ? t.kc / 8 : 0;  // whole blocks per tap (the row-tap stems pad to them)
  for (int64_t s = 0; s < t.ks; ++s, ptrs += kMR8) {
    switch (nb) {
      case 1: g = tap_rows8<MR, kXor, kNoZero, 1>(acc, ptrs, t, g, axor); continue;
      case 2: g = tap_rows8<MR, kXor, kNoZero, 2>(acc, ptrs, t, g, axor); continue;
      case 3: g = tap_rows8<MR, kXor, kNoZero, 3>(acc, ptrs, t, g, axor); continue;
      case 4: g = tap_rows8<MR, kXor, kNoZero, 4>(acc, ptrs, t, g, axor); continue;
      default: break;
    }
    const uint8_t* a[MR];
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) a[i] = kNoZero || ptrs[i] != t.zero ? ptrs[i] + t.a_offset : ptrs[i];
    g = accumulate8<MR, kXor>(acc, a, t.kc, g, axor);
  }
  fold_pairs8<MR>(acc, out);
}

// int8 output with every multiplier below 0.5 (avx512::pack4's precondition): four row-pair
// vectors (eight rows of 8 columns) per pack4, 64 bytes that are eight whole output rows when the
// output has 8 columns (one store; VWW's stem), or eight 8-byte stores otherwise.
template <int MR>
inline void store_tile8_packed(const int32_t* out, const QTile& t, __m512 s) {
  const avx512::PackedEpilogue pe = avx512::make_packed_epilogue(*t.params);
  constexpr int kVectors = (MR + 1) / 2;
  uint8_t* c = static_cast<uint8_t*>(t.c);
  const __mmask8 m = static_cast<__mmask8>((1u << t.nc) - 1u);
#pragma GCC unroll 2
  for (int v = 0; v < kVectors; v += 4) {
    const auto rq = [&](int j) {
      return avx512::round_scaled(_mm512_load_si512(out + 16 * (v + j < kVectors ? v + j : v)), s);
    };
    const __m512i b = avx512::pack4(rq(0), rq(1), rq(2), rq(3), pe);
    const int rows = MR - 2 * v < 8 ? MR - 2 * v : 8;
    if (rows == 8 && t.nc == 8 && t.ldc == 8) {
      _mm512_storeu_si512(c + 2 * v * 8, b);
      continue;
    }
    alignas(64) uint8_t bytes[64];
    _mm512_store_si512(bytes, b);
    for (int r = 0; r < rows; ++r) {
      uint64_t row;
      std::memcpy(&row, bytes + 8 * r, 8);
      _mm_mask_storeu_epi8(c + (2 * v + r) * t.ldc, m, _mm_cvtsi64_si128(static_cast<long long>(row)));
    }
  }
}

// Requantises the row pairs in `out` (16 lanes: 8 columns of two rows).
template <int MR>
inline void store_tile8(const int32_t* out, const QTile& t) {
  const QParams& p = *t.params;
  const float* scale8 = reinterpret_cast<const float*>(t.w + 8 * 4);
  const __m512 s = _mm512_castpd_ps(_mm512_broadcast_f64x4(_mm256_castps_pd(_mm256_loadu_ps(scale8))));
  if (p.out == QOutput::kInt8 && avx512::packable_scales(s)) {
    store_tile8_packed<MR>(out, t, s);
    return;
  }
  const Epilogue e = make_bounds(p);
  const __mmask16 m = static_cast<__mmask16>((1u << t.nc) - 1u);
  const int64_t es = p.out == QOutput::kInt8 ? 1 : 4;
  uint8_t* c = static_cast<uint8_t*>(t.c);
#pragma GCC unroll 8
  for (int i = 0; i < MR; i += 2) {
    const __m512i acc = _mm512_load_si512(out + 8 * i);
    uint8_t* r0 = c + i * t.ldc * es;
    uint8_t* r1 = c + (i + 1) * t.ldc * es;
    const bool second = i + 1 < MR;
    switch (p.out) {
      case QOutput::kInt8: {
        const __m512 f = _mm512_min_ps(_mm512_max_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(acc), s), e.lo), e.hi);
        const __m128i b = _mm_xor_si128(_mm512_cvtsepi32_epi8(_mm512_add_epi32(_mm512_cvtps_epi32(f), e.zp)), e.out_xor);
        _mm_mask_storeu_epi8(r0, m, b);
        if (second) _mm_mask_storeu_epi8(r1, m, _mm_srli_si128(b, 8));
        break;
      }
      case QOutput::kFloat: {
        const __m512 f = _mm512_min_ps(_mm512_max_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(acc), s), e.lo), e.hi);
        _mm256_mask_storeu_ps(r0, static_cast<__mmask8>(m), _mm512_castps512_ps256(f));
        if (second)
          _mm256_mask_storeu_ps(r1, static_cast<__mmask8>(m),
                                _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(f), 1)));
        break;
      }
      case QOutput::kInt32:
        _mm256_mask_storeu_epi32(r0, static_cast<__mmask8>(m), _mm512_castsi512_si256(acc));
        if (second) _mm256_mask_storeu_epi32(r1, static_cast<__mmask8>(m), _mm512_extracti64x4_epi64(acc, 1));
        break;
    }
  }
}

template <int MR>
void gemm_tile8(const QTile& t) {
  alignas(64) int32_t out[(MR + 1) / 2 * 16];
  if (t.params->a_xor) gemm_acc8<MR, true>(t, out);
  else gemm_acc8<MR, false>(t, out);
  store_tile8<MR>(out, t);
}
template <int MR>
void igemm_tile8(const QTile& t) {
  alignas(64) int32_t out[(MR + 1) / 2 * 16];
  if (!t.zero) t.params->a_xor ? igemm_acc8<MR, true, true>(t, out) : igemm_acc8<MR, false, true>(t, out);
  else t.params->a_xor ? igemm_acc8<MR, true, false>(t, out) : igemm_acc8<MR, false, false>(t, out);
  store_tile8<MR>(out, t);
}

template <int MR>
void tile8(const QTile& t, bool indirect) {
  indirect ? igemm_tile8<MR>(t) : gemm_tile8<MR>(t);
}
void any8(const QTile& t, bool indirect) {
  switch (t.mr) {
    case 1: tile8<1>(t, indirect); break;
    case 2: tile8<2>(t, indirect); break;
    case 3: tile8<3>(t, indirect); break;
    case 4: tile8<4>(t, indirect); break;
    case 5: tile8<5>(t, indirect); break;
    case 6: tile8<6>(t, indirect); break;
    case 7: tile8<7>(t, indirect); break;
    case 8: tile8<8>(t, indirect); break;
    case 9: tile8<9>(t, indirect); break;
    case 10: tile8<10>(t, indirect); break;
    case 11: tile8<11>(t, indirect); break;
    case 12: tile8<12>(t, indirect); break;
    case 13: tile8<13>(t, indirect); break;
    case 14: tile8<14>(t, indirect); break;
    case 15: tile8<15>(t, indirect); break;
    default: tile8<16>(t, indirect); break;
  }
}
void gemm_any8(const QTile& t) { any8(t, false); }
void igemm_any8(const QTile& t) { any8(t, true); }

}  // namespace

const QGemmConfig kQs8GemmAvx512Vnni = {"qs8_gemm_avx512vnni", kMR, kNR, true, QWeightLayout::kGroup4, gemm_any,
                                        igemm_any, gemm_rows<kMR, gemm_tile<kMR>, gemm_any>,
                                        gemm_rows<kMR, igemm_tile<kMR>, igemm_any, true>};
const QGemmConfig kQs8GemmAvx512VnniN8 = {"qs8_gemm_avx512vnni_n8", kMR8, 8, true, QWeightLayout::kGroupPairs,
                                          gemm_any8, igemm_any8, nullptr,
                                          gemm_rows<kMR8, igemm_tile8<kMR8>, igemm_any8, true>};

}  // namespace kiln::nn::kernels
