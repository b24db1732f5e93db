#include "kiln/orchestrate/dispatcher.h"

#include <gtest/gtest.h>

#include "kiln/orchestrate/solver.h"
#include "kiln/orchestrate/testing/feasibility.h"

namespace kiln::orchestrate {
namespace {

Schedule plan_for(const Problem& p) {
  SolveOptions o;
  o.time_limit_seconds = 0;
  o.max_iterations = 3000;
  Result<Solution> s = solve(p, o);
  EXPECT_TRUE(s.is_ok());
  return s->schedule;
}

std::vector<testing::Downtime> outages(const DispatchReport& r) {
  std::vector<testing::Downtime> v;
  for (const auto& o : r.outages) v.push_back({o.resource, o.begin, o.end});
  return v;
}

TEST(Dispatcher, WithoutDisturbancesThePlanIsWhatRuns) {
  Problem p = testing::random_jobshop(8, 4, 1);
  Schedule plan = plan_for(p);
  DispatchOptions o;
  o.breakdowns_per_resource = 0;
  o.duration_noise = 0;
  SimulatedClock clock;
  Result<DispatchReport> r = dispatch(p, plan, o, clock);
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_EQ(r->realised_makespan, plan.makespan);
  EXPECT_EQ(r->reschedules, 0);
  EXPECT_EQ(testing::check_feasible(p, r->realised), "");
  // The simulated clock ran to the end of the plan: one schedule unit is one simulated second.
  EXPECT_EQ(clock.now_ns(), plan.makespan * 1'000'000'000);
}

TEST(Dispatcher, BreakdownsNoiseRushOrdersAndCancellations) {
  for (bool flexible : {false, true}) {
    Problem p = flexible ? testing::random_flexible(10, 5, 3, 4) : testing::random_jobshop(10, 5, 4);
    Schedule plan = plan_for(p);
    DispatchOptions o;
    o.seed = 3;
    o.breakdowns_per_resource = 2;
    o.duration_noise = 0.2;
    o.rush_orders = 2;
    o.cancellations = 1;
    o.rescheduler.iterations = 300;
    SimulatedClock clock;
    Result<DispatchReport> r = dispatch(p, plan, o, clock);
    ASSERT_TRUE(r.is_ok()) << r.status().to_string();
    EXPECT_GT(r->breakdowns, 0);
    EXPECT_GT(r->reschedules, 0);
    EXPECT_EQ(static_cast<int>(r->response_ms.size()), r->reschedules);
    EXPECT_EQ(r->final_problem.jobs.size(), p.jobs.size() + static_cast<size_t>(r->rush_orders));
    EXPECT_EQ(testing::check_realised(r->final_problem, outages(*r), r->realised), "");
    // Every job that was not cancelled ran to the end.
    for (size_t j = 0; j < r->final_problem.jobs.size(); ++j) {
      if (r->cancelled[j]) continue;
      EXPECT_GE(r->realised.find(static_cast<int>(j), static_cast<int>(r->final_problem.jobs[j].operations.size()) - 1), 0);
    }
    // The same plant without rescheduling (the plan's orders, shifted right) also completes.
    DispatchOptions shift = o;
    shift.reschedule = false;
    SimulatedClock clock2;
    Result<DispatchReport> rs = dispatch(p, plan, shift, clock2);
    ASSERT_TRUE(rs.is_ok()) << rs.status().to_string();
    // Both runs face the same plant: the first breakdown happens at the same time, on the same
    // resource, for the same length.
    ASSERT_FALSE(rs->outages.empty());
    EXPECT_EQ(rs->outages[0].resource, r->outages[0].resource);
    EXPECT_EQ(rs->outages[0].begin, r->outages[0].begin);
    EXPECT_EQ(rs->outages[0].end, r->outages[0].end);
    EXPECT_EQ(testing::check_realised(rs->final_problem, outages(*rs), rs->realised), "");
  }
}

TEST(Dispatcher, SameSeedSameRun) {
  Problem p = testing::random_jobshop(8, 5, 6);
  Schedule plan = plan_for(p);
  DispatchOptions o;
  o.seed = 11;
  o.breakdowns_per_resource = 1.5;
  o.rescheduler.iterations = 200;
  SimulatedClock c1, c2;
  Result<DispatchReport> a = dispatch(p, plan, o, c1), b = dispatch(p, plan, o, c2);
  ASSERT_TRUE(a.is_ok() && b.is_ok());
  EXPECT_EQ(a->realised_makespan, b->realised_makespan);
  EXPECT_EQ(a->breakdowns, b->breakdowns);
  ASSERT_EQ(a->realised.ops.size(), b->realised.ops.size());
  for (size_t k = 0; k < a->realised.ops.size(); ++k) EXPECT_EQ(a->realised.ops[k].start, b->realised.ops[k].start);
}

TEST(Dispatcher, RejectsAnInfeasiblePlan) {
  Problem p = testing::random_jobshop(4, 3, 2);
  Schedule plan = plan_for(p);
  plan.ops[0].end += 1;
  SimulatedClock clock;
  Result<DispatchReport> r = dispatch(p, plan, DispatchOptions{}, clock);
  ASSERT_FALSE(r.is_ok());
  EXPECT_NE(r.status().message().find("plan"), std::string::npos);
}

}  // namespace
}  // namespace kiln::orchestrate
