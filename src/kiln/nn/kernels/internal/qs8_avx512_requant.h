// int8 requantisation of four int32 vectors at once, shared by the AVX-512 int8 kernels (the
// VNNI GEMM and depthwise units). Every function is `static inline`: each including unit gets its
// own private copy. Include only from files built with -mavx512f -mavx512bw.
//
//   if (packable_scales(scale)) {  // int8 output, every multiplier below 0.5
//     const PackedEpilogue pe = make_packed_epilogue(params);
//     __m512i bytes = pack4(round_scaled(acc0, scale), ..., round_scaled(acc3, scale), pe);
//     // bytes 16 j .. 16 j + 15 are acc j's 16 outputs
//   }
#pragma once

#include <immintrin.h>

#include "kiln/nn/kernels/internal/qs8_ukernels.h"

namespace kiln::nn::kernels::avx512 {

// int8 output when every multiplier of the tile is below 0.5, so |float(acc) * scale| < 2^30
// converts to int32 without overflow: four vectors are rounded, packed to int16 with
// saturation, given the zero point (saturating), packed to int8, clamped to [qmin, qmax] and
// stored with one permute, about 5 operations per vector instead of store16's 9. The result is
// store16's: rint(clamp(f, qmin - zp, qmax - zp)) + zp = clamp(rint(f) + zp, qmin, qmax) for
// integral bounds, and the saturations only move values that the clamp moves anyway.
struct PackedEpilogue {
  __m512i zp16, lo8, hi8, xor8, perm;
};

static inline PackedEpilogue make_packed_epilogue(const QParams& p) {
  PackedEpilogue e;
  e.zp16 = _mm512_set1_epi16(static_cast<int16_t>(p.out_zero_point));
  e.lo8 = _mm512_set1_epi8(static_cast<char>(p.qmin));
  e.hi8 = _mm512_set1_epi8(static_cast<char>(p.qmax));
  e.xor8 = _mm512_set1_epi8(static_cast<char>(p.out_xor));
  // packs interleave per 128-bit lane: lane k holds dwords 4k.. of each of the four vectors
  e.perm = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
  return e;
}

static inline __m512i round_scaled(__m512i acc, __m512 scale) {
  return _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_cvtepi32_ps(acc), scale));
}

// Bytes of a, b, c, d (16 int32 each, already rounded) in that order, requantised.
static inline __m512i pack4(__m512i a, __m512i b, __m512i c, __m512i d, const PackedEpilogue& e) {
  const __m512i ab = _mm512_adds_epi16(_mm512_packs_epi32(a, b), e.zp16);
  const __m512i cd = _mm512_adds_epi16(_mm512_packs_epi32(c, d), e.zp16);
  const __m512i v = _mm512_min_epi8(_mm512_max_epi8(_mm512_packs_epi16(ab, cd), e.lo8), e.hi8);
  return _mm512_permutexvar_epi32(e.perm, _mm512_xor_si512(v, e.xor8));
}

// Whether all 16 multipliers are below 0.5 (round_scaled's precondition).
static inline bool packable_scales(__m512 scale) {
  return _mm512_cmp_ps_mask(scale, _mm512_set1_ps(0.5f), _CMP_LT_OQ) == 0xFFFF;
}

}  // namespace kiln::nn::kernels::avx512
