// The independent checkers must be able to fail: every kind of violation they exist to catch is
// planted by hand in a schedule written here (not produced by the solver) and must be reported.
#include "kiln/orchestrate/testing/feasibility.h"

#include <gtest/gtest.h>

#include <functional>

namespace kiln::orchestrate::testing {
namespace {

// Two machines, two jobs; job 1 may use either machine for its first operation, and starts at 2.
//   job 0: (m0, 3) -> (m1, 2)
//   job 1: (m1, 4 | m0, 5) -> (m0, 1)
Problem tiny() {
  Problem p;
  p.add_resource("m0");
  p.add_resource("m1");
  Job& a = p.add_job("a");
  a.operations.push_back({{{0, 3}}});
  a.operations.push_back({{{1, 2}}});
  Job& b = p.add_job("b", 2);
  b.operations.push_back({{{1, 4}, {0, 5}}});
  b.operations.push_back({{{0, 1}}});
  return p;
}

// A feasible schedule for tiny(), written by hand: makespan 10.
Schedule good() {
  Schedule s;
  s.ops = {{0, 0, 0, 0, 3}, {0, 1, 1, 3, 5}, {1, 0, 1, 5, 9}, {1, 1, 0, 9, 10}};
  s.makespan = 10;
  return s;
}

std::string broken(const std::function<void(Schedule&)>& edit) {
  Schedule s = good();
  edit(s);
  return check_feasible(tiny(), s);
}

void expect_mentions(const std::string& why, const std::string& fragment) {
  EXPECT_NE(why.find(fragment), std::string::npos) << "got '" << why << "', expected it to mention '" << fragment
                                                   << "'";
}

TEST(FeasibilityChecker, AcceptsAHandWrittenFeasibleSchedule) {
  EXPECT_EQ(check_feasible(tiny(), good()), "");
  // The flexible operation on its other machine, in any order of entries.
  Schedule s = good();
  s.ops[2] = {1, 0, 0, 3, 8};
  s.ops[3] = {1, 1, 0, 8, 9};
  s.makespan = 9;
  std::swap(s.ops[0], s.ops[3]);
  EXPECT_EQ(check_feasible(tiny(), s), "");
}

TEST(FeasibilityChecker, CatchesEachKindOfViolation) {
  expect_mentions(broken([](Schedule& s) { s.ops.pop_back(); }), "missing");
  expect_mentions(broken([](Schedule& s) { s.ops.push_back(s.ops[1]); }), "twice");
  expect_mentions(broken([](Schedule& s) { s.ops.push_back({2, 0, 0, 0, 1}); }), "unknown");
  expect_mentions(broken([](Schedule& s) { s.ops.push_back({0, 2, 0, 0, 1}); }), "unknown");
  expect_mentions(broken([](Schedule& s) { s.ops[1].machine = 0; }), "ineligible");
  expect_mentions(broken([](Schedule& s) { s.ops[0].end = 4; }), "duration");
  // Job 1's flexible operation on machine 0 with machine 1's duration.
  expect_mentions(broken([](Schedule& s) { s.ops[2] = {1, 0, 0, 10, 14}; }), "duration");
  expect_mentions(broken([](Schedule& s) {  // before the release at 2
    s.ops[2] = {1, 0, 1, 1, 5};
  }),
                  "release");
  expect_mentions(broken([](Schedule& s) {  // before its job predecessor ends at 3
    s.ops[1] = {0, 1, 1, 2, 4};
  }),
                  "predecessor");
  expect_mentions(broken([](Schedule& s) {  // overlaps job 0's second operation on m1 (3..5)
    s.ops[2] = {1, 0, 1, 4, 8};
    s.ops[3] = {1, 1, 0, 8, 9};
    s.makespan = 9;
  }),
                  "overlap");
  expect_mentions(broken([](Schedule& s) { s.makespan = 9; }), "makespan");
  expect_mentions(broken([](Schedule& s) { s.makespan = 11; }), "makespan");
}

TEST(FeasibilityChecker, TouchingAndZeroLengthOperationsDoNotOverlap) {
  Problem p;
  p.add_resource("m");
  p.add_job("a").operations.push_back({{{0, 4}}});
  p.add_job("b").operations.push_back({{{0, 0}}});
  p.add_job("c").operations.push_back({{{0, 2}}});
  Schedule s;
  s.ops = {{0, 0, 0, 0, 4}, {1, 0, 0, 2, 2}, {2, 0, 0, 4, 6}};
  s.makespan = 6;
  EXPECT_EQ(check_feasible(p, s), "");
  s.ops[2] = {2, 0, 0, 3, 5};
  s.makespan = 5;
  expect_mentions(check_feasible(p, s), "overlap");
}

TEST(FeasibilityChecker, RescheduledPlansKeepWhatStartedAndAvoidDowntime) {
  const Problem p = tiny();
  // At time 4: job 0's first operation is done, job 0's second is running on m1 until 5.
  ExecutionState st;
  st.ops = {{{OpStatus::kDone, 0, 0, 3}, {OpStatus::kRunning, 1, 3, 5}}, {{}, {}}};
  const int64_t now = 4;
  const std::vector<char> none(2, 0);
  EXPECT_EQ(check_rescheduled(p, none, st, now, {}, good()), "");
  // m0 down over [4, 8): job 1 on m1 from 5, then m0 from 9 is fine; m0 at 4..9 is not.
  const std::vector<Downtime> down = {{0, 4, 8}};
  EXPECT_EQ(check_rescheduled(p, none, st, now, down, good()), "");
  Schedule on_m0 = good();
  on_m0.ops[2] = {1, 0, 0, 4, 9};
  on_m0.ops[3] = {1, 1, 0, 9, 10};
  EXPECT_EQ(check_rescheduled(p, none, st, now, {}, on_m0), "");
  expect_mentions(check_rescheduled(p, none, st, now, down, on_m0), "down");

  Schedule moved = good();  // the running operation may not move
  moved.ops[1] = {0, 1, 1, 4, 6};
  expect_mentions(check_rescheduled(p, none, st, now, {}, moved), "started");
  Schedule past = good();  // pending work may not start before now
  past.ops[2] = {1, 0, 0, 3, 8};
  past.ops[3] = {1, 1, 0, 8, 9};
  past.makespan = 9;
  expect_mentions(check_rescheduled(p, none, st, now, {}, past), "past");

  // Job 1 cancelled: its operations must be gone; without them the plan is fine.
  const std::vector<char> cancel_b = {0, 1};
  expect_mentions(check_rescheduled(p, cancel_b, st, now, {}, good()), "cancelled");
  Schedule without_b = good();
  without_b.ops.resize(2);
  without_b.makespan = 5;
  EXPECT_EQ(check_rescheduled(p, cancel_b, st, now, {}, without_b), "");
  expect_mentions(check_rescheduled(p, none, st, now, {}, without_b), "missing");
}

TEST(FeasibilityChecker, RealisedRunsRespectOutagesAndPrecedence) {
  const Problem p = tiny();
  Schedule ran = good();
  ran.ops[3].end = 11;  // noisy durations are allowed
  ran.makespan = 11;
  EXPECT_EQ(check_realised(p, {}, ran), "");
  expect_mentions(check_realised(p, {{1, 4, 5}}, ran), "outage");  // m1 runs (0,1) over 3..5
  Schedule early = ran;
  early.ops[3] = {1, 1, 0, 7, 8};  // before its predecessor (5..9) ended
  expect_mentions(check_realised(p, {}, early), "predecessor");
}

}  // namespace
}  // namespace kiln::orchestrate::testing
