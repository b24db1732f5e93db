// Function blocks, each driven through a real cell (parsed from YAML, cycled by hand): PID
// anti-windup and bumpless transfer, filters, limit, rate limiter, hysteresis, timers, state
// machine, profile, expression blocks; and the FFT band energies.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "kiln/control/fft.h"
#include "kiln/control/testing/test_cell.h"

namespace kiln::control {
namespace {

using testing::cycle;
using testing::get;
using testing::load;
using testing::set;

// One 100 Hz loop (dt = 0.01 s) running `blocks` over the float tags a, b, c, sp, pv, u and the
// bool tags on, man, q.
std::string cell_with(const std::string& blocks, const std::string& extra_tags = "") {
  return "cell: t\n"
         "base_tick_us: 1000\n"
         "tags:\n"
         "  a: float\n  b: float\n  c: float\n  sp: float\n  pv: float\n"
         "  u: {type: float, min: -5, max: 5}\n"
         "  on: bool\n  man: bool\n  q: bool\n  st: int\n" +
         extra_tags +
         "loops:\n"
         "  - name: main\n"
         "    period_ms: 10\n"
         "    blocks:\n" +
         blocks;
}

TEST(Pid, ProportionalAndIntegralAction) {
  auto c = load(cell_with("      - {type: pid, pv: pv, sp: sp, out: u, kp: 0.5, ki: 1}\n"));
  ASSERT_TRUE(c);
  set(*c, "sp", 2);
  set(*c, "pv", 1);
  cycle(*c, "main");
  EXPECT_NEAR(get(*c, "u"), 0.5 + 0.01, 1e-12);  // kp*e + ki*e*dt
  cycle(*c, "main", 9);
  EXPECT_NEAR(get(*c, "u"), 0.5 + 0.1, 1e-9);
}

TEST(Pid, AntiWindupLeavesSaturationAsSoonAsTheErrorReverses) {
  auto c = load(cell_with("      - {type: pid, pv: pv, sp: sp, out: u, kp: 0.1, ki: 5}\n"));
  ASSERT_TRUE(c);
  set(*c, "sp", 10);
  set(*c, "pv", 0);
  cycle(*c, "main", 1000);  // 10 s against the +5 limit
  EXPECT_DOUBLE_EQ(get(*c, "u"), 5);
  // A small negative error: a wound-up integrator would keep the output at +5 for a long time.
  set(*c, "sp", 0);
  set(*c, "pv", 0.5);
  cycle(*c, "main");
  EXPECT_LT(get(*c, "u"), 5);
  cycle(*c, "main", 20);
  EXPECT_LT(get(*c, "u"), 4.6);
}

TEST(Pid, ProportionalSaturationDoesNotChargeTheIntegrator) {
  auto c = load(cell_with("      - {type: pid, pv: pv, sp: sp, out: u, kp: 1, ki: 10}\n"));
  ASSERT_TRUE(c);
  set(*c, "sp", 10);
  cycle(*c, "main", 500);
  EXPECT_DOUBLE_EQ(get(*c, "u"), 5);
  set(*c, "sp", 0);  // zero error: the output is the integrator alone, which never wound up
  cycle(*c, "main");
  EXPECT_NEAR(get(*c, "u"), 0, 1e-9);
}

TEST(Pid, BumplessTransferFromManualToAutomatic) {
  auto c = load(cell_with("      - {type: pid, pv: pv, sp: sp, out: u, kp: 0.5, ki: 2, manual: man, manual_out: a}\n"));
  ASSERT_TRUE(c);
  set(*c, "sp", 3);
  set(*c, "pv", 1);
  set(*c, "man", 1);
  set(*c, "a", 4.2);
  cycle(*c, "main", 50);
  EXPECT_DOUBLE_EQ(get(*c, "u"), 4.2);
  set(*c, "man", 0);
  cycle(*c, "main");
  // Continues from the manual value: only one integration step (ki*e*dt = 0.04) away.
  EXPECT_NEAR(get(*c, "u"), 4.2 + 0.04, 1e-9);
  // Manual values are clamped to the output range.
  set(*c, "man", 1);
  set(*c, "a", 99);
  cycle(*c, "main");
  EXPECT_DOUBLE_EQ(get(*c, "u"), 5);
}

TEST(Pid, NanMeasurementIsAFaultNotAnOutput) {
  auto c = load(cell_with("      - {type: pid, pv: pv, sp: sp, out: u, kp: 1}\n"));
  ASSERT_TRUE(c);
  set(*c, "sp", 1);
  cycle(*c, "main");
  double before = get(*c, "u");
  set(*c, "pv", NAN);
  cycle(*c, "main");
  EXPECT_TRUE(c->in_safe_state());
  EXPECT_DOUBLE_EQ(get(*c, "u"), before);  // NaN is never published
}

TEST(Filters, LowpassStepResponse) {
  auto c = load(cell_with("      - {type: lowpass, in: a, out: b, tau: 0.09}\n"));
  ASSERT_TRUE(c);
  cycle(*c, "main");  // first sample initialises the state at the input (0)
  set(*c, "a", 1);
  cycle(*c, "main", 10);
  double alpha = 0.01 / (0.09 + 0.01);
  EXPECT_NEAR(get(*c, "b"), 1 - std::pow(1 - alpha, 10), 1e-12);
}

TEST(Filters, MovingAverageOfTheLastN) {
  auto c = load(cell_with("      - {type: moving_average, in: a, out: b, n: 4}\n"));
  ASSERT_TRUE(c);
  const double xs[] = {1, 2, 3, 4, 5, 6};
  std::vector<double> got;
  for (double x : xs) {
    set(*c, "a", x);
    cycle(*c, "main");
    got.push_back(get(*c, "b"));
  }
  EXPECT_DOUBLE_EQ(got[0], 1);
  EXPECT_DOUBLE_EQ(got[1], 1.5);
  EXPECT_DOUBLE_EQ(got[3], 2.5);
  EXPECT_DOUBLE_EQ(got[5], 4.5);
}

TEST(Limits, LimitAndRateLimit) {
  auto c = load(cell_with("      - {type: limit, in: a, out: b, min: -1, max: \"sp\"}\n"
                          "      - {type: rate_limit, in: a, out: c, rise: 10, fall: 20}\n"));
  ASSERT_TRUE(c);
  set(*c, "sp", 2);
  set(*c, "a", 0);
  cycle(*c, "main");
  set(*c, "a", 7);
  cycle(*c, "main");
  EXPECT_DOUBLE_EQ(get(*c, "b"), 2);
  EXPECT_NEAR(get(*c, "c"), 0.1, 1e-12);  // 10 per second, 0.01 s per cycle
  cycle(*c, "main", 9);
  EXPECT_NEAR(get(*c, "c"), 1.0, 1e-12);
  set(*c, "a", -7);
  cycle(*c, "main");
  EXPECT_NEAR(get(*c, "c"), 0.8, 1e-12);  // falls at 20 per second
  EXPECT_DOUBLE_EQ(get(*c, "b"), -1);
}

TEST(Hysteresis, SwitchesOnAboveAndOffBelow) {
  auto c = load(cell_with("      - {type: hysteresis, in: a, out: q, on_above: 10, off_below: 5}\n"));
  ASSERT_TRUE(c);
  const std::pair<double, double> steps[] = {{4, 0}, {9, 0}, {11, 1}, {7, 1}, {5.5, 1}, {4.9, 0}, {9.9, 0}, {10.1, 1}};
  for (auto [x, want] : steps) {
    set(*c, "a", x);
    cycle(*c, "main");
    EXPECT_EQ(get(*c, "q"), want) << "input " << x;
  }
}

// Cycles one at a time and returns the output after each.
std::vector<double> trace(Cell& c, const std::vector<double>& inputs, const char* in, const char* out) {
  std::vector<double> r;
  for (double x : inputs) {
    set(c, in, x);
    cycle(c, "main");
    r.push_back(get(c, out));
  }
  return r;
}

TEST(Timers, OnDelay) {
  auto c = load(cell_with("      - {type: timer, mode: ton, in: on, out: q, preset: 0.03}\n"));
  ASSERT_TRUE(c);
  EXPECT_EQ(trace(*c, {1, 1, 1, 1, 0, 1, 1}, "on", "q"), (std::vector<double>{0, 0, 1, 1, 0, 0, 0}));
}

TEST(Timers, OffDelay) {
  auto c = load(cell_with("      - {type: timer, mode: tof, in: on, out: q, preset: 0.03}\n"));
  ASSERT_TRUE(c);
  EXPECT_EQ(trace(*c, {0, 1, 0, 0, 0, 0, 1, 0}, "on", "q"), (std::vector<double>{0, 1, 1, 1, 0, 0, 1, 1}));
}

TEST(Timers, PulseIsNotRetriggeredWhileRunning) {
  auto c = load(cell_with("      - {type: timer, mode: tp, in: on, out: q, preset: 0.03}\n"));
  ASSERT_TRUE(c);
  EXPECT_EQ(trace(*c, {1, 0, 1, 0, 0, 0, 1, 1}, "on", "q"), (std::vector<double>{1, 1, 0, 0, 0, 0, 1, 1}));
}

TEST(StateMachine, GuardedTransitionsStateTimeAndOutputs) {
  auto c = load(cell_with("      - type: state_machine\n"
                          "        name: seq\n"
                          "        states: [idle, run, done]\n"
                          "        out: st\n"
                          "        transitions:\n"
                          "          - {from: idle, to: run, when: on}\n"
                          "          - {from: run, to: done, when: \"state_time >= 0.03\"}\n"
                          "          - {from: \"*\", to: idle, when: man}\n"
                          "        outputs:\n"
                          "          idle: {b: 0}\n"
                          "          run: {b: \"a * 2\"}\n"
                          "          done: {b: -1}\n"));
  ASSERT_TRUE(c);
  set(*c, "a", 3);
  cycle(*c, "main", 2);
  EXPECT_EQ(get(*c, "st"), 0);
  set(*c, "on", 1);
  cycle(*c, "main");
  EXPECT_EQ(get(*c, "st"), 1);
  EXPECT_EQ(get(*c, "b"), 6);
  cycle(*c, "main", 2);
  EXPECT_EQ(get(*c, "st"), 1);
  cycle(*c, "main");
  EXPECT_EQ(get(*c, "st"), 2);
  EXPECT_EQ(get(*c, "b"), -1);
  set(*c, "man", 1);  // "from: *" applies in every state
  cycle(*c, "main");
  EXPECT_EQ(get(*c, "st"), 0);
  c->events().drain();
  int changes = 0;
  for (const auto& e : c->events().history()) changes += e.detail.find("seq:") == 0;
  EXPECT_EQ(changes, 3);
}

TEST(ExprBlock, ComputesAndPublishesClamped) {
  auto c = load(cell_with("      - {type: expr, out: u, expr: \"a > 1 ? max(a, b) * 2 : -1\"}\n"));
  ASSERT_TRUE(c);
  set(*c, "a", 2);
  set(*c, "b", 1.5);
  cycle(*c, "main");
  EXPECT_DOUBLE_EQ(get(*c, "u"), 4);
  set(*c, "a", 3);
  cycle(*c, "main");
  EXPECT_DOUBLE_EQ(get(*c, "u"), 5);  // the tag's max
  set(*c, "a", 0);
  cycle(*c, "main");
  EXPECT_DOUBLE_EQ(get(*c, "u"), -1);
}

TEST(Profile, RampAndSoak) {
  auto c = load(cell_with("      - {type: profile, out: sp, points: [[0, 20], [0.1, 120], [0.2, 120], [0.3, 20]]}\n"));
  ASSERT_TRUE(c);
  std::vector<double> got;
  for (int i = 0; i < 40; ++i) {
    cycle(*c, "main");
    got.push_back(get(*c, "sp"));
  }
  EXPECT_DOUBLE_EQ(got[0], 20);
  EXPECT_NEAR(got[5], 70, 1e-9);
  EXPECT_NEAR(got[15], 120, 1e-9);
  EXPECT_NEAR(got[25], 70, 1e-9);
  EXPECT_NEAR(got[39], 20, 1e-9);
}

TEST(BandEnergy, SineLandsInItsBandWithPowerAmplitudeSquaredOverTwo) {
  const int n = 512;
  const double rate = 1000;
  BandEnergy be(n, rate, {{0, 50}, {50, 150}, {150, 500}});
  std::vector<float> x(n), out(3);
  // 101.5625 Hz sits exactly on bin 52: no leakage outside the band.
  for (int i = 0; i < n; ++i) x[static_cast<size_t>(i)] = static_cast<float>(3 * std::sin(2 * M_PI * 52 * i / n) + 1.0);
  double rms = be.compute(x.data(), out.data());
  EXPECT_NEAR(out[1], 4.5, 4.5 * 0.01);
  EXPECT_LT(out[0], 1e-6);  // the mean (DC) is not counted
  EXPECT_LT(out[2], 1e-6);
  EXPECT_NEAR(rms, 3 / std::sqrt(2.0), 1e-3);
}

TEST(BandEnergy, BlockReadsAWindowTag) {
  auto c = load(cell_with("      - {type: push, in: a, out: w}\n"
                          "      - {type: band_energy, in: w, sample_rate: 100, bands: [[0, 10], [10, 50]], out: [b, c]}\n",
                          "  w: {type: window, length: 64}\n"));
  ASSERT_TRUE(c);
  for (int i = 0; i < 64; ++i) {
    set(*c, "a", std::sin(2 * M_PI * 25.0 * i / 100.0));  // 25 Hz = bin 16 of 64 at 100 Hz
    cycle(*c, "main");
  }
  EXPECT_NEAR(get(*c, "c"), 0.5, 0.01);
  EXPECT_LT(get(*c, "b"), 1e-6);
}

}  // namespace
}  // namespace kiln::control
