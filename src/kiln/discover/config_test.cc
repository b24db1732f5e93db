#include "kiln/discover/config.h"

#include <gtest/gtest.h>

namespace kiln::discover {
namespace {

const char* kYaml = R"(
parameters:
  - {name: theta, type: continuous, low: 0, high: 200}
  - {name: n, type: integer, low: 6, high: 12}
  - {name: solvent, type: categorical, values: [water, ethanol]}
  - {name: Cs, type: continuous, low: 0, high: 1}
  - {name: FA, type: continuous, low: 0, high: 1}
  - {name: MA, type: continuous, low: 0, high: 1}
mixtures:
  - {components: [Cs, FA, MA], total: 1.0, max_nonzero: 2}
constraints:
  - {coefficients: {theta: 1, n: 10}, max: 250}
objectives:
  - {name: toughness, direction: maximize}
candidates: pool.csv
seed: 7
strategy: {acquisition: ucb, batch: lp, initial: 4}
)";

TEST(Config, ParsesTheContractKeys) {
  auto c = parse_campaign_yaml(kYaml, "c.yaml");
  ASSERT_TRUE(c.is_ok()) << c.status().to_string();
  EXPECT_EQ(c->parameters.size(), 6u);
  EXPECT_EQ(c->parameters[2].values[1], "ethanol");
  EXPECT_EQ(c->mixtures[0].max_nonzero, 2);
  EXPECT_EQ(c->constraints[0].rhs, 250);
  EXPECT_TRUE(c->objectives[0].maximize);
  EXPECT_EQ(c->candidates, "pool.csv");
  EXPECT_EQ(c->seed, 7u);
  EXPECT_EQ(c->strategy.acquisition, AcquisitionKind::kUCB);
  EXPECT_EQ(c->strategy.batch, BatchMode::kLocalPenalization);
  EXPECT_EQ(c->strategy.initial, 4);
}

TEST(Config, GpInputAndCategoricalKernelKeys) {
  EXPECT_TRUE(Strategy{}.input_warp);            // the default strategy warps continuous inputs
  EXPECT_FALSE(Strategy{}.mixed_categorical);    // and keeps the joint ARD kernel for categoricals
  const std::string base = "parameters: [{name: a, low: 0, high: 1}]\nobjectives: [{name: y}]\n";
  auto c = parse_campaign_yaml(base + "strategy: {input_warp: false, categorical_kernel: mixed}\n", "c.yaml");
  ASSERT_TRUE(c.is_ok()) << c.status().to_string();
  EXPECT_FALSE(c->strategy.input_warp);
  EXPECT_TRUE(c->strategy.mixed_categorical);
  auto e = parse_campaign_yaml(base + "strategy: {categorical_kernel: hamming}\n", "c.yaml");
  ASSERT_FALSE(e.is_ok());
  EXPECT_NE(e.status().message().find("strategy.categorical_kernel"), std::string::npos) << e.status().message();
  EXPECT_FALSE(parse_campaign_yaml(base + "strategy: {input_warp: maybe}\n", "c.yaml").is_ok());
}

TEST(Config, ErrorsNameTheKeyAndLine) {
  auto e = parse_campaign_yaml("parameters:\n  - {name: a, type: continuous, low: 0, high: x}\nobjectives: [{name: y}]\n", "c.yaml");
  ASSERT_FALSE(e.is_ok());
  EXPECT_NE(e.status().message().find("parameters[0].high (line 2)"), std::string::npos) << e.status().message();
  e = parse_campaign_yaml("parameters:\n  - {name: a, type: continuous, low: 0, high: 1, colour: red}\nobjectives: [{name: y}]\n", "c.yaml");
  ASSERT_FALSE(e.is_ok());
  EXPECT_NE(e.status().message().find("unknown key 'colour'"), std::string::npos) << e.status().message();
  e = parse_campaign_yaml("parameters: [{name: a, low: 0, high: 1}]\nobjectives: [{name: y, direction: up}]\n", "c.yaml");
  EXPECT_FALSE(e.is_ok());
  e = parse_campaign_yaml("parameters: [{name: a, low: 0, high: 1}]\n", "c.yaml");
  EXPECT_FALSE(e.is_ok());
  e = parse_campaign_yaml("parameters: [{name: a, low: 0, high: 1}\n", "c.yaml");  // YAML syntax
  ASSERT_FALSE(e.is_ok());
  EXPECT_NE(e.status().message().find("line"), std::string::npos);
  e = parse_campaign_yaml("parameters: [{name: a, low: 0, high: 1}]\nmixtures: [{components: [a, b]}]\nobjectives: [{name: y}]\n", "c.yaml");
  EXPECT_FALSE(e.is_ok());
}

TEST(Config, HostileInputIsRefusedWithoutCrashing) {
  std::string deep(10000, '[');
  EXPECT_FALSE(parse_campaign_yaml(deep, "c.yaml").is_ok());
  EXPECT_FALSE(parse_campaign_yaml("\x01\x02\xff", "c.yaml").is_ok());
  EXPECT_FALSE(parse_campaign_yaml("- a\n- b\n", "c.yaml").is_ok());
  EXPECT_FALSE(parse_campaign_yaml("parameters: &a [*a]\nobjectives: [{name: y}]\n", "c.yaml").is_ok());
}

}  // namespace
}  // namespace kiln::discover
