// kiln/discover/internal/gp_lml.h — the dense linear algebra of a GP hyperparameter fit: the
// kernel matrix, its Cholesky factor, K^-1 from the factor, and the gradient traces of the log
// marginal likelihood, on raw column-major arrays.
//
// One likelihood + gradient evaluation on n points: the lower triangle of K (and of the
// gradient factor G) from per-dimension differences of the scaled inputs (one sqrt and one exp
// per pair, no |a|^2 + |b|^2 - 2ab cancellation), K = L L' in place, y' K^-1 y and alpha by two
// triangular substitutions, K^-1 = L^-T L^-1 from Zt = L^-T (row by row of L^-1) and the lower
// triangle of Zt Zt' (n^3/3 flops each, against n^3 for solving with an identity), then one
// pass over the pairs i > j for all the traces:
//   d/d log l_k = sum_{i>j} (alpha_i alpha_j - K^-1_ij) G_ij (xs_ik - xs_jk)^2
//   d/d log s2  = 1/2 sum_ij (alpha alpha' - K^-1)_ij Kf_ij,   tr(alpha alpha' - K^-1).
// The three cubic steps share one inner loop: four columns at a time against two vectors of
// rows, each load feeding four FMAs, the accumulators in registers (left-looking, so every
// output is written once).
// The terms differ from gp_log_posterior_reference's (Eigen: GEMM distances, LLT, solve with the
// identity) by rounding only; gp_lml_test.cc compares them at odd sizes.
//
// One implementation per instruction set (f64_gp_lml_<isa>.cc: portable = SSE2, avx2 = AVX2 +
// FMA, avx512 = AVX-512F; each its own compile flags, no Eigen or standard-library templates in
// them), chosen once at start-up from kiln::cpu_features() (KILN_ISA caps it), as gp_screen.h.
//
//   const GpLml& l = gp_lml();
//   std::vector<double> work(gp_lml_work_size(n));
//   args.work = work.data();  bool ok = l.evaluate(args);
#pragma once

#include <cstdint>
#include <vector>

namespace kiln::discover::internal {

struct GpLmlArgs {
  bool rbf = false;              // false: Matérn-5/2
  int64_t n = 0, d = 0;          // points, features (n >= 1, d >= 1)
  const double* xs = nullptr;    // n x d, column-major with leading dimension ldx, divided by the lengthscales
  int64_t ldx = 0;
  const double* y = nullptr;     // n targets
  double s2 = 1;                 // signal variance
  double diag = 0;               // added to K's diagonal (noise + jitter)
  bool grad = false;             // also the gradient terms below
  double* work = nullptr;        // gp_lml_work_size(n) doubles
  double* grad_ls = nullptr;     // d outputs when grad: d(-quad/2 - logdet_half)/d log l_k
  // Outputs.
  double quad = 0;               // y' K^-1 y
  double logdet_half = 0;        // sum_i log L_ii = log det(K) / 2
  double grad_s2 = 0;            // 1/2 sum_ij (alpha alpha' - K^-1)_ij Kf_ij (Kf: K without diag)
  double trace_w = 0;            // tr(alpha alpha' - K^-1)
};

inline int64_t gp_lml_work_size(int64_t n) { return 4 * n * n + 2 * n; }

struct GpLml {
  const char* name;
  // false when K is not positive definite (a pivot <= 0 or not finite); outputs then undefined.
  bool (*evaluate)(GpLmlArgs& a);
  // The lower triangle (i >= j) of K = s2 f(r) + diag I into out (column-major, ldo); the strict
  // upper triangle is left alone. xs as in GpLmlArgs.
  void (*kernel_lower)(bool rbf, const double* xs, int64_t ldx, int64_t n, int64_t d, double s2, double diag, double* out,
                       int64_t ldo);
  // In-place lower Cholesky factor of the lower triangle of a (column-major, lda); the strict
  // upper triangle is left alone. false when a pivot is <= 0 or not finite.
  bool (*cholesky)(double* a, int64_t n, int64_t lda);
};

extern const GpLml kF64GpLmlPortable;
extern const GpLml kF64GpLmlAvx2;
extern const GpLml kF64GpLmlAvx512;

// Best first; the portable one is always last.
std::vector<const GpLml*> available_gp_lmls();
const GpLml& gp_lml();

}  // namespace kiln::discover::internal
