#include "kiln/discover/campaign.h"

#include <gtest/gtest.h>

#include <cmath>
#include <set>

namespace kiln::discover {
namespace {

CampaignConfig config(const std::string& extra = "") {
  std::string y = R"(
parameters:
  - {name: x, type: continuous, low: 0, high: 1}
  - {name: n, type: integer, low: 1, high: 5}
  - {name: s, type: categorical, values: [a, b]}
  - {name: p, type: continuous, low: 0, high: 1}
  - {name: q, type: continuous, low: 0, high: 1}
mixtures:
  - {components: [p, q], total: 1}
objectives:
  - {name: y, direction: minimize}
seed: 3
)" + extra;
  auto c = parse_campaign_yaml(y, "c.yaml");
  EXPECT_TRUE(c.is_ok()) << c.status().to_string();
  return *c;
}

double truth(const Point& p) { return std::pow(p[0] - 0.3, 2) + 0.1 * p[1] + (p[2] == 1 ? 0.5 : 0) + p[3]; }

TEST(Campaign, AskTellLoopImprovesAndIsDeterministic) {
  auto c = Campaign::create(config(), nullptr);
  ASSERT_TRUE(c.is_ok()) << c.status().to_string();
  for (int round = 0; round < 6; ++round) {
    auto batch = c->recommend(2);
    ASSERT_TRUE(batch.is_ok()) << batch.status().to_string();
    std::vector<Observation> obs;
    for (const Point& p : *batch) {
      EXPECT_TRUE(c->space().check(p).is_ok());
      obs.push_back({p, {truth(p)}, 0, 0});
    }
    c->add_measurements(obs);
  }
  auto again = Campaign::create(config(), nullptr);
  again->add_measurements(c->observations());
  auto a = c->recommend(1), b = again->recommend(1);
  ASSERT_TRUE(a.is_ok() && b.is_ok());
  EXPECT_EQ((*a)[0], (*b)[0]);
  CampaignSummary s = c->summary();
  EXPECT_EQ(s.observations, 12);
  ASSERT_EQ(s.best.size(), 1u);
  EXPECT_LE(s.best_so_far[0].back(), s.best_so_far[0].front());
}

TEST(Campaign, ContinuousInputsAreWarpedByDefault) {
  // The same observations, the default strategy and one without the input warp: the learnt
  // Kumaraswamy CDFs change the proposal; the categorical-only kernel switch is a no-op here.
  auto run = [](const std::string& extra) {
    auto c = Campaign::create(config(extra), nullptr);
    EXPECT_TRUE(c.is_ok()) << c.status().to_string();
    std::vector<Observation> obs;
    for (int i = 0; i < 10; ++i) {
      Point p = {std::fmod(i * 0.618034, 1.0), static_cast<double>(1 + i % 5), static_cast<double>(i % 2), 0.1 * i, 1 - 0.1 * i};
      obs.push_back({p, {truth(p)}, 0, 0});
    }
    c->add_measurements(obs);
    auto r = c->recommend(1);
    EXPECT_TRUE(r.is_ok()) << r.status().to_string();
    return (*r)[0];
  };
  const Point warped = run(""), plain = run("strategy: {input_warp: false}\n");
  EXPECT_EQ(warped, run("strategy: {input_warp: true}\n"));
  EXPECT_NE(warped, plain);
}

TEST(Campaign, MeasurementsAreValidatedWithRowAndColumn) {
  auto c = Campaign::create(config(), nullptr);
  ASSERT_TRUE(c.is_ok());
  c->add_pending({{4, {0.5, 2, 0, 0.5, 0.5}}});
  auto err = [&](const std::string& csv) {
    auto t = parse_csv(csv, "r.csv");
    EXPECT_TRUE(t.is_ok());
    auto o = c->parse_measurements(*t);
    EXPECT_FALSE(o.is_ok()) << csv;
    return o.is_ok() ? std::string() : o.status().message();
  };
  EXPECT_NE(err("x,n,s,p,q,y\n0.5,2,a,0.5,0.5,\n").find("row 2, column 'y': value is missing"), std::string::npos);
  EXPECT_NE(err("x,n,s,p,q,y\n0.5,2,a,0.5,0.5,nan\n").find("row 2, column 'y'"), std::string::npos);
  EXPECT_NE(err("x,n,s,p,q,y\n0.5,2,a,0.5,0.5,1\n1.5,2,a,0.5,0.5,1\n").find("row 3, column 'x'"), std::string::npos);
  EXPECT_NE(err("x,n,s,p,q,y\n0.5,2,c,0.5,0.5,1\n").find("column 's'"), std::string::npos);
  EXPECT_NE(err("x,n,s,p,q,y\n0.5,2,a,0.5,0.6,1\n").find("sums to"), std::string::npos);
  EXPECT_NE(err("x,n,s,p,q,y,zz\n0.5,2,a,0.5,0.5,1,1\n").find("column 'zz'"), std::string::npos);
  EXPECT_NE(err("x,n,s,p,q\n0.5,2,a,0.5,0.5\n").find("objective 'y'"), std::string::npos);
  EXPECT_NE(err("id,y\n9,1\n").find("does not exist"), std::string::npos);
  EXPECT_NE(err("id,y\n4,1\n4,2\n").find("twice"), std::string::npos);
  auto t = parse_csv("id,y\n4,1.5\n", "r.csv");
  auto ok = c->parse_measurements(*t);
  ASSERT_TRUE(ok.is_ok()) << ok.status().to_string();
  EXPECT_EQ((*ok)[0].proposal_id, 4);
  EXPECT_EQ((*ok)[0].params[0], 0.5);
  c->add_measurements(*ok);
  EXPECT_TRUE(c->pending().empty());
  EXPECT_NE(err("id,y\n4,1\n").find("already observed"), std::string::npos);
}

TEST(Campaign, PoolProposalsSkipObservedAndPendingRows) {
  CampaignConfig cfg;
  cfg.parameters = {{"x", ParamType::kContinuous, 0, 1, false, {}, {}}};
  cfg.objectives = {{"y", true}};
  cfg.strategy.initial = 2;
  std::string csv = "x\n";
  for (int i = 0; i < 20; ++i) csv += std::to_string(i / 19.0) + "\n";
  auto t = parse_csv(csv, "pool.csv");
  auto c = Campaign::create(cfg, &*t);
  ASSERT_TRUE(c.is_ok()) << c.status().to_string();
  std::set<int> used;
  for (int round = 0; round < 6; ++round) {
    auto b = c->recommend(3);
    ASSERT_TRUE(b.is_ok()) << b.status().to_string();
    for (const Point& p : *b) {
      int r = c->pool_row_of(p);
      ASSERT_GE(r, 0);
      EXPECT_TRUE(used.insert(r).second) << "row proposed twice: " << r;
    }
    if (round % 2 == 0) {
      std::vector<Proposal> pend;
      for (const Point& p : *b) pend.push_back({100 + round * 10 + static_cast<int64_t>(pend.size()), p});
      c->add_pending(pend);
    } else {
      std::vector<Observation> obs;
      for (const Point& p : *b) obs.push_back({p, {std::sin(6 * p[0])}, 0, 0});
      c->add_measurements(obs);
    }
  }
  auto b = c->recommend(3);
  ASSERT_FALSE(b.is_ok());
  EXPECT_NE(b.status().message().find("fewer than the batch size"), std::string::npos);
}

TEST(Campaign, CategoricalLabelsShareOneLengthscaleByDefault) {
  // Two categorical inputs (one-hot: 4 + 3 columns) and a continuous one, from a pool.
  CampaignConfig cfg;
  cfg.parameters = {{"a", ParamType::kCategorical, 0, 1, false, {"a0", "a1", "a2", "a3"}, {}},
                    {"b", ParamType::kCategorical, 0, 1, false, {"b0", "b1", "b2"}, {}},
                    {"x", ParamType::kContinuous, 0, 1, false, {}, {}}};
  cfg.objectives = {{"y", true}};
  std::string csv = "a,b,x\n";
  for (int i = 0; i < 4; ++i)
    for (int j = 0; j < 3; ++j)
      for (int k = 0; k < 3; ++k) csv += "a" + std::to_string(i) + ",b" + std::to_string(j) + "," + std::to_string(k / 2.0) + "\n";
  auto t = parse_csv(csv, "pool.csv");
  ASSERT_TRUE(t.is_ok());
  auto value = [](const Point& p) { return (p[0] == 2 ? 1.0 : 0.2 * p[0]) - 0.3 * p[1] + std::sin(3 * p[2]); };
  for (bool tie : {true, false}) {
    CampaignConfig c2 = cfg;
    if (!tie) c2.strategy.tie_categorical = false;
    auto c = Campaign::create(c2, &*t);
    ASSERT_TRUE(c.is_ok()) << c.status().to_string();
    for (int round = 0; round < 12; ++round) {
      auto b = c->recommend(1);
      ASSERT_TRUE(b.is_ok()) << b.status().to_string();
      c->add_measurements({{(*b)[0], {value((*b)[0])}, 0, 0}});
    }
    ASSERT_TRUE(c->gp_hyper().has_value());
    const Eigen::VectorXd& ll = c->gp_hyper()->log_lengthscale;
    ASSERT_EQ(ll.size(), 8);
    const double spread_a = ll.segment(0, 4).maxCoeff() - ll.segment(0, 4).minCoeff();
    const double spread_b = ll.segment(4, 3).maxCoeff() - ll.segment(4, 3).minCoeff();
    if (tie) {
      EXPECT_EQ(spread_a, 0.0);
      EXPECT_EQ(spread_b, 0.0);
    } else {
      EXPECT_GT(spread_a + spread_b, 1e-3);
    }
  }
}

TEST(Campaign, MultiObjectiveEhviAndParego) {
  for (const char* mo : {"ehvi", "parego"}) {
    std::string y = std::string(R"(
parameters:
  - {name: x, type: continuous, low: 0, high: 1}
  - {name: z, type: continuous, low: 0, high: 1}
objectives:
  - {name: f, direction: maximize}
  - {name: g, direction: minimize}
strategy: {multi_objective: )") + mo + "}\n";
    auto cfg = parse_campaign_yaml(y, "m.yaml");
    ASSERT_TRUE(cfg.is_ok()) << cfg.status().to_string();
    auto c = Campaign::create(*cfg, nullptr);
    ASSERT_TRUE(c.is_ok());
    for (int r = 0; r < 5; ++r) {
      auto b = c->recommend(2);
      ASSERT_TRUE(b.is_ok()) << mo << ": " << b.status().to_string();
      std::vector<Observation> obs;
      for (const Point& p : *b) obs.push_back({p, {p[0] + p[1], p[0] * p[0]}, 0, 0});
      c->add_measurements(obs);
    }
    EXPECT_GE(c->summary().best.size(), 1u);
  }
}

TEST(Campaign, LargeCampaignsRunTheFullRefitOnlyWhenTheDataGrew) {
  EXPECT_EQ(refit_due(500), 525);
  EXPECT_EQ(refit_due(201), 212);
  EXPECT_EQ(refit_due(1), 2);
  CampaignConfig cfg;
  for (int j = 0; j < 3; ++j) cfg.parameters.push_back({"x" + std::to_string(j), ParamType::kContinuous, 0, 1, false, {}, {}});
  cfg.objectives = {{"y", true}};
  cfg.seed = 1;
  Pool pool;
  for (int i = 0; i < 300; ++i) {
    Point p = {std::fmod(i * 0.618034, 1.0), std::fmod(i * 0.414214, 1.0), std::fmod(i * 0.732051, 1.0)};
    pool.points.push_back(p);
  }
  pool.features.resize(300, 3);
  for (int i = 0; i < 300; ++i)
    for (int j = 0; j < 3; ++j) pool.features(i, j) = pool.points[i][j];
  auto c = Campaign::create_with_pool(cfg, pool);
  ASSERT_TRUE(c.is_ok()) << c.status().to_string();
  auto y = [](const Point& p) { return std::sin(3 * p[0]) + p[1] * p[2]; };
  auto observe = [&](int from, int to) {
    std::vector<Observation> obs;
    for (int i = from; i < to; ++i) obs.push_back({pool.points[i], {y(pool.points[i])}, 0, 0});
    c->add_measurements(obs);
  };
  observe(0, kRefitMinObservations + 10);
  ASSERT_TRUE(c->recommend(1).is_ok());
  ASSERT_TRUE(c->gp_hyper().has_value());
  const GpHyper first = *c->gp_hyper();
  EXPECT_EQ(first.fitted_on, kRefitMinObservations + 10);
  // A few more observations: a light refit from the stored hyperparameters, still counted
  // from the last full one.
  observe(kRefitMinObservations + 10, refit_due(first.fitted_on) - 1);
  ASSERT_TRUE(c->recommend(1).is_ok());
  EXPECT_EQ(c->gp_hyper()->fitted_on, first.fitted_on);
  EXPECT_EQ(c->gp_hyper()->log_lengthscale.size(), first.log_lengthscale.size());
  // 5% more than they were fitted on: refitted.
  observe(refit_due(first.fitted_on) - 1, refit_due(first.fitted_on));
  ASSERT_TRUE(c->recommend(1).is_ok());
  EXPECT_EQ(c->gp_hyper()->fitted_on, refit_due(first.fitted_on));
  // Unknown provenance (a database from before fitted_on): refitted at once.
  GpHyper old = *c->gp_hyper();
  old.fitted_on = 0;
  c->set_gp_hyper(old);
  ASSERT_TRUE(c->recommend(1).is_ok());
  EXPECT_EQ(c->gp_hyper()->fitted_on, refit_due(first.fitted_on));
}

TEST(Campaign, JsonRoundTrip) {
  auto c = Campaign::create(config(), nullptr);
  Point p = {0.25, 3, 1, 0.4, 0.6};
  std::string j = c->point_to_json(p);
  EXPECT_NE(j.find("\"s\":\"b\""), std::string::npos) << j;
  auto back = c->point_from_json(j);
  ASSERT_TRUE(back.is_ok());
  EXPECT_EQ(*back, p);
  EXPECT_FALSE(c->point_from_json("{\"x\": 1}").is_ok());
  EXPECT_FALSE(c->point_from_json("not json").is_ok());
}

}  // namespace
}  // namespace kiln::discover
