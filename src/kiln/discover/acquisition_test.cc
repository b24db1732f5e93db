#include "kiln/discover/acquisition.h"

#include <gtest/gtest.h>

#include <cmath>

#include "kiln/discover/design.h"
#include "kiln/discover/gp.h"

namespace kiln::discover {
namespace {

GaussianProcess toy_gp() {
  Eigen::MatrixXd X = sobol(25, 2, 3);
  Eigen::VectorXd y(25);
  for (int i = 0; i < 25; ++i) y[i] = -std::pow(X(i, 0) - 0.3, 2) - std::pow(X(i, 1) - 0.7, 2);
  auto gp = GaussianProcess::fit(X, y, {});
  EXPECT_TRUE(gp.is_ok());
  return *gp;
}

TEST(Acquisition, LogHIsAccurateAndSmoothInTheTail) {
  for (double z : {-0.5, 0.0, 1.0, 3.0}) {
    double phi = std::exp(-0.5 * z * z) / std::sqrt(2 * M_PI), Phi = 0.5 * std::erfc(-z / std::sqrt(2.0));
    EXPECT_NEAR(log_h(z), std::log(phi + z * Phi), 1e-10);
  }
  // Plain EI underflows here; log h stays finite and decreasing.
  double prev = log_h(-5);
  for (double z = -6; z > -60; z -= 1) {
    double v = log_h(z);
    EXPECT_TRUE(std::isfinite(v));
    EXPECT_LT(v, prev);
    prev = v;
  }
  EXPECT_NEAR(log_h(-1 + 1e-9), log_h(-1 - 1e-9), 1e-6);
  EXPECT_NEAR(log_h(-25 + 1e-9), log_h(-25 - 1e-9), 1e-6);
}

TEST(Acquisition, AnalyticGradientsMatchFiniteDifferences) {
  GaussianProcess gp = toy_gp();
  for (AcquisitionKind k : {AcquisitionKind::kLogEI, AcquisitionKind::kUCB, AcquisitionKind::kLogPI}) {
    AcquisitionSpec s;
    s.kind = k;
    auto a = make_acquisition(s, {&gp});
    ASSERT_TRUE(a.is_ok());
    Eigen::VectorXd x(2);
    x << 0.61, 0.22;
    double v;
    Eigen::VectorXd g;
    ASSERT_TRUE((*a)->value_and_gradient(x, &v, &g));
    Eigen::VectorXd e;
    (*a)->evaluate(x.transpose(), 1, &e);
    EXPECT_NEAR(v, e[0], 1e-9 * std::max(1.0, std::abs(v)));
    for (int j = 0; j < 2; ++j) {
      Eigen::VectorXd p = x, m = x;
      p[j] += 1e-6;
      m[j] -= 1e-6;
      Eigen::VectorXd vp, vm;
      (*a)->evaluate(p.transpose(), 1, &vp);
      (*a)->evaluate(m.transpose(), 1, &vm);
      EXPECT_NEAR(g[j], (vp[0] - vm[0]) / 2e-6, 1e-4 * std::max(1.0, std::abs(g[j]))) << acquisition_name(k);
    }
  }
}

TEST(Acquisition, QeiWithOnePointIsExpectedImprovement) {
  GaussianProcess gp = toy_gp();
  AcquisitionSpec s;
  s.kind = AcquisitionKind::kQEI;
  s.mc_samples = 4096;
  auto q = make_acquisition(s, {&gp});
  s.kind = AcquisitionKind::kLogEI;
  auto e = make_acquisition(s, {&gp});
  Eigen::MatrixXd X = sobol(5, 2, 8);
  Eigen::VectorXd vq, ve;
  (*q)->evaluate(X, 1, &vq);
  (*e)->evaluate(X, 1, &ve);
  for (int i = 0; i < 5; ++i) EXPECT_NEAR(vq[i], std::exp(ve[i]), 0.02 * std::exp(ve[i]) + 1e-4);
  // A batch of two is worth at least its better half.
  Eigen::VectorXd v2;
  (*q)->evaluate(X.topRows(2), 2, &v2);
  EXPECT_GE(v2[0] + 1e-9, std::max(vq[0], vq[1]) * 0.98);
}

TEST(Acquisition, HypervolumeAndParetoFront) {
  Eigen::MatrixXd P(3, 2);
  P << 1, 3, 2, 2, 3, 1;
  Eigen::VectorXd r = Eigen::VectorXd::Zero(2);
  EXPECT_DOUBLE_EQ(hypervolume(P, r), 3 + 2 + 1);
  Eigen::MatrixXd Q(2, 3);
  Q << 1, 1, 1, 2, 0.5, 0.5;
  Eigen::VectorXd r3 = Eigen::VectorXd::Zero(3);
  EXPECT_DOUBLE_EQ(hypervolume(Q, r3), 1 + 2 * 0.25 - 0.25);
  Eigen::MatrixXd Y(4, 2);
  Y << 1, 1, 2, 0, 0.5, 0.5, 2, 0;
  EXPECT_EQ(pareto_front(Y), (std::vector<int>{0, 1}));
}

TEST(Acquisition, EhviPrefersPointsThatExtendTheFront) {
  Eigen::MatrixXd X = sobol(20, 1, 2);
  Eigen::VectorXd a(20), b(20);
  for (int i = 0; i < 20; ++i) {
    a[i] = X(i, 0);
    b[i] = 1 - X(i, 0) * X(i, 0);
  }
  auto ga = GaussianProcess::fit(X, a, {});
  auto gb = GaussianProcess::fit(X, b, {});
  ASSERT_TRUE(ga.is_ok() && gb.is_ok());
  AcquisitionSpec s;
  s.kind = AcquisitionKind::kEHVI;
  auto e = make_acquisition(s, {&*ga, &*gb});
  ASSERT_TRUE(e.is_ok()) << e.status().to_string();
  Eigen::VectorXd v;
  (*e)->evaluate(X, 1, &v);
  EXPECT_TRUE((v.array() >= 0).all());
  s.kind = AcquisitionKind::kLogEI;
  EXPECT_FALSE(make_acquisition(s, {&*ga, &*gb}).is_ok());
}

}  // namespace
}  // namespace kiln::discover
