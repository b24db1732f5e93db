// Test support: an independent feasibility checker and random instances.
//
// The checker shares no code with the solver or with verify_schedule(): it is written the slow,
// obvious way (every pair of operations on a resource is compared) so that a bug in the fast code
// cannot hide itself. Every schedule a test gets from Kiln goes through it.
//
//   std::string why = check_feasible(problem, schedule);   // "" when feasible
//   EXPECT_EQ(why, "");
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "kiln/orchestrate/model.h"
#include "kiln/orchestrate/reschedule.h"
#include "kiln/orchestrate/schedule.h"

namespace kiln::orchestrate::testing {

// Every operation of every job exactly once, on an eligible resource, for exactly its duration,
// not before its job's release, after its job predecessor, no two on one resource at once, and
// the makespan equal to the latest end. Returns "" or the first problem found.
std::string check_feasible(const Problem& p, const Schedule& s);

struct Downtime {
  int resource;
  int64_t begin, end;
};

// For a rescheduled plan: operations that had started (state: running / done) appear exactly as
// in the state; every other operation of a job that is not cancelled appears with its nominal
// duration, on an eligible resource, starting at or after `now`, after its job predecessor, not
// during any downtime of its resource; cancelled jobs' operations that had not started do not
// appear; no two operations on one resource overlap.
std::string check_rescheduled(const Problem& p, const std::vector<char>& cancelled, const ExecutionState& state,
                              int64_t now, const std::vector<Downtime>& down, const Schedule& s);

// What a dispatcher run realised: precedence and capacity with the actual times, and no operation
// overlapping an outage of its resource. Durations are not checked (they are noisy).
std::string check_realised(const Problem& p, const std::vector<Downtime>& outages, const Schedule& s);

// Random instances (deterministic in the seed): durations in [lo, hi].
Problem random_jobshop(int jobs, int machines, uint64_t seed, int64_t lo = 1, int64_t hi = 99);
// Each operation has 1..max_options eligible machines with durations in [lo, hi]; jobs have
// between machines/2 and machines operations.
Problem random_flexible(int jobs, int machines, int max_options, uint64_t seed, int64_t lo = 1, int64_t hi = 20);

// Fisher & Thompson's 6x6 instance (optimum 55), in the standard text format.
extern const char* const kFt06;

}  // namespace kiln::orchestrate::testing
