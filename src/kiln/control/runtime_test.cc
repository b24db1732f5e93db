// Running cells: the overrun policy (count, hold, safe after N), the watchdog, SIGINT taking
// outputs to safe values, a NaN sensor, and the simulated clock's determinism. Real-time runs
// use in-loop test devices that are deliberately slow; nothing here asserts how long anything took.
#include <gtest/gtest.h>

#include <signal.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

#include "kiln/control/runtime.h"
#include "kiln/control/testing/test_cell.h"
#include "kiln/core/clock.h"

namespace kiln::control {
namespace {

using testing::get;
using testing::load;
using testing::set;

// An in-loop device whose read() takes `spin_us` of wall time, or (block: true) waits until
// released — a loop that stops beating.
std::atomic<bool> g_release{false};

class SlowDevice final : public Device {
 public:
  int64_t spin_ns = 0;
  bool block = false;
  bool in_loop() const override { return true; }
  void read(int64_t) override {
    if (block) {
      int64_t give_up = monotonic_clock().now_ns() + 10'000'000'000;
      while (!g_release.load() && monotonic_clock().now_ns() < give_up) std::this_thread::sleep_for(std::chrono::milliseconds(1));
      block = false;
      return;
    }
    int64_t until = monotonic_clock().now_ns() + spin_ns;
    while (monotonic_clock().now_ns() < until) {
    }
  }
};

Result<std::unique_ptr<Device>> make_slow(Params& p) {
  auto d = std::make_unique<SlowDevice>();
  KILN_ASSIGN_OR_RETURN(int64_t us, p.integer("spin_us", 0, 0, 1'000'000));
  KILN_ASSIGN_OR_RETURN(d->block, p.boolean("block", false));
  d->spin_ns = us * 1000;
  KILN_RETURN_IF_ERROR(p.finish());
  return std::unique_ptr<Device>(std::move(d));
}

const DriverDef kSlowDrivers[] = {{"slow", "test device that takes its time", make_slow}};

std::string slow_cell(const std::string& overrun, const std::string& device) {
  return "cell: slow\n"
         "watchdog_ms: 50\n"
         "tags:\n"
         "  x: {type: float, initial: 5}\n"
         "  y: {type: float, initial: 0}\n"
         "  out: {type: float, min: 0, max: 10, safe: 1}\n"
         "loops:\n"
         "  - name: fast\n"
         "    period_us: 1000\n"
         "    deadline_us: 500\n" +
         overrun +
         "    blocks:\n"
         "      - {type: expr, out: y, expr: x}\n"
         "devices:\n"
         "  - {name: d, driver: slow, loop: fast, " + device + "}\n";
}

RunOptions real_time(double seconds) {
  RunOptions o;
  o.duration_s = seconds;
  o.realtime = false;
  o.handle_signals = false;
  return o;
}

bool has_event(Cell& c, EventKind kind, const std::string& text = "") {
  for (const auto& e : c.events().history())
    if (e.kind == kind && e.detail.find(text) != std::string::npos) return true;
  return false;
}

TEST(Overrun, CountedAndLoggedWithoutSafeStateByDefault) {
  auto c = load(slow_cell("", "spin_us: 2000"), "cell.yaml", kSlowDrivers);
  ASSERT_TRUE(c);
  auto r = run_cell(*c, real_time(0.1));
  ASSERT_TRUE(r.is_ok()) << r.status().message();
  Loop& l = c->loop(0);
  EXPECT_GT(l.overruns, 0u);
  EXPECT_EQ(l.overruns, l.cycles);  // every cycle spins past its 0.5 ms deadline
  EXPECT_TRUE(has_event(*c, EventKind::kOverrun, "overrun #1 "));
  EXPECT_FALSE(has_event(*c, EventKind::kSafeState, "consecutive"));
  EXPECT_EQ(get(*c, "y"), 5);  // outputs were published
}

TEST(Overrun, HoldKeepsTheLastOutputs) {
  auto c = load(slow_cell("    overrun: {hold: true}\n", "spin_us: 2000"), "cell.yaml", kSlowDrivers);
  ASSERT_TRUE(c);
  auto r = run_cell(*c, real_time(0.1));
  ASSERT_TRUE(r.is_ok()) << r.status().message();
  Loop& l = c->loop(0);
  EXPECT_GT(l.held, 0u);
  EXPECT_EQ(l.held, l.cycles);      // every cycle ran past its deadline, none published
  EXPECT_EQ(get(*c, "y"), 0);       // y kept its initial value
}

TEST(Overrun, SafeStateAfterNConsecutive) {
  auto c = load(slow_cell("    overrun: {safe_after: 3}\n", "spin_us: 2000"), "cell.yaml", kSlowDrivers);
  ASSERT_TRUE(c);
  auto r = run_cell(*c, real_time(0.1));
  ASSERT_TRUE(r.is_ok()) << r.status().message();
  EXPECT_TRUE(has_event(*c, EventKind::kSafeState, "3 consecutive overruns"));
  EXPECT_EQ(get(*c, "out"), 1);
}

TEST(Watchdog, ALoopThatStopsBeatingForcesTheSafeState) {
  auto c = load(slow_cell("", "block: true"), "cell.yaml", kSlowDrivers);
  ASSERT_TRUE(c);
  g_release = false;
  std::atomic<bool> stop{false};
  RunOptions o = real_time(0);
  o.stop = &stop;
  Result<RunReport> r = Status::internal("not run");
  std::thread t([&] { r = run_cell(*c, o); });
  // Wait (at most 20 s) until the watchdog has acted, then let the loop go and stop the cell.
  for (int i = 0; i < 2000 && !c->in_safe_state(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  bool safe = c->in_safe_state();
  g_release = true;
  stop = true;
  t.join();
  ASSERT_TRUE(r.is_ok()) << r.status().message();
  EXPECT_TRUE(safe);
  EXPECT_TRUE(has_event(*c, EventKind::kWatchdog, "loop fast"));
  EXPECT_TRUE(has_event(*c, EventKind::kSafeState, "watchdog"));
  EXPECT_EQ(get(*c, "out"), 1);
}

// ---------------------------------------------------------------------------------------------
const char* kPlantCell =
    "cell: plant\n"
    "base_tick_us: 1000\n"
    "tags:\n"
    "  vib: {type: window, length: 256}\n"
    "  bands: {type: array, length: 4}\n"
    "  rms: float\n"
    "  speed_sp: {type: float, initial: 1800, safe: 300}\n"
    "  speed: float\n"
    "  temp: float\n"
    "  sp: float\n"
    "  power: {type: float, min: 0, max: 100, safe: 0}\n"
    "loops:\n"
    "  - name: vibration\n"
    "    period_us: 1000\n"
    "    priority: 2\n"
    "    blocks:\n"
    "      - {type: expr, out: speed_sp, expr: 1800}\n"
    "  - name: features\n"
    "    period_ms: 20\n"
    "    blocks:\n"
    "      - {type: band_energy, in: vib, sample_rate: 1000, bands: [[0, 50], [50, 150], [150, 300], [300, 500]], "
    "out: bands, rms: rms, log: true}\n"
    "  - name: heat\n"
    "    period_ms: 10\n"
    "    blocks:\n"
    "      - {type: profile, out: sp, points: [[0, 25], [5, 200]]}\n"
    "      - {type: pid, pv: temp, sp: sp, out: power, kp: 2, ki: 0.1}\n"
    "devices:\n"
    "  - {name: spindle, driver: simulated, model: spindle, loop: vibration, seed: 7,\n"
    "     signals: {vibration: vib, speed: speed, speed_setpoint: speed_sp}}\n"
    "  - {name: furnace, driver: simulated, model: furnace, loop: heat, seed: 3, signals: {temperature: temp, power: power}}\n";

RunOptions simulated(double seconds) {
  RunOptions o;
  o.duration_s = seconds;
  o.sim_clock = true;
  o.handle_signals = false;
  return o;
}

// The stats JSON without wall-clock measurements (execution and inference times are real even
// on the simulated clock).
nlohmann::json without_timings(const std::string& text) {
  auto j = nlohmann::json::parse(text);
  for (auto& l : j["loops"]) l.erase("exec_us");
  for (auto& m : j["models"]) m.erase("infer_us");
  return j;
}

TEST(SimClock, TwoRunsGiveIdenticalStatsAndEvents) {
  auto run = [](std::unique_ptr<Cell>& c) {
    RunOptions o = simulated(20);
    o.injections.push_back({"spindle", "bearing", 5, 0.1});
    o.injections.push_back({"furnace", "heater_stuck", 8, 0});
    auto r = run_cell(*c, o);
    EXPECT_TRUE(r.is_ok()) << r.status().message();
    return r.is_ok() ? stats_json(*c, *r) : std::string("{}");
  };
  auto a = load(kPlantCell);
  auto b = load(kPlantCell);
  ASSERT_TRUE(a && b);
  std::string ja = run(a), jb = run(b);
  auto pa = without_timings(ja), pb = without_timings(jb);
  EXPECT_EQ(pa, pb);
  EXPECT_EQ(pa["loops"][0]["cycles"], 20001);  // 20 s at 1 kHz, plus the final pass
  EXPECT_EQ(pa["loops"][0]["wake_jitter_us"]["max"], 0.0);
  EXPECT_NE(ja.find("\"rms\""), std::string::npos);
  // The same cell object run again (devices rebuild their plant) gives the same result too.
  std::string jc = run(a);
  EXPECT_EQ(without_timings(jc), pa);
  // A different seed gives a different plant.
  std::string other = kPlantCell;
  other.replace(other.find("seed: 7"), 7, "seed: 8");
  auto d = load(other);
  ASSERT_TRUE(d);
  EXPECT_NE(without_timings(run(d))["tags"], pa["tags"]);
}

TEST(SimClock, StatsJsonHasTheDocumentedKeys) {
  auto c = load(kPlantCell);
  ASSERT_TRUE(c);
  auto r = run_cell(*c, simulated(2));
  ASSERT_TRUE(r.is_ok()) << r.status().message();
  auto j = nlohmann::json::parse(stats_json(*c, *r));
  ASSERT_EQ(j["loops"].size(), 3u);
  for (const auto& l : j["loops"]) {
    for (const char* k : {"name", "period_us", "cycles", "wake_jitter_us", "exec_us", "overruns"}) EXPECT_TRUE(l.contains(k)) << k;
    for (const char* k : {"p50", "p99", "p999", "max"}) {
      EXPECT_TRUE(l["wake_jitter_us"].contains(k)) << k;
      EXPECT_TRUE(l["exec_us"].contains(k)) << k;
    }
  }
  EXPECT_EQ(j["loops"][1]["period_us"], 20000);
  EXPECT_EQ(j["loops"][1]["cycles"], 101);
  EXPECT_TRUE(j["models"].is_array());
  ASSERT_TRUE(j["events"].is_array());
  for (const auto& e : j["events"])
    for (const char* k : {"t_ms", "kind", "detail"}) EXPECT_TRUE(e.contains(k)) << k;
  EXPECT_EQ(j["events"].front()["kind"], "start");
  EXPECT_EQ(j["events"].back()["kind"], "stop");
  EXPECT_TRUE(j["safe_state"].get<bool>());  // every run ends with outputs at their safe values
  EXPECT_EQ(j["tags"]["power"], 0.0);
}

TEST(SimClock, NanFromASensorTakesTheCellToItsSafeState) {
  auto c = load(kPlantCell);
  ASSERT_TRUE(c);
  RunOptions o = simulated(6);
  o.injections.push_back({"furnace", "sensor_nan", 3, 0});
  auto r = run_cell(*c, o);
  ASSERT_TRUE(r.is_ok()) << r.status().message();
  const LoggedEvent* fault = nullptr;
  for (const auto& e : c->events().history())
    if (e.kind == EventKind::kFault && fault == nullptr) fault = &e;
  ASSERT_NE(fault, nullptr);
  EXPECT_NE(fault->detail.find("temp is NaN"), std::string::npos) << fault->detail;
  EXPECT_NEAR(fault->t_ms, 3000, 10.001);
  EXPECT_TRUE(has_event(*c, EventKind::kSafeState, "NaN"));
}

TEST(SimClock, UnknownInjectionIsAnError) {
  auto c = load(kPlantCell);
  ASSERT_TRUE(c);
  RunOptions o = simulated(1);
  o.injections.push_back({"spindle", "meltdown", 1, 0});
  auto r = run_cell(*c, o);
  ASSERT_FALSE(r.is_ok());
  EXPECT_NE(r.status().message().find("bearing"), std::string::npos) << r.status().message();
  o.injections = {{"pump", "bearing", 1, 0}};
  EXPECT_FALSE(run_cell(*c, o).is_ok());
  EXPECT_FALSE(run_cell(*c, simulated(0)).is_ok());  // simulated time needs a duration
}

TEST(Signals, SigintTakesOutputsToSafeValuesBeforeExit) {
  auto c = load(kPlantCell);
  ASSERT_TRUE(c);
  RunOptions o = simulated(1000);
  o.handle_signals = true;
  o.on_status = [](double t) {
    if (t >= 3) raise(SIGINT);
  };
  auto r = run_cell(*c, o);
  ASSERT_TRUE(r.is_ok()) << r.status().message();
  EXPECT_TRUE(r->interrupted);
  EXPECT_EQ(r->stop_reason, "SIGINT");
  EXPECT_LT(r->duration_s, 10);
  EXPECT_TRUE(c->in_safe_state());
  EXPECT_EQ(get(*c, "power"), 0);
  EXPECT_EQ(get(*c, "speed_sp"), 300);
}

}  // namespace
}  // namespace kiln::control
