#include "kiln/orchestrate/solver.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <mutex>
#include <thread>
#include <vector>

#include "kiln/orchestrate/internal/flat.h"
#include "kiln/orchestrate/internal/search.h"

namespace kiln::orchestrate {
namespace {

Schedule to_schedule(const internal::FlatProblem& fp, const internal::Solution& s) {
  Schedule out;
  out.ops.reserve(fp.n);
  for (int o = 0; o < fp.n; ++o) {
    const int x = s.opt[o];
    out.ops.push_back({fp.src_job[o], fp.src_index[o], fp.opt_machine[x], s.start[o], s.start[o] + fp.opt_dur[x]});
  }
  out.normalize();
  return out;
}

}  // namespace

Result<Solution> solve(const Problem& problem, const SolveOptions& options) {
  KILN_RETURN_IF_ERROR(problem.validate());
  if (options.threads < 1 || options.threads > 256)
    return Status::invalid("threads must be in 1..256, got ", options.threads);
  if (!(options.time_limit_seconds <= 1e9))  // also rejects NaN
    return Status::invalid("time limit ", options.time_limit_seconds, " s is not a usable number");
  if (options.time_limit_seconds <= 0 && options.max_iterations <= 0 && options.stop == nullptr)
    return Status::invalid("give a time limit, an iteration limit or a stop flag: the search would never end");

  const internal::FlatProblem fp = internal::flatten(problem);
  const internal::EngineParams params = internal::default_engine_params(fp);
  const Clock& clock = options.clock ? *options.clock : monotonic_clock();
  const int64_t limit_ns =
      options.time_limit_seconds > 0 ? static_cast<int64_t>(std::llround(options.time_limit_seconds * 1e9)) : 0;

  std::mutex mu;
  int64_t reported = std::numeric_limits<int64_t>::max();
  double seconds_to_best = 0;
  const int nt = options.threads;
  std::vector<internal::Solution> results(nt);
  std::vector<int64_t> iterations(nt, 0);
  std::vector<double> seconds(nt, 0);

  auto worker = [&](int t) {
    // The deadline is taken here, on this thread: a per-thread CPU clock starts counting now.
    const int64_t t0 = clock.now_ns();
    internal::Budget budget;
    if (limit_ns > 0) budget.deadline = Deadline::at(clock, t0 + limit_ns);
    budget.max_iterations = options.max_iterations;
    budget.stop = options.stop;
    budget.target = fp.lower_bound;
    budget.on_best = [&](const internal::Solution& s) {
      std::lock_guard<std::mutex> lock(mu);
      if (s.makespan >= reported) return;
      reported = s.makespan;
      seconds_to_best = static_cast<double>(clock.now_ns() - t0) * 1e-9;
      if (options.on_progress) {
        Progress p;
        p.makespan = s.makespan;
        p.lower_bound = fp.lower_bound;
        p.seconds = seconds_to_best;
        p.iterations = budget.iterations;
        options.on_progress(p);
      }
    };
    results[t] = internal::run_search(fp, params, options.seed + static_cast<uint64_t>(t), budget, nullptr);
    iterations[t] = budget.iterations;
    seconds[t] = static_cast<double>(clock.now_ns() - t0) * 1e-9;
  };

  if (nt == 1) {
    worker(0);
  } else {
    std::vector<std::thread> pool;
    for (int t = 0; t < nt; ++t) pool.emplace_back(worker, t);
    for (std::thread& th : pool) th.join();
  }

  int best = 0;
  for (int t = 1; t < nt; ++t)
    if (results[t].makespan < results[best].makespan) best = t;
  Solution out;
  out.schedule = to_schedule(fp, results[best]);
  out.lower_bound = fp.lower_bound;
  for (int t = 0; t < nt; ++t) {
    out.iterations += iterations[t];
    out.seconds = std::max(out.seconds, seconds[t]);
  }
  out.seconds_to_best = seconds_to_best;
  return out;
}

Result<Schedule> dispatch_schedule(const Problem& problem, DispatchRule rule, Generation generation, uint64_t seed) {
  KILN_RETURN_IF_ERROR(problem.validate());
  const internal::FlatProblem fp = internal::flatten(problem);
  internal::Rng rng(seed);
  internal::Rule r = rule == DispatchRule::kMostWorkRemaining         ? internal::Rule::kMostWorkRemaining
                     : rule == DispatchRule::kShortestProcessingTime  ? internal::Rule::kShortestProcessingTime
                     : rule == DispatchRule::kMostOperationsRemaining ? internal::Rule::kMostOperationsRemaining
                                                                      : internal::Rule::kRandom;
  internal::Generation g = generation == Generation::kActive ? internal::Generation::kActive : internal::Generation::kNonDelay;
  return to_schedule(fp, internal::construct(fp, r, g, rng));
}

}  // namespace kiln::orchestrate
