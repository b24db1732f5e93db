// The ymm epilogue of the int8 micro-kernels: requantise / dequantise / store 16 columns of
// int32 accumulators. Shared by qs8_avx2.cc and qs8_avxvnni.cc; every function is `static
// inline`, so each including unit keeps a private copy (no ISA code can leak to other callers).
// Include only from files built with -mavx2 -mfma (or wider).
#pragma once

#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "kiln/nn/kernels/internal/qs8_ukernels.h"

namespace kiln::nn::kernels::qs8_avx2 {

// Per-tile constants of the epilogue, loaded once per tile.
struct Epilogue {
  __m256 s0, s1;        // per-column scales (columns 0-7, 8-15)
  __m256 lo, hi;        // clamp bounds (int8: qmin - zp, qmax - zp; float: flo, fhi)
  __m256i zp;           // output zero point (int8)
  __m128i out_xor;
};

static inline Epilogue make_epilogue(const float* scale, const QParams& p) {
  Epilogue e;
  e.s0 = _mm256_loadu_ps(scale);
  e.s1 = _mm256_loadu_ps(scale + 8);
  if (p.out == QOutput::kInt8) {
    e.lo = _mm256_set1_ps(static_cast<float>(p.qmin - p.out_zero_point));
    e.hi = _mm256_set1_ps(static_cast<float>(p.qmax - p.out_zero_point));
  } else {
    e.lo = _mm256_set1_ps(p.flo);
    e.hi = _mm256_set1_ps(p.fhi);
  }
  e.zp = _mm256_set1_epi32(p.out_zero_point);
  e.out_xor = _mm_set1_epi8(static_cast<char>(p.out_xor));
  return e;
}

// The first n lanes set (n may be <= 0 or >= 8).
static inline __m256i qs8_lane_mask(int n) {
  const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), idx);
}

// Rounds half to even under the default MXCSR mode, like std::nearbyint in the reference.
static inline __m256i requantize8(__m256i acc, __m256 scale, const Epilogue& e) {
  __m256 f = _mm256_mul_ps(_mm256_cvtepi32_ps(acc), scale);
  f = _mm256_min_ps(_mm256_max_ps(f, e.lo), e.hi);
  return _mm256_add_epi32(_mm256_cvtps_epi32(f), e.zp);
}

// 16 int32 values (already within int8 range) -> 16 bytes in order.
static inline __m128i pack16(__m256i a, __m256i b) {
  __m256i w = _mm256_packs_epi32(a, b);  // a0-3 b0-3 | a4-7 b4-7
  w = _mm256_permute4x64_epi64(w, 0xD8);  // a0-7 | b0-7
  return _mm_packs_epi16(_mm256_castsi256_si128(w), _mm256_extracti128_si256(w, 1));
}

// The first n bytes of b (n >= 1; 16 at most are stored), whole stores where n allows.
static inline void store_bytes(void* c, __m128i b, int64_t n) {
  if (n >= 16) {
    _mm_storeu_si128(static_cast<__m128i*>(c), b);
  } else if (n == 8) {
    _mm_storel_epi64(static_cast<__m128i*>(c), b);
  } else {
    alignas(16) uint8_t tmp[16];
    _mm_store_si128(reinterpret_cast<__m128i*>(tmp), b);
    std::memcpy(c, tmp, static_cast<size_t>(n));
  }
}

// Stores one row of 16 columns (nc of them valid) in the output kind `p.out`.
static inline void store_row(__m256i acc0, __m256i acc1, const Epilogue& e, const QParams& p, void* c, int nc) {
  switch (p.out) {
    case QOutput::kInt8: {
      store_bytes(c, _mm_xor_si128(pack16(requantize8(acc0, e.s0, e), requantize8(acc1, e.s1, e)), e.out_xor), nc);
      return;
    }
    case QOutput::kFloat: {
      __m256 f0 = _mm256_min_ps(_mm256_max_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(acc0), e.s0), e.lo), e.hi);
      __m256 f1 = _mm256_min_ps(_mm256_max_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(acc1), e.s1), e.lo), e.hi);
      float* y = static_cast<float*>(c);
      if (nc >= 16) {
        _mm256_storeu_ps(y, f0);
        _mm256_storeu_ps(y + 8, f1);
      } else {
        if (nc >= 8) _mm256_storeu_ps(y, f0);
        else _mm256_maskstore_ps(y, qs8_lane_mask(nc), f0);
        if (nc > 8) _mm256_maskstore_ps(y + 8, qs8_lane_mask(nc - 8), f1);
      }
      return;
    }
    case QOutput::kInt32: {
      int* y = static_cast<int*>(c);
      if (nc >= 16) {
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(y), acc0);
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(y + 8), acc1);
      } else {
        if (nc >= 8) _mm256_storeu_si256(reinterpret_cast<__m256i*>(y), acc0);
        else _mm256_maskstore_epi32(y, qs8_lane_mask(nc), acc0);
        if (nc > 8) _mm256_maskstore_epi32(y + 8, qs8_lane_mask(nc - 8), acc1);
      }
      return;
    }
  }
}

// int8 output when every multiplier is below 0.5 (|float(acc) * scale| < 2^30 converts to int32
// without overflow): two rows of 16 columns are rounded, packed to int16 with saturation, given
// the zero point (saturating), packed to int8, clamped to [qmin, qmax] and put in order with one
// permute, about 11 operations per row instead of store_row's 18. The result is store_row's:
// rint(clamp(f, qmin - zp, qmax - zp)) + zp = clamp(rint(f) + zp, qmin, qmax) for integral
// bounds, and the saturations only move values that the clamp moves anyway.
struct PackedEpilogue {
  __m256i zp16, lo8, hi8, xor8, perm;
};

