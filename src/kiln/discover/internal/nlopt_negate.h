// kiln/discover/internal/nlopt_negate.h — the end of a MAP-II objective for NLopt, which
// minimises: a log posterior v (to maximise) with gradient g becomes -v and -g, the best theta seen
// is remembered (a start that stops early still reports its best point), and a non-finite v
// becomes 1e300 with a zero gradient so that L-BFGS backs off. Shared by gp.cc and mixed_gp.cc.
//
//   return negate_for_nlopt(v, g, theta, n, grad, &fd->best, &fd->best_theta);
#pragma once

#include <Eigen/Core>
#include <algorithm>
#include <cmath>

namespace kiln::discover {

inline double negate_for_nlopt(double v, const Eigen::VectorXd& g, const Eigen::VectorXd& theta, unsigned n,
                               double* grad, double* best, Eigen::VectorXd* best_theta) {
  if (!std::isfinite(v)) {
    if (grad) std::fill(grad, grad + n, 0.0);
    return 1e300;
  }
  if (v > *best) {
    *best = v;
    *best_theta = theta;
  }
  if (grad)
    for (unsigned i = 0; i < n; ++i) grad[i] = -g[i];
  return -v;
}

}  // namespace kiln::discover
