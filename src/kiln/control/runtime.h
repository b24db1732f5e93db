// kiln/control/runtime.h — running a cell: one thread per loop woken at absolute times, drivers
// on their own threads, a watchdog, the safe state on SIGINT/SIGTERM, statistics.
//
// Real time (default): each loop gets its own thread, SCHED_FIFO at the loop's priority and the
// CPU the file names (when the process may; otherwise a warning and normal scheduling), timer
// slack 1 ns, a pre-faulted stack, and wakes with clock_nanosleep(TIMER_ABSTIME) at
// start + k * period. A cycle that ends after its deadline is an overrun; wake-ups that come
// later than a whole period skip the missed cycles (keeping the phase) and count them. The
// memory of the process is locked (mlockall) before the loops start. A watchdog thread forces
// the safe state when a loop has not completed a cycle for max(watchdog_ms, 3 periods).
//
// Simulated clock (--sim-clock): the loops run on the calling thread in time order on a
// SimulatedClock, as fast as the CPU allows and with identical results on every run (in-loop
// devices are seeded); wake-up jitter is zero by construction, execution time is real.
//
// When the run ends (duration reached, SIGINT/SIGTERM, stop flag) the cell goes to its safe
// state first, the loops run once more so in-loop devices see it, then every thread stops.
//
//   RunOptions o;
//   o.duration_s = 30;
//   KILN_ASSIGN_OR_RETURN(RunReport r, run_cell(*cell, o));
//   std::string json = stats_json(*cell, r);
#pragma once

#include <atomic>
#include <functional>
#include <string>
#include <vector>

#include "kiln/control/cell.h"
#include "kiln/core/status.h"

namespace kiln::control {

struct Injection {
  std::string device, fault;
  double at_s = 0, rate = 0;
};

struct RunOptions {
  double duration_s = 0;   // 0: until a signal or `stop` (not allowed with sim_clock)
  bool sim_clock = false;
  bool realtime = true;    // try SCHED_FIFO, affinity and mlockall
  bool handle_signals = true;
  const std::atomic<bool>* stop = nullptr;
  std::vector<Injection> injections;
  // Called from the calling thread about four times a second (real time) or every simulated
  // second (sim clock), with the seconds elapsed. Not real-time; may print.
  std::function<void(double t_s)> on_status;
  // Called on the calling thread, before the loops start, with each thing the system refused
  // (SCHED_FIFO, mlockall, a CPU); the run goes on. Also listed in RunReport::warnings.
  std::function<void(const std::string& warning)> on_warning;
  // Simulated clock only: called after every cycle of every loop, on the calling thread, with the
  // loop and the cycle's time (ns since the start). For recording traces (`kiln cell run --trace`).
  std::function<void(const Loop& loop, int64_t t_ns)> on_cycle;
};

struct RunReport {
  double duration_s = 0;
  bool sim_clock = false;
  bool interrupted = false;     // by SIGINT/SIGTERM
  std::string stop_reason;
  bool sched_fifo = false, memory_locked = false;
  std::vector<std::string> warnings;
};

Result<RunReport> run_cell(Cell& cell, const RunOptions& options);

// {"cell", "duration_s", "sim_clock", "realtime", "loops": [{name, period_us, cycles,
// wake_jitter_us {p50, p99, p999, max}, exec_us {...}, overruns, missed, held, ...}],
// "models": [{name, block, loop, runs, failures, infer_us {...}}], "interlocks": [...],
// "events": [{t_ms, kind, detail}], "safe_state", "tags": {name: final value}}.
std::string stats_json(Cell& cell, const RunReport& report);

}  // namespace kiln::control
