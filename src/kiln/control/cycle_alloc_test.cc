// A control cycle allocates nothing: a cell with a simulated spindle and furnace, FFT features, an
// `infer` block running a real ONNX model, a PID, a state machine, a timer and interlocks that
// trip (posting events) runs thousands of cycles on the simulated clock while the process-wide
// heap counter (kiln_alloc_counter) is read between consecutive cycles.
#include <gtest/gtest.h>

#include <fstream>
#include <string>

#include "kiln/control/runtime.h"
#include "kiln/control/testing/test_cell.h"
#include "kiln/core/alloc_counter.h"
#include "kiln/nn/testing/model_builder.h"

namespace kiln::control {
namespace {

std::string write_model(const std::string& dir) {
  // score = sum(relu(x * w1) * w2): 8 features -> 16 hidden -> 1.
  std::vector<float> w1(8 * 16), w2(16);
  for (size_t i = 0; i < w1.size(); ++i) w1[i] = 0.01f * static_cast<float>(static_cast<int>(i % 7) - 3);
  for (size_t i = 0; i < w2.size(); ++i) w2[i] = 0.1f;
  nn::testing::ModelBuilder b(13);
  b.input("features", DType::kFloat32, {1, 8})
      .initializer("w1", nn::testing::make_tensor<float>({8, 16}, w1))
      .initializer("w2", nn::testing::make_tensor<float>({16, 1}, w2))
      .node("MatMul", {"features", "w1"}, {"h"})
      .node("Relu", {"h"}, {"r"})
      .node("MatMul", {"r", "w2"}, {"score"})
      .output("score", DType::kFloat32, {1, 1});
  std::ofstream(dir + "/score.onnx", std::ios::binary) << b.serialize();
  return dir;
}

const char* kCell =
    "cell: alloc\n"
    "tags:\n"
    "  vib: {type: window, length: 256}\n"
    "  feats: {type: array, length: 8}\n"
    "  score: float\n"
    "  speed: float\n"
    "  speed_sp: {type: float, safe: 300}\n"
    "  target: {type: float, initial: 1800}\n"
    "  temp: float\n"
    "  sp: float\n"
    "  power: {type: float, min: 0, max: 100, safe: 0}\n"
    "  armed: bool\n"
    "  phase: int\n"
    "  alarm: bool\n"
    "loops:\n"
    "  - name: vibration\n"
    "    period_us: 1000\n"
    "    blocks:\n"
    "      - {type: rate_limit, in: target, out: speed_sp, rise: 900}\n"
    "  - name: monitor\n"
    "    period_ms: 20\n"
    "    blocks:\n"
    "      - {type: band_energy, in: vib, sample_rate: 1000, log: true, out: feats,\n"
    "         bands: [[0, 25], [25, 50], [50, 100], [100, 150], [150, 250], [250, 350], [350, 425], [425, 500]]}\n"
    "      - {type: timer, in: \"speed > 1700\", preset: 1, out: armed}\n"
    "      - {type: infer, model: score.onnx, inputs: [{tag: feats, offset: -3, scale: 0.5}], outputs: [{tag: score}]}\n"
    "  - name: furnace\n"
    "    period_ms: 10\n"
    "    blocks:\n"
    "      - {type: profile, out: sp, points: [[0, 25], [5, 300], [10, 100]], repeat: true}\n"
    "      - {type: pid, pv: temp, sp: sp, out: power, kp: 2, ki: 0.25, kd: 0.1, d_filter: 0.05}\n"
    "      - type: state_machine\n"
    "        states: [heat, hold]\n"
    "        out: phase\n"
    "        transitions:\n"
    "          - {from: heat, to: hold, when: \"temp > 200\"}\n"
    "          - {from: hold, to: heat, when: \"temp < 150\"}\n"
    "devices:\n"
    "  - {name: spindle, driver: simulated, model: spindle, loop: vibration, seed: 5,\n"
    "     signals: {vibration: vib, speed: speed, speed_setpoint: speed_sp}}\n"
    "  - {name: furnace, driver: simulated, model: furnace, loop: furnace, seed: 6, params: {tau_s: 2, dead_time_s: 0.1},\n"
    "     signals: {temperature: temp, power: power}}\n"
    "interlocks:\n"
    "  - {name: hot, loop: furnace, when: \"temp > 280\", latch: false, force: {alarm: true}}\n";

TEST(CycleAllocations, NoCycleOfAnyLoopAllocates) {
  std::string dir = write_model(testing::temp_dir("alloc"));
  CellOptions options;
  options.model_dirs = {dir};
  auto cell = testing::load(kCell, "cell.yaml", testing::kTestDrivers, options);
  ASSERT_TRUE(cell);
  RunOptions o;
  o.duration_s = 30;
  o.sim_clock = true;
  o.handle_signals = false;
  uint64_t last = 0, cycles = 0, allocating = 0, worst = 0;
  size_t drained = 0;
  Cell* c = cell.get();
  o.on_cycle = [&](const Loop&, int64_t t_ns) {
    uint64_t now = heap_allocation_count();
    // The first second warms up; afterwards every cycle must leave the counter alone. Between
    // two cycles the simulated-clock runner sometimes drains the event log into its history (it
    // copies each event's text: allocations of the main thread in a real run, not of a cycle);
    // those gaps are skipped.
    bool drain = c->events().history().size() != drained;
    drained = c->events().history().size();
    if (t_ns > 1'000'000'000 && !drain) {
      ++cycles;
      if (now != last) {
        ++allocating;
        worst = std::max(worst, now - last);
      }
    }
    last = heap_allocation_count();
  };
  auto r = run_cell(*cell, o);
  ASSERT_TRUE(r.is_ok()) << r.status().message();
  EXPECT_GT(cycles, 30000u);
  EXPECT_EQ(allocating, 0u) << "cycles that allocated; at most " << worst << " allocations in one";
  // The cell did real work meanwhile: the model ran, the state machine moved, the interlock tripped.
  ASSERT_EQ(cell->models().size(), 1u);
  EXPECT_GT(cell->models()[0]->runs, 1000u);
  EXPECT_EQ(cell->models()[0]->failures, 0u);
  int transitions = 0, trips = 0;
  for (const auto& e : cell->events().history()) {
    transitions += e.detail.find("->") != std::string::npos;
    trips += e.kind == EventKind::kInterlock;
  }
  EXPECT_GT(transitions, 2);
  EXPECT_GT(trips, 0);
}

// The same cell on real threads (one per loop, clock_nanosleep, the watchdog): while no event is
// posted, the whole process allocates nothing between two status callbacks (the main thread
// only sleeps and drains an empty event log meanwhile).
TEST(CycleAllocations, RealTimeThreadsDoNotAllocate) {
  std::string dir = write_model(testing::temp_dir("alloc_rt"));
  CellOptions options;
  options.model_dirs = {dir};
  std::string quiet = kCell;  // no interlock and no state machine: no events in steady state
  quiet = quiet.substr(0, quiet.find("      - type: state_machine")) + quiet.substr(quiet.find("devices:"));
  quiet = quiet.substr(0, quiet.find("interlocks:"));
  auto cell = testing::load(quiet, "cell.yaml", testing::kTestDrivers, options);
  ASSERT_TRUE(cell);
  RunOptions o;
  o.duration_s = 2;
  o.realtime = false;
  o.handle_signals = false;
  uint64_t last_allocs = 0, last_posted = 0, intervals = 0, allocating = 0;
  Cell* c = cell.get();
  o.on_status = [&](double t) {
    uint64_t allocs = heap_allocation_count(), posted = c->events().posted();
    if (t > 0.5 && last_allocs != 0 && posted == last_posted) {
      ++intervals;
      allocating += allocs != last_allocs;
    }
    last_posted = posted;
    last_allocs = heap_allocation_count();
  };
  auto r = run_cell(*cell, o);
  ASSERT_TRUE(r.is_ok()) << r.status().message();
  EXPECT_GT(cell->models()[0]->runs, 50u);
  EXPECT_GT(cell->loop(0).cycles, 1000u);
  EXPECT_GT(intervals, 0u);
  EXPECT_EQ(allocating, 0u) << "of " << intervals << " quiet intervals";
}

TEST(CycleAllocations, CountingWorks) {
  // The counter sees allocations at all (otherwise the test above proves nothing).
  uint64_t before = heap_allocation_count();
  auto* p = new std::string(100, 'x');
  uint64_t after = heap_allocation_count();
  delete p;
  EXPECT_GT(after, before);
}

}  // namespace
}  // namespace kiln::control
