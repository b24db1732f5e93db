#include "kiln/control/runtime.h"

#include <pthread.h>
#include <signal.h>
#include <sys/mman.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>
#include <thread>

#include "kiln/control/realtime.h"

namespace kiln::control {
namespace {

std::atomic<int> g_signal{0};

void on_signal(int sig) { g_signal.store(sig, std::memory_order_relaxed); }

struct SignalGuard {
  struct sigaction old_int {}, old_term{};
  bool active = false;
  explicit SignalGuard(bool on) : active(on) {
    g_signal = 0;
    if (!on) return;
    struct sigaction sa {};
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
  }
  ~SignalGuard() {
    if (!active) return;
    sigaction(SIGINT, &old_int, nullptr);
    sigaction(SIGTERM, &old_term, nullptr);
  }
};

bool log_overrun(uint64_t n) {
  // The 1st, 10th, 100th, ... overrun: the log shows that they happen without flooding it.
  while (n >= 10 && n % 10 == 0) n /= 10;
  return n == 1;
}

struct Shared {
  std::atomic<bool> go{false}, stop{false};
  int64_t start_ns = 0;
};

void loop_thread(Cell& cell, Loop& l, Shared& sh) {
  sigset_t all;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, nullptr);  // signals go to the main thread
  set_timer_slack_1ns();
  prefault_stack();
  while (!sh.go.load(std::memory_order_acquire)) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  MonotonicClock& clock = monotonic_clock();
  const int64_t period = l.period_ns;
  int64_t next = sh.start_ns;
  // The watchdog counts from time zero: waiting for the first wake-up is not silence.
  l.last_beat_ns.store(std::max(clock.now_ns(), sh.start_ns), std::memory_order_relaxed);
  while (!sh.stop.load(std::memory_order_relaxed)) {
    clock.sleep_until_ns(next);
    int64_t woke = clock.now_ns();
    l.jitter.record(woke - next);
    cell.cycle(l, next - sh.start_ns, &clock, next + l.deadline_ns);
    int64_t end = clock.now_ns();
    l.exec.record(end - woke);
    l.last_beat_ns.store(end, std::memory_order_relaxed);
    if (end > next + l.deadline_ns) {
      ++l.overruns;
      l.live_overruns.store(l.overruns, std::memory_order_relaxed);
      ++l.consecutive_overruns;
      l.max_consecutive_overruns = std::max(l.max_consecutive_overruns, l.consecutive_overruns);
      if (log_overrun(l.overruns))
        cell.events().postf(EventKind::kOverrun, "loop %s: overrun #%llu (cycle ended %.0f us after its deadline)", l.name.c_str(),
                            static_cast<unsigned long long>(l.overruns), static_cast<double>(end - next - l.deadline_ns) * 1e-3);
      if (l.overrun.safe_after > 0 && l.consecutive_overruns == l.overrun.safe_after) {
        char buf[128];
        std::snprintf(buf, sizeof buf, "loop %s: %d consecutive overruns", l.name.c_str(), l.consecutive_overruns);
        cell.enter_safe_state(buf);
      }
    } else {
      l.consecutive_overruns = 0;
    }
    next += period;
    if (end >= next) {
      int64_t skip = (end - next) / period + 1;
      l.missed += static_cast<uint64_t>(skip);
      next += skip * period;
    }
  }
}

void watchdog_thread(Cell& cell, Shared& sh) {
  sigset_t all;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, nullptr);
  MonotonicClock& clock = monotonic_clock();
  std::vector<bool> fired(static_cast<size_t>(cell.num_loops()), false);
  while (!sh.stop.load(std::memory_order_relaxed)) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    int64_t now = clock.now_ns();
    for (int i = 0; i < cell.num_loops(); ++i) {
      Loop& l = cell.loop(i);
      int64_t beat = l.last_beat_ns.load(std::memory_order_relaxed);
      int64_t timeout = std::max(cell.watchdog_ns(), 3 * l.period_ns);
      if (beat > 0 && now - beat > timeout && !fired[static_cast<size_t>(i)]) {
        fired[static_cast<size_t>(i)] = true;
        cell.events().postf(EventKind::kWatchdog, "loop %s has not completed a cycle for %.0f ms", l.name.c_str(),
                            static_cast<double>(now - beat) * 1e-6);
        char buf[128];
        std::snprintf(buf, sizeof buf, "watchdog: loop %s stopped beating", l.name.c_str());
        cell.enter_safe_state(buf);
      }
    }
  }
}

