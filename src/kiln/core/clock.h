// kiln/core/clock.h — one small interface for "what time is it" and "wait until then", with a
// real monotonic clock, a simulated clock that moves only when told, and a per-thread CPU clock.
//
// Code that waits or measures (control loops, the schedule dispatcher, search time limits) takes a
// `Clock&` instead of calling std::chrono directly, so the same code runs in real time on a plant
// and faster than real time, deterministically, in a test or a simulation.
//
//   kiln::MonotonicClock& wall = kiln::monotonic_clock();   // real time, never jumps back
//   int64_t t0 = wall.now_ns();
//   wall.sleep_until_ns(t0 + 1'000'000);                     // wake 1 ms later (absolute time)
//
//   kiln::SimulatedClock sim;                                // starts at 0 ns
//   sim.advance_ns(5'000);                                   // time moves only here
//   kiln::Deadline d(sim, 10'000);                           // 10 us from now, on that clock
//   d.expired();                                             // false until sim reaches 15'000
//
// Times are int64 nanoseconds since an epoch that each clock fixes (boot for the monotonic clock,
// the constructor's argument for a simulated clock): compare and subtract them, never print them
// as dates. int64 nanoseconds cover 292 years, so no overflow handling is needed for differences.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>

namespace kiln {

class Clock {
 public:
  virtual ~Clock() = default;

  // Nanoseconds since this clock's epoch. Never decreases; safe to call from any thread.
  virtual int64_t now_ns() const = 0;

  // Returns once now_ns() >= t_ns (immediately when that is already true). Absolute times, not
  // durations, so a periodic loop that wakes at t0 + k * period never drifts.
  virtual void sleep_until_ns(int64_t t_ns) = 0;

  double now_seconds() const { return static_cast<double>(now_ns()) * 1e-9; }
  void sleep_for_ns(int64_t d_ns) { sleep_until_ns(now_ns() + d_ns); }
};

// CLOCK_MONOTONIC: real elapsed time, unaffected by wall-clock changes (NTP, the user).
class MonotonicClock final : public Clock {
 public:
  int64_t now_ns() const override;
  // clock_nanosleep(TIMER_ABSTIME); resumes after signals.
  void sleep_until_ns(int64_t t_ns) override;
};

// The process-wide monotonic clock (stateless; the reference is valid for the whole program).
MonotonicClock& monotonic_clock();

// CPU time consumed by the *calling* thread (CLOCK_THREAD_CPUTIME_ID). Used to give a search a
// budget of computing time that does not shrink when other processes share the cores — the fair
// measure for benchmarks on a busy machine. Each thread sees its own time, so one instance can be
// shared by several worker threads. sleep_until_ns() spins: a CPU-time clock advances only while
// the thread runs, so sleeping would never reach the target.
class ThreadCpuClock final : public Clock {
 public:
  int64_t now_ns() const override;
  void sleep_until_ns(int64_t t_ns) override;
};

// Time that advances only when told: advance_ns()/advance_to_ns() from the driving thread (a test, a
// simulation loop). Thread-safe. Two modes for sleep_until_ns():
//   kBlock    (default) the caller blocks until another thread advances the clock far enough — for
//             code under test that runs on its own thread, as it would in real time;
//   kAdvance  the call itself moves the clock to the target — for single-threaded simulations
//             where "sleeping" simply means jumping to the next moment anything happens.
class SimulatedClock final : public Clock {
 public:
  enum class SleepMode { kBlock, kAdvance };

  explicit SimulatedClock(int64_t start_ns = 0, SleepMode mode = SleepMode::kBlock) : now_(start_ns), mode_(mode) {}

  int64_t now_ns() const override { return now_.load(std::memory_order_acquire); }
  void sleep_until_ns(int64_t t_ns) override;

  // Moves time forward by d_ns (negative values are ignored: time never goes back) and wakes every
  // sleeper whose target has been reached.
  void advance_ns(int64_t d_ns);
  // Moves time forward to t_ns if that is later than now; otherwise does nothing.
  void advance_to_ns(int64_t t_ns);

  SleepMode mode() const { return mode_; }

 private:
  std::atomic<int64_t> now_;
  SleepMode mode_;
  std::mutex mu_;
  std::condition_variable cv_;
};

// A point in time on a given clock: "stop at 10 s of CPU time", "respond within 50 ms".
// A default-constructed Deadline never expires.
class Deadline {
 public:
  Deadline() = default;
  Deadline(const Clock& clock, int64_t budget_ns) : clock_(&clock), at_ns_(clock.now_ns() + budget_ns) {}
  static Deadline at(const Clock& clock, int64_t at_ns) {
    Deadline d;
    d.clock_ = &clock;
    d.at_ns_ = at_ns;
    return d;
  }

  bool expired() const { return clock_ != nullptr && clock_->now_ns() >= at_ns_; }
  bool is_infinite() const { return clock_ == nullptr; }
  // Nanoseconds left (0 when expired; INT64_MAX when infinite).
  int64_t remaining_ns() const;
  const Clock* clock() const { return clock_; }
  int64_t at_ns() const { return at_ns_; }

 private:
  const Clock* clock_ = nullptr;
  int64_t at_ns_ = 0;
};

}  // namespace kiln
