// kiln/discover/internal/gp_screen.h — the pool-search hot loop of a GP: for every candidate,
// the posterior mean and its few nearest observations, in one pass without materialising the
// candidates x observations cross-covariance.
//
// For candidate i (a row of `cand`) and observation j (a column of `obs`), both already divided
// by the lengthscales: r2 = |x_i - o_j|^2 summed dimension by dimension (no |a|^2 + |b|^2 - 2ab
// cancellation), k = s2 f(r2) (Matérn-5/2 or RBF), mean_i = sum_j k alpha_j, and the `k_near`
// smallest r2 with their observation index, ascending (ties: the lower index first). Each term
// is within a few ulp of libm's, except that exp may be flushed to 0 below exp(-700) (a term
// then differs by less than 1e-290 s2 |alpha_j|); the sums' order differs between versions.
//
// One implementation per instruction set (f64_gp_screen_<isa>.cc: portable, avx2 = AVX2 + FMA,
// avx512 = AVX-512F; each with its own compile flags), chosen once at start-up from
// kiln::cpu_features() (CPUID and XGETBV; KILN_ISA caps it); the portable one is the reference
// the others are tested against (gp_screen_test.cc).
//
//   const GpScreen& s = gp_screen();
//   s.run(args);
#pragma once

#include <cstdint>
#include <vector>

namespace kiln::discover::internal {

constexpr int kScreenMaxNear = 4;
// Observation columns are padded to a multiple of this (the widest vector, in doubles).
constexpr int kScreenPad = 8;
// Coordinate of the padding observations (alpha 0): far from everything, r2 stays finite.
constexpr double kScreenPadCoord = 1e30;

struct GpScreenArgs {
  bool rbf = false;         // false: Matérn-5/2
  double s2 = 1;            // signal variance
  int d = 0;                // features
  const double* obs = nullptr;    // d x n_pad, dimension-major: obs[k * n_pad + j]
  const double* alpha = nullptr;  // n_pad; 0 for the padding
  int64_t n = 0;            // real observations (>= k_near)
  int64_t n_pad = 0;        // multiple of kScreenPad; columns n..n_pad-1 hold kScreenPadCoord
  const double* cand = nullptr;   // m x d, column-major with leading dimension ldc
  int64_t m = 0, ldc = 0;
  int k_near = kScreenMaxNear;    // 1..kScreenMaxNear
  double* mean = nullptr;         // m
  int32_t* near_idx = nullptr;    // m x kScreenMaxNear
  double* near_r2 = nullptr;      // m x kScreenMaxNear
};

struct GpScreen {
  const char* name;
  void (*run)(const GpScreenArgs& a);
};

extern const GpScreen kF64GpScreenPortable;
extern const GpScreen kF64GpScreenAvx2;
extern const GpScreen kF64GpScreenAvx512;

// Best first; the portable one is always last.
std::vector<const GpScreen*> available_gp_screens();
const GpScreen& gp_screen();

}  // namespace kiln::discover::internal
