// int8 max / average pooling (com.kiln.QPool) for AVX-512: 16 channels per zmm as int32 lanes, up
// to 64 channels per pass over a window, masked channel tails. Built with -mavx512f -mavx512bw
// -mavx512vl only; everything here has internal linkage except the exported entry point, and no
// standard-library template is used.
//
// The arithmetic is qs8_pool_scalar's (qgemm.cc), operation for operation: int32 max or sum of the
// stored integers, then float(...) * x_scale [/ count], / y_scale, the same round-half-even by
// adding and subtracting 1.5 * 2^23 after clamping to +-4e6, + y_zero, clamp, truncation to the
// low byte. The tap counts are products of the per-axis counts (the scalar loop's conditions are
// separable), so results are bit-identical.
#include <immintrin.h>

#include <cstdint>

#include "kiln/nn/kernels/internal/pool_windows.h"
#include "kiln/nn/kernels/internal/qs8_ukernels.h"

namespace kiln::nn::kernels {
namespace {

inline __mmask16 lane_mask(int64_t n) {
  return n >= 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << (n > 0 ? n : 0)) - 1u);
}

template <bool kU>
inline __m512i load_x(const uint8_t* p, __mmask16 m) {
  const __m128i b = _mm_maskz_loadu_epi8(m, p);
  return kU ? _mm512_cvtepu8_epi32(b) : _mm512_cvtepi8_epi32(b);
}

struct Req {
  __m512 xs, ys, yz, lo, hi, clamp_lo, clamp_hi, magic;
  __m512i xz, qmin, qmax;
  int32_t x_zero;
};

// One window's channels [c, c + 16 * V) of one output pixel; taps inside the input are rows
// [kh0, kh1) x columns [kw0, kw1).
template <int V, bool kU, bool kMax, bool kSame>
inline void pool_block(const QWindow& s, const uint8_t* x_n, int64_t ih0, int64_t iw0, int64_t kh0, int64_t kh1,
                       int64_t kw0, int64_t kw1, int64_t valid, int64_t count, int64_t c, const Req& r,
                       uint8_t* out) {
  const int64_t C = s.channels;
  __mmask16 m[V];
  __m512i acc[V];
#pragma GCC unroll 4
  for (int v = 0; v < V; ++v) {
    m[v] = lane_mask(C - c - 16 * v);
    acc[v] = kMax ? _mm512_set1_epi32(-1000) : _mm512_setzero_si512();
  }
  for (int64_t kh = kh0; kh < kh1; ++kh) {
    const uint8_t* xrow = x_n + (ih0 + kh * s.dilation_h) * s.in_w * C + c;
    for (int64_t kw = kw0; kw < kw1; ++kw) {
      const uint8_t* xp = xrow + (iw0 + kw * s.dilation_w) * C;
#pragma GCC unroll 4
      for (int v = 0; v < V; ++v) {
        const __m512i xv = load_x<kU>(xp + 16 * v, m[v]);
        acc[v] = kMax ? _mm512_max_epi32(acc[v], xv) : _mm512_add_epi32(acc[v], xv);
      }
    }
  }
  const __m512i xz_valid = _mm512_set1_epi32(static_cast<int32_t>(static_cast<uint32_t>(r.x_zero) *
                                                                  static_cast<uint32_t>(valid)));
  const __m512 countf = _mm512_set1_ps(static_cast<float>(count));
#pragma GCC unroll 4
  for (int v = 0; v < V; ++v) {
    __m512i q;
    if constexpr (kMax && kSame) {
      q = _mm512_min_epi32(_mm512_max_epi32(acc[v], r.qmin), r.qmax);
    } else {
      __m512 real;
      if constexpr (kMax) {
        real = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(acc[v], r.xz)), r.xs);
      } else {
        real = count ? _mm512_div_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(acc[v], xz_valid)), r.xs),
                                     countf)
                     : _mm512_setzero_ps();
      }
      __m512 f = _mm512_div_ps(real, r.ys);
      f = _mm512_min_ps(_mm512_max_ps(f, r.clamp_lo), r.clamp_hi);
      f = _mm512_sub_ps(_mm512_add_ps(f, r.magic), r.magic);
      f = _mm512_min_ps(_mm512_max_ps(_mm512_add_ps(f, r.yz), r.lo), r.hi);
      q = _mm512_cvttps_epi32(f);
    }
    _mm_mask_storeu_epi8(out + c + 16 * v, m[v], _mm512_cvtepi32_epi8(q));
  }
}

