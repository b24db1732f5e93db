// int8 NHWC depthwise convolution for AVX-VNNI (VEX vpdpbusd on ymm: Alder Lake, Gracemont and
// later without AVX-512): the column units of qs8_dwconv_avx512vnni.cc on ymm. Built with -mavx2
// -mfma -mavxvnni only; everything here has internal linkage except the exported entry point.
//
// 3x3 kernels (dilation 1, strides 1 and 2, rows of up to 12 KB): an int32 lane multiplies the
// bytes of one channel in the rows of a kernel column (rows 0-2, or rows 0-3 when two output
// rows share the unit at stride 1: the upper row weighs rows 0-2, the lower one rows 1-3) by
// their weights, so one vpdpbusd does 24 useful products for 8 channels where the AVX2 kernel
// multiplies one tap at a time in int16. Rows come from zero-point-padded unsigned copies (int8
// inputs XORed with 0x80), so padding taps add zero_point * w, which the bias folded over all nine
// taps takes away again. A 16-channel block is two ymm halves; its unit is built from the rows'
// 16 bytes by two 128-bit inserts, two qword unpacks, two dword permutes and two byte shuffles.
// Other geometries go to qs8_dwconv_avx2. Results are bit-identical to qdwconv_reference.
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
constexpr int64_t kSlack = 64;        // bytes after a row that unit loads may touch
constexpr int64_t kMaxBlocks = 64;    // channels / 16

// The kernel-column weights and folded bias of one 16-channel block, as two 8-lane halves.
struct alignas(32) Block {
  __m256i w[2][3];      // [half][kw]: lane j = bytes w(0, kw, c), w(1, kw, c), w(2, kw, c), 0
  __m256i w_low[2][3];  // the same one byte up, for the output row below
  __m256i bias[2];      // bias - zero * sum of the nine taps
};

// Packed depthwise block (pack_qdepthwise): bias int32[16], scale float[16], taps x 16 int16.
inline __m256i tap8(const uint8_t* blk, int64_t tap, int half) {
  return _mm256_cvtepi16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + 128 + tap * 32 + half * 16)));
}

inline Block make_block(const uint8_t* blk, int32_t zero) {
  Block b;
  const __m256i lo = _mm256_set1_epi32(0xFF);
  for (int h = 0; h < 2; ++h) {
    __m256i sum = _mm256_setzero_si256();
    for (int kw = 0; kw < 3; ++kw) {
      __m256i v = _mm256_setzero_si256();
      for (int kh = 0; kh < 3; ++kh) {
        const __m256i t = tap8(blk, kh * 3 + kw, h);
        sum = _mm256_add_epi32(sum, t);
        v = _mm256_or_si256(v, _mm256_slli_epi32(_mm256_and_si256(t, lo), 8 * kh));
      }
      b.w[h][kw] = v;
      b.w_low[h][kw] = _mm256_slli_epi32(v, 8);
    }
    const __m256i bias = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + h * 32));
    b.bias[h] = _mm256_sub_epi32(bias, _mm256_mullo_epi32(sum, _mm256_set1_epi32(zero)));
  }
  return b;
}

// The units of byte offset `off` (16 channels) of the first kRows (3 or 4) padded rows: u[0] for
// channels 0-7, u[1] for 8-15.
template <int kRows>
inline void units(const uint8_t* const (&r)[4], int64_t off, __m256i (&u)[2]) {
  const __m256i dword_idx = _mm256_setr_epi32(0, 2, 4, 6, 1, 3, 5, 7);
  const __m256i byte_idx = _mm256_setr_epi8(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15, 0, 4, 8, 12, 1, 5,
                                            9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
  const __m128i d = kRows == 4 ? _mm_loadu_si128(reinterpret_cast<const __m128i*>(r[3] + off)) : _mm_setzero_si128();
  // [row 0 | row 2] and [row 1 | row 3]: their qword unpacks hold, per 128-bit lane, 8 channels of
  // two rows: [r0 c0-7, r1 c0-7 | r2 c0-7, r3 c0-7] (low qwords) and the same for c8-15.
  const __m256i ac = _mm256_inserti128_si256(
      _mm256_castsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(r[0] + off))),
      _mm_loadu_si128(reinterpret_cast<const __m128i*>(r[2] + off)), 1);
  const __m256i bd = _mm256_inserti128_si256(
      _mm256_castsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(r[1] + off))), d, 1);
  // dwords [r0 c0-3, r0 c4-7, r1 c0-3, r1 c4-7 | r2 .., r3 ..] -> [r0 r1 r2 r3 of c0-3 | of c4-7],
  // then bytes regrouped per channel.
  u[0] = _mm256_shuffle_epi8(_mm256_permutevar8x32_epi32(_mm256_unpacklo_epi64(ac, bd), dword_idx), byte_idx);
  u[1] = _mm256_shuffle_epi8(_mm256_permutevar8x32_epi32(_mm256_unpackhi_epi64(ac, bd), dword_idx), byte_idx);
}