static inline bool packable(const Epilogue& e) {
  const __m256 half = _mm256_set1_ps(0.5f);
  const int lt = _mm256_movemask_ps(_mm256_cmp_ps(e.s0, half, _CMP_LT_OQ)) &
                 _mm256_movemask_ps(_mm256_cmp_ps(e.s1, half, _CMP_LT_OQ));
  return lt == 0xFF;
}

static inline PackedEpilogue make_packed_epilogue(const QParams& p) {
  PackedEpilogue e;
  e.zp16 = _mm256_set1_epi16(static_cast<int16_t>(p.out_zero_point));
  e.lo8 = _mm256_set1_epi8(static_cast<char>(p.qmin));
  e.hi8 = _mm256_set1_epi8(static_cast<char>(p.qmax));
  e.xor8 = _mm256_set1_epi8(static_cast<char>(p.out_xor));
  // after the packs, 128-bit lane k holds dwords (a0, a1, b0, b1) of columns 4k..4k+3
  e.perm = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
  return e;
}

// Rows a (a0: columns 0-7, a1: 8-15) and b requantised: bytes 0-15 are row a, 16-31 row b.
static inline __m256i pack_rows2(__m256i a0, __m256i a1, __m256i b0, __m256i b1, const Epilogue& e,
                                 const PackedEpilogue& pe) {
  const auto rs = [](__m256i acc, __m256 scale) { return _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_cvtepi32_ps(acc), scale)); };
  const __m256i a = _mm256_adds_epi16(_mm256_packs_epi32(rs(a0, e.s0), rs(a1, e.s1)), pe.zp16);
  const __m256i b = _mm256_adds_epi16(_mm256_packs_epi32(rs(b0, e.s0), rs(b1, e.s1)), pe.zp16);
  const __m256i v = _mm256_min_epi8(_mm256_max_epi8(_mm256_packs_epi16(a, b), pe.lo8), pe.hi8);
  return _mm256_permutevar8x32_epi32(_mm256_xor_si256(v, pe.xor8), pe.perm);
}

// Bytes per output element.
static inline int64_t out_bytes(const QParams& p) { return p.out == QOutput::kInt8 ? 1 : 4; }

// Requantises / stores an MR x 16 tile (packed weights: bias int32[16], then scale float[16]),
// rows in pairs through pack_rows2 when the output is int8 and every multiplier is below 0.5
// (a lone last row twice), else row by row. Always inlined: called out of line, it made the
// tile functions keep their accumulators in memory (AVX-VNNI VWW 130 -> 147 us).
template <int MR>
__attribute__((always_inline)) static inline void store_tile16(__m256i (&acc0)[MR], __m256i (&acc1)[MR],
                                                              const QTile& t) {
  const QParams& p = *t.params;
  const Epilogue e = make_epilogue(reinterpret_cast<const float*>(t.w + 16 * 4), p);
  const int64_t es = out_bytes(p);
  if (p.out == QOutput::kInt8 && packable(e)) {
    const PackedEpilogue pe = make_packed_epilogue(p);
    uint8_t* c = static_cast<uint8_t*>(t.c);
#pragma GCC unroll 4
    for (int i = 0; i < MR; i += 2) {
      const int j = i + 1 < MR ? i + 1 : i;
      const __m256i v = pack_rows2(acc0[i], acc1[i], acc0[j], acc1[j], e, pe);
      if (t.nc == 16) {
        if (t.ldc == 16 && j > i) {  // two whole, adjacent output rows
          _mm256_storeu_si256(reinterpret_cast<__m256i*>(c + i * 16), v);
          continue;
        }
        _mm_storeu_si128(reinterpret_cast<__m128i*>(c + i * t.ldc), _mm256_castsi256_si128(v));
        if (j > i) _mm_storeu_si128(reinterpret_cast<__m128i*>(c + j * t.ldc), _mm256_extracti128_si256(v, 1));
        continue;
      }
      store_bytes(c + i * t.ldc, _mm256_castsi256_si128(v), t.nc);  // a partial tile: nc < 16
      if (j > i) store_bytes(c + j * t.ldc, _mm256_extracti128_si256(v, 1), t.nc);
    }
    return;
  }
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i) store_row(acc0[i], acc1[i], e, p, static_cast<uint8_t*>(t.c) + i * t.ldc * es, t.nc);
}

// Four activation bytes broadcast to every 32-bit lane, XORed with `x`; a group past the end of
// the row (n < 4 bytes left) reads only n bytes (the packed weights are zero there).
static inline __m256i bcast4(const uint8_t* p, __m256i x) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return _mm256_xor_si256(_mm256_set1_epi32(v), x);
}
// The same without the XOR (activations already in the kernel's domain: qgemm's a_prexored).
static inline __m256i bcast4_plain(const uint8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return _mm256_set1_epi32(v);
}
static inline __m256i bcast_partial(const uint8_t* p, int64_t n, __m256i x) {
  // n = 1..3 bytes, assembled by byte loads (a memcpy of run-time length is a library call).
  uint32_t u = p[0];
  if (n > 1) u |= static_cast<uint32_t>(p[1]) << 8;
  if (n > 2) u |= static_cast<uint32_t>(p[2]) << 16;
  return _mm256_xor_si256(_mm256_set1_epi32(static_cast<int32_t>(u)), x);
}

}  // namespace kiln::nn::kernels::qs8_avx2
