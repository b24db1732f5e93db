// Time of one evaluation of the GP fit's objective (log marginal likelihood + log priors and
// its gradient) on n points in d dimensions: gp_log_posterior (internal/gp_lml.h, the ISA
// chosen at start-up; KILN_ISA caps it) against gp_log_posterior_reference (Eigen). Fastest of
// `repeats` for each, alternating, so load from other processes inflates neither.
//
//   build/h-fit/src/kiln/discover/discover_lml_bench [points=128] [dims=10] [repeats=400]
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "kiln/discover/design.h"
#include "kiln/discover/gp.h"
#include "kiln/discover/internal/gp_lml.h"

namespace kd = kiln::discover;

static double now_ms() {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

int main(int argc, char** argv) {
  const int n = argc > 1 ? std::atoi(argv[1]) : 128, d = argc > 2 ? std::atoi(argv[2]) : 10;
  const int reps = argc > 3 ? std::atoi(argv[3]) : 400;
  Eigen::MatrixXd X = kd::uniform_random(n, d, 5);
  Eigen::VectorXd y(n);
  for (int i = 0; i < n; ++i) {
    double s = 0;
    for (int j = 0; j < d; ++j) s += std::sin(3 * X(i, j) + j);
    y[i] = s;
  }
  y = (y.array() - y.mean()) / std::sqrt((y.array() - y.mean()).square().mean() + 1e-12);
  Eigen::VectorXd th(d + 2);
  th.head(d).setConstant(std::log(0.8));
  th[d] = 0;
  th[d + 1] = -4;
  Eigen::VectorXd g, gr;
  double fast = 1e300, ref = 1e300, v = 0, vr = 0;
  for (int r = 0; r < reps; ++r) {
    double t0 = now_ms();
    v = kd::gp_log_posterior(X, y, kd::KernelType::kMatern52, th, true, 1e-4, true, &g);
    fast = std::min(fast, now_ms() - t0);
    t0 = now_ms();
    vr = kd::gp_log_posterior_reference(X, y, kd::KernelType::kMatern52, th, true, 1e-4, true, &gr);
    ref = std::min(ref, now_ms() - t0);
  }
  std::printf("GP objective + gradient, %d points x %d dims (%s): %.3f ms, Eigen reference %.3f ms (fastest of %d); "
              "value differs by %.2g, gradient by %.2g\n",
              n, d, kd::internal::gp_lml().name, fast, ref, reps, std::abs(v - vr), (g - gr).cwiseAbs().maxCoeff());
  return 0;
}
