// kiln/discover/internal/gp_posterior.h — the linear algebra that GaussianProcess and MixedGp
// share once their kernels have given the covariances: the posterior at one point with its
// gradient, and conditioning on fantasies by extending the Cholesky factor.
//
//   posterior_with_gradient(L, alpha, prior_variance, ks, dK, &mean, &var, &dmean, &dvar);
//   condition_cholesky(&X, &y, &L, &alpha, Xn, yn, prior_variance + noise, covariance_of);
#pragma once

#include <Eigen/Cholesky>
#include <Eigen/Core>
#include <algorithm>
#include <cmath>

namespace kiln::discover {

// Mean and variance at x, and their gradients, from ks = k(x, X) (n), dK = dk(x, X)/dx (n x d),
// the Cholesky factor L of K + noise I and alpha = (K + noise I)^-1 y.
inline void posterior_with_gradient(const Eigen::MatrixXd& L, const Eigen::VectorXd& alpha, double prior_variance,
                                    const Eigen::VectorXd& ks, const Eigen::MatrixXd& dK, double* mean, double* var,
                                    Eigen::VectorXd* dmean, Eigen::VectorXd* dvar) {
  *mean = ks.dot(alpha);
  *dmean = dK.transpose() * alpha;
  Eigen::VectorXd v = L.triangularView<Eigen::Lower>().solve(ks);
  *var = std::max(prior_variance - v.squaredNorm(), 1e-12);
  Eigen::VectorXd w = L.triangularView<Eigen::Lower>().transpose().solve(v);
  *dvar = -2.0 * dK.transpose() * w;
}

// Appends the rows Xn with targets yn to (X, y) and extends L by one row per new point, O(n^2)
// each instead of a new O(n^3) factorisation; `diagonal` is k(x, x) + noise and covariance_of(A, b)
// gives k(A, b) as a column. Then alpha is solved again.
template <typename Cov>
void condition_cholesky(Eigen::MatrixXd* X, Eigen::VectorXd* y, Eigen::MatrixXd* L, Eigen::VectorXd* alpha,
                        const Eigen::MatrixXd& Xn, const Eigen::VectorXd& yn, double diagonal, Cov&& covariance_of) {
  const int n0 = static_cast<int>(X->rows()), k = static_cast<int>(Xn.rows()), d = static_cast<int>(X->cols());
  X->conservativeResize(n0 + k, d);
  X->bottomRows(k) = Xn;
  y->conservativeResize(n0 + k);
  y->tail(k) = yn;
  L->conservativeResize(n0 + k, n0 + k);
  for (int i = 0; i < k; ++i) {
    const int n = n0 + i;
    L->row(n).setZero();
    L->col(n).setZero();
    Eigen::VectorXd kv = covariance_of(X->topRows(n), Xn.row(i));
    Eigen::VectorXd l = L->topLeftCorner(n, n).triangularView<Eigen::Lower>().solve(kv);
    const double dd = diagonal - l.squaredNorm();
    L->row(n).head(n) = l.transpose();
    (*L)(n, n) = std::sqrt(std::max(dd, 1e-12));
  }
  *alpha = L->triangularView<Eigen::Lower>().solve(*y);
  L->triangularView<Eigen::Lower>().transpose().solveInPlace(*alpha);
}

}  // namespace kiln::discover
