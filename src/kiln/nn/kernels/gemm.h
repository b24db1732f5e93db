// kiln/nn/kernels/gemm.h — fp32 matrix multiplication with packed weights, per-ISA micro-kernels.
//
// Every compute-heavy operator of a CNN or MLP ends here: C[M x N] = A[M x K] * W[K x N] + bias,
// followed by a fused epilogue (residual add, then an activation). W is constant (weights), so it
// is packed once at compile time into panels of NR columns: [bias (NR)][K rows of NR], zero-padded
// past N. A is read in place, either as rows with a stride (gemm) or through an indirection
// buffer of row pointers, one per (tap, row) (igemm: convolution without an im2col copy, the
// XNNPACK way; padding taps point at a zero row).
//
// Micro-kernels compute one MR x NR tile entirely in registers; they live in one translation
// unit per instruction set (f32_gemm_avx512.cc, f32_gemm_avx2.cc, f32_gemm_portable.cc) built
// with that unit's flags only, and gemm_config() picks the best one once from cpu_features().
//
//   const GemmConfig& cfg = gemm_config();
//   PackedWeights w = pack_weights(cfg, W, K, N, /*ldw=*/N, /*transposed=*/false, bias);
//   GemmParams p; p.act = Activation::kRelu;
//   gemm(cfg, M, A, /*lda=*/K, w, C, /*ldc=*/N, p, nullptr);
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "kiln/core/tensor.h"
#include "kiln/nn/kernels/internal/ukernels.h"

namespace kiln {
class ThreadPool;
}

namespace kiln::nn::kernels {

// The best configuration for this CPU (honours KILN_ISA), chosen once.
const GemmConfig& gemm_config();
// The configuration for a GEMM with n output columns: gemm_config(), or a narrower tile of the
// same instruction set when n is at most that tile's width (AVX-512: 14 x 16 for n <= 16).
const GemmConfig& gemm_config_for(int64_t n);
// Every configuration this CPU can run (for differential tests and benchmarks), best first.
std::vector<const GemmConfig*> available_gemm_configs();

// Weights packed for one configuration's NR.
struct PackedWeights {
  int64_t k = 0;        // rows of W (ks * kc for a convolution)
  int64_t n = 0;        // columns of W (output channels / features)
  int nr = 0;
  int64_t panel_stride = 0;  // floats per panel: nr + k * nr
  Tensor data;               // float32, 64-byte aligned
  int64_t panels() const { return (n + nr - 1) / nr; }
  const float* panel(int64_t p) const { return data.data<float>() + p * panel_stride; }
};

// Packs W (K x N with row stride ldw; or N x K when `transposed`) and an optional bias (N).
PackedWeights pack_weights(const GemmConfig& cfg, const float* w, int64_t k, int64_t n, int64_t ldw,
                           bool transposed, const float* bias);

// Floats needed to pack a K x N operand for `cfg`, and packing into memory the caller owns (for
// operands only known at run time, such as the keys of an attention layer: no allocation).
int64_t packed_floats(const GemmConfig& cfg, int64_t k, int64_t n);
void pack_weights_into(const GemmConfig& cfg, const float* w, int64_t k, int64_t n, int64_t ldw, bool transposed,
                       const float* bias, float* dst);
// A view of weights packed by pack_weights_into() (does not own `data`).
struct PackedView {
  int64_t k, n;
  int nr;
  int64_t panel_stride;
  const float* data;
};
void gemm_view(const GemmConfig& cfg, int64_t m, const float* a, int64_t lda, const PackedView& w, float* c,
               int64_t ldc, const GemmParams& p, ThreadPool* pool);

// C (M x N, row stride ldc) = epilogue(A (M x K, row stride lda) * W).
void gemm(const GemmConfig& cfg, int64_t m, const float* a, int64_t lda, const PackedWeights& w, float* c,
          int64_t ldc, const GemmParams& p, ThreadPool* pool);

// Convolution through an indirection buffer: `a_ptrs` holds, for each block of MR output rows,
// ks * MR row pointers (tap-major), each pointing at kc contiguous floats; `a_offset` (bytes)
// is added to every pointer except `zero`. Rows past M in the last block may repeat any pointer.
void igemm(const GemmConfig& cfg, int64_t m, int64_t ks, int64_t kc, const float* const* a_ptrs, ptrdiff_t a_offset,
           const float* zero, const PackedWeights& w, float* c, int64_t ldc, const GemmParams& p, ThreadPool* pool);

// The plain triple loop the micro-kernels are tested against (applies the same epilogue).
void gemm_reference(int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* w, int64_t ldw,
                    const float* bias, float* c, int64_t ldc, const GemmParams& p);

}  // namespace kiln::nn::kernels
