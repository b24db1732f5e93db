#include "kiln/core/clock.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>

namespace kiln {
namespace {

TEST(MonotonicClock, NeverGoesBackAndSleepsToAnAbsoluteTime) {
  MonotonicClock& c = monotonic_clock();
  int64_t a = c.now_ns();
  int64_t b = c.now_ns();
  EXPECT_LE(a, b);
  c.sleep_until_ns(b + 200'000);  // 0.2 ms
  EXPECT_GE(c.now_ns(), b + 200'000);
  c.sleep_until_ns(0);  // in the past: returns at once
}

TEST(ThreadCpuClock, AdvancesWhileTheThreadComputes) {
  ThreadCpuClock c;
  int64_t a = c.now_ns();
  c.sleep_until_ns(a + 1'000'000);  // spins for 1 ms of CPU time
  EXPECT_GE(c.now_ns(), a + 1'000'000);
}

TEST(SimulatedClock, MovesOnlyWhenTold) {
  SimulatedClock c(1000);
  EXPECT_EQ(c.now_ns(), 1000);
  EXPECT_EQ(c.now_ns(), 1000);
  c.advance_ns(500);
  EXPECT_EQ(c.now_ns(), 1500);
  c.advance_ns(-100);  // time never goes back
  EXPECT_EQ(c.now_ns(), 1500);
  c.advance_to_ns(1200);
  EXPECT_EQ(c.now_ns(), 1500);
  c.advance_to_ns(4000);
  EXPECT_EQ(c.now_ns(), 4000);
  EXPECT_DOUBLE_EQ(c.now_seconds(), 4e-6);
}

TEST(SimulatedClock, AdvanceModeJumpsToTheTarget) {
  SimulatedClock c(0, SimulatedClock::SleepMode::kAdvance);
  c.sleep_until_ns(7'000);
  EXPECT_EQ(c.now_ns(), 7'000);
  c.sleep_for_ns(3'000);
  EXPECT_EQ(c.now_ns(), 10'000);
  c.sleep_until_ns(5);  // past: no change
  EXPECT_EQ(c.now_ns(), 10'000);
}

TEST(SimulatedClock, BlockModeWakesASleeperOnlyWhenTimeReachesItsTarget) {
  SimulatedClock c(0);
  std::atomic<bool> woke{false};
  std::thread sleeper([&] {
    c.sleep_until_ns(100);
    woke = true;
  });
  c.advance_ns(50);
  // The sleeper cannot have woken: its target is not reached. (No timing assumption: if it had
  // woken, `woke` would be true and stay true.)
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  EXPECT_FALSE(woke.load());
  c.advance_ns(50);
  sleeper.join();
  EXPECT_TRUE(woke.load());
  EXPECT_EQ(c.now_ns(), 100);
}

TEST(Deadline, ExpiresOnItsOwnClock) {
  SimulatedClock c(0);
  Deadline d(c, 100);
  EXPECT_FALSE(d.expired());
  EXPECT_EQ(d.remaining_ns(), 100);
  c.advance_ns(99);
  EXPECT_FALSE(d.expired());
  c.advance_ns(1);
  EXPECT_TRUE(d.expired());
  EXPECT_EQ(d.remaining_ns(), 0);
  Deadline never;
  EXPECT_TRUE(never.is_infinite());
  EXPECT_FALSE(never.expired());
  Deadline at = Deadline::at(c, 150);
  EXPECT_EQ(at.remaining_ns(), 50);
}

}  // namespace
}  // namespace kiln