Status start_devices(Cell& cell, const DeviceEnv& env, int* started) {
  for (*started = 0; *started < cell.num_devices(); ++*started) {
    Device& d = cell.device(*started);
    Status s = d.start(env);
    if (!s.is_ok()) return s.with_context("device '" + d.name + "' (" + d.driver + ", " + d.location + ")");
  }
  return Status::ok();
}

void stop_devices(Cell& cell, int started) {
  for (int i = started - 1; i >= 0; --i) cell.device(i).stop();
}

Status prepare(Cell& cell, const RunOptions& o) {
  if (o.sim_clock && !(o.duration_s > 0)) return Status::invalid("--sim-clock needs a --duration (simulated time never ends otherwise)");
  if (!(o.duration_s >= 0) || o.duration_s > 1e8) return Status::invalid("duration must be between 0 and 1e8 seconds");
  if (o.on_cycle && !o.sim_clock) return Status::invalid("cycle traces need the simulated clock (--sim-clock)");
  cell.reset();
  for (const Injection& in : o.injections) {
    Device* d = cell.find_device(in.device);
    if (d == nullptr) return Status::invalid("fault injection: no device named '", in.device, "'");
    KILN_RETURN_IF_ERROR(d->inject(in.fault, in.at_s, in.rate));
  }
  return Status::ok();
}

Result<RunReport> run_sim(Cell& cell, const RunOptions& o) {
  RunReport rep;
  rep.sim_clock = true;
  SimulatedClock clock(0, SimulatedClock::SleepMode::kAdvance);
  cell.events().set_clock(&clock, 0);
  DeviceEnv env{&cell.image(), &cell.events(), &clock, 0, true, &cell.safe_flag()};
  int started = 0;
  Status s = start_devices(cell, env, &started);
  if (!s.is_ok()) {
    stop_devices(cell, started);
    cell.events().set_clock(&monotonic_clock(), monotonic_clock().now_ns());
    return s;
  }
  SignalGuard sig(o.handle_signals);
  cell.events().postf(EventKind::kStart, "cell %s (simulated clock, %.1f s)", cell.name().c_str(), o.duration_s);
  const int n = cell.num_loops();
  std::vector<int64_t> next(static_cast<size_t>(n), 0);
  const int64_t end_ns = static_cast<int64_t>(std::llround(o.duration_s * 1e9));
  MonotonicClock& wall = monotonic_clock();
  int64_t next_status = 1'000'000'000;
  bool final_pass = false;
  uint64_t iter = 0;
  for (;;) {
    int best = 0;
    for (int i = 1; i < n; ++i) {
      const Loop& a = cell.loop(i);
      const Loop& b = cell.loop(best);
      if (next[static_cast<size_t>(i)] < next[static_cast<size_t>(best)] ||
          (next[static_cast<size_t>(i)] == next[static_cast<size_t>(best)] && a.priority > b.priority))
        best = i;
    }
    int64_t t = next[static_cast<size_t>(best)];
    bool interrupted = g_signal.load() != 0 || (o.stop && o.stop->load());
    if ((t >= end_ns || interrupted) && !final_pass) {
      // The end: safe state, then one more cycle of every loop so devices see it.
      rep.interrupted = g_signal.load() != 0;
      rep.stop_reason = rep.interrupted ? (g_signal.load() == SIGINT ? "SIGINT" : "SIGTERM") : "duration reached";
      cell.enter_safe_state(("stop: " + rep.stop_reason).c_str());
      final_pass = true;
      for (int i = 0; i < n; ++i) next[static_cast<size_t>(i)] = std::max(t, next[static_cast<size_t>(i)]);
      for (int i = 0; i < n; ++i) {
        clock.advance_to_ns(next[static_cast<size_t>(i)]);
        cell.cycle(cell.loop(i), next[static_cast<size_t>(i)]);
      }
      break;
    }
    clock.advance_to_ns(t);
    Loop& l = cell.loop(best);
    int64_t w0 = wall.now_ns();
    l.jitter.record(0);
    cell.cycle(l, t);
    l.exec.record(wall.now_ns() - w0);
    l.last_beat_ns.store(t + 1, std::memory_order_relaxed);
    if (o.on_cycle) o.on_cycle(l, t);
    next[static_cast<size_t>(best)] = t + l.period_ns;
    if (t >= next_status) {
      next_status += 1'000'000'000;
      cell.events().drain();
      if (o.on_status) o.on_status(static_cast<double>(t) * 1e-9);
    }
    if ((++iter & 0xfff) == 0) cell.events().drain();
  }
  rep.duration_s = static_cast<double>(clock.now_ns()) * 1e-9;
  cell.events().postf(EventKind::kStop, "cell %s stopped (%s)", cell.name().c_str(), rep.stop_reason.c_str());
  stop_devices(cell, started);
  cell.events().drain();
  // The simulated clock dies with this function; whatever is posted later is stamped in real time.
  cell.events().set_clock(&monotonic_clock(), monotonic_clock().now_ns());
  return rep;
}

