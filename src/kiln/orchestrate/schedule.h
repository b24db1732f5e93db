// kiln/orchestrate/schedule.h — a schedule (when and where each operation runs), its checks, and
// its critical path.
//
//   Schedule s = solution.schedule;                 // from solve() or the rescheduler
//   KILN_RETURN_IF_ERROR(verify_schedule(problem, s));  // precedence, capacity, durations, releases
//   for (int k : critical_path(problem, s)) ...      // indices into s.ops, in time order
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "kiln/core/status.h"
#include "kiln/orchestrate/model.h"

namespace kiln::orchestrate {

struct ScheduledOp {
  int job = 0;
  int index = 0;    // position of the operation in its job
  int machine = 0;  // the resource it runs on (0-based)
  int64_t start = 0;
  int64_t end = 0;
};

struct Schedule {
  std::vector<ScheduledOp> ops;  // sorted by (job, index) unless said otherwise
  int64_t makespan = 0;          // latest end (0 for an empty schedule)

  // Sorts by (job, index) and recomputes the makespan.
  void normalize();
  // Index into `ops` of operation (job, index), or -1.
  int find(int job, int index) const;
};

// Checks that `s` schedules every operation of every job exactly once, on one of its eligible
// resources, for exactly the duration of that option, not before its job's release, after the
// previous operation of its job has ended, never overlapping another operation on the same
// resource, and that `makespan` is the latest end. The message names the first violation.
Status verify_schedule(const Problem& p, const Schedule& s);

// The operations (indices into s.ops, in time order) of one longest chain of operations each of
// which starts exactly when its job predecessor or its machine predecessor ends, ending at the
// makespan. Its length explains the makespan: to finish earlier, one of these must move.
std::vector<int> critical_path(const Problem& p, const Schedule& s);

// Sum over jobs of max(0, end of last operation - due date), for jobs with a due date.
int64_t total_tardiness(const Problem& p, const Schedule& s);

}  // namespace kiln::orchestrate
