// kiln/discover/internal/map_fit_nlopt.h — the NLopt side of a MAP-II hyperparameter fit, shared by
// gp.cc and mixed_gp.cc.
//
// negate_for_nlopt() ends the objective: NLopt minimises, so a log posterior v (to maximise) with
// gradient g becomes -v and -g; the best theta seen is remembered (a start that stops early still
// reports its best point); a non-finite v becomes 1e300 with a zero gradient so that L-BFGS backs
// off. run_lbfgs_starts() runs bounded L-BFGS from every start in turn; the caller reads the best
// point from its objective's data.
//
//   double objective(unsigned n, const double* x, double* grad, void* data) {
//     ...; return negate_for_nlopt(v, g, theta, n, grad, &fd->best, &fd->best_theta);
//   }
//   run_lbfgs_starts(lo, hi, objective, &fd, max_evals, starts);
//   if (!std::isfinite(fd.best)) { /* every start failed */ }
#pragma once

#include <nlopt.h>

#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <vector>

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

// L-BFGS within [lo, hi] from each start (relative tolerances 1e-7 on the value, 1e-5 on theta,
// at most max_evals evaluations per start). A start that fails still leaves its best point in data.
inline void run_lbfgs_starts(std::vector<double>& lo, std::vector<double>& hi, nlopt_func objective, void* data,
                             int max_evals, std::vector<std::vector<double>>& starts) {
  nlopt_opt opt = nlopt_create(NLOPT_LD_LBFGS, static_cast<unsigned>(lo.size()));
  nlopt_set_lower_bounds(opt, lo.data());
  nlopt_set_upper_bounds(opt, hi.data());
  nlopt_set_min_objective(opt, objective, data);
  nlopt_set_maxeval(opt, max_evals);
  nlopt_set_ftol_rel(opt, 1e-7);
  nlopt_set_xtol_rel(opt, 1e-5);
  for (std::vector<double>& s : starts) {
    double f = 0;
    nlopt_optimize(opt, s.data(), &f);
  }
  nlopt_destroy(opt);
}

}  // namespace kiln::discover
