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
  // A full mask loads unmasked (the store buffer forwards only to unmasked loads).
  const __m128i b = m == 0xFFFF ? _mm_loadu_si128(reinterpret_cast<const __m128i*>(p)) : _mm_maskz_loadu_epi8(m, p);
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

// The byte-wise window maximum of one output pixel's channels [c, c + width of V): whole unmasked
// vectors of 16, 32 or 64 bytes, which the store buffer can forward from the convolution's row
// stores just before (a masked load waits for them to reach the cache: the digits CNN's two pools
// took 0.2 us of its 0.93).
template <bool kU, typename V, typename Load, typename Max, typename Clamp, typename Store>
inline void max_bytes(const QWindow& s, const uint8_t* win, uint8_t* out, Load load, Max max, Clamp clamp,
                      Store store) {
  const int64_t C = s.channels;
  V v = load(win);
  for (int64_t kh = 0; kh < s.kernel_h; ++kh)
    for (int64_t kw = kh == 0 ? 1 : 0; kw < s.kernel_w; ++kw)
      v = max(v, load(win + (kh * s.dilation_h * s.in_w + kw * s.dilation_w) * C));
  store(out, clamp(v));
}

// 2x2 windows at stride 2 over 16 or 32 channels (LeNet-style CNNs after each convolution), rows
// of a multiple of 64 bytes: both input rows are read in whole 64-byte vectors, the loads the
// convolution's 64-byte stores forward to, and the horizontal maximum is taken in registers. A
// tiny map is still in the store buffer when the pool starts, and 16- or 32-byte loads from the
// middle of those stores wait for them to reach the cache (the digits CNN's two pools 0.2 us).
template <bool kU>
bool max_pool_2x2_rows(const QWindow& s, const uint8_t* x, const QPoolParams& p, uint8_t* y) {
  const int64_t C = s.channels, row = s.in_w * C;
  if ((C != 16 && C != 32) || s.kernel_h != 2 || s.kernel_w != 2 || s.stride_h != 2 || s.stride_w != 2 ||
      s.dilation_h != 1 || s.dilation_w != 1 || row % 64 != 0 || s.out_w * 2 != s.in_w)
    return false;
  const __m256i lo = _mm256_set1_epi8(static_cast<char>(p.qmin)), hi = _mm256_set1_epi8(static_cast<char>(p.qmax));
  for (int64_t n = 0; n < s.batch; ++n)
    for (int64_t oh = 0; oh < s.out_h; ++oh) {
      const uint8_t* r0 = x + (n * s.in_h + 2 * oh) * row;
      const uint8_t* r1 = r0 + row;
      uint8_t* out = y + (n * s.out_h + oh) * s.out_w * C;
      for (int64_t j = 0; j < row; j += 64, out += 32) {
        const __m512i a = _mm512_loadu_si512(r0 + j), b = _mm512_loadu_si512(r1 + j);
        const __m512i v = kU ? _mm512_max_epu8(a, b) : _mm512_max_epi8(a, b);
        // Left and right pixels of each window: 128-bit lanes (0, 2) and (1, 3) for 16 channels,
        // 256-bit halves for 32.
        const __m256i l = _mm512_castsi512_si256(C == 16 ? _mm512_shuffle_i64x2(v, v, 0x08) : v);
        const __m256i r = _mm512_castsi512_si256(C == 16 ? _mm512_shuffle_i64x2(v, v, 0x0D) : _mm512_shuffle_i64x2(v, v, 0x0E));
        __m256i m = kU ? _mm256_max_epu8(l, r) : _mm256_max_epi8(l, r);
        m = kU ? _mm256_min_epu8(_mm256_max_epu8(m, lo), hi) : _mm256_min_epi8(_mm256_max_epi8(m, lo), hi);
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(out), m);
      }
    }
  return true;
}

