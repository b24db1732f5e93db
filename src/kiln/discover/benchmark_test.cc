#include "kiln/discover/benchmark.h"

#include <gtest/gtest.h>

#include <cmath>

namespace kiln::discover {
namespace {

TEST(Benchmark, ScoresFollowLiangsDefinitions) {
  Eigen::VectorXd y(40);
  for (int i = 0; i < 40; ++i) y[i] = i;  // top-5% = {39, 38}, top-1% = {39}
  StrategyResult s = score_orders(y, {{39, 0, 38, 1, 2}, {0, 1, 2, 3, 4}}, 5);
  EXPECT_DOUBLE_EQ(s.top_pct[0], 0.25);
  EXPECT_DOUBLE_EQ(s.top_pct[2], 0.5);
  EXPECT_DOUBLE_EQ(s.frac_found_top1, 0.5);
  EXPECT_DOUBLE_EQ(s.frac_found_best, 0.5);
  EXPECT_DOUBLE_EQ(s.evals_to_top1, (1 + 6) / 2.0);  // never found counts as budget + 1
  EXPECT_EQ(s.run_evals_to_top1, (std::vector<int>{1, 0}));  // per run, 0: not found
  EXPECT_DOUBLE_EQ(s.ef[0], 0.25 / (1 / 40.0));
  EXPECT_TRUE(std::isnan(s.af));
  StrategyResult t = score_orders(y, {{39, 38, 0, 1, 2}}, 5);
  EXPECT_DOUBLE_EQ(t.af, 0.8 * 40 / 2);
}

TEST(Benchmark, AveragesReplicatesAndBeatsRandomOnASmoothPool) {
  std::string csv = "a,b,c,y\n";
  for (int i = 0; i < 12; ++i)
    for (int j = 0; j < 12; ++j) {
      double a = i / 11.0, b = j / 11.0;
      double y = -std::pow(a - 0.73, 2) - std::pow(b - 0.21, 2);
      csv += std::to_string(a) + "," + std::to_string(b) + "," + (i % 2 ? "u" : "v") + "," + std::to_string(y) + "\n";
      if (i == 0 && j == 0) csv += std::to_string(a) + "," + std::to_string(b) + ",v," + std::to_string(y + 1) + "\n";
    }
  auto t = parse_csv(csv, "d.csv");
  ASSERT_TRUE(t.is_ok());
  auto d = make_benchmark_dataset(*t, {"a", "b", "c"}, "y", true);
  ASSERT_TRUE(d.is_ok()) << d.status().to_string();
  EXPECT_EQ(d->pool.points.size(), 144u);
  EXPECT_EQ(d->raw_rows, 145);
  EXPECT_EQ(d->space.param(2).type, ParamType::kCategorical);
  EXPECT_NEAR(d->y[0], -std::pow(0.73, 2) - std::pow(0.21, 2) + 0.5, 1e-5);
  BenchmarkOptions o;
  o.runs = 3;
  o.budget = 20;
  int calls = 0;
  o.progress = [&](int, int) { ++calls; };
  auto r = run_benchmark(*d, o);
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_EQ(calls, 6);
  ASSERT_EQ(r->strategies.size(), 2u);
  EXPECT_EQ(r->initial.size(), 3u);
  for (int run = 0; run < 3; ++run)
    for (int k = 0; k < 5; ++k) {
      EXPECT_EQ(r->strategies[0].order[run][k], r->initial[run][k]);
      EXPECT_EQ(r->strategies[1].order[run][k], r->initial[run][k]);
    }
  EXPECT_GT(r->strategies[0].top_pct_at_budget, r->strategies[1].top_pct_at_budget);
  auto bad = make_benchmark_dataset(*t, {"a", "zz"}, "y", true);
  EXPECT_FALSE(bad.is_ok());
  o.budget = 1000;
  EXPECT_FALSE(run_benchmark(*d, o).is_ok());
}

}  // namespace
}  // namespace kiln::discover
