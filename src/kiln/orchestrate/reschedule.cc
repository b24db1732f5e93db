#include "kiln/orchestrate/reschedule.h"

#include <algorithm>
#include <limits>
#include <numeric>

#include "kiln/orchestrate/internal/flat.h"
#include "kiln/orchestrate/internal/search.h"

namespace kiln::orchestrate {

namespace {
template <class... Ts>
struct Overloaded : Ts... {
  using Ts::operator()...;
};
template <class... Ts>
Overloaded(Ts...) -> Overloaded<Ts...>;
}  // namespace

const char* event_name(const Event& e) {
  return std::visit(Overloaded{[](const ResourceDown&) { return "resource-down"; },
                               [](const ResourceUp&) { return "resource-up"; },
                               [](const Overrun&) { return "overrun"; },
                               [](const JobInserted&) { return "job-inserted"; },
                               [](const JobCancelled&) { return "job-cancelled"; }},
                    e);
}

ExecutionState ExecutionState::from_plan(const Problem& p, const Schedule& plan, int64_t now) {
  ExecutionState st;
  st.ops.resize(p.jobs.size());
  for (size_t j = 0; j < p.jobs.size(); ++j) st.ops[j].resize(p.jobs[j].operations.size());
  for (const ScheduledOp& o : plan.ops) {
    if (o.job < 0 || o.job >= static_cast<int>(st.ops.size()) || o.index < 0 ||
        o.index >= static_cast<int>(st.ops[o.job].size()) || o.start >= now)
      continue;
    st.ops[o.job][o.index] = {o.end <= now ? OpStatus::kDone : OpStatus::kRunning, o.machine, o.start, o.end};
  }
  return st;
}

// The residual problem of one event: the operations still to do, as the search sees them, and the
// operations that have started, which stay as they are.
struct Rescheduler::Epoch {
  internal::FlatProblem fp;
  std::vector<ScheduledOp> fixed;

