// int8 elementwise Add / Mul of two quantised tensors (QAdd / QMul, see QBinaryFn in
// internal/qs8_ukernels.h) for AVX-512: 16 elements per step, masked tail. Built with -mavx512f
// -mavx512bw -mavx512vl only; everything here has internal linkage except the exported entry
// point, and no standard-library template is used.
//
// The float operations are those of the unfused chain, in the same order as qs8_binary_portable
// and qs8_binary_avx2: float(q - zero) * scale for each operand, add or multiply, divide by
// y_scale, round half to even, + y_zero, clamp. The division is a multiply by the reciprocal
// where that provably rounds the same way (below), so results are bit-identical to them.
#include <immintrin.h>

#include <cstdint>

#include "kiln/nn/kernels/internal/qs8_ukernels.h"

namespace kiln::nn::kernels {
namespace {

template <bool kU>
inline __m512i widen(__m128i b) {
  return kU ? _mm512_cvtepu8_epi32(b) : _mm512_cvtepi8_epi32(b);
}

template <bool kAU, bool kBU, bool kMul>
void binary(const uint8_t* a, const uint8_t* b, int64_t n, const QBinaryParams& p, uint8_t* y) {
  const __m512 as = _mm512_set1_ps(p.a_scale), bs = _mm512_set1_ps(p.b_scale), ys = _mm512_set1_ps(p.y_scale);
  const __m512i az = _mm512_set1_epi32(p.a_zero), bz = _mm512_set1_epi32(p.b_zero);
  const __m512 yz = _mm512_set1_ps(static_cast<float>(p.y_zero));
  const __m512 lo = _mm512_set1_ps(static_cast<float>(p.qmin)), hi = _mm512_set1_ps(static_cast<float>(p.qmax));
  // The quotient by the reciprocal where that provably rounds as the division does (see
  // qs8_convert_avx512.cc: |v / y_scale| < 1024 and more than 2^-11 from a tie; beyond 1024 both
  // saturate after the zero point of at most 255 and the clamp); other vectors divide.
  const float inv = 1.f / p.y_scale;
  const bool fast = inv > 1e-30f && inv < 1e30f && p.y_zero >= -255 && p.y_zero <= 255;
  const __m512 vinv = _mm512_set1_ps(inv), near_tie = _mm512_set1_ps(0.5f - 0x1p-11f);
  const __m512i yzi = _mm512_set1_epi32(p.y_zero), loi = _mm512_set1_epi32(p.qmin), hii = _mm512_set1_epi32(p.qmax);
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m =
        n - i >= 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << (n - i)) - 1u);
    // Whole vectors load unmasked: the store buffer forwards a convolution's fresh output only to
    // unmasked loads.
    const bool full = m == 0xFFFF;
    const __m512i ia = widen<kAU>(full ? _mm_loadu_si128(reinterpret_cast<const __m128i*>(a + i)) : _mm_maskz_loadu_epi8(m, a + i));
    const __m512i ib = widen<kBU>(full ? _mm_loadu_si128(reinterpret_cast<const __m128i*>(b + i)) : _mm_maskz_loadu_epi8(m, b + i));
    const __m512 va = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(ia, az)), as);
    const __m512 vb = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(ib, bz)), bs);
    const __m512 v = kMul ? _mm512_mul_ps(va, vb) : _mm512_add_ps(va, vb);
    __m512i out;
    bool done = false;
    if (fast) {
      const __m512 t = _mm512_mul_ps(v, vinv);
      const __m512i qi = _mm512_cvtps_epi32(t);  // round half to even (default MXCSR)
      const __m512 d = _mm512_abs_ps(_mm512_sub_ps(t, _mm512_cvtepi32_ps(qi)));
      if (_mm512_cmp_ps_mask(d, near_tie, _CMP_NLE_UQ) == 0) {  // no lane near a tie, NaN or beyond int32
        out = _mm512_min_epi32(_mm512_max_epi32(_mm512_add_epi32(qi, yzi), loi), hii);
        done = true;
      }
    }
    if (!done) {
      __m512 q = _mm512_roundscale_ps(_mm512_div_ps(v, ys), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
      q = _mm512_min_ps(_mm512_max_ps(_mm512_add_ps(q, yz), lo), hi);
      out = _mm512_cvtps_epi32(q);
    }
    // Integral and inside [qmin, qmax] (y's own values): the low byte is the stored one.
    _mm_mask_storeu_epi8(y + i, m, _mm512_cvtepi32_epi8(out));
  }
}

template <bool kAU, bool kBU>
void binary_op(const uint8_t* a, const uint8_t* b, int64_t n, const QBinaryParams& p, uint8_t* y) {
  if (p.mul) binary<kAU, kBU, true>(a, b, n, p, y);
  else binary<kAU, kBU, false>(a, b, n, p, y);
}

}  // namespace

void qs8_binary_avx512(const uint8_t* a, const uint8_t* b, int64_t n, const QBinaryParams& p, uint8_t* y) {
  if (p.a_unsigned) {
    if (p.b_unsigned) binary_op<true, true>(a, b, n, p, y);
    else binary_op<true, false>(a, b, n, p, y);
  } else {
    if (p.b_unsigned) binary_op<false, true>(a, b, n, p, y);
    else binary_op<false, false>(a, b, n, p, y);
  }
}

}  // namespace kiln::nn::kernels
