// kiln/orchestrate/dispatcher.h — playing a schedule on simulated machines, with breakdowns,
// duration noise, rush orders and cancellations, rescheduling on every event.
//
// The dispatcher is a discrete-event simulation on Kiln's SimulatedClock (one schedule time unit =
// `time_unit_ns` of simulated time). Each resource runs the operations the current plan gives it,
// in the plan's order, each as soon as its job predecessor is done. Actual durations differ from
// the nominal ones by a random factor; an operation that runs past its expected end raises an
// overrun event. Resources break down at random (a Poisson process per resource), interrupting the
// operation they run (it restarts from scratch later), and are repaired after a random time; the
// repair estimate announced with the breakdown may be wrong, in which case the outage is extended
// or ends early. Every event goes to a Rescheduler, whose answer becomes the plan. The report
// compares the realised makespan with the plan's, and gives the rescheduler's response times.
//
//   kiln::SimulatedClock clock;
//   DispatchOptions opt;                      // seed, breakdown rate, noise, ...
//   KILN_ASSIGN_OR_RETURN(DispatchReport r, dispatch(problem, plan, opt, clock));
//   r.realised_makespan; r.planned_makespan; r.response_ms;  // and r.realised: what ran, when
//
// Deterministic for a given seed when the rescheduler runs by iterations (the default here: the
// response time is measured, but the search does not depend on it).
#pragma once

#include <cstdint>
#include <vector>

#include "kiln/core/clock.h"
#include "kiln/core/status.h"
#include "kiln/orchestrate/model.h"
#include "kiln/orchestrate/reschedule.h"
#include "kiln/orchestrate/schedule.h"

namespace kiln::orchestrate {

struct DispatchOptions {
  uint64_t seed = 1;
  double breakdowns_per_resource = 1.0;  // expected breakdowns per resource over the planned makespan
  double mean_repair = 0.05;             // mean repair time, as a fraction of the planned makespan
  double duration_noise = 0.1;           // actual duration = nominal * exp(N(0, noise)), rounded
  double overrun_tolerance = 0.1;        // an overrun event when actual > nominal * (1 + tolerance)
  double rush_orders = 0;                // expected new jobs (copies of random routes) over the plan
  double cancellations = 0;              // expected cancelled jobs over the plan
  bool reschedule = true;                // false: keep the plan's orders (right-shift), for comparison
  RescheduleOptions rescheduler = {.iterations = 2000};  // deterministic by default
  int64_t time_unit_ns = 1'000'000'000;  // simulated time of one schedule time unit
  int64_t max_events = 1'000'000;        // guard against a plant that never finishes
};

struct DispatchReport {
  int64_t planned_makespan = 0;
  int64_t realised_makespan = 0;
  int breakdowns = 0, repairs = 0, overruns = 0, rush_orders = 0, cancellations = 0, interruptions = 0;
  int reschedules = 0;
  std::vector<double> response_ms;  // real time of each Rescheduler::on_event call
  // What actually ran: every completed operation with its actual times (cancelled jobs' completed
  // operations included); and the realised outages.
  Schedule realised;
  struct Outage {
    int resource;
    int64_t begin, end;
  };
  std::vector<Outage> outages;
  Problem final_problem;        // with rush orders appended
  std::vector<char> cancelled;  // per job of final_problem
};

// `plan` must be a feasible schedule of `problem`. `clock` is advanced to the end of the run.
Result<DispatchReport> dispatch(const Problem& problem, const Schedule& plan, const DispatchOptions& options,
                                SimulatedClock& clock);

}  // namespace kiln::orchestrate
