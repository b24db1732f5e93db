// The portable screen and the reference the ISA versions are tested against: one candidate at a
// time, its squared distances to every observation in one loop per dimension (contiguous, so
// the compiler vectorises it for the baseline ISA: SSE2, NEON), the kernel through Eigen's
// vectorised exp, the mean as one dot product, and the nearest by a scan with a threshold.
#include <Eigen/Core>
#include <cmath>
#include <vector>

#include "kiln/discover/internal/gp_screen.h"

namespace kiln::discover::internal {
namespace {

void run_portable(const GpScreenArgs& a) {
  const double s5 = std::sqrt(5.0);
  const Eigen::Index n = a.n;
  Eigen::ArrayXd r2(n), kv(n);
  const Eigen::Map<const Eigen::VectorXd> alpha(a.alpha, n);
  for (int64_t i = 0; i < a.m; ++i) {
    r2.setZero();
    for (int k = 0; k < a.d; ++k) {
      const double c = a.cand[k * a.ldc + i];
      const double* o = a.obs + k * a.n_pad;
      for (Eigen::Index j = 0; j < n; ++j) {
        const double t = c - o[j];
        r2[j] += t * t;
      }
    }
    int32_t* idx = a.near_idx + i * kScreenMaxNear;
    double* best = a.near_r2 + i * kScreenMaxNear;
    int found = 0;
    for (Eigen::Index j = 0; j < n; ++j) {
      const double v = r2[j];
      if (found == a.k_near && !(v < best[a.k_near - 1])) continue;
      int p = found < a.k_near ? found++ : a.k_near - 1;
      while (p > 0 && best[p - 1] > v) {
        best[p] = best[p - 1];
        idx[p] = idx[p - 1];
        --p;
      }
      best[p] = v;
      idx[p] = static_cast<int32_t>(j);
    }
    if (a.rbf) {
      kv = a.s2 * (-0.5 * r2).exp();
    } else {
      const Eigen::ArrayXd r = r2.sqrt();
      kv = a.s2 * (1.0 + s5 * r + (5.0 / 3.0) * r2) * (-s5 * r).exp();
    }
    a.mean[i] = kv.matrix().dot(alpha);
  }
}

}  // namespace

const GpScreen kF64GpScreenPortable = {"f64_gp_screen_portable", run_portable};

}  // namespace kiln::discover::internal