template <bool kU, bool kMax, bool kSame>
void pool_all(const QWindow& s, const uint8_t* x, const QPoolParams& p, const Req& r, uint8_t* y) {
  const int64_t C = s.channels;
  for_each_pool_window(s, x, p, y, [&](const uint8_t* x_n, int64_t ih0, int64_t iw0, const PoolTaps& t, uint8_t* out) {
    int64_t c = 0;
    for (; c + 48 < C; c += 64)
      pool_block<4, kU, kMax, kSame>(s, x_n, ih0, iw0, t.kh0, t.kh1, t.kw0, t.kw1, t.valid, t.count, c, r, out);
    const int64_t rest = C - c;
    if (rest > 32)
      pool_block<3, kU, kMax, kSame>(s, x_n, ih0, iw0, t.kh0, t.kh1, t.kw0, t.kw1, t.valid, t.count, c, r, out);
    else if (rest > 16)
      pool_block<2, kU, kMax, kSame>(s, x_n, ih0, iw0, t.kh0, t.kh1, t.kw0, t.kw1, t.valid, t.count, c, r, out);
    else if (rest > 0)
      pool_block<1, kU, kMax, kSame>(s, x_n, ih0, iw0, t.kh0, t.kh1, t.kw0, t.kw1, t.valid, t.count, c, r, out);
  });
}

// Max pooling with equal input and output parameters where every window lies inside the input
// (no padding, floor mode): the answer is the clamped maximum of the stored bytes, so it is taken
// on bytes, 64 channels per vector, with no widening (digits CNN int8 1.056 -> 1.033 us).
template <bool kU>
void max_pool_bytes(const QWindow& s, const uint8_t* x, const QPoolParams& p, uint8_t* y) {
  const int64_t C = s.channels;
  const __m512i lo = _mm512_set1_epi8(static_cast<char>(p.qmin)), hi = _mm512_set1_epi8(static_cast<char>(p.qmax));
  for (int64_t n = 0; n < s.batch; ++n) {
    const uint8_t* x_n = x + n * s.in_h * s.in_w * C;
    for (int64_t oh = 0; oh < s.out_h; ++oh)
      for (int64_t ow = 0; ow < s.out_w; ++ow) {
        const uint8_t* win = x_n + (oh * s.stride_h * s.in_w + ow * s.stride_w) * C;
        uint8_t* out = y + ((n * s.out_h + oh) * s.out_w + ow) * C;
        for (int64_t c = 0; c < C; c += 64) {
          const __mmask64 m = C - c >= 64 ? ~__mmask64{0} : _cvtu64_mask64(~0ull >> (64 - (C - c)));
          __m512i v = _mm512_maskz_loadu_epi8(m, win + c);
          for (int64_t kh = 0; kh < s.kernel_h; ++kh)
            for (int64_t kw = kh == 0 ? 1 : 0; kw < s.kernel_w; ++kw) {
              const __m512i t = _mm512_maskz_loadu_epi8(m, win + (kh * s.dilation_h * s.in_w + kw * s.dilation_w) * C + c);
              v = kU ? _mm512_max_epu8(v, t) : _mm512_max_epi8(v, t);
            }
          v = kU ? _mm512_min_epu8(_mm512_max_epu8(v, lo), hi) : _mm512_min_epi8(_mm512_max_epi8(v, lo), hi);
          _mm512_mask_storeu_epi8(out + c, m, v);
        }
      }
  }
}

}  // namespace

void qs8_pool_avx512(const QWindow& s, const uint8_t* x, const QPoolParams& p, uint8_t* y, int32_t* acc) {
  Req r;
  r.xs = _mm512_set1_ps(p.x_scale);
  r.ys = _mm512_set1_ps(p.y_scale);
  r.yz = _mm512_set1_ps(static_cast<float>(p.y_zero));
  r.lo = _mm512_set1_ps(static_cast<float>(p.qmin));
  r.hi = _mm512_set1_ps(static_cast<float>(p.qmax));
  r.clamp_lo = _mm512_set1_ps(-4.0e6f);
  r.clamp_hi = _mm512_set1_ps(4.0e6f);
  r.magic = _mm512_set1_ps(12582912.f);
  r.xz = _mm512_set1_epi32(p.x_zero);
  r.x_zero = p.x_zero;
  r.qmin = _mm512_set1_epi32(p.qmin);
  r.qmax = _mm512_set1_epi32(p.qmax);
  const bool inside = s.pad_top == 0 && s.pad_left == 0 && p.pad_bottom == 0 && p.pad_right == 0 &&
                      (s.out_h - 1) * s.stride_h + (s.kernel_h - 1) * s.dilation_h < s.in_h &&
                      (s.out_w - 1) * s.stride_w + (s.kernel_w - 1) * s.dilation_w < s.in_w;
  if (p.is_max && p.same_params && p.x_unsigned == p.y_unsigned && inside && s.kernel_h * s.kernel_w > 0) {
    if (p.x_unsigned) max_pool_bytes<true>(s, x, p, y);
    else max_pool_bytes<false>(s, x, p, y);
    return;
  }
  if (p.is_max) {
    if (p.same_params) {
      if (p.x_unsigned) pool_all<true, true, true>(s, x, p, r, y);
      else pool_all<false, true, true>(s, x, p, r, y);
    } else {
      if (p.x_unsigned) pool_all<true, true, false>(s, x, p, r, y);
      else pool_all<false, true, false>(s, x, p, r, y);
    }
  } else {
    if (p.x_unsigned) pool_all<true, false, false>(s, x, p, r, y);
    else pool_all<false, false, false>(s, x, p, r, y);
  }
}

}  // namespace kiln::nn::kernels