Result<RunReport> run_real(Cell& cell, const RunOptions& o) {
  RunReport rep;
  MonotonicClock& clock = monotonic_clock();
  Shared sh;
  if (o.realtime) {
    std::string w = lock_memory();
    rep.memory_locked = w.empty();
    if (!w.empty()) rep.warnings.push_back(w);
  } else {
    rep.warnings.push_back("real-time scheduling disabled (--no-rt): loops run with normal priority");
  }
  // Loop threads first (they wait for `go`), so that locking memory, creating threads and setting
  // their scheduling all happen before time zero is fixed; the first wake-ups are then on time.
  std::vector<std::thread> threads;
  rep.sched_fifo = o.realtime;
  for (int i = 0; i < cell.num_loops(); ++i) {
    Loop& l = cell.loop(i);
    threads.emplace_back(loop_thread, std::ref(cell), std::ref(l), std::ref(sh));
    std::string name = ("kiln:" + l.name).substr(0, 15);
    pthread_setname_np(threads.back().native_handle(), name.c_str());
    if (o.realtime && l.priority > 0) {
      std::string w = set_fifo_priority(threads.back().native_handle(), l.priority);
      if (!w.empty()) {
        rep.sched_fifo = false;
        rep.warnings.push_back("loop " + l.name + ": " + w);
      }
    }
    if (l.cpu >= 0) {
      std::string w = set_cpu(threads.back().native_handle(), l.cpu);
      if (!w.empty()) rep.warnings.push_back("loop " + l.name + ": " + w);
    }
  }
  bool any_prio = false;
  for (int i = 0; i < cell.num_loops(); ++i) any_prio = any_prio || cell.loop(i).priority > 0;
  if (!any_prio) rep.sched_fifo = false;
  // Time zero a little ahead, so every thread is waiting before the first wake-up.
  sh.start_ns = clock.now_ns() + 50'000'000;
  cell.events().set_clock(&clock, sh.start_ns);
  DeviceEnv env{&cell.image(), &cell.events(), &clock, sh.start_ns, false, &cell.safe_flag()};
  int started = 0;
  Status s = start_devices(cell, env, &started);
  if (!s.is_ok()) {
    sh.stop.store(true);
    sh.go.store(true, std::memory_order_release);
    for (auto& t : threads) t.join();
    stop_devices(cell, started);
    if (rep.memory_locked) munlockall();
    return s;
  }
  SignalGuard sig(o.handle_signals);
  std::thread wd(watchdog_thread, std::ref(cell), std::ref(sh));
  // Stamped at time zero (they are posted just before it).
  for (const auto& w : rep.warnings) {
    cell.events().post_at(sh.start_ns, EventKind::kWarning, w.c_str());
    if (o.on_warning) o.on_warning(w);
  }
  char started_msg[EventLog::kDetailBytes];
  std::snprintf(started_msg, sizeof started_msg, "cell %s (%d loops, %s)", cell.name().c_str(), cell.num_loops(),
                rep.sched_fifo ? "SCHED_FIFO" : "normal scheduling");
  cell.events().post_at(sh.start_ns, EventKind::kStart, started_msg);
  sh.go.store(true, std::memory_order_release);
  clock.sleep_until_ns(sh.start_ns);
  int64_t last_status = 0;
  for (;;) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    int64_t now = clock.now_ns();
    double t = static_cast<double>(now - sh.start_ns) * 1e-9;
    cell.events().drain();
    if (now - last_status >= 250'000'000) {
      last_status = now;
      if (o.on_status) o.on_status(t);
    }
    int sigv = g_signal.load();
    if (sigv != 0) {
      rep.interrupted = true;
      rep.stop_reason = sigv == SIGINT ? "SIGINT" : "SIGTERM";
      break;
    }
    if (o.stop && o.stop->load()) {
      rep.stop_reason = "stop requested";
      break;
    }
    if (o.duration_s > 0 && t >= o.duration_s) {
      rep.stop_reason = "duration reached";
      break;
    }
  }
  // Safe values first, while the loops still run, so in-loop devices write them out.
  cell.enter_safe_state(("stop: " + rep.stop_reason).c_str());
  int64_t slowest = 0;
  for (int i = 0; i < cell.num_loops(); ++i) slowest = std::max(slowest, cell.loop(i).period_ns);
  std::vector<uint64_t> seen;
  for (int i = 0; i < cell.num_loops(); ++i) seen.push_back(cell.loop(i).live_cycles.load());
  int64_t wait_until = clock.now_ns() + std::min<int64_t>(2 * slowest + 20'000'000, 2'000'000'000);
  for (;;) {
    bool all = true;
    for (int i = 0; i < cell.num_loops(); ++i) all = all && cell.loop(i).live_cycles.load() > seen[static_cast<size_t>(i)];
    if (all || clock.now_ns() > wait_until) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  sh.stop.store(true);
  for (auto& t : threads) t.join();
  wd.join();
  rep.duration_s = static_cast<double>(clock.now_ns() - sh.start_ns) * 1e-9;
  stop_devices(cell, started);
  cell.events().postf(EventKind::kStop, "cell %s stopped (%s)", cell.name().c_str(), rep.stop_reason.c_str());
  cell.events().drain();
  if (rep.memory_locked) munlockall();
  return rep;
}

nlohmann::ordered_json hist_json(const LatencyHistogram& h) {
  auto r = [](double v) { return std::round(v * 1000) / 1000; };
  return {{"p50", r(h.percentile_us(0.5))}, {"p99", r(h.percentile_us(0.99))}, {"p999", r(h.percentile_us(0.999))}, {"max", r(h.max_us())},
          {"mean", r(h.mean_us())}};
}

}  // namespace

