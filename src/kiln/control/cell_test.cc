// Building cells: every problem located as file:line:column (unknown tag, wrong type, a model
// whose inputs do not match, a period off the base tick, a model that does not load, malformed
// YAML, an unknown driver), expressions, and interlocks forcing safe values.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <string>

#include "kiln/control/expr.h"
#include "kiln/control/testing/test_cell.h"
#include "kiln/nn/testing/model_builder.h"

namespace kiln::control {
namespace {

using testing::cycle;
using testing::get;
using testing::load;
using testing::set;
using testing::try_load;

// The error message of a cell that must not load.
std::string error_of(const std::string& yaml, CellOptions options = {}) {
  auto r = try_load(yaml, "cell.yaml", testing::kTestDrivers, options);
  EXPECT_FALSE(r.is_ok()) << "the cell loaded";
  return r.is_ok() ? "" : r.status().message();
}

const char* kTags =
    "cell: t\n"
    "base_tick_us: 1000\n"
    "tags:\n"
    "  temp: {type: float, units: C}\n"
    "  power: {type: float, min: 0, max: 100, safe: 0}\n"
    "  alarm: {type: bool, safe: true}\n"
    "  reset: bool\n"
    "  feats: {type: array, length: 4}\n"
    "  score: float\n";

TEST(CellErrors, UnknownTagIsLocated) {
  std::string e = error_of(std::string(kTags) +
                           "loops:\n"
                           "  - name: main\n"
                           "    period_ms: 10\n"
                           "    blocks:\n"
                           "      - {type: pid, pv: tmep, sp: 100, out: power}\n");
  EXPECT_NE(e.find("cell.yaml:14:25:"), std::string::npos) << e;
  EXPECT_NE(e.find("tmep"), std::string::npos) << e;
}

TEST(CellErrors, UnknownTagInAnExpressionPointsAtTheName) {
  std::string e = error_of(std::string(kTags) +
                           "loops:\n"
                           "  - name: main\n"
                           "    period_ms: 10\n"
                           "    blocks:\n"
                           "      - {type: expr, out: power, expr: \"temp * 2 + presure\"}\n");
  EXPECT_NE(e.find("cell.yaml:14:52:"), std::string::npos) << e;
  EXPECT_NE(e.find("presure"), std::string::npos) << e;
}

TEST(CellErrors, TypeMismatchIsLocated) {
  std::string e = error_of(std::string(kTags) +
                           "loops:\n"
                           "  - name: main\n"
                           "    period_ms: 10\n"
                           "    blocks:\n"
                           "      - {type: hysteresis, in: temp, out: power, on_above: 5, off_below: 1}\n");
  EXPECT_NE(e.find("cell.yaml:14:43:"), std::string::npos) << e;
  EXPECT_NE(e.find("bool"), std::string::npos) << e;
}

TEST(CellErrors, PeriodNotAMultipleOfTheBaseTick) {
  std::string e = error_of(std::string(kTags) +
                           "loops:\n"
                           "  - name: main\n"
                           "    period_us: 1500\n");
  EXPECT_NE(e.find("cell.yaml:12:16:"), std::string::npos) << e;
  EXPECT_NE(e.find("base tick"), std::string::npos) << e;
}

TEST(CellErrors, UnknownDriverIsLocatedAndListsTheKnownOnes) {
  std::string e = error_of(std::string(kTags) +
                           "loops:\n"
                           "  - name: main\n"
                           "    period_ms: 10\n"
                           "devices:\n"
                           "  - name: plc\n"
                           "    driver: profibus\n");
  EXPECT_NE(e.find("cell.yaml:15:13:"), std::string::npos) << e;
  EXPECT_NE(e.find("simulated"), std::string::npos) << e;
}

TEST(CellErrors, MalformedYamlIsLocated) {
  std::string e = error_of("tags:\n  a: {type: float\nloops: [\n");
  EXPECT_EQ(e.rfind("cell.yaml:", 0), 0u) << e;
  EXPECT_NE(e.find("cell.yaml:3:"), std::string::npos) << e;
  // Hostile nesting is refused before the parser recurses.
  std::string deep(100000, '[');
  std::string d = error_of("tags: " + deep);
  EXPECT_NE(d.find("nesting"), std::string::npos) << d;
}

TEST(CellErrors, EveryProblemIsReportedAtOnce) {
  std::string e = error_of(std::string(kTags) +
                           "  bad: {type: complex}\n"
                           "loops:\n"
                           "  - name: main\n"
                           "    period_us: 1500\n"
                           "  - name: other\n"
                           "    period_ms: 10\n"
                           "    blocks:\n"
                           "      - {type: lowpass, in: nope, out: temp, tau: 1}\n"
                           "      - {type: teleport}\n"
                           "interlocks:\n"
                           "  - {name: x, loop: other, when: \"temp > 1\", force: {powr: 0}}\n");
  int lines = 1;
  for (char ch : e) lines += ch == '\n';
  EXPECT_EQ(lines, 5) << e;
  for (const char* want : {"complex", "base tick", "nope", "teleport", "powr"}) EXPECT_NE(e.find(want), std::string::npos) << want << "\n" << e;
}

TEST(CellErrors, MisspeltKeysAndTwoWritersAreErrors) {
  std::string e = error_of(std::string(kTags) +
                           "loops:\n"
                           "  - name: main\n"
                           "    period_ms: 10\n"
                           "    blocks:\n"
                           "      - {type: lowpass, in: temp, out: score, tau: 1, tua: 1}\n");
  EXPECT_NE(e.find("unknown key 'tua'"), std::string::npos) << e;
  e = error_of(std::string(kTags) +
               "loops:\n"
               "  - name: main\n"
               "    period_ms: 10\n"
               "    blocks:\n"
               "      - {type: expr, out: score, expr: 1}\n"
               "      - {type: expr, out: score, expr: 2}\n"
               "  - name: b\n"
               "    period_ms: 10\n"
               "    blocks:\n"
               "      - {type: expr, out: score, expr: 3}\n");
  EXPECT_NE(e.find("one writer"), std::string::npos) << e;
}

// Models for `infer`: y = x * w (1x4 -> 1x1) as a real ONNX file, and a file that is not ONNX.
class InferCell : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing::temp_dir("infer");
    nn::testing::ModelBuilder b(13);
    b.input("x", DType::kFloat32, {1, 4})
        .initializer("w", nn::testing::make_tensor<float>({4, 1}, {1, 2, 3, 4}))
        .node("MatMul", {"x", "w"}, {"y"})
        .output("y", DType::kFloat32, {1, 1});
    std::ofstream(dir_ + "/dot4.onnx", std::ios::binary) << b.serialize();
    std::ofstream(dir_ + "/broken.onnx", std::ios::binary) << "this is not a protobuf";
    options_.model_dirs = {dir_};
  }
  std::string cell(const std::string& model, const std::string& input) {
    return std::string(kTags) +
           "loops:\n"
           "  - name: main\n"
           "    period_ms: 20\n"
           "    blocks:\n"
           "      - type: infer\n"
           "        model: " + model + "\n"
           "        inputs: [{" + input + "}]\n"
           "        outputs: [{tag: score, scale: 2, offset: 1}]\n";
  }
  std::string dir_;
  CellOptions options_;
};

