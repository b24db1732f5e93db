// kiln/orchestrate/solver.h — schedules that minimise the makespan of a (flexible) job shop.
//
// solve() builds constructive schedules (Giffler–Thompson active and non-delay generation under
// several dispatching rules), improves them by tabu search over critical-block moves with
// machine reassignment for flexible operations, and keeps restarting from path-relinking
// offspring of an elite pool until the time limit. docs/orchestrate.md explains the algorithm.
//
//   kiln::orchestrate::SolveOptions opt;
//   opt.time_limit_seconds = 10;
//   opt.seed = 1;
//   opt.on_progress = [](const Progress& p) { std::fprintf(stderr, "%.1fs %lld\n", p.seconds, p.makespan); };
//   KILN_ASSIGN_OR_RETURN(Solution s, solve(problem, opt));
//   s.schedule.makespan; s.lower_bound; s.schedule.ops[k].start ...
//
// Determinism: one thread with an iteration limit (max_iterations) and no time limit gives the same
// schedule for the same seed on every run. With a time limit the search follows the same
// trajectory but is cut wherever the clock says, so faster machines may find better schedules.
// With threads > 1 each thread searches independently (seeds seed, seed+1, ...) and the best
// schedule wins (ties: the lowest thread).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>

#include "kiln/core/clock.h"
#include "kiln/core/status.h"
#include "kiln/orchestrate/model.h"
#include "kiln/orchestrate/schedule.h"

namespace kiln::orchestrate {

struct Progress {
  int64_t makespan = 0;     // best so far (over all threads)
  int64_t lower_bound = 0;
  double seconds = 0;       // since solve() started, on the options' clock
  int64_t iterations = 0;   // tabu iterations of the thread that found it
};

struct SolveOptions {
  double time_limit_seconds = 10;  // <= 0: no time limit (then set max_iterations)
  uint64_t seed = 1;
  int threads = 1;
  int64_t max_iterations = 0;      // tabu iterations per thread; 0: no limit
  // The clock the time limit is measured on; null means real (monotonic) time. A ThreadCpuClock
  // gives each thread `time_limit_seconds` of its own CPU time.
  const Clock* clock = nullptr;
  std::function<void(const Progress&)> on_progress;  // each new best; called under a lock
  const std::atomic<bool>* stop = nullptr;           // set to end the search early
};

struct Solution {
  Schedule schedule;
  int64_t lower_bound = 0;   // makespan == lower_bound proves the schedule optimal
  int64_t iterations = 0;    // tabu iterations, all threads
  double seconds = 0;        // time spent, on the options' clock
  double seconds_to_best = 0;
};

// Fails only on an invalid problem (Problem::validate) or invalid options.
Result<Solution> solve(const Problem& problem, const SolveOptions& options);

// A single constructive schedule, for comparison and as a fast fallback.
enum class DispatchRule { kMostWorkRemaining, kShortestProcessingTime, kMostOperationsRemaining, kRandom };
enum class Generation { kActive, kNonDelay };
Result<Schedule> dispatch_schedule(const Problem& problem, DispatchRule rule, Generation generation, uint64_t seed = 1);

}  // namespace kiln::orchestrate
