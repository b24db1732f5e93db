#include "kiln/orchestrate/solver.h"

#include <gtest/gtest.h>

#include "kiln/orchestrate/formats.h"
#include "kiln/orchestrate/testing/feasibility.h"

namespace kiln::orchestrate {
namespace {

Problem ft06() {
  Result<Problem> p = parse_instance(testing::kFt06, InstanceFormat::kJobShop, "ft06");
  EXPECT_TRUE(p.is_ok());
  return *p;
}

SolveOptions by_iterations(int64_t n, uint64_t seed = 1) {
  SolveOptions o;
  o.time_limit_seconds = 0;
  o.max_iterations = n;
  o.seed = seed;
  return o;
}

TEST(Solver, FindsTheOptimumOfFt06AndStopsAtTheBoundItProves) {
  Problem p = ft06();
  Result<Solution> s = solve(p, by_iterations(50000));
  ASSERT_TRUE(s.is_ok()) << s.status().to_string();
  EXPECT_EQ(s->schedule.makespan, 55);
  EXPECT_EQ(testing::check_feasible(p, s->schedule), "");
  // A problem whose bound is tight stops early: one machine, everything in a row.
  Problem line;
  line.add_resource("only");
  for (int j = 0; j < 5; ++j) line.add_job("j" + std::to_string(j)).operations.push_back({{{0, 3 + j}}});
  Result<Solution> l = solve(line, by_iterations(1000000));
  ASSERT_TRUE(l.is_ok());
  EXPECT_EQ(l->schedule.makespan, 3 + 4 + 5 + 6 + 7);
  EXPECT_EQ(l->lower_bound, l->schedule.makespan);
  EXPECT_LT(l->iterations, 1000000);
}

TEST(Solver, SchedulesAreFeasibleOnRandomJobShopsAndFlexibleShops) {
  for (uint64_t seed = 1; seed <= 4; ++seed) {
    Problem js = testing::random_jobshop(10, 5, seed);
    Result<Solution> a = solve(js, by_iterations(3000, seed));
    ASSERT_TRUE(a.is_ok());
    EXPECT_EQ(testing::check_feasible(js, a->schedule), "");
    EXPECT_GE(a->schedule.makespan, a->lower_bound);
    EXPECT_TRUE(verify_schedule(js, a->schedule).is_ok());

    Problem fj = testing::random_flexible(10, 5, 3, seed);
    Result<Solution> b = solve(fj, by_iterations(3000, seed));
    ASSERT_TRUE(b.is_ok());
    EXPECT_EQ(testing::check_feasible(fj, b->schedule), "");
    EXPECT_GE(b->schedule.makespan, b->lower_bound);
  }
}

TEST(Solver, RespectsReleasesAndZeroDurations) {
  Problem p = testing::random_jobshop(8, 4, 11);
  for (size_t j = 0; j < p.jobs.size(); ++j) p.jobs[j].release = static_cast<int64_t>(j) * 37;
  p.jobs[2].operations[1].options[0].duration = 0;
  p.jobs[5].operations[0].options[0].duration = 0;
  Result<Solution> s = solve(p, by_iterations(5000));
  ASSERT_TRUE(s.is_ok());
  EXPECT_EQ(testing::check_feasible(p, s->schedule), "");
}

TEST(Solver, SearchImprovesOnTheConstructiveSchedule) {
  Problem p = testing::random_jobshop(15, 10, 3);
  Result<Schedule> greedy = dispatch_schedule(p, DispatchRule::kMostWorkRemaining, Generation::kActive);
  ASSERT_TRUE(greedy.is_ok());
  EXPECT_EQ(testing::check_feasible(p, *greedy), "");
  Result<Solution> s = solve(p, by_iterations(20000));
  ASSERT_TRUE(s.is_ok());
  EXPECT_LT(s->schedule.makespan, greedy->makespan);
}

TEST(Solver, SameSeedSameSchedule) {
  Problem p = testing::random_flexible(12, 6, 3, 2);
  Result<Solution> a = solve(p, by_iterations(4000, 7));
  Result<Solution> b = solve(p, by_iterations(4000, 7));
  ASSERT_TRUE(a.is_ok() && b.is_ok());
  ASSERT_EQ(a->schedule.ops.size(), b->schedule.ops.size());
  for (size_t k = 0; k < a->schedule.ops.size(); ++k) {
    EXPECT_EQ(a->schedule.ops[k].machine, b->schedule.ops[k].machine);
    EXPECT_EQ(a->schedule.ops[k].start, b->schedule.ops[k].start);
  }
}

TEST(Solver, ThreadsSearchIndependentlyAndTheBestWins) {
  Problem p = testing::random_jobshop(10, 6, 5);
  SolveOptions o = by_iterations(3000, 3);
  o.threads = 3;
  Result<Solution> m = solve(p, o);
  ASSERT_TRUE(m.is_ok());
  EXPECT_EQ(testing::check_feasible(p, m->schedule), "");
  // Thread t uses seed + t: the best of three is at least as good as seed 3 alone.
  Result<Solution> one = solve(p, by_iterations(3000, 3));
  ASSERT_TRUE(one.is_ok());
  EXPECT_LE(m->schedule.makespan, one->schedule.makespan);
  EXPECT_GT(m->iterations, one->iterations);
}

TEST(Solver, TimeLimitOnASimulatedClockAndProgress) {
  // A clock that never moves: the stop flag ends the search, progress is reported each time.
  Problem p = testing::random_jobshop(8, 5, 9);
  SimulatedClock frozen;
  std::atomic<bool> stop{false};
  SolveOptions o;
  o.time_limit_seconds = 1;
  o.clock = &frozen;
  o.stop = &stop;
  int64_t last = INT64_MAX;
  int calls = 0;
  o.on_progress = [&](const Progress& pr) {
    EXPECT_LT(pr.makespan, last);  // strictly improving
    last = pr.makespan;
    if (++calls >= 3) stop = true;
  };
  o.max_iterations = 200000;
  Result<Solution> s = solve(p, o);
  ASSERT_TRUE(s.is_ok());
  EXPECT_GE(calls, 1);
  EXPECT_EQ(s->schedule.makespan, last);
  EXPECT_EQ(s->seconds, 0.0);  // the frozen clock says no time passed
}

TEST(Solver, RejectsInvalidProblemsAndOptions) {
  Problem empty;
  EXPECT_FALSE(solve(empty, by_iterations(10)).is_ok());
  Problem p = ft06();
  p.jobs[1].operations[2].options.clear();
  Result<Solution> r = solve(p, by_iterations(10));
  ASSERT_FALSE(r.is_ok());
  EXPECT_NE(r.status().message().find("job 1"), std::string::npos);
  EXPECT_NE(r.status().message().find("no eligible resource"), std::string::npos);
  Problem q = ft06();
  SolveOptions never;
  never.time_limit_seconds = 0;
  EXPECT_FALSE(solve(q, never).is_ok());
  SolveOptions threads = by_iterations(10);
  threads.threads = 0;
  EXPECT_FALSE(solve(q, threads).is_ok());
}

TEST(Schedule, VerifyCatchesEachKindOfViolation) {
  Problem p = ft06();
  Result<Solution> s = solve(p, by_iterations(2000));
  ASSERT_TRUE(s.is_ok());
  const Schedule good = s->schedule;
  ASSERT_TRUE(verify_schedule(p, good).is_ok());
  auto broken = [&](auto edit) {
    Schedule b = good;
    edit(b);
    return verify_schedule(p, b);
  };
  EXPECT_FALSE(broken([](Schedule& b) { b.ops.pop_back(); }).is_ok());                           // missing
  EXPECT_FALSE(broken([](Schedule& b) { b.ops.push_back(b.ops[0]); }).is_ok());                  // twice
  EXPECT_FALSE(broken([](Schedule& b) { b.ops[0].end += 1; }).is_ok());                          // duration
  EXPECT_FALSE(broken([](Schedule& b) { b.ops[0].machine = (b.ops[0].machine + 1) % 6; }).is_ok());  // ineligible
  EXPECT_FALSE(broken([](Schedule& b) { b.makespan += 1; }).is_ok());                            // makespan
  EXPECT_FALSE(broken([](Schedule& b) {                                                          // precedence
    b.ops[1].start = b.ops[0].start;
    b.ops[1].end = b.ops[1].start + 8;
  }).is_ok());
  // Capacity: the test checker and verify_schedule agree on a schedule that stacks everything at 0.
  Schedule stacked = good;
  for (auto& o : stacked.ops) {
    int64_t d = o.end - o.start;
    o.start = 0;
    o.end = d;
  }
  stacked.normalize();
  EXPECT_FALSE(verify_schedule(p, stacked).is_ok());
  EXPECT_NE(testing::check_feasible(p, stacked), "");
}

TEST(Schedule, CriticalPathExplainsTheMakespan) {
  Problem p = ft06();
  Result<Solution> s = solve(p, by_iterations(20000));
  ASSERT_TRUE(s.is_ok());
  std::vector<int> c = critical_path(p, s->schedule);
  ASSERT_FALSE(c.empty());
  const auto& ops = s->schedule.ops;
  EXPECT_EQ(ops[c.back()].end, s->schedule.makespan);
  EXPECT_EQ(ops[c.front()].start, 0);
  for (size_t i = 1; i < c.size(); ++i) EXPECT_EQ(ops[c[i]].start, ops[c[i - 1]].end);
}

}  // namespace
}  // namespace kiln::orchestrate
