// kiln/nn/kernels/internal/padded_rows.h — the ring of zero-point-padded input rows that the
// column-unit 3x3 depthwise kernels (qs8_dwconv_avx512vnni.cc, qs8_dwconv_avxvnni.cc) read: one
// output row needs three input rows, a pair of output rows at stride 1 four, and neighbouring
// output rows share them, so each input row is copied once into one of four slots (any four
// consecutive rows take distinct slots) and a fifth slot holds zero points for the rows above and
// below the image.
//
// Everything is `static`: each including unit gets its own copy, so nothing compiled with one
// unit's ISA flags can be picked by the linker for another. copy_padded_row needs AVX2 (every unit
// that includes this header is built with it).
//
//   const PaddedRowScratch l = padded_row_scratch(s, sizeof(Block), 0, slack);  // l.bytes() of scratch
//   PaddedRowRing ring;
//   place_ring(ring, scratch, l, cols * s.channels + slack, zero_byte);
//   auto copy = [&](uint8_t* dst, const uint8_t* src) {
//     copy_padded_row(dst, src, s.pad_left, s.in_w, cols, s.channels, xor_byte, zero_byte, slack);
//   };
//   for_each_output_row(ring, s, row_begin, row_end, stride_1, x, copy,
//                       [&](const uint8_t* const (&rows)[4], int64_t r, bool two) { ... });
#pragma once

#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "kiln/nn/kernels/internal/qs8_ukernels.h"

namespace kiln::nn::kernels {

struct PaddedRowRing {
  uint8_t* slot[5] = {};               // four ring slots, then the zero-point row
  int64_t key[4] = {-1, -1, -1, -1};   // n * in_h + ih of the row each ring slot holds
};

// The scratch of a column-unit kernel call: the prepared blocks of its 16-channel groups
// (`block_size` bytes each, a multiple of 32), then the five slots of the ring. A slot holds
// `before` bytes ahead of its row (loads that start before the row: the AVX-512 kernel's), the
// row's (cols + 2) * C + 64 bytes that unit loads may touch with cols = (out_w - 1) * stride_w + 4
// (the widest row the kernels take), then `after` bytes; slots are 64-byte multiples.
struct PaddedRowScratch {
  int64_t blocks_bytes = 0, stride = 0, before = 0;
  int64_t bytes() const { return blocks_bytes + 5 * stride; }
};

static inline PaddedRowScratch padded_row_scratch(const QWindow& s, int64_t block_size, int64_t before,
                                                  int64_t after) {
  PaddedRowScratch l;
  l.blocks_bytes = (s.channels + 15) / 16 * block_size;
  const int64_t cols = (s.out_w - 1) * s.stride_w + 4;
  l.stride = ((cols + 2) * s.channels + 64 + 63) / 64 * 64 + before + after;
  l.before = before;
  return l;
}

// Points the ring's slots into `scratch` (past the prepared blocks) and fills the first
// `zero_bytes` of the zero-point row (the rows above and below the image) with `zero`.
static inline void place_ring(PaddedRowRing& ring, uint8_t* scratch, const PaddedRowScratch& l, int64_t zero_bytes,
                              uint8_t zero) {
  for (int i = 0; i < 5; ++i) ring.slot[i] = scratch + l.blocks_bytes + i * l.stride + l.before;
  std::memset(ring.slot[4], zero, static_cast<size_t>(zero_bytes));
}

// Points rows[0 .. count) (count <= 4) at the padded copies of input rows ih0 .. ih0 + count - 1
// of image n, calling copy(slot, first byte of the input row) only for a row whose slot holds
// another one; rows outside the image, and rows[count ..], get the zero-point row.
template <typename Copy>
static inline void select_rows(PaddedRowRing& ring, const QWindow& s, int64_t n, int64_t ih0, int count,
                               const uint8_t* x, const uint8_t* (&rows)[4], Copy&& copy) {
  for (int kh = 0; kh < 4; ++kh) rows[kh] = ring.slot[4];
  for (int kh = 0; kh < count; ++kh) {
    const int64_t ih = ih0 + kh;
    if (ih < 0 || ih >= s.in_h) continue;
    const int64_t key = n * s.in_h + ih, k = ih % 4;
    if (ring.key[k] != key) {
      copy(ring.slot[k], x + key * s.in_w * s.channels);
      ring.key[k] = key;
    }
    rows[kh] = ring.slot[k];
  }
}

// Walks output rows [row_begin, row_end) one at a time, or two at a time where `pairs` is set and
// the next row belongs to the same image and range, and calls f(rows, r, two) with the padded
// input rows under output row r (three, or four for a pair).
template <typename Copy, typename F>
static inline void for_each_output_row(PaddedRowRing& ring, const QWindow& s, int64_t row_begin, int64_t row_end,
                                       bool pairs, const uint8_t* x, Copy&& copy, F&& f) {
  for (int64_t r = row_begin; r < row_end;) {
    const int64_t n = r / s.out_h, oh = r % s.out_h;
    const bool two = pairs && r + 1 < row_end && oh + 1 < s.out_h;
    const uint8_t* rows[4];
    select_rows(ring, s, n, oh * s.stride_h - s.pad_top, two ? 4 : 3, x, rows, copy);
    f(rows, r, two);
    r += two ? 2 : 1;
  }
}

// Input row `src` (in_w columns of C bytes) as padded columns [0, cols) of `dst`: pad_left columns
// of `zero`, the row XORed with `x` (0x80 moves int8 into the unsigned domain), `zero` again up to
// cols, then `slack` more bytes of `zero` that unit loads past the last column may touch.
static inline void copy_padded_row(uint8_t* dst, const uint8_t* src, int64_t pad_left, int64_t in_w, int64_t cols,
                                   int64_t C, uint8_t x, uint8_t zero, int64_t slack) {
  const int64_t left = pad_left < cols ? pad_left : cols;
  int64_t body = cols - left < in_w ? cols - left : in_w;
  if (body < 0) body = 0;
  std::memset(dst, zero, static_cast<size_t>(left * C));
  const int64_t n = body * C;
  uint8_t* out = dst + left * C;
  const __m256i xv = _mm256_set1_epi8(static_cast<char>(x));
  int64_t i = 0;
  for (; i + 32 <= n; i += 32)
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + i),
                        _mm256_xor_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + i)), xv));
  for (; i < n; ++i) out[i] = static_cast<uint8_t>(src[i] ^ x);
  std::memset(out + n, zero, static_cast<size_t>((cols - left - body) * C + slack));
}

}  // namespace kiln::nn::kernels
