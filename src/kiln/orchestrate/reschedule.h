// kiln/orchestrate/reschedule.h — repairing a plan in milliseconds when the plant changes.
//
// A Rescheduler holds the problem and the current plan. On each event — a resource goes down for
// an interval, comes back, an operation overruns, a job is inserted or cancelled — it is given the
// current time and what has been executed so far, and returns a feasible schedule that keeps
// everything that has started exactly where it is, never starts anything before `now`, never uses
// a resource while it is down, and includes every operation that is still to do. The answer comes
// within a response budget (default 50 ms): the old plan's orders are repaired first (microseconds),
// the remaining part of the budget goes to tabu search from the repaired plan, and after
// on_event() returns a background thread keeps improving it (current() gives the latest).
//
//   Rescheduler rs(problem, plan);                       // plan: from solve()
//   ExecutionState st = ExecutionState::from_plan(problem, plan, now);   // or from the plant
//   KILN_ASSIGN_OR_RETURN(Schedule fixed, rs.on_event(now, st, ResourceDown{2, now, now + 40}));
//   ... later: Schedule better = rs.current();
//
// Operations interrupted by a breakdown lose their progress: the caller reports them as pending
// again and they are rescheduled from scratch (possibly on another eligible resource). A cancelled
// job disappears from the schedule, including an operation of it that was running (its resource is
// free from `now`). Done and running operations keep their reported times, which may differ from
// the nominal durations (that is what overruns are).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <thread>
#include <variant>
#include <vector>

#include "kiln/core/clock.h"
#include "kiln/core/status.h"
#include "kiln/orchestrate/model.h"
#include "kiln/orchestrate/schedule.h"

namespace kiln::orchestrate {

enum class OpStatus { kPending, kRunning, kDone };

struct OpState {
  OpStatus status = OpStatus::kPending;
  int machine = -1;   // running / done: where
  int64_t start = 0;  // running / done: when it started
  int64_t end = 0;    // done: when it ended; running: when it is expected to end
};

// What has happened so far, per job and operation (same shape as Problem::jobs).
struct ExecutionState {
  std::vector<std::vector<OpState>> ops;

  // Everything of `plan` that starts before `now` has started: done if it ends by `now`, running
  // otherwise. For simulations and tests; a plant reports its own state.
  static ExecutionState from_plan(const Problem& p, const Schedule& plan, int64_t now);
};

struct ResourceDown {
  int resource = 0;
  int64_t begin = 0, end = 0;  // unavailable during [begin, end); end is the expected repair time
};
struct ResourceUp {
  int resource = 0;  // available again from `now` (ends the down interval that contains `now`)
};
struct Overrun {
  int job = 0, index = 0;
  int64_t expected_end = 0;  // the running operation will end then (also reported in the state)
};
struct JobInserted {
  Job job;  // its operations may not start before max(now, job.release)
};
struct JobCancelled {
  int job = 0;
};
using Event = std::variant<ResourceDown, ResourceUp, Overrun, JobInserted, JobCancelled>;

// A name for logs: "resource-down", "resource-up", "overrun", "job-inserted", "job-cancelled".
const char* event_name(const Event& e);

struct RescheduleOptions {
  int64_t response_budget_ns = 50'000'000;  // on_event() returns within about this much real time
  double improve_fraction = 0.5;            // share of the budget spent searching before returning
  bool background = true;                   // keep improving after on_event() returns
  int64_t background_limit_ns = 10'000'000'000;  // at most this long per event
  // Deterministic mode: when > 0, on_event() improves by exactly this many tabu iterations and
  // ignores the time budget (and there is no background search).
  int64_t iterations = 0;
  uint64_t seed = 1;
};

class Rescheduler {
 public:
  // `plan` must be a schedule of `problem` (for example from solve()); it is not re-verified.
  Rescheduler(Problem problem, Schedule plan, RescheduleOptions options = {});
  ~Rescheduler();
  Rescheduler(const Rescheduler&) = delete;
  Rescheduler& operator=(const Rescheduler&) = delete;

  // Applies `event` at time `now` given what has been executed (`state`, shaped like problem()
  // before the event), and returns the repaired plan. Fails, leaving the plan unchanged, on an
  // event that names a resource, job or operation that does not exist, an inserted job that is not
  // valid, or a state of the wrong shape.
  Result<Schedule> on_event(int64_t now, const ExecutionState& state, const Event& event);

  // The latest plan: the last on_event() answer, or better if the background search found one.
  Schedule current() const;
  // The problem as it stands (inserted jobs appended; cancelled jobs keep their index).
  const Problem& problem() const { return problem_; }
  bool cancelled(int job) const { return job >= 0 && job < static_cast<int>(cancelled_.size()) && cancelled_[job]; }
  // Known down intervals of a resource, sorted and merged: {begin, end}.
  std::vector<std::pair<int64_t, int64_t>> down(int resource) const;
  // Stops the background search (on_event() and the destructor do this themselves).
  void stop_background();

  // Statistics of the last on_event().
  struct Stats {
    int64_t repaired_makespan = 0;  // right after repairing the old orders, before any search
    int64_t makespan = 0;           // what on_event() returned
    int64_t iterations = 0;
    int pending_operations = 0;
  };
  const Stats& last_stats() const { return stats_; }

 private:
  struct Epoch;  // the residual problem of one event, shared with the background search
  Status apply_event(int64_t now, const Event& event, ExecutionState& state);

  Problem problem_;
  RescheduleOptions options_;
  std::vector<char> cancelled_;
  std::vector<std::vector<std::pair<int64_t, int64_t>>> down_;
  mutable std::mutex mu_;
  Schedule current_;
  Stats stats_;
  std::shared_ptr<Epoch> epoch_;
  std::atomic<bool> stop_{false};
  std::thread worker_;
};

}  // namespace kiln::orchestrate
