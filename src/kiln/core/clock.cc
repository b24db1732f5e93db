#include "kiln/core/clock.h"

#include <cerrno>
#include <climits>
#include <ctime>

namespace kiln {
namespace {

int64_t read_clock(clockid_t id) {
  timespec ts{};
  clock_gettime(id, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

}  // namespace

int64_t MonotonicClock::now_ns() const { return read_clock(CLOCK_MONOTONIC); }

void MonotonicClock::sleep_until_ns(int64_t t_ns) {
  timespec ts{};
  ts.tv_sec = static_cast<time_t>(t_ns / 1'000'000'000);
  ts.tv_nsec = static_cast<long>(t_ns % 1'000'000'000);
  // clock_nanosleep returns the error number (EINTR when a signal interrupts): sleep again, the
  // target is absolute so nothing accumulates.
  while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nullptr) == EINTR) {
  }
}

MonotonicClock& monotonic_clock() {
  static MonotonicClock clock;
  return clock;
}

int64_t ThreadCpuClock::now_ns() const { return read_clock(CLOCK_THREAD_CPUTIME_ID); }

void ThreadCpuClock::sleep_until_ns(int64_t t_ns) {
  while (now_ns() < t_ns) {
  }
}

void SimulatedClock::sleep_until_ns(int64_t t_ns) {
  if (mode_ == SleepMode::kAdvance) {
    advance_to_ns(t_ns);
    return;
  }
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [&] { return now_.load(std::memory_order_acquire) >= t_ns; });
}

void SimulatedClock::advance_ns(int64_t d_ns) {
  if (d_ns <= 0) return;
  {
    // Under the mutex so a sleeper cannot check the time and then miss the notification.
    std::lock_guard<std::mutex> lock(mu_);
    now_.fetch_add(d_ns, std::memory_order_acq_rel);
  }
  cv_.notify_all();
}

void SimulatedClock::advance_to_ns(int64_t t_ns) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (t_ns <= now_.load(std::memory_order_acquire)) return;
    now_.store(t_ns, std::memory_order_release);
  }
  cv_.notify_all();
}

int64_t Deadline::remaining_ns() const {
  if (clock_ == nullptr) return INT64_MAX;
  int64_t left = at_ns_ - clock_->now_ns();
  return left > 0 ? left : 0;
}

}  // namespace kiln