TEST_F(InferCell, RunsTheModelWithScaling) {
  auto c = load(cell("dot4.onnx", "tag: feats, offset: 1"), "cell.yaml", testing::kTestDrivers, options_);
  ASSERT_TRUE(c);
  const float f[4] = {2, 2, 3, 1};
  c->image().write_array(testing::tag(*c, "feats"), f);
  cycle(*c, "main");
  // x - 1 = [1, 1, 2, 0]; x.w = 1 + 2 + 6 = 9; 9 * 2 + 1 = 19.
  EXPECT_DOUBLE_EQ(get(*c, "score"), 19);
  ASSERT_EQ(c->models().size(), 1u);
  EXPECT_EQ(c->models()[0]->runs, 1u);
}

TEST_F(InferCell, NanFromTheModelIsAFaultAndTheSafeState) {
  nn::testing::ModelBuilder b(13);
  b.input("x", DType::kFloat32, {1, 4}).node("Sqrt", {"x"}, {"r"}).node("ReduceSum", {"r"}, {"y"}, {nn::testing::Attr::i("keepdims", 1)})
      .output("y", DType::kFloat32, {1, 1});
  std::ofstream(dir_ + "/sqrt.onnx", std::ios::binary) << b.serialize();
  auto c = load(cell("sqrt.onnx", "tag: feats"), "cell.yaml", testing::kTestDrivers, options_);
  ASSERT_TRUE(c);
  const float ok[4] = {1, 4, 9, 16};
  c->image().write_array(testing::tag(*c, "feats"), ok);
  cycle(*c, "main");
  EXPECT_DOUBLE_EQ(get(*c, "score"), 2 * 10 + 1);
  EXPECT_FALSE(c->in_safe_state());
  const float bad[4] = {1, -4, 9, 16};
  c->image().write_array(testing::tag(*c, "feats"), bad);
  cycle(*c, "main");
  EXPECT_TRUE(c->in_safe_state());
  EXPECT_DOUBLE_EQ(get(*c, "score"), 21);  // the NaN was not published
  EXPECT_DOUBLE_EQ(get(*c, "power"), 0);   // safe values forced
  EXPECT_EQ(c->models()[0]->failures, 1u);
}

