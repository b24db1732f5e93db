#include "kiln/orchestrate/reschedule.h"

#include <gtest/gtest.h>

#include <thread>

#include "kiln/orchestrate/solver.h"
#include "kiln/orchestrate/testing/feasibility.h"

namespace kiln::orchestrate {
namespace {

using testing::Downtime;

struct Fixture {
  Problem p;
  Schedule plan;
};

Fixture make(bool flexible, uint64_t seed) {
  Fixture f;
  f.p = flexible ? testing::random_flexible(10, 5, 3, seed) : testing::random_jobshop(10, 5, seed);
  SolveOptions o;
  o.time_limit_seconds = 0;
  o.max_iterations = 3000;
  o.seed = seed;
  Result<Solution> s = solve(f.p, o);
  EXPECT_TRUE(s.is_ok());
  f.plan = s->schedule;
  return f;
}

RescheduleOptions deterministic(int64_t iterations = 500) {
  RescheduleOptions o;
  o.iterations = iterations;
  o.background = false;
  return o;
}

std::vector<Downtime> downs_of(const Rescheduler& rs) {
  std::vector<Downtime> v;
  for (int k = 0; k < static_cast<int>(rs.problem().resources.size()); ++k)
    for (auto [b, e] : rs.down(k)) v.push_back({k, b, e});
  return v;
}

std::vector<char> cancelled_of(const Rescheduler& rs) {
  std::vector<char> c(rs.problem().jobs.size());
  for (size_t j = 0; j < c.size(); ++j) c[j] = rs.cancelled(static_cast<int>(j));
  return c;
}

// The state after an event, as the checker needs it: the event may change running ends (overrun)
// or add a job (insertion).
ExecutionState after(const ExecutionState& st, const Event& e) {
  ExecutionState out = st;
  if (auto* o = std::get_if<Overrun>(&e)) out.ops[o->job][o->index].end = o->expected_end;
  if (auto* i = std::get_if<JobInserted>(&e)) out.ops.emplace_back(i->job.operations.size());
  return out;
}

void expect_valid(const Rescheduler& rs, const ExecutionState& st, const Event& e, int64_t now, const Schedule& s) {
  EXPECT_EQ(testing::check_rescheduled(rs.problem(), cancelled_of(rs), after(st, e), now, downs_of(rs), s), "")
      << event_name(e);
}

TEST(Reschedule, ResourceDownMovesWorkOutOfTheInterval) {
  for (bool flexible : {false, true}) {
    Fixture f = make(flexible, 3);
    Rescheduler rs(f.p, f.plan, deterministic());
    const int64_t now = f.plan.makespan / 3;
    ExecutionState st = ExecutionState::from_plan(f.p, f.plan, now);
    // The machine of some operation planned after now goes down across it.
    int victim = -1;
    for (size_t k = 0; k < f.plan.ops.size(); ++k)
      if (f.plan.ops[k].start > now) victim = static_cast<int>(k);
    ASSERT_GE(victim, 0);
    const ScheduledOp v = f.plan.ops[victim];
    Event e = ResourceDown{v.machine, now, v.end + 50};
    Result<Schedule> s = rs.on_event(now, st, e);
    ASSERT_TRUE(s.is_ok()) << s.status().to_string();
    expect_valid(rs, st, e, now, *s);
    EXPECT_EQ(rs.last_stats().makespan, s->makespan);
    EXPECT_LE(s->makespan, rs.last_stats().repaired_makespan);  // the search never makes it worse
    // Back up early: the interval ends now, and the next plan may use the machine again.
    const int64_t later = now + 5;
    ExecutionState st2 = ExecutionState::from_plan(rs.problem(), *s, later);
    Event up = ResourceUp{v.machine};
    Result<Schedule> s2 = rs.on_event(later, st2, up);
    ASSERT_TRUE(s2.is_ok());
    ASSERT_EQ(rs.down(v.machine).size(), 1u);
    EXPECT_EQ(rs.down(v.machine)[0].second, later);
    expect_valid(rs, st2, up, later, *s2);
  }
}

TEST(Reschedule, RunningOperationsStayAndOverrunsPushTheirSuccessors) {
  Fixture f = make(false, 5);
  Rescheduler rs(f.p, f.plan, deterministic());
  const int64_t now = f.plan.makespan / 2;
  ExecutionState st = ExecutionState::from_plan(f.p, f.plan, now);
  int rj = -1, ri = -1;
  for (size_t j = 0; j < st.ops.size() && rj < 0; ++j)
    for (size_t i = 0; i + 1 < st.ops[j].size(); ++i)
      if (st.ops[j][i].status == OpStatus::kRunning) {
        rj = static_cast<int>(j);
        ri = static_cast<int>(i);
        break;
      }
  ASSERT_GE(rj, 0) << "no running operation with a successor at the midpoint";
  const int64_t late = st.ops[rj][ri].end + 100;
  Event e = Overrun{rj, ri, late};
  Result<Schedule> s = rs.on_event(now, st, e);
  ASSERT_TRUE(s.is_ok()) << s.status().to_string();
  expect_valid(rs, st, e, now, *s);
  int k = s->find(rj, ri + 1);
  ASSERT_GE(k, 0);
  EXPECT_GE(s->ops[k].start, late);
  int r = s->find(rj, ri);
  EXPECT_EQ(s->ops[r].end, late);
}

TEST(Reschedule, InsertedJobIsScheduledAndCancelledJobDisappears) {
  for (bool flexible : {false, true}) {
    Fixture f = make(flexible, 7);
    Rescheduler rs(f.p, f.plan, deterministic());
    const int64_t now = f.plan.makespan / 4;
    ExecutionState st = ExecutionState::from_plan(f.p, f.plan, now);
    Job rush = f.p.jobs[2];
    rush.name = "rush";
    rush.release = now + 10;
    Event ins = JobInserted{rush};
    Result<Schedule> s = rs.on_event(now, st, ins);
    ASSERT_TRUE(s.is_ok()) << s.status().to_string();
    ASSERT_EQ(rs.problem().jobs.size(), f.p.jobs.size() + 1);
    expect_valid(rs, st, ins, now, *s);
    int first = s->find(static_cast<int>(f.p.jobs.size()), 0);
    ASSERT_GE(first, 0);
    EXPECT_GE(s->ops[first].start, now + 10);

    const int64_t later = now + 20;
    ExecutionState st2 = ExecutionState::from_plan(rs.problem(), *s, later);
    Event cancel = JobCancelled{4};
    Result<Schedule> s2 = rs.on_event(later, st2, cancel);
    ASSERT_TRUE(s2.is_ok());
    EXPECT_TRUE(rs.cancelled(4));
    expect_valid(rs, st2, cancel, later, *s2);
    EXPECT_LT(s2->find(4, static_cast<int>(f.p.jobs[4].operations.size()) - 1), 0);
  }
}

TEST(Reschedule, InterruptedOperationIsRedoneAfterTheRepair) {
  Fixture f = make(false, 9);
  Rescheduler rs(f.p, f.plan, deterministic());
  const int64_t now = f.plan.makespan / 2;
  ExecutionState st = ExecutionState::from_plan(f.p, f.plan, now);
  // A breakdown interrupts whatever runs on machine 0: the plant reports it pending again.
  for (auto& job : st.ops)
    for (auto& o : job)
      if (o.status == OpStatus::kRunning && o.machine == 0) o = OpState{};
  Event e = ResourceDown{0, now, now + 30};
  Result<Schedule> s = rs.on_event(now, st, e);
  ASSERT_TRUE(s.is_ok()) << s.status().to_string();
  expect_valid(rs, st, e, now, *s);
}

TEST(Reschedule, ManyRandomEventsInARowStayFeasible) {
  Fixture f = make(true, 13);
  Rescheduler rs(f.p, f.plan, deterministic(200));
  Schedule plan = f.plan;
  int64_t now = 0;
  uint64_t x = 99;
  auto rnd = [&](int n) {
    x = x * 6364136223846793005ull + 1442695040888963407ull;
    return static_cast<int>((x >> 33) % static_cast<uint64_t>(n));
  };
  for (int step = 0; step < 40; ++step) {
    now += 1 + rnd(std::max<int64_t>(2, plan.makespan / 30));
    ExecutionState st = ExecutionState::from_plan(rs.problem(), plan, now);
    for (size_t j = 0; j < st.ops.size(); ++j)
      if (rs.cancelled(static_cast<int>(j)))
        for (auto& o : st.ops[j]) o = OpState{};
    Event e;
    switch (rnd(5)) {
      case 0: e = ResourceDown{rnd(5), now, now + 1 + rnd(40)}; break;
      case 1: e = ResourceUp{rnd(5)}; break;
      case 2: {
        std::vector<std::pair<int, int>> running;
        for (size_t j = 0; j < st.ops.size(); ++j)
          for (size_t i = 0; i < st.ops[j].size(); ++i)
            if (st.ops[j][i].status == OpStatus::kRunning) running.push_back({static_cast<int>(j), static_cast<int>(i)});
        if (running.empty()) continue;
        auto [j, i] = running[rnd(static_cast<int>(running.size()))];
        e = Overrun{j, i, st.ops[j][i].end + 1 + rnd(20)};
        break;
      }
      case 3: {
        Job j = rs.problem().jobs[rnd(static_cast<int>(f.p.jobs.size()))];
        j.release = now;
        e = JobInserted{j};
        break;
      }
      default: e = JobCancelled{rnd(static_cast<int>(rs.problem().jobs.size()))}; break;
    }
    Result<Schedule> s = rs.on_event(now, st, e);
    ASSERT_TRUE(s.is_ok()) << event_name(e) << ": " << s.status().to_string();
    expect_valid(rs, st, e, now, *s);
    if (::testing::Test::HasFailure()) return;
    plan = *s;
  }
}

TEST(Reschedule, DeterministicWithIterations) {
  Fixture f = make(true, 17);
  const int64_t now = f.plan.makespan / 3;
  ExecutionState st = ExecutionState::from_plan(f.p, f.plan, now);
  Event e = ResourceDown{1, now, now + 40};
  Rescheduler a(f.p, f.plan, deterministic(800)), b(f.p, f.plan, deterministic(800));
  Result<Schedule> sa = a.on_event(now, st, e), sb = b.on_event(now, st, e);
  ASSERT_TRUE(sa.is_ok() && sb.is_ok());
  ASSERT_EQ(sa->ops.size(), sb->ops.size());
  for (size_t k = 0; k < sa->ops.size(); ++k) {
    EXPECT_EQ(sa->ops[k].start, sb->ops[k].start);
    EXPECT_EQ(sa->ops[k].machine, sb->ops[k].machine);
  }
}

TEST(Reschedule, BackgroundSearchOnlyEverImprovesThePlan) {
  Fixture f = make(false, 19);
  RescheduleOptions o;
  o.response_budget_ns = 5'000'000;
  o.background_limit_ns = 2'000'000'000;
  Rescheduler rs(f.p, f.plan, o);
  const int64_t now = f.plan.makespan / 4;
  ExecutionState st = ExecutionState::from_plan(f.p, f.plan, now);
  Event e = ResourceDown{2, now, now + 60};
  Result<Schedule> s = rs.on_event(now, st, e);
  ASSERT_TRUE(s.is_ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  Schedule later = rs.current();
  EXPECT_LE(later.makespan, s->makespan);
  expect_valid(rs, st, e, now, later);
  rs.stop_background();
  expect_valid(rs, st, e, now, rs.current());
}

TEST(Reschedule, BadEventsAreRejectedAndChangeNothing) {
  Fixture f = make(false, 21);
  Rescheduler rs(f.p, f.plan, deterministic());
  ExecutionState st = ExecutionState::from_plan(f.p, f.plan, 10);
  EXPECT_FALSE(rs.on_event(10, st, ResourceDown{99, 10, 20}).is_ok());
  EXPECT_FALSE(rs.on_event(10, st, ResourceDown{0, 20, 20}).is_ok());
  EXPECT_FALSE(rs.on_event(10, st, ResourceUp{-1}).is_ok());
  EXPECT_FALSE(rs.on_event(10, st, JobCancelled{1000}).is_ok());
  Job bad;
  bad.name = "empty";
  Result<Schedule> r = rs.on_event(10, st, JobInserted{bad});
  ASSERT_FALSE(r.is_ok());
  EXPECT_NE(r.status().message().find("zero operations"), std::string::npos);
  EXPECT_EQ(rs.problem().jobs.size(), f.p.jobs.size());
  // Overrun of an operation that is not running.
  Result<Schedule> o = rs.on_event(10, st, Overrun{9, 9, 1000});
  ASSERT_FALSE(o.is_ok());
  // A state of the wrong shape.
  ExecutionState wrong = st;
  wrong.ops.pop_back();
  EXPECT_FALSE(rs.on_event(10, wrong, ResourceUp{0}).is_ok());
  EXPECT_EQ(rs.current().makespan, f.plan.makespan);
}

}  // namespace
}  // namespace kiln::orchestrate
