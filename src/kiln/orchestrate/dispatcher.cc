#include "kiln/orchestrate/dispatcher.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>

#include "kiln/orchestrate/internal/search.h"

namespace kiln::orchestrate {
namespace {

constexpr int64_t kNever = std::numeric_limits<int64_t>::max();

uint64_t mix(uint64_t a, uint64_t b) {
  uint64_t z = a * 0x9E3779B97F4A7C15ull + b + 0x632BE59BD9B4E019ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// Exponential with the given mean, at least 1 time unit.
int64_t exponential(internal::Rng& rng, double mean) {
  double u = rng.uniform();
  return std::max<int64_t>(1, static_cast<int64_t>(std::ceil(-std::log(1.0 - u) * mean)));
}

struct SimOp {
  OpStatus status = OpStatus::kPending;
  int machine = -1;
  int64_t start = 0, actual_end = 0, expected_end = 0, notice = kNever;
  int attempts = 0;
};

class Simulation {
 public:
  Simulation(const Problem& p, const Schedule& plan, const DispatchOptions& o, SimulatedClock& clock)
      : p_(p), plan_(plan), o_(o), clock_(clock), m_(static_cast<int>(p.resources.size())) {}

  Result<DispatchReport> run();

 private:
  int64_t nominal(int j, int i, int machine) const {
    for (const Option& x : p_.jobs[j].operations[i].options)
      if (x.resource == machine) return x.duration;
    return 0;
  }
  // The noise factor of one attempt of one operation: independent of the order things happen in,
  // so runs with and without rescheduling see the same plant.
  int64_t actual_duration(int j, int i, int attempt, int64_t nominal_d) const {
    if (nominal_d == 0 || o_.duration_noise <= 0) return nominal_d;
    internal::Rng r(mix(mix(o_.seed, 0x6E6F697365ull), mix(mix(static_cast<uint64_t>(j), static_cast<uint64_t>(i)), attempt)));
    double u1 = std::max(1e-12, r.uniform()), u2 = r.uniform();
    double z = std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
    double f = std::exp(o_.duration_noise * std::clamp(z, -4.0, 4.0));
    return std::max<int64_t>(1, std::llround(static_cast<double>(nominal_d) * f));
  }
  void rebuild_orders();
  void start_ready(int64_t now);
  ExecutionState state() const;
  Status raise(int64_t now, const Event& e);
  bool all_done() const;

  Problem p_;
  Schedule plan_;
  const DispatchOptions& o_;
  SimulatedClock& clock_;
  int m_;
  std::vector<std::vector<SimOp>> ops_;
  std::vector<char> cancelled_;
  std::vector<std::vector<std::pair<int, int>>> order_;  // per machine: (job, index) in plan order
  std::vector<std::pair<int, int>> running_;            // per machine: (job, index) or (-1, -1)
  std::vector<int64_t> repair_at_, announced_until_, next_failure_;
  std::vector<internal::Rng> machine_rng_;
  std::unique_ptr<Rescheduler> rescheduler_;
  DispatchReport report_;
  int64_t wake_ = kNever;  // the earliest release that holds back an idle resource
};

void Simulation::rebuild_orders() {
  order_.assign(m_, {});
  std::vector<std::vector<std::pair<int64_t, std::pair<int, int>>>> per(m_);
  for (const ScheduledOp& s : plan_.ops) {
    if (s.job < 0 || s.job >= static_cast<int>(ops_.size()) || s.machine < 0 || s.machine >= m_) continue;
    per[s.machine].push_back({s.start, {s.job, s.index}});
  }
  for (int k = 0; k < m_; ++k) {
    std::sort(per[k].begin(), per[k].end());
    for (auto& [t, ji] : per[k]) order_[k].push_back(ji);
  }
}

void Simulation::start_ready(int64_t now) {
  wake_ = kNever;
  for (int k = 0; k < m_; ++k) {
    if (running_[k].first >= 0 || repair_at_[k] != kNever) continue;
    for (auto [j, i] : order_[k]) {
      const SimOp& so = ops_[j][i];
      if (cancelled_[j] || so.status != OpStatus::kPending) continue;
      // The first pending operation in the plan's order goes next, once its job lets it.
      const bool pred_done = i == 0 || ops_[j][i - 1].status == OpStatus::kDone;
      if (pred_done && p_.jobs[j].release > now) wake_ = std::min(wake_, p_.jobs[j].release);
      if (!pred_done || p_.jobs[j].release > now) break;
      SimOp& op = ops_[j][i];
      const int64_t nom = nominal(j, i, k);
      const int64_t act = actual_duration(j, i, op.attempts, nom);
      op.status = OpStatus::kRunning;
      op.machine = k;
      op.start = now;
      op.expected_end = now + nom;
      op.actual_end = now + act;
      const int64_t tolerated = now + static_cast<int64_t>(std::floor(static_cast<double>(nom) * (1 + o_.overrun_tolerance)));
      op.notice = op.actual_end > tolerated ? tolerated + 1 : kNever;
      if (op.notice >= op.actual_end) op.notice = kNever;
      running_[k] = {j, i};
      break;
    }
  }
}

ExecutionState Simulation::state() const {
  ExecutionState st;
  st.ops.resize(ops_.size());
  for (size_t j = 0; j < ops_.size(); ++j) {
    st.ops[j].resize(ops_[j].size());
    for (size_t i = 0; i < ops_[j].size(); ++i) {
      const SimOp& s = ops_[j][i];
      OpState& o = st.ops[j][i];
      o.status = s.status;
      o.machine = s.machine;
      o.start = s.start;
      // The plant knows a running operation's end only from its nominal duration, until an
      // overrun notice says otherwise.
      o.end = s.status == OpStatus::kDone ? s.actual_end : s.expected_end;
    }
  }
  return st;
}

Status Simulation::raise(int64_t now, const Event& e) {
  const ExecutionState st = state();  // shaped like the problem before the event
  if (const auto* ins = std::get_if<JobInserted>(&e)) {
    p_.jobs.push_back(ins->job);
    ops_.emplace_back(ins->job.operations.size());
    cancelled_.push_back(0);
  }
  if (const auto* c = std::get_if<JobCancelled>(&e)) {
    cancelled_[c->job] = 1;
    for (int k = 0; k < m_; ++k)
      if (running_[k].first == c->job) {
        ops_[running_[k].first][running_[k].second].status = OpStatus::kPending;  // aborted
        running_[k] = {-1, -1};
      }
  }
  if (!o_.reschedule) {
    // Right-shift: keep the plan's orders; a new job's operations go to the end of their machines.
    if (const auto* ins = std::get_if<JobInserted>(&e)) {
      const int j = static_cast<int>(p_.jobs.size()) - 1;
      for (size_t i = 0; i < ins->job.operations.size(); ++i) {
        const auto& opts = ins->job.operations[i].options;
        auto best = std::min_element(opts.begin(), opts.end(),
                                     [](const Option& a, const Option& b) { return a.duration < b.duration; });
        order_[best->resource].push_back({j, static_cast<int>(i)});
      }
    }
    return Status::ok();
  }
  const int64_t t0 = monotonic_clock().now_ns();
  Result<Schedule> r = rescheduler_->on_event(now, st, e);
  report_.response_ms.push_back(static_cast<double>(monotonic_clock().now_ns() - t0) * 1e-6);
  if (!r.is_ok()) return r.status().with_context(std::string("rescheduling after ") + event_name(e));
  ++report_.reschedules;
  plan_ = std::move(r).value();
  rebuild_orders();
  return Status::ok();
}

bool Simulation::all_done() const {
  for (size_t j = 0; j < ops_.size(); ++j) {
    if (cancelled_[j]) continue;
    for (const SimOp& s : ops_[j])
      if (s.status != OpStatus::kDone) return false;
  }
  return true;
}

Result<DispatchReport> Simulation::run() {
  KILN_RETURN_IF_ERROR(p_.validate());
  KILN_RETURN_IF_ERROR(verify_schedule(p_, plan_).with_context("the plan to dispatch"));
  if (o_.duration_noise < 0 || o_.breakdowns_per_resource < 0 || o_.mean_repair < 0 || o_.rush_orders < 0 ||
      o_.cancellations < 0 || o_.time_unit_ns <= 0)
    return Status::invalid("dispatch options: rates, noise and the time unit must not be negative");
  ops_.resize(p_.jobs.size());
  for (size_t j = 0; j < p_.jobs.size(); ++j) ops_[j].resize(p_.jobs[j].operations.size());
  cancelled_.assign(p_.jobs.size(), 0);
  running_.assign(m_, {-1, -1});
  repair_at_.assign(m_, kNever);
  announced_until_.assign(m_, kNever);
  next_failure_.assign(m_, kNever);
  report_.planned_makespan = plan_.makespan;
  const double horizon = static_cast<double>(std::max<int64_t>(1, plan_.makespan));
  const double mean_repair = std::max(1.0, o_.mean_repair * horizon);
  for (int k = 0; k < m_; ++k) {
    machine_rng_.emplace_back(mix(mix(o_.seed, 0x627265616Bull), static_cast<uint64_t>(k)));
    if (o_.breakdowns_per_resource > 0) next_failure_[k] = exponential(machine_rng_[k], horizon / o_.breakdowns_per_resource);
  }
  internal::Rng world(mix(o_.seed, 0x776F726C64ull));
  int64_t next_rush = o_.rush_orders > 0 ? exponential(world, horizon / o_.rush_orders) : kNever;
  int64_t next_cancel = o_.cancellations > 0 ? exponential(world, horizon / o_.cancellations) : kNever;
  if (o_.reschedule) rescheduler_ = std::make_unique<Rescheduler>(p_, plan_, [&] {
    RescheduleOptions r = o_.rescheduler;
    r.background = false;  // simulated time: a background search would race the simulation
    return r;
  }());
  rebuild_orders();

  int64_t now = 0;
  int64_t steps = 0;
  start_ready(now);
  while (!all_done()) {
    if (++steps > o_.max_events) return Status::invalid("dispatch: more than ", o_.max_events, " events; giving up");
    int64_t t = kNever;
    for (int k = 0; k < m_; ++k) {
      t = std::min({t, repair_at_[k], next_failure_[k]});
      if (repair_at_[k] != kNever && announced_until_[k] > now) t = std::min(t, announced_until_[k]);
      if (running_[k].first >= 0) {
        const SimOp& s = ops_[running_[k].first][running_[k].second];
        t = std::min({t, s.actual_end, s.notice});
      }
    }
    t = std::min({t, next_rush, next_cancel, wake_});
    if (t == kNever) return Status::internal("dispatch: nothing can happen but work remains (a deadlocked plan)");
    now = std::max(now, t);
    clock_.advance_to_ns(now * o_.time_unit_ns);

    // 1. Completions.
    for (int k = 0; k < m_; ++k) {
      if (running_[k].first < 0) continue;
      SimOp& s = ops_[running_[k].first][running_[k].second];
      if (s.actual_end == now) {
        s.status = OpStatus::kDone;
        running_[k] = {-1, -1};
      }
    }
    // 2. Repairs, and outages that outlast their announcement.
    for (int k = 0; k < m_; ++k) {
      if (repair_at_[k] == now) {
        repair_at_[k] = announced_until_[k] = kNever;
        if (o_.breakdowns_per_resource > 0)
          next_failure_[k] = now + exponential(machine_rng_[k], horizon / o_.breakdowns_per_resource);
        ++report_.repairs;
        KILN_RETURN_IF_ERROR(raise(now, ResourceUp{k}));
      } else if (repair_at_[k] != kNever && announced_until_[k] == now) {
        announced_until_[k] = now + std::max<int64_t>(1, static_cast<int64_t>(mean_repair / 2));
        KILN_RETURN_IF_ERROR(raise(now, ResourceDown{k, now, announced_until_[k]}));
      }
    }
    // 3. Breakdowns.
    for (int k = 0; k < m_; ++k) {
      if (next_failure_[k] != now) continue;
      next_failure_[k] = kNever;
      if (running_[k].first >= 0) {
        SimOp& s = ops_[running_[k].first][running_[k].second];
        s.status = OpStatus::kPending;  // interrupted: starts again from scratch
        s.attempts += 1;
        s.notice = kNever;
        running_[k] = {-1, -1};
        ++report_.interruptions;
      }
      const int64_t actual = exponential(machine_rng_[k], mean_repair);
      repair_at_[k] = now + actual;
      announced_until_[k] = now + std::max<int64_t>(1, std::llround(mean_repair));
      report_.outages.push_back({k, now, repair_at_[k]});
      ++report_.breakdowns;
      KILN_RETURN_IF_ERROR(raise(now, ResourceDown{k, now, announced_until_[k]}));
    }
    // 4. Overrun notices.
    for (int k = 0; k < m_; ++k) {
      if (running_[k].first < 0) continue;
      auto [j, i] = running_[k];
      SimOp& s = ops_[j][i];
      if (s.notice != now) continue;
      s.notice = kNever;
      s.expected_end = s.actual_end;
      ++report_.overruns;
      KILN_RETURN_IF_ERROR(raise(now, Overrun{j, i, s.actual_end}));
    }
    // 5. Rush orders: a copy of a random original job's route, released now.
    if (next_rush == now) {
      next_rush = now + exponential(world, horizon / o_.rush_orders);
      const int src = world.below(static_cast<int>(std::max<size_t>(1, p_.jobs.size())));
      Job j = p_.jobs[src];
      j.name = "rush-" + std::to_string(report_.rush_orders);
      j.release = now;
      j.due = kNoDueDate;
      ++report_.rush_orders;
      KILN_RETURN_IF_ERROR(raise(now, JobInserted{j}));
    }
    // 6. Cancellations: a random job that is not finished.
    if (next_cancel == now) {
      next_cancel = now + exponential(world, horizon / o_.cancellations);
      std::vector<int> open;
      for (size_t j = 0; j < ops_.size(); ++j)
        if (!cancelled_[j] && ops_[j].back().status != OpStatus::kDone) open.push_back(static_cast<int>(j));
      if (!open.empty()) {
        ++report_.cancellations;
        KILN_RETURN_IF_ERROR(raise(now, JobCancelled{open[world.below(static_cast<int>(open.size()))]}));
      }
    }
    start_ready(now);
  }

  for (size_t j = 0; j < ops_.size(); ++j)
    for (size_t i = 0; i < ops_[j].size(); ++i) {
      const SimOp& s = ops_[j][i];
      if (s.status == OpStatus::kDone)
        report_.realised.ops.push_back({static_cast<int>(j), static_cast<int>(i), s.machine, s.start, s.actual_end});
    }
  report_.realised.normalize();
  report_.realised_makespan = report_.realised.makespan;
  report_.final_problem = p_;
  report_.cancelled = cancelled_;
  return report_;
}

}  // namespace

Result<DispatchReport> dispatch(const Problem& problem, const Schedule& plan, const DispatchOptions& options,
                                SimulatedClock& clock) {
  Simulation sim(problem, plan, options, clock);
  return sim.run();
}

}  // namespace kiln::orchestrate