// Max pooling with equal input and output parameters where every window lies inside the input
// (no padding, floor mode): the answer is the clamped maximum of the stored bytes, so it is taken
// on bytes, up to 64 channels per vector, with no widening (digits CNN int8 1.056 -> 1.033 us).
template <bool kU>
void max_pool_bytes(const QWindow& s, const uint8_t* x, const QPoolParams& p, uint8_t* y) {
  if (max_pool_2x2_rows<kU>(s, x, p, y)) return;
  const int64_t C = s.channels;
  const __m512i lo = _mm512_set1_epi8(static_cast<char>(p.qmin)), hi = _mm512_set1_epi8(static_cast<char>(p.qmax));
  const __m256i lo32 = _mm512_castsi512_si256(lo), hi32 = _mm512_castsi512_si256(hi);
  const __m128i lo16 = _mm512_castsi512_si128(lo), hi16 = _mm512_castsi512_si128(hi);
  const auto z64 = [](const uint8_t* q) { return _mm512_loadu_si512(q); };
  const auto y32 = [](const uint8_t* q) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q)); };
  const auto x16 = [](const uint8_t* q) { return _mm_loadu_si128(reinterpret_cast<const __m128i*>(q)); };
  const auto max64 = [](__m512i a, __m512i b) { return kU ? _mm512_max_epu8(a, b) : _mm512_max_epi8(a, b); };
  const auto max32 = [](__m256i a, __m256i b) { return kU ? _mm256_max_epu8(a, b) : _mm256_max_epi8(a, b); };
  const auto max16 = [](__m128i a, __m128i b) { return kU ? _mm_max_epu8(a, b) : _mm_max_epi8(a, b); };
  const auto clamp64 = [&](__m512i v) { return max64(kU ? _mm512_min_epu8(v, hi) : _mm512_min_epi8(v, hi), lo); };
  const auto clamp32 = [&](__m256i v) { return max32(kU ? _mm256_min_epu8(v, hi32) : _mm256_min_epi8(v, hi32), lo32); };
  const auto clamp16 = [&](__m128i v) { return max16(kU ? _mm_min_epu8(v, hi16) : _mm_min_epi8(v, hi16), lo16); };
  const auto st64 = [](uint8_t* q, __m512i v) { _mm512_storeu_si512(q, v); };
  const auto st32 = [](uint8_t* q, __m256i v) { _mm256_storeu_si256(reinterpret_cast<__m256i*>(q), v); };
  const auto st16 = [](uint8_t* q, __m128i v) { _mm_storeu_si128(reinterpret_cast<__m128i*>(q), v); };
  for (int64_t n = 0; n < s.batch; ++n) {
    const uint8_t* x_n = x + n * s.in_h * s.in_w * C;
    for (int64_t oh = 0; oh < s.out_h; ++oh)
      for (int64_t ow = 0; ow < s.out_w; ++ow) {
        const uint8_t* win = x_n + (oh * s.stride_h * s.in_w + ow * s.stride_w) * C;
        uint8_t* out = y + ((n * s.out_h + oh) * s.out_w + ow) * C;
        int64_t c = 0;
        for (; c + 64 <= C; c += 64) max_bytes<kU, __m512i>(s, win + c, out + c, z64, max64, clamp64, st64);
        if (c + 32 <= C) {
          max_bytes<kU, __m256i>(s, win + c, out + c, y32, max32, clamp32, st32);
          c += 32;
        }
        if (c + 16 <= C) {
          max_bytes<kU, __m128i>(s, win + c, out + c, x16, max16, clamp16, st16);
          c += 16;
        }
        if (c < C) {
          const __mmask64 m = _cvtu64_mask64(~0ull >> (64 - (C - c)));
          const auto zm = [m](const uint8_t* q) { return _mm512_maskz_loadu_epi8(m, q); };
          const auto sm = [m](uint8_t* q, __m512i v) { _mm512_mask_storeu_epi8(q, m, v); };
          max_bytes<kU, __m512i>(s, win + c, out + c, zm, max64, clamp64, sm);
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
