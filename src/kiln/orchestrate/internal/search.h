// Internal: the disjunctive-graph search behind solve() and the rescheduler.
//
// A solution fixes, for every operation, one of its options (the machine) and, for every machine,
// the order of its operations. Start times follow: each operation starts as early as its job
// predecessor, its machine predecessor, its release, the machine's ready time and the machine's
// down intervals allow (a semi-active schedule). State holds a solution as doubly linked machine
// lists and computes heads r (earliest starts) and tails q (longest path after the end of an
// operation to the end of the schedule) in O(n) by a topological pass.
//
// The tabu search moves operations on the critical path: within a critical block, an operation is
// moved to the block's start or end, or the block's first/last operation is moved inside it
// (N6-style: Balas & Vazacopoulos 1998, Zhang et al. 2007), under the conditions that guarantee no
// cycle; in a flexible job shop a critical operation may also move to another eligible machine,
// at the best position of a range that provably creates no cycle. Each candidate is scored by an
// estimate of the longest path through the operations it displaces, recomputed from heads and
// tails in O(block length), so a whole neighbourhood costs about as much as one full evaluation.
// The engine keeps a small pool of elite solutions and restarts the tabu search from
// path-relinking offspring of two of them (start-time interpolation, repaired into an acyclic
// order).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <vector>

#include "kiln/core/clock.h"
#include "kiln/orchestrate/internal/flat.h"

namespace kiln::orchestrate::internal {

// xoshiro256**, seeded by splitmix64: fast, good, and the same on every platform.
class Rng {
 public:
  explicit Rng(uint64_t seed);
  uint64_t next();
  // Uniform in [0, n) for n > 0.
  int below(int n) { return static_cast<int>((next() >> 33) % static_cast<uint64_t>(n)); }
  double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }

 private:
  uint64_t s_[4];
};

// A complete solution: chosen option per operation (an index into FlatProblem::opt_*), machine
// lists (first/last per machine, mp/ms per operation), and the start times that go with them.
struct Solution {
  std::vector<int> opt, mp, ms, first, last;
  std::vector<int64_t> start;
  int64_t makespan = -1;
  bool valid() const { return makespan >= 0; }
};

class State {
 public:
  explicit State(const FlatProblem& p);

  // Loads `s` (its links and options; start times are recomputed by evaluate()).
  void load(const Solution& s);
  // Copies the current solution, with heads as start times.
  void store(Solution* s) const;
  // Builds the machine lists from per-machine sequences and per-operation options.
  void load_sequences(const std::vector<std::vector<int>>& seq, const std::vector<int>& opt);

  // Heads, tails, makespan. False when the machine orders and the jobs form a cycle (the state is
  // then not a schedule; undo the last change).
  bool evaluate();
  // One critical path (ties between operations ending at the makespan broken by `rng`).
  void find_critical_path(Rng& rng);

  // Moves `op` to option `option` (absolute index) and places it right after `after` on that
  // option's machine (-1: first). `after` must not be `op`. Heads and tails are then stale: call
  // evaluate(), or use apply() instead.
  void relocate(int op, int option, int after);

  // relocate() followed by an incremental update of the topological order (Pearce & Kelly),
  // heads, tails and makespan that touches only what the move can change. Gives exactly what
  // evaluate() would. False when the move closes a cycle: the state is then restored to what it was
  // before the call (and fully evaluated).
  bool apply(int op, int option, int after);

  const FlatProblem& P;
  std::vector<int> opt, mach;
  std::vector<int64_t> dur;
  std::vector<int> mp, ms, first, last;
  std::vector<int64_t> r, q;
  int64_t cmax = 0;
  std::vector<int> order, pos, indeg, crit;
  std::vector<int> job_last;  // operations without a job successor: the makespan is among their ends

 private:
  void unlink(int op);
  void link_after(int op, int machine, int after);
  bool fix_order(int x, int y);  // after adding arc x -> y
  int64_t head_of(int x) const;
  int64_t tail_of(int x) const;
  void update_heads(int s0, int s1, int s2);
  void update_tails(int s0, int s1, int s2);

  std::vector<char> mark_, dirty_;
  std::vector<int> stack_, fwd_, bwd_, slots_;
};

// What the search may spend, shared by everything one solve() thread does.
struct Budget {
  Deadline deadline;
  int64_t max_iterations = 0;  // tabu iterations; 0 = no limit
  const std::atomic<bool>* stop = nullptr;
  int64_t target = 0;          // stop once a makespan <= target is found (a proven lower bound)
  std::function<void(const Solution&)> on_best;  // every new overall best of this thread

  int64_t iterations = 0;
  bool exhausted() {
    if (max_iterations > 0 && iterations >= max_iterations) return true;
    if ((++checks_ & 63) != 0) return out_;
    out_ = deadline.expired() || (stop != nullptr && stop->load(std::memory_order_relaxed));
    return out_;
  }
  // Forces the next exhausted() to look at the clock (after a long step).
  void recheck() { checks_ = 63; }

 private:
  uint32_t checks_ = 0;
  bool out_ = false;
};

// Constructive schedules (Giffler & Thompson): at each step the machine where some ready
// operation could finish first (active) or start first (non-delay) is chosen, and among the
// operations competing for it the priority rule picks one (ties at random).
enum class Rule { kMostWorkRemaining, kShortestProcessingTime, kMostOperationsRemaining, kEarliestStart, kRandom };
enum class Generation { kActive, kNonDelay };
Solution construct(const FlatProblem& p, Rule rule, Generation gen, Rng& rng);

// Machine orders `seq` (with options `opt`) turned into an acyclic solution that keeps every order
// that does not take part in a cycle; where the orders deadlock, the ready operation with the
// smallest `key` goes first. Start times are not computed.
Solution repair(const FlatProblem& p, const std::vector<std::vector<int>>& seq, const std::vector<int>& opt,
                const std::vector<double>& key);

// A solution between a and b: each operation takes b's machine with probability lambda, and each
// machine orders its operations by (1 - lambda) * start in a + lambda * start in b; then repaired.
Solution relink(const FlatProblem& p, const Solution& a, const Solution& b, double lambda, Rng& rng);

struct TabuParams {
  int64_t max_no_improve = 5000;  // iterations without a new best before the run ends
  int tenure_min = 10, tenure_max = 14;
};
TabuParams default_tabu_params(const FlatProblem& p);

// Tabu search from the state's current (evaluated) solution; returns the best solution it saw.
// Calls budget.on_best when that beats `*global_best` (and updates it).
Solution tabu_search(State& st, const TabuParams& params, Rng& rng, Budget& budget, int64_t* global_best);

struct EngineParams {
  int pool_size = 8;            // elite solutions kept
  int64_t init_no_improve = 5000;  // tabu runs that build the pool
  TabuParams tabu;              // tabu runs from relinked offspring
  double lambda_min = 0.3, lambda_span = 0.4;  // how far towards the guiding parent offspring lie
};
EngineParams default_engine_params(const FlatProblem& p);

// The whole search: an elite pool built by constructive schedules (and `initial`, when given)
// improved by tabu search, then tabu search from path-relinking offspring until the budget ends.
Solution run_search(const FlatProblem& p, const EngineParams& params, uint64_t seed, Budget& budget,
                    const Solution* initial);

}  // namespace kiln::orchestrate::internal
