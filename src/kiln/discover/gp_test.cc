#include "kiln/discover/gp.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "kiln/discover/design.h"

namespace kiln::discover {
namespace {

double f(const Eigen::VectorXd& x) { return std::sin(6 * x[0]) + 0.5 * std::cos(4 * x[1]) - x.squaredNorm(); }

void data(int n, int d, uint64_t seed, Eigen::MatrixXd* X, Eigen::VectorXd* y) {
  *X = sobol(n, d, seed);
  y->resize(n);
  for (int i = 0; i < n; ++i) (*y)[i] = f(X->row(i).transpose());
}

TEST(Gp, LogPosteriorGradientMatchesFiniteDifferences) {
  Eigen::MatrixXd X;
  Eigen::VectorXd y;
  data(20, 3, 1, &X, &y);
  y = (y.array() - y.mean()) / std::sqrt((y.array() - y.mean()).square().mean());
  for (KernelType k : {KernelType::kMatern52, KernelType::kRbf}) {
    Eigen::VectorXd th(5);
    th << -1.0, -0.5, 0.3, 0.2, -3.0;
    Eigen::VectorXd g;
    gp_log_posterior(X, y, k, th, true, 1e-4, true, &g);
    for (int i = 0; i < 5; ++i) {
      Eigen::VectorXd a = th, b = th;
      a[i] += 1e-5;
      b[i] -= 1e-5;
      double fd = (gp_log_posterior(X, y, k, a, true, 1e-4, true, nullptr) - gp_log_posterior(X, y, k, b, true, 1e-4, true, nullptr)) / 2e-5;
      EXPECT_NEAR(g[i], fd, 1e-4 * std::max(1.0, std::abs(fd))) << "kernel " << kernel_name(k) << " theta " << i;
    }
  }
}

TEST(Gp, FitsAndPredictsASmoothFunction) {
  Eigen::MatrixXd X, Xt;
  Eigen::VectorXd y, yt;
  data(60, 2, 2, &X, &y);
  data(200, 2, 77, &Xt, &yt);
  GpOptions o;
  o.seed = 3;
  o.warp_outputs = false;
  auto gp = GaussianProcess::fit(X, y, o);
  ASSERT_TRUE(gp.is_ok()) << gp.status().to_string();
  Eigen::VectorXd mu, var;
  gp->posterior(Xt, &mu, &var);
  // Model units are standardised targets: compare ranks through the correlation.
  double c = ((mu.array() - mu.mean()) * (yt.array() - yt.mean())).sum() /
             std::sqrt((mu.array() - mu.mean()).square().sum() * (yt.array() - yt.mean()).square().sum());
  EXPECT_GT(c, 0.98);
  EXPECT_TRUE((var.array() > 0).all());
}

TEST(Gp, ConditioningMatchesRefitWithSameHyperparameters) {
  Eigen::MatrixXd X;
  Eigen::VectorXd y;
  data(30, 3, 4, &X, &y);
  GpOptions o;
  o.warp_outputs = false;
  auto gp = GaussianProcess::fit(X.topRows(25), y.head(25), o);
  ASSERT_TRUE(gp.is_ok());
  Eigen::VectorXd ym(5);
  for (int i = 0; i < 5; ++i) ym[i] = gp->to_model_units(y[25 + i]);
  auto cond = gp->condition_on(X.bottomRows(5), ym);
  Eigen::MatrixXd Xt = sobol(50, 3, 9);
  Eigen::VectorXd m1, v1;
  cond->posterior(Xt, &m1, &v1);
  // Same targets in model units, conditioned from scratch.
  auto full = GaussianProcess::with_hyper(X.topRows(25), y.head(25), gp->hyper(), o);
  ASSERT_TRUE(full.is_ok());
  auto cond2 = full->condition_on(X.bottomRows(5), ym);
  Eigen::VectorXd m2, v2;
  cond2->posterior(Xt, &m2, &v2);
  EXPECT_LT((m1 - m2).cwiseAbs().maxCoeff(), 1e-8);
  // And conditioning lowers variance where the new points are.
  Eigen::VectorXd m0, v0;
  gp->posterior(X.bottomRows(5), &m0, &v0);
  cond->posterior(X.bottomRows(5), &m1, &v1);
  EXPECT_TRUE((v1.array() < v0.array()).all());
}

TEST(Gp, VarianceBoundHoldsAndGradientsMatch) {
  Eigen::MatrixXd X;
  Eigen::VectorXd y;
  data(40, 4, 5, &X, &y);
  auto gp = GaussianProcess::fit(X, y, {});
  ASSERT_TRUE(gp.is_ok());
  Eigen::MatrixXd Xt = sobol(300, 4, 12);
  Eigen::VectorXd mu, var, mu2, ub;
  gp->posterior(Xt, &mu, &var);
  gp->mean_and_variance_bound(Xt, &mu2, &ub);
  EXPECT_LT((mu - mu2).cwiseAbs().maxCoeff(), 1e-10);
  for (int i = 0; i < Xt.rows(); ++i) EXPECT_GE(ub[i], var[i] - 1e-10);
  Eigen::VectorXd x = Xt.row(3).transpose();
  double m, v;
  Eigen::VectorXd dm, dv;
  ASSERT_TRUE(gp->posterior_gradient(x, &m, &v, &dm, &dv));
  EXPECT_NEAR(m, mu[3], 1e-10);
  EXPECT_NEAR(v, var[3], 1e-10);
  for (int j = 0; j < 4; ++j) {
    Eigen::VectorXd a = x, b = x;
    a[j] += 1e-6;
    b[j] -= 1e-6;
    Eigen::VectorXd ma, va, mb, vb;
    gp->posterior(a.transpose(), &ma, &va);
    gp->posterior(b.transpose(), &mb, &vb);
    EXPECT_NEAR(dm[j], (ma[0] - mb[0]) / 2e-6, 1e-4);
    EXPECT_NEAR(dv[j], (va[0] - vb[0]) / 2e-6, 1e-4);
  }
}

TEST(Gp, LengthscaleGroupsTieFeatures) {
  // x in [0, 1] and a 3-label categorical as one-hot columns; y depends on both.
  const int n = 30;
  Eigen::MatrixXd X = Eigen::MatrixXd::Zero(n, 4);
  Eigen::VectorXd y(n);
  for (int i = 0; i < n; ++i) {
    X(i, 0) = (i * 7 % n) / double(n - 1);
    X(i, 1 + i % 3) = 1;
    y[i] = std::sin(5 * X(i, 0)) + (i % 3 == 0 ? 0.8 : i % 3 == 1 ? -0.3 : 0.1);
  }
  GpOptions o;
  o.seed = 5;
  o.ls_groups = {0, 1, 1, 1};
  auto gp = GaussianProcess::fit(X, y, o);
  ASSERT_TRUE(gp.is_ok()) << gp.status().to_string();
  const Eigen::VectorXd& ll = gp->hyper().log_lengthscale;
  ASSERT_EQ(ll.size(), 4);
  EXPECT_EQ(ll[1], ll[2]);
  EXPECT_EQ(ll[1], ll[3]);
  EXPECT_NE(ll[0], ll[1]);
  // The same data without groups: one lengthscale per column, which differ.
  o.ls_groups.clear();
  auto free_fit = GaussianProcess::fit(X, y, o);
  ASSERT_TRUE(free_fit.is_ok());
  EXPECT_GT(std::abs(free_fit->hyper().log_lengthscale[1] - free_fit->hyper().log_lengthscale[2]) +
                std::abs(free_fit->hyper().log_lengthscale[2] - free_fit->hyper().log_lengthscale[3]),
            1e-3);
  // A warm start from per-feature values (a group starts from their mean).
  o.ls_groups = {0, 1, 1, 1};
  o.warm_start = free_fit->hyper();
  auto warm = GaussianProcess::fit(X, y, o);
  ASSERT_TRUE(warm.is_ok());
  EXPECT_EQ(warm->hyper().log_lengthscale[1], warm->hyper().log_lengthscale[3]);
  // Malformed groups.
  o.warm_start.reset();
  for (std::vector<int> bad : {std::vector<int>{0, 1, 1}, std::vector<int>{0, 2, 2, 2}, std::vector<int>{0, -1, 1, 1}}) {
    o.ls_groups = bad;
    EXPECT_FALSE(GaussianProcess::fit(X, y, o).is_ok());
  }
}

TEST(Gp, RejectsBadInput) {
  Eigen::MatrixXd X = Eigen::MatrixXd::Zero(3, 2);
  Eigen::VectorXd y(3);
  y << 1, 2, NAN;
  EXPECT_FALSE(GaussianProcess::fit(X, y, {}).is_ok());
  GpOptions o;
  o.restarts = -1;
  y[2] = 3;
  EXPECT_FALSE(GaussianProcess::fit(X, y, o).is_ok());
  // Duplicated inputs with different targets are fine: the noise is learned.
  EXPECT_TRUE(GaussianProcess::fit(X, y, {}).is_ok());
}

TEST(OutcomeTransform, WarpsSkewedTargetsMonotonically) {
  Eigen::VectorXd y(8);
  y << 1, 2, 3, 5, 10, 40, 200, 1500;
  OutcomeTransform t;
  t.fit(y, true);
  EXPECT_NE(t.lambda(), 1.0);
  Eigen::VectorXd z = t.forward(y);
  for (int i = 1; i < 8; ++i) EXPECT_GT(z[i], z[i - 1]);
  EXPECT_NEAR(z.mean(), 0, 1e-9);
}

}  // namespace
}  // namespace kiln::discover
