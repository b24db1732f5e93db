// kiln/control/event_log.h — the cell's event log: faults, interlocks, safe states, overruns,
// reconnections — posted from real-time loops and driver threads, read by the main thread.
//
// post() is lock-free and allocation-free (a bounded multi-producer queue of fixed-size records,
// Vyukov's design): a loop may call it in a cycle. When the queue is full the event is dropped and
// counted, never waited for (4diac's rule). drain() (not real-time) moves queued events into the
// permanent history, which the stats JSON and `kiln cell run` print.
//
//   kiln::control::EventLog log(clock, start_ns);
//   log.post(EventKind::kInterlock, "over_temperature: furnace_temp > 450");   // any thread
//   log.drain();                                                               // main thread
//   for (const auto& e : log.history()) std::printf("%.1f %s\n", e.t_ms, e.detail.c_str());
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "kiln/core/clock.h"

namespace kiln::control {

enum class EventKind : uint8_t {
  kStart, kStop, kInfo, kWarning, kFault, kInterlock, kInterlockClear, kSafeState, kOverrun,
  kWatchdog, kNan, kConnected, kDisconnected, kRebirth, kDriverError
};
// "start", "stop", "info", "warning", "fault", "interlock", "interlock_clear", "safe_state",
// "overrun", "watchdog", "nan", "connected", "disconnected", "rebirth", "driver_error".
const char* event_kind_name(EventKind k);

struct LoggedEvent {
  double t_ms = 0;  // since the cell started
  EventKind kind = EventKind::kInfo;
  std::string detail;
};

class EventLog {
 public:
  static constexpr size_t kCapacity = 4096;  // power of two
  static constexpr size_t kDetailBytes = 160;

  explicit EventLog(const Clock* clock = nullptr, int64_t start_ns = 0);

  void set_clock(const Clock* clock, int64_t start_ns) {
    clock_ = clock;
    start_ns_ = start_ns;
  }
  // Real-time safe. `detail` is truncated to kDetailBytes - 1. printf-style variant formats into
  // the record itself (no allocation).
  void post(EventKind kind, const char* detail);
  void postf(EventKind kind, const char* fmt, ...) __attribute__((format(printf, 3, 4)));
  void post_at(int64_t t_ns, EventKind kind, const char* detail);

  // Not real-time: moves queued events to history() in the order they were posted.
  void drain();
  const std::vector<LoggedEvent>& history() const { return history_; }
  // Not real-time, and only while nothing posts: forgets queued and drained events (a new run).
  void clear();
  uint64_t dropped() const { return dropped_.load(std::memory_order_relaxed); }
  // Events posted so far (drained or not); for live status lines.
  uint64_t posted() const { return posted_.load(std::memory_order_relaxed); }

 private:
  struct Cell {
    std::atomic<size_t> seq;
    int64_t t_ns;
    EventKind kind;
    char detail[kDetailBytes];
  };
  Cell* claim();
  void publish(Cell* c, size_t pos);

  const Clock* clock_;
  int64_t start_ns_;
  std::unique_ptr<Cell[]> cells_;
  alignas(64) std::atomic<size_t> enqueue_{0};
  alignas(64) size_t dequeue_ = 0;
  std::atomic<uint64_t> dropped_{0}, posted_{0};
  std::mutex drain_mu_;
  std::vector<LoggedEvent> history_;
};

}  // namespace kiln::control
