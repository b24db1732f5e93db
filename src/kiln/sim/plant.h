// kiln/sim/plant.h — simulated plant for control tests, demos and benchmarks: a spindle with a
// vibration signal (shaft harmonics, noise, an injectable bearing fault that grows), a furnace
// (first-order-plus-dead-time thermal response to heater power) and a conveyor.
//
// Every model is deterministic for a given seed and the same sequence of calls: the time of each
// step is given by the caller (the loop's scheduled time), never read from a clock, so a cell run
// on the simulated clock produces identical signals every time.
//
//   kiln::sim::Spindle s(/*seed=*/7);
//   s.set_speed_setpoint(1800);
//   s.inject_bearing_fault(/*at_s=*/15, /*growth_per_s=*/0.05);
//   for (int k = 0; k < 1000; ++k) { double g = s.step(k * 1e-3); }   // one sample per ms
#pragma once

#include <array>
#include <cmath>
#include <cstdint>
#include <vector>

namespace kiln::sim {

// xoshiro256** seeded with splitmix64; normal() by Box-Muller. Small, fast, reproducible.
class Rng {
 public:
  explicit Rng(uint64_t seed = 1);
  uint64_t next();
  double uniform();  // [0, 1)
  double normal();   // mean 0, variance 1

 private:
  uint64_t s_[4];
  bool have_spare_ = false;
  double spare_ = 0;
};

struct SpindleParams {
  double rated_rpm = 3000;
  double tau_s = 0.4;                            // speed response time constant
  std::array<double, 3> harmonics_g = {0.8, 0.3, 0.12};  // 1x, 2x, 3x shaft amplitudes at rated speed
  double noise_g = 0.05;                         // white sensor noise (rms)
  double bpfo_ratio = 3.58;                      // outer-race defect frequency / shaft frequency
  double resonance_hz = 320;                     // structural resonance the impacts ring
  double ring_decay_s = 0.004;
  double fault_g = 1.2;                          // impact amplitude at severity 1
  double wander = 0.15;                          // slow random variation of amplitudes (fraction)
};

class Spindle {
 public:
  explicit Spindle(uint64_t seed = 1, SpindleParams p = {});
  void set_speed_setpoint(double rpm) { sp_ = rpm; }
  // Advances to time t (seconds) and returns the vibration sample there (g).
  double step(double t_s);
  double speed_rpm() const { return speed_; }
  void inject_bearing_fault(double at_s, double growth_per_s);
  // 0 (healthy) .. 1 at time t.
  double bearing_severity(double t_s) const;

 private:
  SpindleParams p_;
  Rng rng_;
  double sp_ = 0, speed_ = 0, phase_ = 0, last_t_ = -1;
  double since_impact_ = 1e9, next_impact_ = 0;
  double fault_at_ = -1, fault_rate_ = 0;
  std::array<double, 3> amp_mod_ = {1, 1, 1};
  double noise_mod_ = 1;
};

struct FurnaceParams {
  double ambient_c = 25;
  double gain_c_per_pct = 5.0;   // steady-state rise per % of heater power
  double tau_s = 20;             // thermal time constant
  double dead_time_s = 1.0;      // transport delay of heater power
  double noise_c = 0.1;          // sensor noise (rms)
};

class Furnace {
 public:
  explicit Furnace(uint64_t seed = 1, FurnaceParams p = {});
  void set_power(double pct, double t_s);
  double step(double t_s);  // returns the measured temperature (noise included)
  double true_temperature() const { return temp_; }
  // Faults: "heater_stuck" (power stuck at 100 %), "sensor_nan" (the sensor returns NaN).
  void inject(int kind, double at_s) {
    if (kind == 0) stuck_at_ = at_s;
    else nan_at_ = at_s;
  }

 private:
  FurnaceParams p_;
  Rng rng_;
  double temp_, last_t_ = -1;
  std::vector<std::pair<double, double>> power_;  // (time, pct), a ring of commands for the dead time
  size_t head_ = 0, count_ = 0;
  double stuck_at_ = -1, nan_at_ = -1;
};

struct ConveyorParams {
  double max_speed = 1.0;        // m/s
  double tau_s = 0.3;
  double items_per_m = 2.0;      // mean spacing of items on the belt
  double item_length = 0.1;      // m, how long the photo-eye stays blocked
};

class Conveyor {
 public:
  explicit Conveyor(uint64_t seed = 1, ConveyorParams p = {});
  void set_command(double speed) { cmd_ = speed; }
  void step(double t_s);
  double speed() const { return speed_; }
  double position() const { return pos_; }
  bool item_present() const { return present_; }
  int64_t count() const { return count_; }
  void inject_jam(double at_s) { jam_at_ = at_s; }

 private:
  ConveyorParams p_;
  Rng rng_;
  double cmd_ = 0, speed_ = 0, pos_ = 0, last_t_ = -1;
  double next_item_ = 0, item_end_ = -1;
  bool present_ = false;
  int64_t count_ = 0;
  double jam_at_ = -1;
};

}  // namespace kiln::sim
