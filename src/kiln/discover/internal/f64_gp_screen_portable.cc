// The reference screen: one candidate and one observation at a time, libm's exp.
#include <cmath>

#include "kiln/discover/internal/gp_screen.h"

namespace kiln::discover::internal {
namespace {

void run_portable(const GpScreenArgs& a) {
  const double s5 = std::sqrt(5.0);
  for (int64_t i = 0; i < a.m; ++i) {
    double mean = 0;
    int32_t* idx = a.near_idx + i * kScreenMaxNear;
    double* best = a.near_r2 + i * kScreenMaxNear;
    int found = 0;
    for (int64_t j = 0; j < a.n; ++j) {
      double r2 = 0;
      for (int k = 0; k < a.d; ++k) {
        double t = a.cand[k * a.ldc + i] - a.obs[k * a.n_pad + j];
        r2 += t * t;
      }
      if (found < a.k_near || r2 < best[a.k_near - 1]) {
        int p = found < a.k_near ? found++ : a.k_near - 1;
        while (p > 0 && best[p - 1] > r2) {
          best[p] = best[p - 1];
          idx[p] = idx[p - 1];
          --p;
        }
        best[p] = r2;
        idx[p] = static_cast<int32_t>(j);
      }
      double kv;
      if (a.rbf) {
        kv = a.s2 * std::exp(-0.5 * r2);
      } else {
        double r = std::sqrt(r2);
        kv = a.s2 * (1 + s5 * r + (5.0 / 3.0) * r2) * std::exp(-s5 * r);
      }
      mean += kv * a.alpha[j];
    }
    a.mean[i] = mean;
  }
}

}  // namespace

const GpScreen kF64GpScreenPortable = {"f64_gp_screen_portable", run_portable};

}  // namespace kiln::discover::internal
