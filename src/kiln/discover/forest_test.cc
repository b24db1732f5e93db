#include "kiln/discover/forest.h"

#include <gtest/gtest.h>

#include "kiln/discover/design.h"

namespace kiln::discover {
namespace {

TEST(Forest, LearnsAStepAndIsUncertainAtTheEdge) {
  Eigen::MatrixXd X = sobol(128, 2, 1);
  Eigen::VectorXd y(128);
  for (int i = 0; i < 128; ++i) y[i] = X(i, 0) > 0.5 ? 1.0 : 0.0;
  ForestOptions o;
  o.warp_outputs = false;
  o.seed = 2;
  auto rf = RandomForest::fit(X, y, o);
  ASSERT_TRUE(rf.is_ok()) << rf.status().to_string();
  Eigen::MatrixXd T(3, 2);
  T << 0.1, 0.5, 0.9, 0.5, 0.5, 0.5;
  Eigen::VectorXd mu, var;
  rf->posterior(T, &mu, &var);
  EXPECT_LT(mu[0], mu[1]);
  EXPECT_LT(mu[0], -0.5);
  EXPECT_GT(mu[1], 0.5);
  EXPECT_GT(var[2], var[0]);
  auto c = rf->condition_on(T.topRows(1), Eigen::VectorXd::Constant(1, 3.0));
  Eigen::VectorXd mu2, var2;
  c->posterior(T.topRows(1), &mu2, &var2);
  EXPECT_GT(mu2[0], mu[0]);
  ForestOptions bad;
  bad.trees = 0;
  EXPECT_FALSE(RandomForest::fit(X, y, bad).is_ok());
}

}  // namespace
}  // namespace kiln::discover
