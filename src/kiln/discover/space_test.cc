#include "kiln/discover/space.h"

#include <gtest/gtest.h>

#include <cmath>

#include "kiln/discover/design.h"

namespace kiln::discover {
namespace {

SearchSpace mixed_space(int max_nonzero = 0) {
  std::vector<Parameter> ps = {
      {"theta", ParamType::kContinuous, 0, 200, false, {}, {}},
      {"n", ParamType::kInteger, 6, 12, false, {}, {}},
      {"solvent", ParamType::kCategorical, 0, 1, false, {"water", "ethanol", "dmso"}, {}},
      {"Cs", ParamType::kContinuous, 0, 1, false, {}, {}},
      {"FA", ParamType::kContinuous, 0, 0.8, false, {}, {}},
      {"MA", ParamType::kContinuous, 0, 1, false, {}, {}},
      {"rate", ParamType::kContinuous, 0.01, 10, true, {}, {}},
  };
  std::vector<Mixture> ms = {{{"Cs", "FA", "MA"}, 1.0, max_nonzero}};
  std::vector<LinearConstraint> cs = {{{"theta", "n"}, {1.0, 10.0}, 250.0}};
  auto s = SearchSpace::create(ps, ms, cs);
  EXPECT_TRUE(s.is_ok()) << s.status().to_string();
  return *s;
}

TEST(Space, EncodesToUnitCube) {
  SearchSpace s = mixed_space();
  EXPECT_EQ(s.dim(), 1 + 1 + 3 + 3 + 1);
  Point p = {100, 9, 2, 0.2, 0.3, 0.5, 1.0};
  ASSERT_TRUE(s.check(p).is_ok()) << s.check(p).to_string();
  std::vector<double> z(s.dim());
  s.encode(p, z.data());
  EXPECT_DOUBLE_EQ(z[0], 0.5);
  EXPECT_DOUBLE_EQ(z[1], 0.5);
  EXPECT_EQ(z[2], 0);
  EXPECT_EQ(z[4], 1);
  EXPECT_NEAR(z[8], std::log(100.0) / std::log(1000.0), 1e-12);
}

TEST(Space, OneHotColumnsShareALengthscaleGroup) {
  EXPECT_EQ(mixed_space().lengthscale_groups(), (std::vector<int>{0, 1, 2, 2, 2, 3, 4, 5, 6}));
  // Descriptor columns keep one group each; a one-hot categorical at the end is one group.
  std::vector<Parameter> ps = {
      {"solvent", ParamType::kCategorical, 0, 1, false, {"water", "ethanol"}, {{1.0, 2.0}, {3.0, 5.0}}},
      {"x", ParamType::kContinuous, 0, 1, false, {}, {}},
      {"salt", ParamType::kCategorical, 0, 1, false, {"Li", "Na", "K", "Cs"}, {}},
  };
  auto s = SearchSpace::create(ps, {}, {});
  ASSERT_TRUE(s.is_ok()) << s.status().to_string();
  EXPECT_EQ(s->lengthscale_groups(), (std::vector<int>{0, 1, 2, 3, 3, 3, 3}));
}

TEST(Space, CheckNamesTheProblem) {
  SearchSpace s = mixed_space(2);
  auto msg = [&](Point p) { return s.check(p).message(); };
  EXPECT_NE(msg({300, 9, 0, 0.2, 0.3, 0.5, 1}).find("'theta'"), std::string::npos);
  EXPECT_NE(msg({100, 9.5, 0, 0.2, 0.3, 0.5, 1}).find("integer"), std::string::npos);
  EXPECT_NE(msg({100, 9, 0, 0.2, 0.3, 0.6, 1}).find("sums to"), std::string::npos);
  EXPECT_NE(msg({100, 9, 0, 0.2, 0.3, 0.5, 1}).find("non-zero"), std::string::npos);
  EXPECT_NE(msg({200, 12, 0, 0.5, 0, 0.5, 1}).find("constraint"), std::string::npos);
  EXPECT_TRUE(s.check({100, 9, 0, 0.5, 0, 0.5, 1}).is_ok());
}

TEST(Space, RejectsBadDeclarations) {
  Parameter a{"a", ParamType::kContinuous, 1, 0, false, {}, {}};
  EXPECT_FALSE(SearchSpace::create({a}, {}, {}).is_ok());
  Parameter b{"b", ParamType::kContinuous, 0, 1, true, {}, {}};
  EXPECT_FALSE(SearchSpace::create({b}, {}, {}).is_ok());
  Parameter c{"c", ParamType::kContinuous, 0, 0.2, false, {}, {}}, d{"d", ParamType::kContinuous, 0, 0.2, false, {}, {}};
  EXPECT_FALSE(SearchSpace::create({c, d}, {{{"c", "d"}, 1.0, 0}}, {}).is_ok());  // cannot reach the total
  EXPECT_FALSE(SearchSpace::create({c}, {{{"c", "zz"}, 1.0, 0}}, {}).is_ok());
  EXPECT_FALSE(SearchSpace::create({c, c}, {}, {}).is_ok());
}

TEST(Space, DesignsAreFeasible) {
  for (int k : {0, 1, 2}) {
    SearchSpace s = mixed_space(k);
    for (Design d : {Design::kSobol, Design::kLatinHypercube, Design::kRandom}) {
      auto pts = s.sample(64, d, 3);
      ASSERT_TRUE(pts.is_ok()) << pts.status().to_string();
      ASSERT_EQ(pts->size(), 64u);
      for (const Point& p : *pts) EXPECT_TRUE(s.check(p).is_ok()) << s.check(p).to_string();
    }
  }
}

TEST(Space, RepairProjectsOntoTheMixture) {
  SearchSpace s = mixed_space(2);
  Point p = {100, 9.4, 1.2, 0.7, 0.9, 0.3, 20};
  s.repair(p);
  EXPECT_TRUE(s.check(p).is_ok()) << s.check(p).to_string();
  EXPECT_EQ(p[1], 9);
  EXPECT_EQ(p[6], 10);
}

TEST(Space, BoundedSimplexProjection) {
  double x[3] = {0.9, 0.9, 0.9}, lo[3] = {0, 0, 0.1}, hi[3] = {0.5, 1, 1};
  bool act[3] = {true, true, true};
  ASSERT_TRUE(project_bounded_simplex(x, lo, hi, act, 3, 1.0));
  EXPECT_NEAR(x[0] + x[1] + x[2], 1.0, 1e-12);
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(x[i] >= lo[i] - 1e-12 && x[i] <= hi[i] + 1e-12);
  bool two[3] = {true, false, false};
  EXPECT_FALSE(project_bounded_simplex(x, lo, hi, two, 3, 1.0));  // 0.5 cannot reach 1
}

TEST(Design, SobolStratifiesEachDimension) {
  Eigen::MatrixXd U = sobol(64, 6, 9);
  for (int j = 0; j < 6; ++j) {
    std::vector<int> bins(8, 0);
    for (int i = 0; i < 64; ++i) bins[static_cast<int>(U(i, j) * 8)]++;
    for (int b : bins) EXPECT_EQ(b, 8) << "dimension " << j;
  }
  Eigen::MatrixXd L = latin_hypercube(10, 3, 1);
  for (int j = 0; j < 3; ++j) {
    std::vector<int> bins(10, 0);
    for (int i = 0; i < 10; ++i) bins[static_cast<int>(L(i, j) * 10)]++;
    for (int b : bins) EXPECT_EQ(b, 1);
  }
}

TEST(Pool, LoadsAndValidatesRows) {
  SearchSpace s = mixed_space();
  auto t = parse_csv("theta,n,solvent,Cs,FA,MA,rate,id\n10,6,water,1,0,0,1,a\n20,7,dmso,0.5,0.5,0,2,b\n", "pool.csv");
  ASSERT_TRUE(t.is_ok());
  auto p = load_pool(s, *t);
  ASSERT_TRUE(p.is_ok()) << p.status().to_string();
  EXPECT_EQ(p->features.rows(), 2);
  auto bad = parse_csv("theta,n,solvent,Cs,FA,MA,rate\n10,6,water,1,0,0,1\n20,7,acetone,0.5,0.5,0,2\n", "pool.csv");
  auto e = load_pool(s, *bad);
  ASSERT_FALSE(e.is_ok());
  EXPECT_NE(e.status().message().find("row 3, column 'solvent'"), std::string::npos) << e.status().message();
  auto mix = parse_csv("theta,n,solvent,Cs,FA,MA,rate\n10,6,water,0.5,0,0,1\n", "pool.csv");
  e = load_pool(s, *mix);
  ASSERT_FALSE(e.is_ok());
  EXPECT_NE(e.status().message().find("row 2"), std::string::npos) << e.status().message();
  auto empty = parse_csv("theta,n,solvent,Cs,FA,MA,rate\n", "pool.csv");
  EXPECT_FALSE(load_pool(s, *empty).is_ok());
  auto extra = parse_csv("theta,n,solvent,Cs,FA,MA,rate,zz\n10,6,water,1,0,0,1,1\n", "pool.csv");
  EXPECT_FALSE(load_pool(s, *extra).is_ok());
}

}  // namespace
}  // namespace kiln::discover
