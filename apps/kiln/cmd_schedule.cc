// kiln schedule INSTANCE [--format F] [--time-limit SECONDS] [--seed N] [--threads N]
//                        [--json OUT.json] [--svg OUT.svg]
//                        [--iterations N] [--cpu-time] [--quiet] [--simulate [--events N]]
//
// Solves a job-shop (or flexible job-shop) instance file and prints the makespan; --json writes
// {makespan, operations: [{job, index, machine, start, end}], ...}, --svg a Gantt chart with the
// critical path. Progress (best makespan over time) goes to stderr. --simulate then plays the
// schedule on simulated machines with breakdowns and duration noise, rescheduling on every event.
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cinttypes>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <thread>

#include "cli_common.h"
#include "kiln/core/clock.h"
#include "kiln/core/file_util.h"
#include "kiln/orchestrate/dispatcher.h"
#include "kiln/orchestrate/formats.h"
#include "kiln/orchestrate/gantt_svg.h"
#include "kiln/orchestrate/solver.h"
#include "verbs.h"

namespace kiln::cli {
namespace {

namespace orc = kiln::orchestrate;

struct ScheduleArgs {
  std::string instance;
  std::string format = "jssp";
  double time_limit = 10;
  uint64_t seed = 1;
  int threads = 1;
  std::string json_out, svg_out;
  int64_t iterations = 0;
  bool cpu_time = false;
  bool quiet = false;
  bool simulate = false;
  int events = 0;
};

double percentile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  // Nearest rank: the smallest value with at least q of the samples at or below it.
  size_t rank = static_cast<size_t>(std::ceil(q * static_cast<double>(v.size())));
  return v[std::clamp<size_t>(rank, 1, v.size()) - 1];
}

// Runs the dispatcher until at least `min_events` reschedules were measured (at least one run).
Result<nlohmann::ordered_json> simulate(const orc::Problem& p, const orc::Schedule& plan, const ScheduleArgs& a) {
  std::vector<double> all;
  nlohmann::ordered_json runs = nlohmann::json::array();
  int64_t planned = plan.makespan;
  double sum_realised = 0, sum_shift = 0;
  int nruns = 0;
  for (uint64_t run = 0; nruns == 0 || static_cast<int>(all.size()) < a.events; ++run) {
    orc::DispatchOptions opt;
    opt.seed = a.seed + run;
    opt.breakdowns_per_resource = 1.0;
    opt.mean_repair = 0.05;
    opt.duration_noise = 0.15;
    opt.rush_orders = 2;
    opt.cancellations = 1;
    // Real response-time budget (what a plant would use): 50 ms, half of it spent searching.
    opt.rescheduler = orc::RescheduleOptions{};
    opt.rescheduler.seed = a.seed + run;
    SimulatedClock clock;
    KILN_ASSIGN_OR_RETURN(orc::DispatchReport r, orc::dispatch(p, plan, opt, clock));
    orc::DispatchOptions shift = opt;
    shift.reschedule = false;
    SimulatedClock clock2;
    KILN_ASSIGN_OR_RETURN(orc::DispatchReport rs, orc::dispatch(p, plan, shift, clock2));
    all.insert(all.end(), r.response_ms.begin(), r.response_ms.end());
    sum_realised += static_cast<double>(r.realised_makespan);
    sum_shift += static_cast<double>(rs.realised_makespan);
    ++nruns;
    nlohmann::ordered_json j;
    j["seed"] = opt.seed;
    j["realised_makespan"] = r.realised_makespan;
    j["right_shift_makespan"] = rs.realised_makespan;
    j["breakdowns"] = r.breakdowns;
    j["overruns"] = r.overruns;
    j["rush_orders"] = r.rush_orders;
    j["cancellations"] = r.cancellations;
    j["interruptions"] = r.interruptions;
    j["reschedules"] = r.reschedules;
    runs.push_back(j);
    if (run > 100000) break;
  }
  nlohmann::ordered_json out;
  out["planned_makespan"] = planned;
  out["runs"] = nruns;
  out["mean_realised_makespan"] = sum_realised / nruns;
  out["mean_right_shift_makespan"] = sum_shift / nruns;
  out["reschedules"] = all.size();
  out["response_ms"] = {{"p50", percentile(all, 0.50)}, {"p99", percentile(all, 0.99)},
                        {"max", all.empty() ? 0.0 : *std::max_element(all.begin(), all.end())}};
  out["per_run"] = runs;
  return out;
}

int run_schedule(const ScheduleArgs& a) {
  auto fmt = orc::parse_instance_format(a.format);
  if (!fmt.is_ok()) return fail("schedule", fmt.status());
  if (!(a.time_limit >= 0) || a.time_limit > 1e7) return fail("schedule", Status::invalid("--time-limit must be >= 0 seconds"));
  if (a.time_limit == 0 && a.iterations <= 0)
    return fail("schedule", Status::invalid("--time-limit 0 needs --iterations N, or the search would never end"));
  if (a.threads < 1 || a.threads > 256) return fail("schedule", Status::invalid("--threads must be in 1..256"));
  Result<orc::Problem> p = orc::load_instance(a.instance, *fmt);
  if (!p.is_ok()) return fail("schedule", p.status());

  ThreadCpuClock cpu;
  orc::SolveOptions opt;
  opt.time_limit_seconds = a.time_limit;
  opt.seed = a.seed;
  opt.threads = a.threads;
  opt.max_iterations = a.iterations;
  if (a.cpu_time) opt.clock = &cpu;
  // Progress on stderr for runs of a second or more: the best makespan so far, once a second
  // while it changes, from a printer thread (the search only records each new best).
  std::mutex mu;
  std::condition_variable cv;
  orc::Progress latest;
  bool have = false, done = false;
  int64_t printed = -1;
  auto print = [&](const orc::Progress& pr) {
    std::fprintf(stderr, "kiln schedule: %7.2fs  makespan %" PRId64 "  (lower bound %" PRId64 ", %" PRId64 " iterations)\n",
                 pr.seconds, pr.makespan, pr.lower_bound, pr.iterations);
    printed = pr.makespan;
  };
  const bool progress = !a.quiet && (a.time_limit >= 1 || a.time_limit == 0);
  if (progress)
    opt.on_progress = [&](const orc::Progress& pr) {
      std::lock_guard<std::mutex> lock(mu);
      latest = pr;
      have = true;
    };
  std::thread printer;
  if (progress)
    printer = std::thread([&] {
      std::unique_lock<std::mutex> lock(mu);
      while (!cv.wait_for(lock, std::chrono::seconds(1), [&] { return done; }))
        if (have && latest.makespan != printed) print(latest);
    });
  Result<orc::Solution> s = orc::solve(*p, opt);
  if (printer.joinable()) {
    {
      std::lock_guard<std::mutex> lock(mu);
      done = true;
      if (have && latest.makespan != printed && printed >= 0) print(latest);
    }
    cv.notify_all();
    printer.join();
  }
  if (!s.is_ok()) return fail("schedule", s.status());
  // Kiln checks its own output before anyone sees it.
  Status ok = orc::verify_schedule(*p, s->schedule);
  if (!ok.is_ok()) return fail("schedule", Status::internal("the solver produced an infeasible schedule: ", ok.message()));

  const orc::Schedule& sc = s->schedule;
  std::vector<int> crit = orc::critical_path(*p, sc);
  nlohmann::ordered_json j;
  j["instance"] = a.instance;
  j["format"] = orc::instance_format_name(*fmt);
  j["jobs"] = p->jobs.size();
  j["machines"] = p->resources.size();
  j["makespan"] = sc.makespan;
  j["lower_bound"] = s->lower_bound;
  j["optimal"] = sc.makespan == s->lower_bound;
  j["seed"] = a.seed;
  j["threads"] = a.threads;
  j["time_limit"] = a.time_limit;
  j["time_base"] = a.cpu_time ? "thread-cpu" : "wall";
  j["seconds"] = s->seconds;
  j["seconds_to_best"] = s->seconds_to_best;
  j["iterations"] = s->iterations;
  nlohmann::ordered_json ops = nlohmann::json::array();
  for (const orc::ScheduledOp& o : sc.ops)
    ops.push_back({{"job", o.job}, {"index", o.index}, {"machine", o.machine}, {"start", o.start}, {"end", o.end}});
  j["operations"] = std::move(ops);
  nlohmann::ordered_json cp = nlohmann::json::array();
  for (int k : crit) cp.push_back({{"job", sc.ops[k].job}, {"index", sc.ops[k].index}});
  j["critical_path"] = std::move(cp);

  if (a.simulate) {
    auto sim = simulate(*p, sc, a);
    if (!sim.is_ok()) return fail("schedule", sim.status());
    j["simulation"] = *sim;
  }
  if (!a.svg_out.empty()) {
    orc::GanttOptions g;
    std::string name = a.instance;
    size_t slash = name.find_last_of('/');
    if (slash != std::string::npos) name = name.substr(slash + 1);
    g.title = name;
    Status w = write_file_atomic(a.svg_out, orc::gantt_svg(*p, sc, g));
    if (!w.is_ok()) return fail("schedule", w);
  }
  if (!a.json_out.empty()) {
    Status w = write_file_atomic(a.json_out, j.dump(1) + "\n");
    if (!w.is_ok()) return fail("schedule", w);
  }
  std::printf("makespan %" PRId64 "  lower bound %" PRId64 "%s  %.2f s  %" PRId64 " iterations  (%zu jobs, %zu machines)\n",
              sc.makespan, s->lower_bound, sc.makespan == s->lower_bound ? " (optimal)" : "", s->seconds, s->iterations,
              p->jobs.size(), p->resources.size());
  if (a.simulate) {
    const auto& sim = j["simulation"];
    std::printf("simulation: planned %" PRId64 ", realised %.1f with rescheduling, %.1f keeping the plan's orders (mean of %d runs)\n",
                sc.makespan, sim["mean_realised_makespan"].get<double>(), sim["mean_right_shift_makespan"].get<double>(),
                sim["runs"].get<int>());
    std::printf("rescheduling response: p50 %.2f ms, p99 %.2f ms, max %.2f ms over %zu events\n",
                sim["response_ms"]["p50"].get<double>(), sim["response_ms"]["p99"].get<double>(),
                sim["response_ms"]["max"].get<double>(), sim["reschedules"].get<size_t>());
  }
  return kExitOk;
}

}  // namespace

