// The machine's own latency tail at a given duration: a register-only loop (no memory traffic, no
// allocation, no system call) calibrated to take about --us microseconds, timed run after run the
// way `kiln bench` times inference (steady_clock around each run, at least --min-runs runs and
// --min-seconds of timed work). Whatever spread its p99/p50 shows comes from the machine (timer
// interrupts, host preemption of the vCPU, other jobs), not from the code under test; bench/compare
// runs it right after Kiln in each round, at Kiln's p50, and prints it beside Kiln's p99/p50.
//
// Built by bench/compare into its work folder:  g++ -O2 bench/timing_floor.cc -o timing_floor
// Run: timing_floor --us 54 [--min-runs 100] [--min-seconds 1]; prints one JSON object:
//   {"target_us": 54, "p50_us": ..., "p99_us": ..., "runs": N, "iterations": I}
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

// n steps of a 64-bit LCG, one dependent multiply-add per step: the compiler can neither drop nor
// vectorise it.
uint64_t spin(uint64_t n, uint64_t x) {
  for (uint64_t i = 0; i < n; ++i) {
    x = x * 6364136223846793005ull + 1442695040888963407ull;
    asm volatile("" : "+r"(x));
  }
  return x;
}

double micros(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::micro>(b - a).count();
}

double arg(int argc, char** argv, const char* name, double fallback) {
  for (int i = 1; i + 1 < argc; ++i)
    if (std::strcmp(argv[i], name) == 0) {
      char* end = nullptr;
      const double v = std::strtod(argv[i + 1], &end);
      if (end == argv[i + 1] || *end != '\0' || !(v > 0)) {
        std::fprintf(stderr, "timing_floor: %s wants a positive number, got '%s'\n", name, argv[i + 1]);
        std::exit(2);
      }
      return v;
    }
  return fallback;
}

}  // namespace

int main(int argc, char** argv) {
  const double target = arg(argc, argv, "--us", 0);
  if (target <= 0) {
    std::fprintf(stderr, "usage: timing_floor --us MICROSECONDS [--min-runs N] [--min-seconds S]\n");
    return 2;
  }
  const auto min_runs = static_cast<size_t>(arg(argc, argv, "--min-runs", 100));
  const double min_seconds = arg(argc, argv, "--min-seconds", 1);

  // Calibration: the fastest of several timings of a long enough spin gives steps per µs.
  uint64_t x = 1, n = 1 << 12;
  double best = 0;
  for (;;) {
    const auto t0 = Clock::now();
    x = spin(n, x);
    const double us = micros(t0, Clock::now());
    if (us > 2000) break;
    n *= 2;
  }
  for (int rep = 0; rep < 5; ++rep) {
    const auto t0 = Clock::now();
    x = spin(n, x);
    const double rate = n / micros(t0, Clock::now());
    best = std::max(best, rate);
  }
  const uint64_t iters = std::max<uint64_t>(1, static_cast<uint64_t>(best * target));

  for (int i = 0; i < 20; ++i) x = spin(iters, x);  // warm-up, as kiln bench
  std::vector<double> d;
  d.reserve(static_cast<size_t>(min_seconds * 1e6 / target) + min_runs + 16);
  double total = 0;
  while (d.size() < min_runs || total < min_seconds * 1e6) {
    const auto t0 = Clock::now();
    x = spin(iters, x);
    const double us = micros(t0, Clock::now());
    d.push_back(us);
    total += us;
  }
  std::sort(d.begin(), d.end());
  const auto at = [&](double q) {  // interpolated, as kiln bench computes its percentiles
    const double idx = q * static_cast<double>(d.size() - 1);
    const size_t lo = static_cast<size_t>(idx), hi = std::min(lo + 1, d.size() - 1);
    return d[lo] + (d[hi] - d[lo]) * (idx - static_cast<double>(lo));
  };
  std::printf("{\"target_us\": %.3f, \"p50_us\": %.3f, \"p99_us\": %.3f, \"runs\": %zu, \"iterations\": %llu, "
              "\"checksum\": %llu}\n",
              target, at(0.5), at(0.99), d.size(), static_cast<unsigned long long>(iters),
              static_cast<unsigned long long>(x & 0xFFFF));
  return 0;
}
