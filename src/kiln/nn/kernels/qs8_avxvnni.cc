// int8 GEMM / IGEMM micro-kernels for AVX-VNNI (VEX-encoded vpdpbusd on ymm, Alder Lake and
// later): 6 x 16 tiles, 12 ymm accumulators. Built with -mavx2 -mfma -mavxvnni only; everything
// here has internal linkage except the exported configuration.
//
// vpdpbusd multiplies unsigned by signed bytes and adds groups of four products to int32 lanes
// without intermediate saturation, so activations are fed as uint8 (int8 inputs are XORed with
// 0x80, and the packing folds the matching -(zero_point + 128) * sum(w) into the bias).
//
// The development machine (AMD EPYC, AVX2 only) cannot execute this instruction. The same source
// is also compiled with KILN_QS8_VNNI_EMULATION (plain AVX2 flags) into the unit tests, where an
// exact AVX2 emulation of vpdpbusd stands in for it: that checks the tiling, packing, tails and
// zero-point handling of this kernel on any AVX2 machine, though not the instruction itself.
#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "kiln/nn/kernels/internal/qgemm_rows.h"
#include "kiln/nn/kernels/internal/qs8_avx2_store.h"
#include "kiln/nn/kernels/internal/qs8_ukernels.h"

namespace kiln::nn::kernels {
namespace {

using namespace qs8_avx2;

constexpr int kMR = 6;
constexpr int kNR = 16;

#if defined(KILN_QS8_VNNI_MADDUBS)
// vpmaddubsw adds the two u8 x s8 products of each byte pair into int16 with saturation, and
// vpmaddwd by ones the two pairs of a group into int32: vpdpbusd's sum wherever |w0| + |w1| <= 128
// for every pair (255 * 128 = 32640 < 32767), which weights in [-64, 64] guarantee
// (qgemm_config_for checks each layer). Two instructions (and the add) per 32 products against
// the exact AVX2 kernel's five.
inline __m256i dpbusd(__m256i acc, __m256i a, __m256i w) {
  return _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(a, w), _mm256_set1_epi16(1)));
}
#elif defined(KILN_QS8_VNNI_EMULATION)
// acc + sum over each group of 4 of u8(a) * s8(w), exactly as vpdpbusd (no saturation).
inline __m256i dpbusd(__m256i acc, __m256i a, __m256i w) {
  const __m256i mask = _mm256_set1_epi16(0x00FF);
  const __m256i a_even = _mm256_and_si256(a, mask), a_odd = _mm256_srli_epi16(a, 8);
  const __m256i w_even = _mm256_srai_epi16(_mm256_slli_epi16(w, 8), 8), w_odd = _mm256_srai_epi16(w, 8);
  return _mm256_add_epi32(acc, _mm256_add_epi32(_mm256_madd_epi16(a_even, w_even), _mm256_madd_epi16(a_odd, w_odd)));
}
#else
inline __m256i dpbusd(__m256i acc, __m256i a, __m256i w) { return _mm256_dpbusd_avx_epi32(acc, a, w); }
#endif

// kXor = false: the activations are already XORed (qgemm's a_prexored, QConv's input copy), and
// the broadcast needs no vpxor. kTwo = false: the tile has at most 8 columns (a stem of 8 filters,
// a last column panel), and the second accumulator of a row, whose weights are zero, is skipped.
template <int MR, bool kXor, bool kTwo>
inline const uint8_t* accumulate(__m256i (&acc0)[MR], __m256i (&acc1)[MR], const uint8_t* const (&a)[MR],
                                 int64_t kc, const uint8_t* g, __m256i axor) {
  int64_t k = 0;
  for (; k + 4 <= kc; k += 4, g += 64) {
    const __m256i w0 = _mm256_load_si256(reinterpret_cast<const __m256i*>(g));
    const __m256i w1 = _mm256_load_si256(reinterpret_cast<const __m256i*>(g + 32));
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) {
      const __m256i v = kXor ? bcast4(a[i] + k, axor) : bcast4_plain(a[i] + k);
      acc0[i] = dpbusd(acc0[i], v, w0);
      if constexpr (kTwo) acc1[i] = dpbusd(acc1[i], v, w1);
    }
  }
  if (k < kc) {
    const __m256i w0 = _mm256_load_si256(reinterpret_cast<const __m256i*>(g));
    const __m256i w1 = _mm256_load_si256(reinterpret_cast<const __m256i*>(g + 32));
    g += 64;
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) {
      const __m256i v = bcast_partial(a[i] + k, kc - k, axor);
      acc0[i] = dpbusd(acc0[i], v, w0);
      if constexpr (kTwo) acc1[i] = dpbusd(acc1[i], v, w1);
    }
  }
  return g;
}