void register_schedule(CLI::App& app, int& exit_code) {
  auto a = std::make_shared<ScheduleArgs>();
  CLI::App* c = app.add_subcommand("schedule", "Schedule a (flexible) job shop: minimise the makespan");
  c->add_option("instance", a->instance, "Instance file")->required();
  c->add_option("--format", a->format, "jssp (standard, 0-based machines), taillard, or fjsp (Brandimarte)")
      ->capture_default_str();
  c->add_option("--time-limit", a->time_limit, "Search time in seconds")->capture_default_str();
  c->add_option("--seed", a->seed, "Random seed (same seed and --iterations: same schedule)")->capture_default_str();
  c->add_option("--threads", a->threads, "Independent searches in parallel; the best wins")->capture_default_str();
  c->add_option("--json", a->json_out, "Write the schedule as JSON");
  c->add_option("--svg", a->svg_out, "Write a Gantt chart (SVG) with the critical path");
  c->add_option("--iterations", a->iterations, "Stop after N tabu iterations per thread (deterministic)");
  c->add_flag("--cpu-time", a->cpu_time, "Count the time limit in CPU time of each search thread (fair on a busy machine)");
  c->add_flag("--quiet", a->quiet, "No progress on stderr");
  c->add_flag("--simulate", a->simulate,
              "Then play the schedule with random breakdowns, duration noise, rush orders and cancellations, "
              "rescheduling on every event");
  c->add_option("--events", a->events, "With --simulate: repeat runs until this many reschedules were timed");
  c->callback([a, &exit_code] { exit_code = run_schedule(*a); });
}

}  // namespace kiln::cli
