// kiln/discover/internal/fit_subset.h — the observations a GP's hyperparameters are fitted on:
// all of them, or a random subset of `max_points` (kept in their original order) when there are
// more (GaussianProcess and MixedGp; GpOptions / MixedGpOptions::max_fit_points).
//
//   Eigen::MatrixXd Xs;  Eigen::VectorXd ys;
//   fit_subset(X, y_model_units, o.max_fit_points, rng, &Xs, &ys);
#pragma once

#include <Eigen/Core>
#include <algorithm>
#include <numeric>
#include <random>
#include <vector>

namespace kiln::discover {

inline void fit_subset(const Eigen::MatrixXd& X, const Eigen::VectorXd& y, int max_points, std::mt19937_64& rng,
                       Eigen::MatrixXd* Xs, Eigen::VectorXd* ys) {
  const int n = static_cast<int>(X.rows());
  if (n <= max_points) {
    *Xs = X;
    *ys = y;
    return;
  }
  std::vector<int> idx(n);
  std::iota(idx.begin(), idx.end(), 0);
  std::shuffle(idx.begin(), idx.end(), rng);
  idx.resize(max_points);
  std::sort(idx.begin(), idx.end());
  Xs->resize(max_points, X.cols());
  ys->resize(max_points);
  for (int i = 0; i < max_points; ++i) {
    Xs->row(i) = X.row(idx[i]);
    (*ys)[i] = y[idx[i]];
  }
}

}  // namespace kiln::discover
