#include "kiln/discover/model.h"

#include <cmath>

namespace kiln::discover {
namespace {

double yeo_johnson(double y, double lam) {
  if (y >= 0) return std::abs(lam) < 1e-8 ? std::log1p(y) : (std::pow(y + 1, lam) - 1) / lam;
  return std::abs(lam - 2) < 1e-8 ? -std::log1p(-y) : -(std::pow(1 - y, 2 - lam) - 1) / (2 - lam);
}

void mean_sd(const Eigen::VectorXd& v, double* mu, double* sd) {
  *mu = v.size() ? v.mean() : 0;
  double var = v.size() > 1 ? (v.array() - *mu).square().sum() / static_cast<double>(v.size()) : 0;
  *sd = var > 1e-24 ? std::sqrt(var) : 1.0;
}

}  // namespace

void OutcomeTransform::fit(const Eigen::VectorXd& y, bool warp) {
  mean_sd(y, &mu0_, &sd0_);
  lambda_ = 1;
  Eigen::VectorXd z = (y.array() - mu0_) / sd0_;
  if (warp && y.size() >= 3) {
    // Profile log-likelihood of the Yeo–Johnson lambda (Gaussian after the warp).
    auto loglik = [&](double lam) {
      Eigen::VectorXd t = z.unaryExpr([&](double v) { return yeo_johnson(v, lam); });
      double mu = t.mean(), var = (t.array() - mu).square().mean();
      if (!(var > 1e-300) || !std::isfinite(var)) return -static_cast<double>(INFINITY);
      double jac = 0;
      for (int i = 0; i < z.size(); ++i) jac += (z[i] >= 0 ? 1.0 : -1.0) * std::log1p(std::abs(z[i]));
      return -0.5 * z.size() * std::log(var) + (lam - 1) * jac;
    };
    double best = loglik(1.0);
    for (double lam = -1.0; lam <= 3.0001; lam += 0.1) {
      double l = loglik(lam);
      if (l > best + 1e-9) {
        best = l;
        lambda_ = lam;
      }
    }
  }
  Eigen::VectorXd t = z.unaryExpr([&](double v) { return yeo_johnson(v, lambda_); });
  mean_sd(t, &mu1_, &sd1_);
}

double OutcomeTransform::forward(double y) const { return (yeo_johnson((y - mu0_) / sd0_, lambda_) - mu1_) / sd1_; }

Eigen::VectorXd OutcomeTransform::forward(const Eigen::VectorXd& y) const {
  return y.unaryExpr([&](double v) { return forward(v); });
}

}  // namespace kiln::discover
