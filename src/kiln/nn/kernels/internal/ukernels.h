// Types and helpers shared by the per-ISA micro-kernel translation units.
//
// This header is included by files compiled with AVX2 / AVX-512 flags, so it must hold only plain
// structs, declarations and templates whose instantiations stay local to each file: an inline
// function emitted by an AVX-512 unit could otherwise be chosen by the linker for every caller
// and crash CPUs without AVX-512. Do not include other Kiln headers here.
#pragma once

#include <cstddef>
#include <cstdint>
#include <type_traits>
#include <utility>

namespace kiln::nn::kernels {

enum class Activation : uint8_t { kNone, kRelu, kClip, kHardSwish, kSigmoid, kSilu, kLeakyRelu, kHardSigmoid };
const char* activation_name(Activation a);

// What happens to a tile after the multiply: C = act(A*W + bias + residual).
struct GemmParams {
  Activation act = Activation::kNone;
  float lo = 0, hi = 0;   // kClip bounds
  float alpha = 0;        // kLeakyRelu slope; kHardSigmoid: max(0, min(1, alpha * x + beta))
  float beta = 0;
  const float* residual = nullptr;  // same layout as C (row stride ld_residual), or null
  int64_t ld_residual = 0;
};

// Applies an activation to one value, exactly as the reference does (defined in gemm.cc).
float apply_activation(float x, const GemmParams& p);

// One tile's work, as the driver hands it to a micro-kernel.
struct Tile {
  int mr = 0;            // rows in this tile (<= config MR)
  int nc = 0;            // columns (<= NR)
  int64_t kc = 0;        // reduction length per tap (gemm: K)
  int64_t ks = 1;        // taps (gemm: 1)
  const float* a = nullptr;             // gemm: first row of A
  int64_t lda = 0;                      // gemm: row stride of A (elements)
  const float* const* a_ptrs = nullptr; // igemm: ks * MR row pointers, tap-major
  ptrdiff_t a_offset = 0;               // igemm: bytes added to every pointer except `zero`
  const float* zero = nullptr;          // igemm: the padding row
  const float* w = nullptr;             // panel: bias (NR) then ks*kc rows of NR
  float* c = nullptr;
  int64_t ldc = 0;
  const float* residual = nullptr;      // this tile's residual start, or null
  int64_t ld_residual = 0;
  const GemmParams* params = nullptr;
  // Optional: one 64-byte line per k step to pull into L2 from here on (the slice of the weight
  // panel the driver will need next, when the weights do not fit in L2). Kernels may ignore it.
  const char* prefetch = nullptr;
};

using TileKernel = void (*)(const Tile& t);

struct GemmConfig {
  const char* name;   // "f32_gemm_avx512", ...
  int mr, nr;
  TileKernel gemm;
  TileKernel igemm;
};


// Calls f(std::integral_constant<int, r>) for the runtime row count r in [1, MaxRows].
template <int MaxRows, typename F>
inline void dispatch_rows(int r, F&& f) {
  [&]<int... I>(std::integer_sequence<int, I...>) {
    ((r == I + 1 ? (f(std::integral_constant<int, I + 1>{}), 0) : 0), ...);
  }(std::make_integer_sequence<int, MaxRows>{});
}

// The per-ISA configurations, defined in f32_gemm_<isa>.cc.
extern const GemmConfig kF32GemmAvx512;
extern const GemmConfig kF32GemmAvx512Narrow;  // 14 x 16 tiles, for at most 16 output columns
extern const GemmConfig kF32GemmAvx2;
extern const GemmConfig kF32GemmPortable;

}  // namespace kiln::nn::kernels
