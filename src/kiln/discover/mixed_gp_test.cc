#include "kiln/discover/mixed_gp.h"

#include "kiln/discover/gp.h"

#include <gtest/gtest.h>

#include <cmath>
#include <algorithm>
#include <array>
#include <random>

namespace kiln::discover {
namespace {

// Three one-hot categoricals (4, 3 and 5 labels) and one continuous feature.
constexpr int kLabels[3] = {4, 3, 5};
constexpr int kD = 4 + 3 + 5 + 1;

std::vector<int> groups() { return {0, 0, 0, 0, 1, 1, 1, 2, 2, 2, 2, 2, 3}; }
std::vector<int> components() { return {0, 0, 0, 0, 1, 1, 1, 2, 2, 2, 2, 2, 3}; }

Eigen::VectorXd encode(int a, int b, int c, double x) {
  Eigen::VectorXd z = Eigen::VectorXd::Zero(kD);
  z[a] = 1;
  z[4 + b] = 1;
  z[7 + c] = 1;
  z[12] = x;
  return z;
}

TEST(MixedGp, LogPosteriorGradientMatchesFiniteDifferences) {
  std::mt19937_64 rng(5);
  std::uniform_real_distribution<double> u(0, 1);
  const int n = 18;
  Eigen::MatrixXd X(n, kD);
  Eigen::VectorXd y(n);
  for (int i = 0; i < n; ++i) {
    X.row(i) = encode(static_cast<int>(rng() % 4), static_cast<int>(rng() % 3), static_cast<int>(rng() % 5), u(rng)).transpose();
    y[i] = std::sin(3 * X(i, 12)) + X(i, 1) - 0.5 * X(i, 8) + 0.1 * u(rng);
  }
  y = (y.array() - y.mean()) / std::sqrt((y.array() - y.mean()).square().mean());
  for (KernelType k : {KernelType::kMatern52, KernelType::kRbf}) {
    Eigen::VectorXd th(4 + 3);
    th << 0.3, -0.2, 0.8, -1.0, 0.1, -3.0, 0.7;
    Eigen::VectorXd g;
    const double v = mixed_gp_log_posterior(X, y, k, groups(), components(), {}, th, &g);
    ASSERT_TRUE(std::isfinite(v));
    for (int i = 0; i < th.size(); ++i) {
      Eigen::VectorXd a = th, b = th;
      a[i] += 1e-5;
      b[i] -= 1e-5;
      const double fd = (mixed_gp_log_posterior(X, y, k, groups(), components(), {}, a, nullptr) -
                         mixed_gp_log_posterior(X, y, k, groups(), components(), {}, b, nullptr)) / 2e-5;
      EXPECT_NEAR(g[i], fd, 1e-4 * std::max(1.0, std::abs(fd))) << "kernel " << kernel_name(k) << " theta " << i;
    }
  }
}

TEST(MixedGp, InputWarpGradientMatchesFiniteDifferences) {
  std::mt19937_64 rng(9);
  std::uniform_real_distribution<double> u(0, 1);
  const int n = 16, d = 3;
  Eigen::MatrixXd X(n, d);
  Eigen::VectorXd y(n);
  for (int i = 0; i < n; ++i) {
    for (int j = 0; j < d; ++j) X(i, j) = u(rng);
    X(0, 0) = 0.0;  // the cube's faces
    X(1, 1) = 1.0;
    y[i] = std::sin(5 * X(i, 0) * X(i, 0)) + X(i, 1) - X(i, 2) * X(i, 2);
  }
  y = (y.array() - y.mean()) / std::sqrt((y.array() - y.mean()).square().mean());
  // Warp alone (no additive term: [log l x3, log s2, log noise, log a, log b x2]) and with it.
  const std::vector<std::pair<std::vector<int>, Eigen::VectorXd>> cases = {
      {{}, (Eigen::VectorXd(9) << -0.5, 0.2, 0.4, 0.1, -3.0, 0.3, -0.4, -0.2, 0.5).finished()},
      {{0, 1, 2}, (Eigen::VectorXd(10) << -0.5, 0.2, 0.4, 0.1, -3.0, -0.6, 0.3, -0.4, -0.2, 0.5).finished()}};
  for (KernelType k : {KernelType::kMatern52, KernelType::kRbf})
    for (const auto& [comp, th] : cases) {
      Eigen::VectorXd g;
      const double v = mixed_gp_log_posterior(X, y, k, {}, comp, {0, 2}, th, &g);
      ASSERT_TRUE(std::isfinite(v));
      ASSERT_EQ(g.size(), th.size());
      for (int i = 0; i < th.size(); ++i) {
        Eigen::VectorXd a = th, b = th;
        a[i] += 1e-5;
        b[i] -= 1e-5;
        const double fd = (mixed_gp_log_posterior(X, y, k, {}, comp, {0, 2}, a, nullptr) -
                           mixed_gp_log_posterior(X, y, k, {}, comp, {0, 2}, b, nullptr)) / 2e-5;
        EXPECT_NEAR(g[i], fd, 1e-4 * std::max(1.0, std::abs(fd))) << "kernel " << kernel_name(k) << " theta " << i << " additive " << !comp.empty();
      }
    }
}

// An additive objective over three categoricals, observed on a few combinations: the mixed
// kernel ranks the untried combinations by their main effects, as well as the joint ARD kernel
// (which is near-additive itself when its lengthscales are long).
TEST(MixedGp, PredictsUntriedCombinationsOfAnAdditiveObjective) {
  const double ea[4] = {0.0, 1.0, -0.5, 0.3}, eb[3] = {0.2, -1.0, 0.8}, ec[5] = {-0.7, 0.0, 1.2, 0.4, -0.2};
  std::mt19937_64 rng(11);
  std::vector<std::array<int, 3>> all;
  for (int a = 0; a < 4; ++a)
    for (int b = 0; b < 3; ++b)
      for (int c = 0; c < 5; ++c) all.push_back({a, b, c});
  std::shuffle(all.begin(), all.end(), rng);
  const int n = 14, m = static_cast<int>(all.size()) - n;
  Eigen::MatrixXd X(n, kD), Xt(m, kD);
  Eigen::VectorXd y(n), yt(m);
  for (int i = 0; i < static_cast<int>(all.size()); ++i) {
    const auto& t = all[i];
    const double v = ea[t[0]] + eb[t[1]] + ec[t[2]];
    if (i < n) {
      X.row(i) = encode(t[0], t[1], t[2], 0.5).transpose();
      y[i] = v;
    } else {
      Xt.row(i - n) = encode(t[0], t[1], t[2], 0.5).transpose();
      yt[i - n] = v;
    }
  }
  MixedGpOptions o;
  o.ls_groups = groups();
  o.components = components();
  o.warp_outputs = false;
  o.seed = 2;
  auto gp = MixedGp::fit(X, y, o);
  ASSERT_TRUE(gp.is_ok()) << gp.status().to_string();
  auto corr = [&](const Model& model) {
    Eigen::VectorXd mu, var;
    model.posterior(Xt, &mu, &var);
    EXPECT_TRUE((var.array() > 0).all());
    return ((mu.array() - mu.mean()) * (yt.array() - yt.mean())).sum() /
           std::sqrt((mu.array() - mu.mean()).square().sum() * (yt.array() - yt.mean()).square().sum());
  };
  // The joint ARD kernel alone (GaussianProcess, same groups).
  GpOptions go;
  go.ls_groups = groups();
  go.warp_outputs = false;
  go.seed = 2;
  auto ard = GaussianProcess::fit(X, y, go);
  ASSERT_TRUE(ard.is_ok()) << ard.status().to_string();
  const double c_mixed = corr(*gp), c_ard = corr(*ard);
  std::printf("rank correlation on untried combinations: mixed %.3f (w %.2f), ARD %.3f\n", c_mixed, gp->joint_weight(), c_ard);
  EXPECT_GT(c_mixed, 0.9);
  EXPECT_GT(c_mixed, c_ard - 0.02);
}

// A function that is flat on most of [0, 1] and wiggles near 1: no single lengthscale suits
// it, a warped input does. The warped GP predicts held-out points better than the plain one.
TEST(MixedGp, InputWarpFitsANonStationaryFunctionBetter) {
  auto f = [](double x) { return std::sin(12.0 * std::pow(x, 4)); };
  const int n = 24, m = 200;
  Eigen::MatrixXd X(n, 1), Xt(m, 1);
  Eigen::VectorXd y(n), yt(m);
  for (int i = 0; i < n; ++i) {
    X(i, 0) = (i + 0.5) / n;
    y[i] = f(X(i, 0));
  }
  for (int i = 0; i < m; ++i) {
    Xt(i, 0) = (i + 0.25) / m;
    yt[i] = f(Xt(i, 0));
  }
  double err[2];
  for (int warp = 0; warp < 2; ++warp) {
    MixedGpOptions o;
    o.warp_outputs = false;
    if (warp) o.warped = {0};
    auto gp = MixedGp::fit(X, y, o);
    ASSERT_TRUE(gp.is_ok()) << gp.status().to_string();
    Eigen::VectorXd mu, var;
    gp->posterior(Xt, &mu, &var);
    // Model units are standardised targets.
    const double mean = y.mean(), sd = std::sqrt((y.array() - mean).square().mean());
    err[warp] = std::sqrt(((mu.array() * sd + mean) - yt.array()).square().mean());
    if (warp) {
      EXPECT_GT(gp->warp_a()[0], 1.0);  // stretches the end near 1
    }
  }
  std::printf("held-out RMSE: plain %.4f, warped %.4f\n", err[0], err[1]);
  EXPECT_LT(err[1], 0.7 * err[0]);
}

TEST(MixedGp, ConditioningAndGradientsAgreeWithThePosterior) {
  std::mt19937_64 rng(3);
  std::uniform_real_distribution<double> u(0, 1);
  const int n = 12;
  Eigen::MatrixXd X(n, kD);
  Eigen::VectorXd y(n);
  for (int i = 0; i < n; ++i) {
    X.row(i) = encode(i % 4, i % 3, i % 5, u(rng)).transpose();
    y[i] = std::cos(4 * X(i, 12)) + X(i, 2);
  }
  MixedGpOptions o;
  o.ls_groups = groups();
  o.components = components();
  o.warped = {12};
  auto gp = MixedGp::fit(X, y, o);
  ASSERT_TRUE(gp.is_ok()) << gp.status().to_string();
  // The posterior variance at the training inputs is at most the noise; the joint covariance's
  // diagonal equals the marginal variances.
  Eigen::MatrixXd Xq(3, kD);
  Xq.row(0) = encode(1, 2, 3, 0.25).transpose();
  Xq.row(1) = encode(0, 0, 4, 0.9).transpose();
  Xq.row(2) = X.row(0);
  Eigen::VectorXd mu, var;
  gp->posterior(Xq, &mu, &var);
  Eigen::MatrixXd C = gp->posterior_covariance(Xq);
  for (int i = 0; i < 3; ++i) EXPECT_NEAR(C(i, i), var[i], 1e-9);
  // Conditioning on a fantasy at its own mean leaves the mean and shrinks the variance.
  auto f = gp->condition_on(Xq.topRows(1), mu.head(1));
  Eigen::VectorXd mu2, var2;
  f->posterior(Xq, &mu2, &var2);
  EXPECT_NEAR(mu2[0], mu[0], 1e-8);
  EXPECT_LT(var2[0], var[0]);
  // d mean / dx of the continuous feature by finite differences.
  Eigen::VectorXd x = Xq.row(0).transpose(), dm, dv;
  double m0, v0;
  ASSERT_TRUE(gp->posterior_gradient(x, &m0, &v0, &dm, &dv));
  EXPECT_NEAR(m0, mu[0], 1e-9);
  EXPECT_NEAR(v0, var[0], 1e-9);
  Eigen::MatrixXd Xp(2, kD);
  Xp.row(0) = x.transpose();
  Xp.row(1) = x.transpose();
  Xp(0, 12) += 1e-6;
  Xp(1, 12) -= 1e-6;
  Eigen::VectorXd mp, vp;
  gp->posterior(Xp, &mp, &vp);
  EXPECT_NEAR(dm[12], (mp[0] - mp[1]) / 2e-6, 1e-4 * std::max(1.0, std::abs(dm[12])));
  EXPECT_NEAR(dv[12], (vp[0] - vp[1]) / 2e-6, 1e-4 * std::max(1.0, std::abs(dv[12])));
}

}  // namespace
}  // namespace kiln::discover
