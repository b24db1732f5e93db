#include "kiln/discover/optimise.h"

#include <gtest/gtest.h>

#include <cmath>
#include <set>

#include "kiln/discover/design.h"
#include "kiln/discover/forest.h"
#include "kiln/discover/gp.h"

namespace kiln::discover {
namespace {

double g(const Eigen::VectorXd& x) {
  double s = 0;
  for (int j = 0; j < x.size(); ++j) s += std::sin(3 * x[j] + j) * (j + 1);
  return s - 2 * (x.array() - 0.4).square().sum();
}

GaussianProcess fitted(int n, int d, uint64_t seed) {
  Eigen::MatrixXd X = uniform_random(n, d, seed);
  Eigen::VectorXd y(n);
  for (int i = 0; i < n; ++i) y[i] = g(X.row(i).transpose());
  GpOptions o;
  o.seed = seed;
  auto gp = GaussianProcess::fit(X, y, o);
  EXPECT_TRUE(gp.is_ok());
  return *gp;
}

TEST(OptimizePool, FastPathEqualsBruteForce) {
  for (uint64_t seed : {1, 2, 3, 4}) {
    GaussianProcess gp = fitted(40 + 10 * seed, 4, seed);
    Eigen::MatrixXd pool = uniform_random(3000, 4, 100 + seed);
    std::vector<char> avail(pool.rows(), 1);
    for (int i = 0; i < 3000; i += 7) avail[i] = 0;
    for (AcquisitionKind k : {AcquisitionKind::kLogEI, AcquisitionKind::kUCB}) {
      AcquisitionSpec s;
      s.kind = k;
      OptimizeOptions o;
      auto fast = optimize_pool({&gp}, s, pool, avail, o);
      auto ref = best_in_pool_reference(gp, s, pool, avail);
      ASSERT_TRUE(fast.is_ok() && ref.is_ok());
      EXPECT_EQ((*fast)[0], *ref) << "seed " << seed << " " << acquisition_name(k);
    }
  }
}

TEST(OptimizePool, BatchesAreDistinctAndAvoidUnavailableRows) {
  GaussianProcess gp = fitted(30, 3, 9);
  Eigen::MatrixXd pool = uniform_random(500, 3, 10);
  std::vector<char> avail(500, 1);
  avail[0] = avail[1] = 0;
  for (BatchMode b : {BatchMode::kKrigingBeliever, BatchMode::kLocalPenalization, BatchMode::kJointMC}) {
    for (AcquisitionKind k : {AcquisitionKind::kLogEI, AcquisitionKind::kUCB, AcquisitionKind::kThompson}) {
      AcquisitionSpec s;
      s.kind = k;
      OptimizeOptions o;
      o.q = 5;
      o.batch = b;
      auto rows = optimize_pool({&gp}, s, pool, avail, o);
      ASSERT_TRUE(rows.is_ok()) << rows.status().to_string();
      ASSERT_EQ(rows->size(), 5u);
      std::set<int> u(rows->begin(), rows->end());
      EXPECT_EQ(u.size(), 5u);
      EXPECT_FALSE(u.count(0) || u.count(1));
    }
  }
  std::vector<char> few(500, 0);
  few[3] = few[4] = 1;
  OptimizeOptions o;
  o.q = 3;
  auto err = optimize_pool({&gp}, {}, pool, few, o);
  ASSERT_FALSE(err.is_ok());
  EXPECT_NE(err.status().message().find("fewer than the batch size"), std::string::npos);
  o.q = 0;
  EXPECT_FALSE(optimize_pool({&gp}, {}, pool, avail, o).is_ok());
}

TEST(OptimizePool, ForestSurrogateWorks) {
  Eigen::MatrixXd X = uniform_random(40, 3, 4);
  Eigen::VectorXd y(40);
  for (int i = 0; i < 40; ++i) y[i] = g(X.row(i).transpose());
  auto rf = RandomForest::fit(X, y, {});
  ASSERT_TRUE(rf.is_ok());
  Eigen::MatrixXd pool = uniform_random(300, 3, 5);
  OptimizeOptions o;
  o.q = 3;
  auto rows = optimize_pool({&*rf}, {}, pool, std::vector<char>(300, 1), o);
  ASSERT_TRUE(rows.is_ok()) << rows.status().to_string();
  EXPECT_EQ(rows->size(), 3u);
}

TEST(OptimizeSpace, ProposalsAreFeasibleUnderMixturesAndConstraints) {
  std::vector<Parameter> ps = {{"a", ParamType::kContinuous, 0, 1, false, {}, {}},
                               {"b", ParamType::kContinuous, 0, 1, false, {}, {}},
                               {"c", ParamType::kContinuous, 0.1, 1, false, {}, {}},
                               {"t", ParamType::kContinuous, 0, 10, false, {}, {}},
                               {"k", ParamType::kCategorical, 0, 1, false, {"x", "y"}, {}}};
  auto space = SearchSpace::create(ps, {{{"a", "b", "c"}, 1.0, 2}}, {{{"t", "a"}, {1.0, 5.0}, 6.0}});
  ASSERT_TRUE(space.is_ok()) << space.status().to_string();
  auto pts = space->sample(30, Design::kSobol, 1);
  ASSERT_TRUE(pts.is_ok());
  Eigen::MatrixXd X = space->encode_all(*pts);
  Eigen::VectorXd y(30);
  for (int i = 0; i < 30; ++i) y[i] = (*pts)[i][0] * 3 + (*pts)[i][3] * 0.2 - (*pts)[i][2];
  auto gp = GaussianProcess::fit(X, y, {});
  ASSERT_TRUE(gp.is_ok());
  for (BatchMode b : {BatchMode::kKrigingBeliever, BatchMode::kLocalPenalization}) {
    OptimizeOptions o;
    o.q = 3;
    o.batch = b;
    o.raw_samples = 256;
    auto out = optimize_space({&*gp}, {}, *space, o);
    ASSERT_TRUE(out.is_ok()) << out.status().to_string();
    ASSERT_EQ(out->size(), 3u);
    for (const Point& p : *out) EXPECT_TRUE(space->check(p).is_ok()) << space->check(p).to_string();
  }
}

TEST(OptimizeSpace, LocalOptimisationFindsTheContinuousOptimum) {
  std::vector<Parameter> ps = {{"x", ParamType::kContinuous, 0, 1, false, {}, {}}, {"y", ParamType::kContinuous, 0, 1, false, {}, {}}};
  auto space = SearchSpace::create(ps, {}, {});
  ASSERT_TRUE(space.is_ok());
  auto pts = space->sample(40, Design::kSobol, 2);
  Eigen::MatrixXd X = space->encode_all(*pts);
  Eigen::VectorXd y(40);
  for (int i = 0; i < 40; ++i) y[i] = -std::pow(X(i, 0) - 0.37, 2) - std::pow(X(i, 1) - 0.61, 2);
  GpOptions go;
  go.warp_outputs = false;
  auto gp = GaussianProcess::fit(X, y, go);
  ASSERT_TRUE(gp.is_ok());
  AcquisitionSpec s;
  s.kind = AcquisitionKind::kUCB;
  s.ucb_beta = 0.0;  // pure exploitation: the optimum of the posterior mean
  OptimizeOptions o;
  o.raw_samples = 64;
  auto out = optimize_space({&*gp}, s, *space, o);
  ASSERT_TRUE(out.is_ok());
  EXPECT_NEAR((*out)[0][0], 0.37, 0.03);
  EXPECT_NEAR((*out)[0][1], 0.61, 0.03);
}

}  // namespace
}  // namespace kiln::discover