template <int MR>
inline void init_acc(__m256i (&acc0)[MR], __m256i (&acc1)[MR], const uint8_t* w) {
  const __m256i b0 = _mm256_load_si256(reinterpret_cast<const __m256i*>(w));
  const __m256i b1 = _mm256_load_si256(reinterpret_cast<const __m256i*>(w + 32));
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i) {
    acc0[i] = b0;
    acc1[i] = b1;
  }
}

template <int MR, bool kXor, bool kTwo>
void gemm_acc(const QTile& t, __m256i (&acc0)[MR], __m256i (&acc1)[MR]) {
  const uint8_t* a[MR];
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i) a[i] = t.a + i * t.lda;
  accumulate<MR, kXor, kTwo>(acc0, acc1, a, t.kc, t.w + kNR * 8, _mm256_set1_epi8(static_cast<char>(t.params->a_xor)));
}

template <int MR>
void gemm_tile(const QTile& t) {
  __m256i acc0[MR], acc1[MR];
  init_acc<MR>(acc0, acc1, t.w);
  if (t.nc <= 8) t.params->a_xor ? gemm_acc<MR, true, false>(t, acc0, acc1) : gemm_acc<MR, false, false>(t, acc0, acc1);
  else t.params->a_xor ? gemm_acc<MR, true, true>(t, acc0, acc1) : gemm_acc<MR, false, true>(t, acc0, acc1);
  store_tile16<MR>(acc0, acc1, t);
}

template <int MR, bool kXor, bool kTwo>
void igemm_acc(const QTile& t, __m256i (&acc0)[MR], __m256i (&acc1)[MR]) {
  const __m256i axor = _mm256_set1_epi8(static_cast<char>(t.params->a_xor));
  const uint8_t* g = t.w + kNR * 8;
  const uint8_t* const* ptrs = t.a_ptrs;
  for (int64_t s = 0; s < t.ks; ++s, ptrs += kMR) {
    const uint8_t* a[MR];
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) a[i] = ptrs[i] == t.zero ? ptrs[i] : ptrs[i] + t.a_offset;
    g = accumulate<MR, kXor, kTwo>(acc0, acc1, a, t.kc, g, axor);
  }
}

template <int MR>
void igemm_tile(const QTile& t) {
  __m256i acc0[MR], acc1[MR];
  init_acc<MR>(acc0, acc1, t.w);
  if (t.nc <= 8) t.params->a_xor ? igemm_acc<MR, true, false>(t, acc0, acc1) : igemm_acc<MR, false, false>(t, acc0, acc1);
  else t.params->a_xor ? igemm_acc<MR, true, true>(t, acc0, acc1) : igemm_acc<MR, false, true>(t, acc0, acc1);
  store_tile16<MR>(acc0, acc1, t);
}

void gemm_any(const QTile& t) {
  switch (t.mr) {
    case 1: gemm_tile<1>(t); break;
    case 2: gemm_tile<2>(t); break;
    case 3: gemm_tile<3>(t); break;
    case 4: gemm_tile<4>(t); break;
    case 5: gemm_tile<5>(t); break;
    default: gemm_tile<6>(t); break;
  }
}
void igemm_any(const QTile& t) {
  switch (t.mr) {
    case 1: igemm_tile<1>(t); break;
    case 2: igemm_tile<2>(t); break;
    case 3: igemm_tile<3>(t); break;
    case 4: igemm_tile<4>(t); break;
    case 5: igemm_tile<5>(t); break;
    default: igemm_tile<6>(t); break;
  }
}

}  // namespace

#if defined(KILN_QS8_VNNI_MADDUBS)
const QGemmConfig kQs8GemmAvx2W7 = {"qs8_gemm_avx2_w7", kMR, kNR, true, QWeightLayout::kGroup4, gemm_any, igemm_any,
                                    gemm_rows<kMR, gemm_tile<kMR>, gemm_any>,
                                    gemm_rows<kMR, igemm_tile<kMR>, igemm_any, true>, int64_t{1} << 17};
#elif defined(KILN_QS8_VNNI_EMULATION)
extern const QGemmConfig kQs8GemmAvxVnniEmulated;
const QGemmConfig kQs8GemmAvxVnniEmulated = {"qs8_gemm_avxvnni_emulated", kMR, kNR, true, QWeightLayout::kGroup4,
                                             gemm_any, igemm_any};
#else
const QGemmConfig kQs8GemmAvxVnni = {"qs8_gemm_avxvnni", kMR, kNR, true, QWeightLayout::kGroup4, gemm_any, igemm_any,
                                     gemm_rows<kMR, gemm_tile<kMR>, gemm_any>,
                                     gemm_rows<kMR, igemm_tile<kMR>, igemm_any, true>};
#endif

}  // namespace kiln::nn::kernels