  Schedule compose(const internal::Solution& s) const {
    Schedule out;
    out.ops = fixed;
    out.ops.reserve(fixed.size() + fp.n);
    for (int o = 0; o < fp.n; ++o) {
      const int x = s.opt[o];
      out.ops.push_back({fp.src_job[o], fp.src_index[o], fp.opt_machine[x], s.start[o], s.start[o] + fp.opt_dur[x]});
    }
    out.normalize();
    return out;
  }
};

Rescheduler::Rescheduler(Problem problem, Schedule plan, RescheduleOptions options)
    : problem_(std::move(problem)), options_(options), cancelled_(problem_.jobs.size(), 0),
      down_(problem_.resources.size()), current_(std::move(plan)) {
  current_.normalize();
}

Rescheduler::~Rescheduler() { stop_background(); }

void Rescheduler::stop_background() {
  stop_.store(true);
  if (worker_.joinable()) worker_.join();
  stop_.store(false);
}

Schedule Rescheduler::current() const {
  std::lock_guard<std::mutex> lock(mu_);
  return current_;
}

std::vector<std::pair<int64_t, int64_t>> Rescheduler::down(int resource) const {
  if (resource < 0 || resource >= static_cast<int>(down_.size())) return {};
  return down_[resource];
}

Status Rescheduler::apply_event(int64_t now, const Event& event, ExecutionState& st) {
  const int m = static_cast<int>(problem_.resources.size());
  const int nj = static_cast<int>(problem_.jobs.size());
  // Validate first, then change: a rejected event leaves everything as it was.
  return std::visit(
      Overloaded{
          [&](const ResourceDown& e) -> Status {
            if (e.resource < 0 || e.resource >= m)
              return Status::invalid("resource-down: resource ", e.resource, " does not exist (", m, " resources)");
            if (e.end <= e.begin)
              return Status::invalid("resource-down: the interval [", e.begin, ", ", e.end, ") is empty");
            std::vector<internal::Interval> v;
            for (auto [b, x] : down_[e.resource]) v.push_back({b, x});
            v.push_back({e.begin, e.end});
            internal::normalize_intervals(v);
            down_[e.resource].clear();
            for (const auto& iv : v) down_[e.resource].push_back({iv.begin, iv.end});
            return Status::ok();
          },
          [&](const ResourceUp& e) -> Status {
            if (e.resource < 0 || e.resource >= m)
              return Status::invalid("resource-up: resource ", e.resource, " does not exist (", m, " resources)");
            auto& v = down_[e.resource];
            for (auto& iv : v)
              if (iv.first <= now && now < iv.second) iv.second = now;
            v.erase(std::remove_if(v.begin(), v.end(), [](auto& iv) { return iv.second <= iv.first; }), v.end());
            return Status::ok();
          },
          [&](const Overrun& e) -> Status {
            if (e.job < 0 || e.job >= nj || e.index < 0 || e.index >= static_cast<int>(st.ops[e.job].size()))
              return Status::invalid("overrun: operation (", e.job, ", ", e.index, ") does not exist");
            OpState& o = st.ops[e.job][e.index];
            if (o.status != OpStatus::kRunning)
              return Status::invalid("overrun: operation (", e.job, ", ", e.index, ") is not running");
            o.end = std::max(o.start, e.expected_end);
            return Status::ok();
          },
          [&](const JobInserted& e) -> Status {
            Problem one;
            one.resources = problem_.resources;
            one.jobs.push_back(e.job);
            KILN_RETURN_IF_ERROR(one.validate().with_context("job-inserted"));
            problem_.jobs.push_back(e.job);
            cancelled_.push_back(0);
            st.ops.emplace_back(e.job.operations.size());
            return Status::ok();
          },
          [&](const JobCancelled& e) -> Status {
            if (e.job < 0 || e.job >= nj) return Status::invalid("job-cancelled: job ", e.job, " does not exist");
            cancelled_[e.job] = 1;
            return Status::ok();
          },
      },
      event);
}

Result<Schedule> Rescheduler::on_event(int64_t now, const ExecutionState& state, const Event& event) {
  const int64_t t0 = monotonic_clock().now_ns();
  stop_background();
  const int m = static_cast<int>(problem_.resources.size());

  // The state must describe this problem.
  if (state.ops.size() != problem_.jobs.size())
    return Status::invalid("execution state has ", state.ops.size(), " jobs; the problem has ", problem_.jobs.size());
  for (size_t j = 0; j < state.ops.size(); ++j) {
    if (state.ops[j].size() != problem_.jobs[j].operations.size())
      return Status::invalid("execution state: job ", j, " has ", state.ops[j].size(), " operations; expected ",
                             problem_.jobs[j].operations.size());
    bool pending_seen = false;
    for (size_t i = 0; i < state.ops[j].size(); ++i) {
      const OpState& o = state.ops[j][i];
      if (o.status == OpStatus::kPending) {
        pending_seen = true;
        continue;
      }
      if (pending_seen && !cancelled_[j])
        return Status::invalid("execution state: operation (", j, ", ", i, ") has started but an earlier one has not");
      bool eligible = false;
      for (const Option& x : problem_.jobs[j].operations[i].options) eligible |= x.resource == o.machine;
      if (!eligible)
        return Status::invalid("execution state: operation (", j, ", ", i, ") ran on resource ", o.machine,
                               ", which is not eligible");
      if (o.end < o.start)
        return Status::invalid("execution state: operation (", j, ", ", i, ") ends at ", o.end, " before it starts at ",
                               o.start);
    }
  }
  ExecutionState st = state;
  KILN_RETURN_IF_ERROR(apply_event(now, event, st));

  // The residual problem.
  auto epoch = std::make_shared<Epoch>();
  internal::FlatProblem& fp = epoch->fp;
  fp.m = m;
  fp.machine_ready.assign(m, now);
  for (size_t j = 0; j < problem_.jobs.size(); ++j) {
    if (cancelled_[j]) continue;
    const Job& job = problem_.jobs[j];
    int64_t ready = std::max(now, job.release);
    size_t i = 0;
    for (; i < job.operations.size() && st.ops[j][i].status != OpStatus::kPending; ++i) {
      OpState o = st.ops[j][i];
      // A running operation that is overdue ends "now" at the earliest, as far as we know.
      if (o.status == OpStatus::kRunning) o.end = std::max(o.end, now);
      epoch->fixed.push_back({static_cast<int>(j), static_cast<int>(i), o.machine, o.start, o.end});
      ready = std::max(ready, o.end);
      if (o.status == OpStatus::kRunning) fp.machine_ready[o.machine] = std::max(fp.machine_ready[o.machine], o.end);
    }
    if (i == job.operations.size()) continue;
    fp.begin_job(static_cast<int>(j));
    for (size_t k = i; k < job.operations.size(); ++k)
      fp.add_operation(static_cast<int>(k), k == i ? ready : std::max(now, job.release), job.operations[k].options);
  }
  fp.down.assign(m, {});
  for (int k = 0; k < m; ++k)
    for (auto [b, e] : down_[k])
      if (e > now) fp.down[k].push_back({std::max(b, now), e});
  fp.finish();

  // Repair: the old plan's orders (by planned start), new operations as early as their job allows.
  Schedule old = current();
  std::vector<std::vector<int>> at(problem_.jobs.size());
  for (size_t j = 0; j < problem_.jobs.size(); ++j) at[j].assign(problem_.jobs[j].operations.size(), -1);
  for (size_t k = 0; k < old.ops.size(); ++k) {
    const ScheduledOp& o = old.ops[k];
    if (o.job >= 0 && o.job < static_cast<int>(at.size()) && o.index >= 0 && o.index < static_cast<int>(at[o.job].size()))
      at[o.job][o.index] = static_cast<int>(k);
  }
  std::vector<int> opt(fp.n);
  std::vector<double> key(fp.n);
  double chain = 0;
  for (int o = 0; o < fp.n; ++o) {
    const int j = fp.src_job[o], i = fp.src_index[o];
    const int k = at[j][i];
    int choice = -1;
    if (k >= 0)
      for (int x = fp.opt_begin[o]; x < fp.opt_begin[o + 1]; ++x)
        if (fp.opt_machine[x] == old.ops[k].machine) choice = x;
    if (choice < 0) {
      choice = fp.opt_begin[o];
      for (int x = fp.opt_begin[o]; x < fp.opt_begin[o + 1]; ++x)
        if (fp.opt_dur[x] < fp.opt_dur[choice]) choice = x;
    }
    opt[o] = choice;
    if (fp.jp[o] < 0) chain = static_cast<double>(fp.release[o]);
    key[o] = k >= 0 ? static_cast<double>(old.ops[k].start) : chain;
    chain = std::max(chain, key[o]) + static_cast<double>(fp.opt_dur[choice]);
  }
  std::vector<std::vector<int>> seq(m);
  for (int o = 0; o < fp.n; ++o) seq[fp.opt_machine[opt[o]]].push_back(o);
  // Ties by operation number, which follows job order: the orders then never contradict the jobs.
  for (auto& s : seq)
    std::sort(s.begin(), s.end(), [&](int a, int b) { return key[a] != key[b] ? key[a] < key[b] : a < b; });

  Stats stats;
  stats.pending_operations = fp.n;
  int64_t fixed_end = 0;
  for (const ScheduledOp& o : epoch->fixed) fixed_end = std::max(fixed_end, o.end);
  Schedule result;
  internal::Solution best;
  if (fp.n > 0) {
    internal::State state_(fp);
    internal::Solution repaired = internal::repair(fp, seq, opt, key);
    state_.load(repaired);
    state_.evaluate();
    stats.repaired_makespan = std::max(fixed_end, state_.cmax);
    internal::Budget budget;
    if (options_.iterations > 0) {
      budget.max_iterations = options_.iterations;
    } else {
      const int64_t sync = static_cast<int64_t>(static_cast<double>(options_.response_budget_ns) *
                                                std::clamp(options_.improve_fraction, 0.0, 1.0));
      budget.deadline = Deadline::at(monotonic_clock(), t0 + sync);
    }
    budget.target = fp.lower_bound;
    internal::Rng rng(options_.seed ^ static_cast<uint64_t>(now));
    internal::TabuParams tp = internal::default_tabu_params(fp);
    int64_t global = std::numeric_limits<int64_t>::max();
    best = internal::tabu_search(state_, tp, rng, budget, &global);
    stats.iterations = budget.iterations;
    result = epoch->compose(best);
  } else {
    result.ops = epoch->fixed;
    result.normalize();
  }
  stats.makespan = result.makespan;
  {
    std::lock_guard<std::mutex> lock(mu_);
    current_ = result;
  }
  stats_ = stats;
  epoch_ = epoch;

  if (options_.background && options_.iterations == 0 && fp.n > 0) {
    worker_ = std::thread([this, epoch, best, now] {
      internal::Budget budget;
      budget.deadline = Deadline(monotonic_clock(), options_.background_limit_ns);
      budget.stop = &stop_;
      budget.target = epoch->fp.lower_bound;
      budget.on_best = [&](const internal::Solution& s) {
        Schedule sc = epoch->compose(s);
        std::lock_guard<std::mutex> lock(mu_);
        if (sc.makespan < current_.makespan) current_ = std::move(sc);
      };
      internal::EngineParams params = internal::default_engine_params(epoch->fp);
      params.pool_size = 4;
      internal::run_search(epoch->fp, params, options_.seed + 1 + static_cast<uint64_t>(now), budget, &best);
    });
  }
  return result;
}

}  // namespace kiln::orchestrate