Result<RunReport> run_cell(Cell& cell, const RunOptions& options) {
  KILN_RETURN_IF_ERROR(prepare(cell, options));
  return options.sim_clock ? run_sim(cell, options) : run_real(cell, options);
}

std::string stats_json(Cell& cell, const RunReport& rep) {
  using J = nlohmann::ordered_json;
  J j;
  j["cell"] = cell.name();
  j["duration_s"] = std::round(rep.duration_s * 1000) / 1000;
  j["sim_clock"] = rep.sim_clock;
  j["stop_reason"] = rep.stop_reason;
  j["realtime"] = {{"sched_fifo", rep.sched_fifo}, {"mlockall", rep.memory_locked}, {"preempt_rt_kernel", has_realtime_kernel()},
                   {"warnings", rep.warnings}};
  J loops = J::array();
  for (int i = 0; i < cell.num_loops(); ++i) {
    Loop& l = cell.loop(i);
    J lj;
    lj["name"] = l.name;
    lj["period_us"] = l.period_ns / 1000;
    lj["cycles"] = l.cycles;
    lj["wake_jitter_us"] = hist_json(l.jitter);
    lj["exec_us"] = hist_json(l.exec);
    lj["overruns"] = l.overruns;
    lj["missed"] = l.missed;
    lj["held"] = l.held;
    lj["max_consecutive_overruns"] = l.max_consecutive_overruns;
    lj["priority"] = l.priority;
    lj["cpu"] = l.cpu;
    loops.push_back(lj);
  }
  j["loops"] = loops;
  J models = J::array();
  for (ModelStats* m : cell.models()) {
    models.push_back({{"name", m->name}, {"block", m->block}, {"loop", m->loop}, {"runs", m->runs}, {"failures", m->failures},
                      {"infer_us", hist_json(m->infer)}});
  }
  j["models"] = models;
  J ils = J::array();
  for (int i = 0; i < cell.num_loops(); ++i)
    for (const Interlock& il : cell.loop(i).interlocks)
      ils.push_back({{"name", il.name}, {"loop", cell.loop(i).name}, {"trips", il.trips}, {"tripped", il.tripped}});
  j["interlocks"] = ils;
  J ev = J::array();
  for (const LoggedEvent& e : cell.events().history())
    ev.push_back({{"t_ms", std::round(e.t_ms * 1000) / 1000}, {"kind", event_kind_name(e.kind)}, {"detail", e.detail}});
  j["events"] = ev;
  j["events_dropped"] = cell.events().dropped();
  j["safe_state"] = cell.in_safe_state();
  J tags = J::object();
  ProcessImage& img = cell.image();
  for (int i = 0; i < img.size(); ++i) {
    if (!is_scalar(img.spec(i).type)) continue;
    double v = img.get(i);
    if (std::isfinite(v)) tags[img.spec(i).name] = v;
    else tags[img.spec(i).name] = nullptr;
  }
  j["tags"] = tags;
  return j.dump(2) + "\n";
}

}  // namespace kiln::control