// One output row into y_row, or with kTwo (stride 1) also the next one into y_low.
template <int S, bool kTwo>
void col3_row(const QWindow& s, const uint8_t* const (&rows)[4], const Block* blocks, const uint8_t* w,
              int64_t block_bytes, const QParams& p, int64_t es, uint8_t* y_row, uint8_t* y_low) {
  constexpr int kRows = kTwo ? 4 : 3;
  const int64_t C = s.channels;
  for (int64_t c = 0; c < C; c += 16) {
    const Block& b = blocks[c / 16];
    const uint8_t* blk = w + (c / 16) * block_bytes;
    const Epilogue e = make_epilogue(reinterpret_cast<const float*>(blk + 64), p);
    const int nc = C - c >= 16 ? 16 : static_cast<int>(C - c);
    __m256i u0[2], u1[2], u2[2];
    units<kRows>(rows, c, u0);
    units<kRows>(rows, c + C, u1);
    for (int64_t ow = 0; ow < s.out_w; ++ow) {
      const int64_t p0 = ow * S;
      units<kRows>(rows, c + (p0 + 2) * C, u2);
      __m256i up[2], low[2];
      for (int h = 0; h < 2; ++h) {
        up[h] = _mm256_dpbusd_avx_epi32(b.bias[h], u0[h], b.w[h][0]);
        up[h] = _mm256_dpbusd_avx_epi32(up[h], u1[h], b.w[h][1]);
        up[h] = _mm256_dpbusd_avx_epi32(up[h], u2[h], b.w[h][2]);
        if constexpr (kTwo) {
          low[h] = _mm256_dpbusd_avx_epi32(b.bias[h], u0[h], b.w_low[h][0]);
          low[h] = _mm256_dpbusd_avx_epi32(low[h], u1[h], b.w_low[h][1]);
          low[h] = _mm256_dpbusd_avx_epi32(low[h], u2[h], b.w_low[h][2]);
        }
      }
      store_row(up[0], up[1], e, p, y_row + (ow * C + c) * es, nc);
      if constexpr (kTwo) store_row(low[0], low[1], e, p, y_low + (ow * C + c) * es, nc);
      if constexpr (S == 1) {
        for (int h = 0; h < 2; ++h) {
          u0[h] = u1[h];
          u1[h] = u2[h];
        }
      } else {  // the next window starts two columns further on
        for (int h = 0; h < 2; ++h) u0[h] = u2[h];
        units<kRows>(rows, c + (p0 + 3) * C, u1);
      }
    }
  }
}

bool fits(const QWindow& s) {
  if (s.kernel_h != 3 || s.kernel_w != 3 || s.dilation_h != 1 || s.dilation_w != 1) return false;
  if (s.stride_w != 1 && s.stride_w != 2) return false;
  if (s.channels > 16 * kMaxBlocks || s.out_w < 1) return false;
  const int64_t cols = (s.out_w - 1) * s.stride_w + 4;
  return (cols + 2) * s.channels + 64 <= kRowBytes;
}

// The scratch of the fitting geometries (internal/padded_rows.h): loads start at a row.
PaddedRowScratch scratch_layout(const QWindow& s) { return padded_row_scratch(s, sizeof(Block), 0, kSlack); }

}  // namespace

size_t qs8_dwconv_avxvnni_scratch(const QWindow& s) {
  if (!fits(s)) return qs8_dwconv_avx2_scratch(s);
  return static_cast<size_t>(scratch_layout(s).bytes());
}

void qs8_dwconv_avxvnni(const QWindow& s, const uint8_t* x, const uint8_t* w, int32_t a_zero, const QParams& p,
                        void* y, int64_t row_begin, int64_t row_end, void* scratch) {
  if (!fits(s)) {
    qs8_dwconv_avx2(s, x, w, a_zero, p, y, row_begin, row_end, scratch);
    return;
  }
  // a_xor is 0x80 exactly for uint8 inputs (pack_qdepthwise); a_zero is then zero_point - 128.
  // Units multiply unsigned bytes: int8 inputs are XORed into that domain, uint8 ones stay.
  const bool is_unsigned = p.a_xor != 0;
  const int32_t zero_u = a_zero + 128;
  const uint8_t x_byte = is_unsigned ? 0 : 0x80;
  const int64_t C = s.channels, S = s.stride_w, es = out_bytes(p);
  const int64_t block_bytes = 16 * 8 + 9 * 16 * 2;
  const bool two = S == 1 && s.stride_h == 1;
  const int64_t nb = (C + 15) / 16;
  Block* blocks = static_cast<Block*>(scratch);
  for (int64_t bi = 0; bi < nb; ++bi) blocks[bi] = make_block(w + bi * block_bytes, zero_u);
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
}

}  // namespace kiln::nn::kernels
