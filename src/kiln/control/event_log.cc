#include "kiln/control/event_log.h"

#include <cstdarg>
#include <cstdio>
#include <cstring>

namespace kiln::control {

const char* event_kind_name(EventKind k) {
  switch (k) {
    case EventKind::kStart: return "start";
    case EventKind::kStop: return "stop";
    case EventKind::kInfo: return "info";
    case EventKind::kWarning: return "warning";
    case EventKind::kFault: return "fault";
    case EventKind::kInterlock: return "interlock";
    case EventKind::kInterlockClear: return "interlock_clear";
    case EventKind::kSafeState: return "safe_state";
    case EventKind::kOverrun: return "overrun";
    case EventKind::kWatchdog: return "watchdog";
    case EventKind::kNan: return "nan";
    case EventKind::kConnected: return "connected";
    case EventKind::kDisconnected: return "disconnected";
    case EventKind::kRebirth: return "rebirth";
    case EventKind::kDriverError: return "driver_error";
  }
  return "?";
}

EventLog::EventLog(const Clock* clock, int64_t start_ns) : clock_(clock), start_ns_(start_ns) {
  cells_ = std::make_unique<Cell[]>(kCapacity);
  for (size_t i = 0; i < kCapacity; ++i) cells_[i].seq.store(i, std::memory_order_relaxed);
  history_.reserve(1024);
}

// Vyukov's bounded MPMC queue, producer side: claim a cell whose sequence equals the position.
EventLog::Cell* EventLog::claim() {
  size_t pos = enqueue_.load(std::memory_order_relaxed);
  for (;;) {
    Cell* c = &cells_[pos & (kCapacity - 1)];
    size_t seq = c->seq.load(std::memory_order_acquire);
    intptr_t dif = static_cast<intptr_t>(seq) - static_cast<intptr_t>(pos);
    if (dif == 0) {
      if (enqueue_.compare_exchange_weak(pos, pos + 1, std::memory_order_relaxed)) return c;
    } else if (dif < 0) {
      dropped_.fetch_add(1, std::memory_order_relaxed);
      return nullptr;  // full: drop, never wait
    } else {
      pos = enqueue_.load(std::memory_order_relaxed);
    }
  }
}

void EventLog::post_at(int64_t t_ns, EventKind kind, const char* detail) {
  posted_.fetch_add(1, std::memory_order_relaxed);
  Cell* c = claim();
  if (c == nullptr) return;
  c->t_ns = t_ns;
  c->kind = kind;
  size_t n = std::strlen(detail);
  if (n >= kDetailBytes) n = kDetailBytes - 1;
  std::memcpy(c->detail, detail, n);
  c->detail[n] = 0;
  size_t pos = c->seq.load(std::memory_order_relaxed);
  c->seq.store(pos + 1, std::memory_order_release);
}

void EventLog::post(EventKind kind, const char* detail) {
  post_at(clock_ ? clock_->now_ns() : 0, kind, detail);
}

void EventLog::postf(EventKind kind, const char* fmt, ...) {
  char buf[kDetailBytes];
  va_list ap;
  va_start(ap, fmt);
  std::vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  post(kind, buf);
}

void EventLog::clear() {
  drain();
  std::lock_guard<std::mutex> lock(drain_mu_);
  history_.clear();
  dropped_.store(0, std::memory_order_relaxed);
  posted_.store(0, std::memory_order_relaxed);
}

void EventLog::drain() {
  std::lock_guard<std::mutex> lock(drain_mu_);
  for (;;) {
    Cell* c = &cells_[dequeue_ & (kCapacity - 1)];
    size_t seq = c->seq.load(std::memory_order_acquire);
    if (seq != dequeue_ + 1) break;  // not yet published
    LoggedEvent e;
    e.t_ms = static_cast<double>(c->t_ns - start_ns_) * 1e-6;
    e.kind = c->kind;
    e.detail = c->detail;
    history_.push_back(std::move(e));
    c->seq.store(dequeue_ + kCapacity, std::memory_order_release);
    ++dequeue_;
  }
}

}  // namespace kiln::control
