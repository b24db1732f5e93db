// int8 max / average pooling (com.kiln.QPool) for AVX2: qs8_pool_avx512.cc on ymm, 8 channels per
// vector as int32 lanes, up to 32 channels per pass over a window. Built with -mavx2 -mfma only;
// everything here has internal linkage except the exported entry point.
//
// The arithmetic is qs8_pool_scalar's (qgemm.cc), operation for operation (see qs8_pool_avx512.cc),
// so results are bit-identical. AVX2 has no byte-masked loads or stores: layers whose channel
// count is not a multiple of 8 run the scalar loop.
#include <immintrin.h>

#include <cstdint>

#include "kiln/nn/kernels/internal/pool_windows.h"
#include "kiln/nn/kernels/internal/qs8_ukernels.h"

namespace kiln::nn::kernels {
namespace {

template <bool kU>
inline __m256i load_x(const uint8_t* p) {
  const __m128i b = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(p));
  return kU ? _mm256_cvtepu8_epi32(b) : _mm256_cvtepi8_epi32(b);
}

struct Req {
  __m256 xs, ys, yz, lo, hi, clamp_lo, clamp_hi, magic;
  __m256i xz, qmin, qmax;
  int32_t x_zero;
  bool y_unsigned;
};

// 8 int32 values inside y's range -> their 8 bytes.
inline void store8(uint8_t* out, __m256i q, bool y_unsigned) {
  const __m128i w = _mm_packs_epi32(_mm256_castsi256_si128(q), _mm256_extracti128_si256(q, 1));
  _mm_storel_epi64(reinterpret_cast<__m128i*>(out), y_unsigned ? _mm_packus_epi16(w, w) : _mm_packs_epi16(w, w));
}

// One window's channels [c, c + 8 * V) of one output pixel; taps inside the input are rows
// [kh0, kh1) x columns [kw0, kw1).
template <int V, bool kU, bool kMax, bool kSame>
inline void pool_block(const QWindow& s, const uint8_t* x_n, int64_t ih0, int64_t iw0, int64_t kh0, int64_t kh1,
                       int64_t kw0, int64_t kw1, int64_t valid, int64_t count, int64_t c, const Req& r,
                       uint8_t* out) {
  const int64_t C = s.channels;
  __m256i acc[V];
#pragma GCC unroll 4
  for (int v = 0; v < V; ++v) acc[v] = kMax ? _mm256_set1_epi32(-1000) : _mm256_setzero_si256();
  for (int64_t kh = kh0; kh < kh1; ++kh) {
    const uint8_t* xrow = x_n + (ih0 + kh * s.dilation_h) * s.in_w * C + c;
    for (int64_t kw = kw0; kw < kw1; ++kw) {
      const uint8_t* xp = xrow + (iw0 + kw * s.dilation_w) * C;
#pragma GCC unroll 4
      for (int v = 0; v < V; ++v) {
        const __m256i xv = load_x<kU>(xp + 8 * v);
        acc[v] = kMax ? _mm256_max_epi32(acc[v], xv) : _mm256_add_epi32(acc[v], xv);
      }
    }
  }
  const __m256i xz_valid = _mm256_set1_epi32(static_cast<int32_t>(static_cast<uint32_t>(r.x_zero) *
                                                                  static_cast<uint32_t>(valid)));
  const __m256 countf = _mm256_set1_ps(static_cast<float>(count));
#pragma GCC unroll 4
  for (int v = 0; v < V; ++v) {
    __m256i q;
    if constexpr (kMax && kSame) {
      q = _mm256_min_epi32(_mm256_max_epi32(acc[v], r.qmin), r.qmax);
    } else {
      __m256 real;
      if constexpr (kMax) {
        real = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(acc[v], r.xz)), r.xs);
      } else {
        real = count ? _mm256_div_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(acc[v], xz_valid)), r.xs),
                                     countf)
                     : _mm256_setzero_ps();
      }
      __m256 f = _mm256_div_ps(real, r.ys);
      f = _mm256_min_ps(_mm256_max_ps(f, r.clamp_lo), r.clamp_hi);
      f = _mm256_sub_ps(_mm256_add_ps(f, r.magic), r.magic);
      f = _mm256_min_ps(_mm256_max_ps(_mm256_add_ps(f, r.yz), r.lo), r.hi);
      q = _mm256_cvttps_epi32(f);
    }
    store8(out + c + 8 * v, q, r.y_unsigned);
  }
}

template <bool kU, bool kMax, bool kSame>
void pool_all(const QWindow& s, const uint8_t* x, const QPoolParams& p, const Req& r, uint8_t* y) {
  const int64_t C = s.channels;
  for_each_pool_window(s, x, p, y, [&](const uint8_t* x_n, int64_t ih0, int64_t iw0, const PoolTaps& t, uint8_t* out) {
    int64_t c = 0;
    for (; c + 32 <= C; c += 32)
      pool_block<4, kU, kMax, kSame>(s, x_n, ih0, iw0, t.kh0, t.kh1, t.kw0, t.kw1, t.valid, t.count, c, r, out);
    const int64_t rest = C - c;  // a multiple of 8
    if (rest == 24)
      pool_block<3, kU, kMax, kSame>(s, x_n, ih0, iw0, t.kh0, t.kh1, t.kw0, t.kw1, t.valid, t.count, c, r, out);
    else if (rest == 16)
      pool_block<2, kU, kMax, kSame>(s, x_n, ih0, iw0, t.kh0, t.kh1, t.kw0, t.kw1, t.valid, t.count, c, r, out);
    else if (rest == 8)
      pool_block<1, kU, kMax, kSame>(s, x_n, ih0, iw0, t.kh0, t.kh1, t.kw0, t.kw1, t.valid, t.count, c, r, out);
  });
}

}  // namespace

void qs8_pool_avx2(const QWindow& s, const uint8_t* x, const QPoolParams& p, uint8_t* y, int32_t* acc) {
  if (s.channels % 8 != 0) {
    qs8_pool_scalar(s, x, p, y, acc);
    return;
  }
  Req r;
  r.xs = _mm256_set1_ps(p.x_scale);
  r.ys = _mm256_set1_ps(p.y_scale);
  r.yz = _mm256_set1_ps(static_cast<float>(p.y_zero));
  r.lo = _mm256_set1_ps(static_cast<float>(p.qmin));
  r.hi = _mm256_set1_ps(static_cast<float>(p.qmax));
  r.clamp_lo = _mm256_set1_ps(-4.0e6f);
  r.clamp_hi = _mm256_set1_ps(4.0e6f);
  r.magic = _mm256_set1_ps(12582912.f);
  r.xz = _mm256_set1_epi32(p.x_zero);
  r.x_zero = p.x_zero;
  r.qmin = _mm256_set1_epi32(p.qmin);
  r.qmax = _mm256_set1_epi32(p.qmax);
  r.y_unsigned = p.y_unsigned;
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