TEST_F(InferCell, InputShapeMismatchIsLocated) {
  std::string e = error_of(cell("dot4.onnx", "tags: [temp, power, score]"), options_);
  EXPECT_NE(e.find("cell.yaml:16:25:"), std::string::npos) << e;
  EXPECT_NE(e.find("4 elements"), std::string::npos) << e;
}

TEST_F(InferCell, ModelThatDoesNotLoadIsLocated) {
  std::string e = error_of(cell("broken.onnx", "tag: feats"), options_);
  EXPECT_NE(e.find("cell.yaml:15:16:"), std::string::npos) << e;
  EXPECT_NE(e.find("does not load"), std::string::npos) << e;
  e = error_of(cell("missing.onnx", "tag: feats"), options_);
  EXPECT_NE(e.find("cell.yaml:15:16:"), std::string::npos) << e;
  EXPECT_NE(e.find("not found"), std::string::npos) << e;
}

TEST(Expr, PrecedenceFunctionsAndConditionals) {
  auto resolve = [](std::string_view n) { return n == "a" ? 0 : n == "b" ? 1 : -1; };
  const double vars[2] = {3, -4};
  auto eval = [&](const char* text) {
    auto e = Expr::compile(text, resolve);
    EXPECT_TRUE(e.is_ok()) << text << ": " << e.status().message();
    return e.is_ok() ? e->eval(vars) : NAN;
  };
  EXPECT_DOUBLE_EQ(eval("a + b * 2"), -5);
  EXPECT_DOUBLE_EQ(eval("(a + b) * 2"), -2);
  EXPECT_DOUBLE_EQ(eval("-a ^ 2"), -9);
  EXPECT_DOUBLE_EQ(eval("2 ^ 3 ^ 2"), 512);
  EXPECT_DOUBLE_EQ(eval("a > 2 && b < 0"), 1);
  EXPECT_DOUBLE_EQ(eval("!(a > 2) || b > 0"), 0);
  EXPECT_DOUBLE_EQ(eval("a > 5 ? 1 : b < 0 ? 2 : 3"), 2);
  EXPECT_DOUBLE_EQ(eval("clamp(a * 10, 0, 25) + abs(b) + min(a, b) + max(1, 2)"), 25 + 4 - 4 + 2);
  EXPECT_DOUBLE_EQ(eval("sqrt(16) + floor(2.7) + ceil(2.1) + round(2.5) + sign(b)"), 4 + 2 + 3 + 3 - 1);
  EXPECT_DOUBLE_EQ(eval("isnan(sqrt(b))"), 1);
  EXPECT_DOUBLE_EQ(eval("true + false + 1e-1 * 10"), 2);
  EXPECT_DOUBLE_EQ(eval("7 % 4"), 3);
}

