// int8 NHWC 3x3 depthwise convolution for AVX2 without VNNI: the column units of
// qs8_dwconv_avx512vnni.cc with vpmaddwd. Built with -mavx2 -mfma only; everything here has
// internal linkage except the exported entry point, which qs8_dwconv_avx2 tries first.
//
// An int32 lane (one channel) holds an int16 pair of two input rows of a kernel column, and
// vpmaddwd with the matching weight pair adds both products: exact, as |x| <= 255 (the unsigned
// domain, int8 inputs XORed with 0x80) and |w| <= 128 (no vpmaddubsw, whose int16 sums
// saturate). A column's rows 0-3 give three units, A = (r0, r1), B = (r2, r3) and M = (r1, r2):
// the output row weighs A . (w0, w1) + B . (w2, 0), the row below M . (w0, w1) + B . (0, w2), so
// at stride 1 two output rows come from one pass. Rows are zero-point-padded copies
// (internal/padded_rows.h), so padding taps add zero_point * w, which the bias folded over all
// nine taps takes away again. 8 channels per vector; at stride 1 a half block keeps the units of
// the previous two columns in registers. Results are bit-identical to qdwconv_reference.
#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "kiln/nn/kernels/internal/padded_rows.h"
#include "kiln/nn/kernels/internal/qs8_avx2_store.h"
#include "kiln/nn/kernels/internal/qs8_ukernels.h"

namespace kiln::nn::kernels {
namespace {

using namespace qs8_avx2;

constexpr int64_t kRowBytes = 12288;  // one padded input row copy (four are kept)
constexpr int64_t kSlack = 64;        // bytes after a row that loads may touch
constexpr int64_t kMaxBlocks = 64;    // channels / 16

// Weight pairs and the folded bias of one 16-channel block, per 8-channel half and kernel column.
struct alignas(32) Block {
  __m256i w01[2][3];  // lane c: int16 (w(0, kw, c), w(1, kw, c))
  __m256i w20[2][3];  // (w(2, kw, c), 0)
  __m256i w02[2][3];  // (0, w(2, kw, c))
  __m256i bias[2];    // bias - zero * sum of the nine taps
};

// Tap t of the packed depthwise block (pack_qdepthwise: bias int32[16], scale float[16], taps x 16
// int16), channels 8 h .. 8 h + 7.
inline __m128i tap8(const uint8_t* blk, int t, int h) {
  return _mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + 128 + t * 32 + h * 16));
}

// Lane c = (lo[c], hi[c]) as an int16 pair.
inline __m256i pairs(__m128i lo, __m128i hi) {
  return _mm256_set_m128i(_mm_unpackhi_epi16(lo, hi), _mm_unpacklo_epi16(lo, hi));
}

Block make_block(const uint8_t* blk, int32_t zero) {
  Block b;
  const __m128i z = _mm_setzero_si128();
  for (int h = 0; h < 2; ++h) {
    __m256i sum = _mm256_setzero_si256();
    for (int kw = 0; kw < 3; ++kw) {
      const __m128i w0 = tap8(blk, kw, h), w1 = tap8(blk, 3 + kw, h), w2 = tap8(blk, 6 + kw, h);
      b.w01[h][kw] = pairs(w0, w1);
      b.w20[h][kw] = pairs(w2, z);
      b.w02[h][kw] = pairs(z, w2);
      sum = _mm256_add_epi32(sum, _mm256_add_epi32(_mm256_cvtepi16_epi32(w0),
                                                   _mm256_add_epi32(_mm256_cvtepi16_epi32(w1), _mm256_cvtepi16_epi32(w2))));
    }
    const __m256i bias = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + h * 32));
    b.bias[h] = _mm256_sub_epi32(bias, _mm256_mullo_epi32(sum, _mm256_set1_epi32(zero)));
  }
  return b;
}

// The units of one column (8 channels at byte offset `off`): int16 pairs of two rows' bytes.
struct Units {
  __m256i a, b, m;  // (r0, r1), (r2, r3), (r1, r2)
};

template <bool kTwo>
inline Units units(const uint8_t* const (&r)[4], int64_t off) {
  const __m128i x0 = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(r[0] + off));
  const __m128i x1 = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(r[1] + off));
  const __m128i x2 = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(r[2] + off));
  Units u;
  u.a = _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(x0, x1));
  if constexpr (kTwo) {
    const __m128i x3 = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(r[3] + off));
    u.b = _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(x2, x3));
    u.m = _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(x1, x2));
  } else {
    u.b = _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(x2, _mm_setzero_si128()));
    u.m = u.b;  // unused
  }
  return u;
}

// Requantises / stores 8 channels (n of them valid).
inline void store8(__m256i acc, const Epilogue& e, __m256 scale, const QParams& p, uint8_t* c, int n) {
  switch (p.out) {
    case QOutput::kInt8: {
      const __m256i q = requantize8(acc, scale, e);
      const __m128i w16 = _mm_packs_epi32(_mm256_castsi256_si128(q), _mm256_extracti128_si256(q, 1));
      store_bytes(c, _mm_xor_si128(_mm_packs_epi16(w16, w16), e.out_xor), n < 8 ? n : 8);
      return;
    }
    case QOutput::kFloat: {
      const __m256 f = _mm256_min_ps(_mm256_max_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(acc), scale), e.lo), e.hi);
      _mm256_maskstore_ps(reinterpret_cast<float*>(c), qs8_lane_mask(n), f);
      return;
    }
    case QOutput::kInt32:
      _mm256_maskstore_epi32(reinterpret_cast<int*>(c), qs8_lane_mask(n), acc);
      return;
  }
}

