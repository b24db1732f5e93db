// QuantizeLinear (float -> int8 / uint8, per tensor; QuantizeFn in internal/qs8_ukernels.h) for
// AVX-512: 64 values per step. Built with -mavx512f -mavx512bw -mavx512vl only; everything here
// has internal linkage except the exported entry point.
//
// The definition is y = saturate(rint(x / scale) + zero_point), NaN -> 0, with an IEEE division;
// at 16 lanes the division alone costs more than everything else (about 7 us for VWW's 96x96x3
// input). Here x is multiplied by fl(1 / scale) instead, which is within 3 * 2^-24 * |x / scale|
// of the exact quotient while fl(x / scale) is within 2^-24 of it: where |y| < 1024 the two differ
// by less than 2^-12, so a lane whose y lies more than 2^-11 from every tie k + 0.5 rounds to the
// same integer as the division. A block of 64 with any lane closer to a tie, NaN or beyond int32
// is redone with the division (16 lanes per instruction, a few ns per block); a block with NaN or
// beyond int32 after the division goes to qs8_quantize_avx2, which spells out the definition. Lanes
// with 1024 <= |y| < 2^31 may be one off the division's integer, but adding a zero point of at most
// 255 and saturating to 8 bits gives the same byte. The integers are packed with saturation (int32 -> int16, + zero point with
// saturation, -> int8 or uint8), which is exactly the clamp of the definition.
// QConvert.QuantizeIsExactNearTies checks values 0-64 ulps from ties against the definition.
#include <immintrin.h>

#include <cstdint>

#include "kiln/nn/kernels/internal/qs8_ukernels.h"

namespace kiln::nn::kernels {

namespace {

// One block of 64 values, or with kTail the last `left` < 64 (the lanes beyond are masked off).
// Returns false when a lane is NaN or beyond int32 after the division; the caller then takes the
// definition's path.
template <bool kTail>
__attribute__((always_inline)) inline bool quantize_block(const float* x, int64_t left, float scale, __m512 vinv,
                                                          __m512i zp16, bool is_unsigned, uint8_t* out) {
  const __m512 near_tie = _mm512_set1_ps(0.5f - 0x1p-11f);
  const __m512i perm = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
  __mmask16 m[4];
  for (int j = 0; j < 4; ++j) {
    const int64_t lanes = left - 16 * j;
    m[j] = !kTail || lanes >= 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>(lanes > 0 ? (1u << lanes) - 1u : 0u);
  }
  __m512i q[4];
  // The largest distance from an integer, compared as integers: the bits of non-negative floats
  // order as the floats do, and NaN's bits lie above every number's (a float max would drop NaN).
  __m512i worst = _mm512_setzero_si512();
#pragma GCC unroll 4
  for (int j = 0; j < 4; ++j) {
    const __m512 v = _mm512_mul_ps(_mm512_maskz_loadu_ps(m[j], x + 16 * j), vinv);
    q[j] = _mm512_cvtps_epi32(v);  // round half to even (default MXCSR)
    const __m512 d = _mm512_abs_ps(_mm512_sub_ps(v, _mm512_cvtepi32_ps(q[j])));
    worst = _mm512_max_epu32(worst, _mm512_castps_si512(d));
  }
  if (_mm512_cmpgt_epu32_mask(worst, _mm512_castps_si512(near_tie))) {
    // Near a tie (or NaN, or beyond int32): redo the block with the IEEE division.
    const __m512 vs = _mm512_set1_ps(scale);
    __mmask16 bad = 0;
#pragma GCC unroll 4
    for (int j = 0; j < 4; ++j) {
      const __m512 v = _mm512_div_ps(_mm512_maskz_loadu_ps(m[j], x + 16 * j), vs);
      bad |= _mm512_cmp_ps_mask(_mm512_abs_ps(v), _mm512_set1_ps(0x1p31f), _CMP_NLT_UQ);
      q[j] = _mm512_cvtps_epi32(v);
    }
    if (bad) return false;
  }
  const __m512i lo = _mm512_adds_epi16(_mm512_packs_epi32(q[0], q[1]), zp16);
  const __m512i hi = _mm512_adds_epi16(_mm512_packs_epi32(q[2], q[3]), zp16);
  // packs / packus interleave per 128-bit lane: lane k holds dwords 4k.. of each vector.
  const __m512i b = _mm512_permutexvar_epi32(perm, is_unsigned ? _mm512_packus_epi16(lo, hi) : _mm512_packs_epi16(lo, hi));
  if (!kTail) _mm512_storeu_si512(out, b);
  else _mm512_mask_storeu_epi8(out, _cvtu64_mask64(~0ull >> (64 - left)), b);
  return true;
}

}  // namespace

void qs8_quantize_avx512(const float* x, int64_t n, float scale, int32_t zero_point, bool is_unsigned, void* y) {
  const float inv = 1.f / scale;
  if (!(inv > 1e-30f && inv < 1e30f) || zero_point < -255 || zero_point > 255) {
    qs8_quantize_avx2(x, n, scale, zero_point, is_unsigned, y);
    return;
  }
  uint8_t* out = static_cast<uint8_t*>(y);
  const __m512 vinv = _mm512_set1_ps(inv);
  const __m512i zp16 = _mm512_set1_epi16(static_cast<int16_t>(zero_point));
  int64_t i = 0;
  for (; i + 64 <= n; i += 64)
    if (!quantize_block<false>(x + i, 64, scale, vinv, zp16, is_unsigned, out + i))
      qs8_quantize_avx2(x + i, 64, scale, zero_point, is_unsigned, out + i);
  if (i < n && !quantize_block<true>(x + i, n - i, scale, vinv, zp16, is_unsigned, out + i))
    qs8_quantize_avx2(x + i, n - i, scale, zero_point, is_unsigned, out + i);
}

}  // namespace kiln::nn::kernels