TEST(Expr, BadTextIsAnErrorWithItsPosition) {
  auto resolve = [](std::string_view n) { return n == "a" ? 0 : -1; };
  struct Case {
    const char* text;
    int pos;
  };
  for (Case c : {Case{"a + + ", 6}, Case{"a + zz", 4}, Case{"max(a)", -1}, Case{"a )", 2}, Case{"(a", -1}, Case{"a ? 1", -1}, Case{"", -1}}) {
    int pos = -2;
    auto e = Expr::compile(c.text, resolve, &pos);
    EXPECT_FALSE(e.is_ok()) << c.text;
    if (c.pos >= 0) {
      EXPECT_EQ(pos, c.pos) << c.text;
    }
  }
  // Deep nesting and very long input are refused, not recursed into.
  std::string deep(5000, '(');
  EXPECT_FALSE(Expr::compile(deep + "a", resolve).is_ok());
  std::string long_sum = "a";
  for (int i = 0; i < 2000; ++i) long_sum += " + a";
  auto e = Expr::compile(long_sum, resolve);
  if (e.is_ok()) {
    const double v[1] = {1};
    EXPECT_DOUBLE_EQ(e->eval(v), 2001);
  }
}

// ---------------------------------------------------------------------------------------------
const char* kInterlockCell =
    "cell: il\n"
    "tags:\n"
    "  temp: float\n"
    "  demand: float\n"
    "  power: {type: float, min: 0, max: 100, safe: 0}\n"
    "  alarm: {type: bool, safe: true}\n"
    "  ack: bool\n"
    "loops:\n"
    "  - name: heat\n"
    "    period_ms: 10\n"
    "    blocks:\n"
    "      - {type: expr, out: power, expr: demand}\n"
    "      - {type: expr, out: alarm, expr: 0}\n"
    "interlocks:\n"
    "  - name: over_temp\n"
    "    loop: heat\n"
    "    when: temp > 450\n"
    "    for_cycles: 3\n"
    "    reset: ack\n"
    "    force: {power: safe, alarm: true}\n";

TEST(Interlock, ForcesSafeValuesInTheCycleItTripsAndLatches) {
  auto c = load(kInterlockCell);
  ASSERT_TRUE(c);
  set(*c, "demand", 70);
  set(*c, "temp", 460);
  cycle(*c, "heat", 2);
  EXPECT_EQ(get(*c, "power"), 70);  // two cycles above: not yet
  cycle(*c, "heat");
  EXPECT_EQ(get(*c, "power"), 0);  // the third: forced in this very cycle
  EXPECT_EQ(get(*c, "alarm"), 1);
  EXPECT_FALSE(c->in_safe_state());  // an interlock is local, not the whole cell's safe state
  // The block keeps writing 70, the forced value wins; the latch holds after the condition clears.
  set(*c, "temp", 300);
  cycle(*c, "heat", 5);
  EXPECT_EQ(get(*c, "power"), 0);
  // A rising edge of the reset tag, with the condition gone, releases it.
  set(*c, "ack", 1);
  cycle(*c, "heat", 2);
  EXPECT_EQ(get(*c, "power"), 70);
  EXPECT_EQ(get(*c, "alarm"), 0);
  c->events().drain();
  int trips = 0, clears = 0;
  for (const auto& e : c->events().history()) {
    trips += e.kind == EventKind::kInterlock;
    clears += e.kind == EventKind::kInterlockClear;
  }
  EXPECT_EQ(trips, 1);
  EXPECT_EQ(clears, 1);
}

TEST(Interlock, ConditionMustHoldForConsecutiveCycles) {
  auto c = load(kInterlockCell);
  ASSERT_TRUE(c);
  set(*c, "demand", 50);
  for (int i = 0; i < 20; ++i) {
    set(*c, "temp", i % 3 == 2 ? 400 : 500);  // two above, one below, repeated
    cycle(*c, "heat");
  }
  EXPECT_EQ(get(*c, "power"), 50);
}

TEST(SafeState, ForcesEveryTagWithASafeValue) {
  auto c = load(kInterlockCell);
  ASSERT_TRUE(c);
  set(*c, "demand", 60);
  cycle(*c, "heat");
  EXPECT_EQ(get(*c, "power"), 60);
  c->enter_safe_state("test");
  EXPECT_EQ(get(*c, "power"), 0);
  EXPECT_EQ(get(*c, "alarm"), 1);
  cycle(*c, "heat", 3);
  EXPECT_EQ(get(*c, "power"), 0);  // the loop cannot undo it
  EXPECT_EQ(get(*c, "demand"), 60);  // tags without a safe value are left alone
  c->reset();
  EXPECT_FALSE(c->in_safe_state());
}

}  // namespace
}  // namespace kiln::control
