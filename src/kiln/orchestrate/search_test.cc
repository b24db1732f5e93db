// The search's fast paths against slow, obvious references: heads and tails against a fixed-point
// longest-path computation, incremental updates against full evaluation, and the move conditions
// against an explicit cycle check.
#include "kiln/orchestrate/internal/search.h"

#include <gtest/gtest.h>

#include <algorithm>

#include "kiln/orchestrate/internal/flat.h"
#include "kiln/orchestrate/testing/feasibility.h"

namespace kiln::orchestrate::internal {
namespace {

// Longest paths by relaxing every arc until nothing changes (Bellman-Ford on a DAG): obviously
// right, O(n^2) in the worst case.
void reference_heads_tails(const State& s, std::vector<int64_t>* r, std::vector<int64_t>* q, int64_t* cmax) {
  const FlatProblem& P = s.P;
  r->assign(P.n, 0);
  q->assign(P.n, 0);
  for (bool changed = true; changed;) {
    changed = false;
    for (int x = 0; x < P.n; ++x) {
      int64_t h = std::max(P.release[x], s.mp[x] >= 0 ? (*r)[s.mp[x]] + s.dur[s.mp[x]] : P.machine_ready[s.mach[x]]);
      if (P.jp[x] >= 0) h = std::max(h, (*r)[P.jp[x]] + s.dur[P.jp[x]]);
      if (P.has_down[s.mach[x]]) h = earliest_fit(P.down[s.mach[x]], h, s.dur[x]);
      if (h != (*r)[x]) {
        (*r)[x] = h;
        changed = true;
      }
      int64_t t = 0;
      if (P.js[x] >= 0) t = std::max(t, (*q)[P.js[x]] + s.dur[P.js[x]]);
      if (s.ms[x] >= 0) t = std::max(t, (*q)[s.ms[x]] + s.dur[s.ms[x]]);
      if (t != (*q)[x]) {
        (*q)[x] = t;
        changed = true;
      }
    }
  }
  *cmax = 0;
  for (int x = 0; x < P.n; ++x) *cmax = std::max(*cmax, (*r)[x] + s.dur[x]);
}

void expect_matches_reference(const State& s) {
  std::vector<int64_t> r, q;
  int64_t cmax = 0;
  reference_heads_tails(s, &r, &q, &cmax);
  ASSERT_EQ(s.cmax, cmax);
  for (int x = 0; x < s.P.n; ++x) {
    ASSERT_EQ(s.r[x], r[x]) << "head of " << x;
    ASSERT_EQ(s.q[x], q[x]) << "tail of " << x;
  }
  for (int i = 0; i < s.P.n; ++i) ASSERT_EQ(s.pos[s.order[i]], i);
  for (int x = 0; x < s.P.n; ++x) {  // the order is topological
    if (s.P.jp[x] >= 0) {
      ASSERT_LT(s.pos[s.P.jp[x]], s.pos[x]);
    }
    if (s.mp[x] >= 0) {
      ASSERT_LT(s.pos[s.mp[x]], s.pos[x]);
    }
  }
}

FlatProblem with_releases_and_downtime(const Problem& p, uint64_t seed) {
  FlatProblem f = flatten(p);
  Rng rng(seed);
  for (int o = 0; o < f.n; ++o)
    if (f.jp[o] < 0) f.release[o] = rng.below(30);
  for (int k = 0; k < f.m; ++k) {
    f.machine_ready[k] = rng.below(10);
    if (rng.below(2)) f.down[k].push_back({40 + rng.below(40), 90 + rng.below(40)});
  }
  f.finish();
  return f;
}

TEST(Search, EvaluationMatchesTheReference) {
  for (uint64_t seed = 1; seed <= 6; ++seed) {
    Problem p = seed % 2 ? testing::random_jobshop(6, 4, seed) : testing::random_flexible(6, 4, 3, seed);
    FlatProblem f = seed % 3 ? with_releases_and_downtime(p, seed) : flatten(p);
    Rng rng(seed);
    Solution s = construct(f, Rule::kRandom, Generation::kActive, rng);
    State st(f);
    st.load(s);
    ASSERT_TRUE(st.evaluate());
    expect_matches_reference(st);
  }
}

TEST(Search, IncrementalMovesMatchFullEvaluation) {
  // Random relocations (any operation, any option, any position), each applied incrementally and
  // compared with the reference; moves that close a cycle must be refused and leave the state
  // exactly as it was.
  for (uint64_t seed = 1; seed <= 8; ++seed) {
    Problem p = seed % 2 ? testing::random_jobshop(7, 5, seed) : testing::random_flexible(7, 5, 3, seed);
    if (seed == 4) p.jobs[0].operations[0].options[0].duration = 0;  // zero-length operations too
    FlatProblem f = seed % 4 == 1 ? with_releases_and_downtime(p, seed) : flatten(p);
    Rng rng(seed * 11);
    Solution s = construct(f, Rule::kMostWorkRemaining, Generation::kNonDelay, rng);
    State st(f);
    st.load(s);
    ASSERT_TRUE(st.evaluate());
    int refused = 0;
    for (int step = 0; step < 300; ++step) {
      const int op = rng.below(f.n);
      const int option = f.opt_begin[op] + rng.below(f.num_options(op));
      const int k = f.opt_machine[option];
      std::vector<int> on;
      for (int x = st.first[k]; x >= 0; x = st.ms[x])
        if (x != op) on.push_back(x);
      const int at = rng.below(static_cast<int>(on.size()) + 1);
      const int after = at == 0 ? -1 : on[at - 1];
      if (after == st.mp[op] && option == st.opt[op]) continue;
      Solution before;
      st.store(&before);
      if (st.apply(op, option, after)) {
        expect_matches_reference(st);
      } else {
        ++refused;
        EXPECT_EQ(st.mp, before.mp);
        EXPECT_EQ(st.ms, before.ms);
        EXPECT_EQ(st.opt, before.opt);
        EXPECT_EQ(st.cmax, before.makespan);
        // A refused move really closes a cycle: a full evaluation of it fails too.
        State check(f);
        check.load(before);
        check.relocate(op, option, after);
        EXPECT_FALSE(check.evaluate());
      }
      if (::testing::Test::HasFatalFailure()) return;
    }
    EXPECT_LT(refused, 300);
  }
}

TEST(Search, ConstructiveSchedulesAreFeasible) {
  const Rule rules[] = {Rule::kMostWorkRemaining, Rule::kShortestProcessingTime, Rule::kMostOperationsRemaining,
                        Rule::kEarliestStart, Rule::kRandom};
  for (uint64_t seed = 1; seed <= 3; ++seed)
    for (Rule rule : rules)
      for (Generation gen : {Generation::kActive, Generation::kNonDelay}) {
        Problem p = seed == 2 ? testing::random_flexible(8, 4, 3, seed) : testing::random_jobshop(8, 4, seed);
        FlatProblem f = flatten(p);
        Rng rng(seed);
        Solution s = construct(f, rule, gen, rng);
        Schedule sc;
        for (int o = 0; o < f.n; ++o)
          sc.ops.push_back({f.src_job[o], f.src_index[o], f.opt_machine[s.opt[o]], s.start[o], s.start[o] + f.opt_dur[s.opt[o]]});
        sc.normalize();
        EXPECT_EQ(sc.makespan, s.makespan);
        EXPECT_EQ(testing::check_feasible(p, sc), "");
      }
}

TEST(Search, RepairKeepsAcyclicOrdersAndBreaksCycles) {
  Problem p = testing::random_jobshop(6, 4, 3);
  FlatProblem f = flatten(p);
  Rng rng(3);
  Solution s = construct(f, Rule::kMostWorkRemaining, Generation::kActive, rng);
  // Orders read back from the solution are acyclic: repair must keep them exactly.
  std::vector<std::vector<int>> seq(f.m);
  for (int k = 0; k < f.m; ++k)
    for (int x = s.first[k]; x >= 0; x = s.ms[x]) seq[k].push_back(x);
  std::vector<double> key(f.n, 0);
  Solution r = repair(f, seq, s.opt, key);
  EXPECT_EQ(r.ms, s.ms);
  EXPECT_EQ(r.first, s.first);
  // Reversed orders usually contain cycles with the jobs; the repair still yields a schedule.
  for (auto& q : seq) std::reverse(q.begin(), q.end());
  for (int o = 0; o < f.n; ++o) key[o] = static_cast<double>(s.start[o]);
  Solution r2 = repair(f, seq, s.opt, key);
  State st(f);
  st.load(r2);
  EXPECT_TRUE(st.evaluate());
}

TEST(Search, TabuSearchReachesTheOptimumOfFt06) {
  // ft06 through the public parser lives in solver_test; here the engine alone.
  Problem ft;
  {
    const int data[6][12] = {{2, 1, 0, 3, 1, 6, 3, 7, 5, 3, 4, 6}, {1, 8, 2, 5, 4, 10, 5, 10, 0, 10, 3, 4},
                             {2, 5, 3, 4, 5, 8, 0, 9, 1, 1, 4, 7},   {1, 5, 0, 5, 2, 5, 3, 3, 4, 8, 5, 9},
                             {2, 9, 1, 3, 4, 5, 5, 4, 0, 3, 3, 1},   {1, 3, 3, 3, 5, 9, 0, 10, 4, 4, 2, 1}};
    for (int k = 0; k < 6; ++k) ft.add_resource("m" + std::to_string(k));
    for (int j = 0; j < 6; ++j) {
      Job& job = ft.add_job("j" + std::to_string(j));
      for (int i = 0; i < 6; ++i) job.operations.push_back({{{data[j][2 * i], data[j][2 * i + 1]}}});
    }
  }
  FlatProblem f = flatten(ft);
  Budget b;
  b.max_iterations = 20000;
  b.target = 55;
  Solution s = run_search(f, default_engine_params(f), 1, b, nullptr);
  EXPECT_EQ(s.makespan, 55);
}

}  // namespace
}  // namespace kiln::orchestrate::internal