// One output row into y_row, or with kTwo (stride 1) also the next one into y_low.
template <int S, bool kTwo>
void col3_row(const QWindow& s, const uint8_t* const (&rows)[4], const Block* blocks, const uint8_t* w,
              int64_t block_bytes, const QParams& p, int64_t es, uint8_t* y_row, uint8_t* y_low) {
  const int64_t C = s.channels;
  for (int64_t c = 0; c < C; c += 16) {
    const Block& b = blocks[c / 16];
    const uint8_t* blk = w + (c / 16) * block_bytes;
    const Epilogue e = make_epilogue(reinterpret_cast<const float*>(blk + 64), p);
    for (int h = 0; h < 2 && c + 8 * h < C; ++h) {
      const int64_t off = c + 8 * h;
      const int n = C - off >= 8 ? 8 : static_cast<int>(C - off);
      const __m256 scale = h ? e.s1 : e.s0;
      Units u0 = units<kTwo>(rows, off), u1 = units<kTwo>(rows, off + C);
      for (int64_t ow = 0; ow < s.out_w; ++ow) {
        const int64_t p0 = ow * S;
        const Units u2 = units<kTwo>(rows, off + (p0 + 2) * C);
        const Units* col[3] = {&u0, &u1, &u2};
        __m256i up = b.bias[h], low = b.bias[h];
        for (int kw = 0; kw < 3; ++kw) {
          up = _mm256_add_epi32(up, _mm256_add_epi32(_mm256_madd_epi16(col[kw]->a, b.w01[h][kw]),
                                                     _mm256_madd_epi16(col[kw]->b, b.w20[h][kw])));
          if constexpr (kTwo)
            low = _mm256_add_epi32(low, _mm256_add_epi32(_mm256_madd_epi16(col[kw]->m, b.w01[h][kw]),
                                                         _mm256_madd_epi16(col[kw]->b, b.w02[h][kw])));
        }
        store8(up, e, scale, p, y_row + (ow * C + off) * es, n);
        if constexpr (kTwo) store8(low, e, scale, p, y_low + (ow * C + off) * es, n);
        if constexpr (S == 1) {
          u0 = u1;
          u1 = u2;
        } else {  // the next window starts two columns further on
          u0 = u2;
          u1 = units<kTwo>(rows, off + (p0 + 3) * C);
        }
      }
    }
  }
}

bool fits(const QWindow& s) {
  if (s.kernel_h != 3 || s.kernel_w != 3 || s.dilation_h != 1 || s.dilation_w != 1) return false;
  if ((s.stride_w != 1 && s.stride_w != 2) || s.channels > 16 * kMaxBlocks || s.out_w < 1) return false;
  return ((s.out_w - 1) * s.stride_w + 4 + 2) * s.channels + 64 <= kRowBytes;
}

// The scratch of the fitting geometries (internal/padded_rows.h): loads start at a row.
PaddedRowScratch scratch_layout(const QWindow& s) { return padded_row_scratch(s, sizeof(Block), 0, kSlack); }

}  // namespace

size_t qs8_dwconv_col3_avx2_scratch(const QWindow& s) {
  return fits(s) ? static_cast<size_t>(scratch_layout(s).bytes()) : 0;
}

bool qs8_dwconv_col3_avx2(const QWindow& s, const uint8_t* x, const uint8_t* w, int32_t a_zero, const QParams& p,
                          void* y, int64_t row_begin, int64_t row_end, void* scratch) {
  if (!fits(s)) return false;
  const int64_t C = s.channels, S = s.stride_w, es = out_bytes(p);
  // a_xor is 0x80 exactly for uint8 inputs (pack_qdepthwise), a_zero then zero_point - 128: both
  // kinds are multiplied in the unsigned domain, where the zero point is a_zero + 128.
  const int32_t zero_u = a_zero + 128;
  const uint8_t x_byte = p.a_xor != 0 ? 0 : 0x80;
  const int64_t block_bytes = 16 * 8 + 9 * 16 * 2;
  const bool two = S == 1 && s.stride_h == 1;
  Block* blocks = static_cast<Block*>(scratch);
  for (int64_t bi = 0; bi < (C + 15) / 16; ++bi) blocks[bi] = make_block(w + bi * block_bytes, zero_u);
  const int64_t cols = (s.out_w - 1) * S + 3;
  PaddedRowRing ring;
  place_ring(ring, static_cast<uint8_t*>(scratch), scratch_layout(s), cols * C + kSlack, static_cast<uint8_t>(zero_u));
  const auto copy = [&](uint8_t* dst, const uint8_t* src) {
    copy_padded_row(dst, src, s.pad_left, s.in_w, cols, C, x_byte, static_cast<uint8_t>(zero_u), kSlack);
  };
  uint8_t* yb = static_cast<uint8_t*>(y);
  for_each_output_row(ring, s, row_begin, row_end, two, x, copy, [&](const uint8_t* const (&rows)[4], int64_t r, bool both) {
    uint8_t* y_row = yb + r * s.out_w * C * es;
    if (S == 1) {
      if (both) col3_row<1, true>(s, rows, blocks, w, block_bytes, p, es, y_row, y_row + s.out_w * C * es);
      else col3_row<1, false>(s, rows, blocks, w, block_bytes, p, es, y_row, nullptr);
    } else {
      col3_row<2, false>(s, rows, blocks, w, block_bytes, p, es, y_row, nullptr);
    }
  });
  return true;
}

}  // namespace kiln::nn::kernels
