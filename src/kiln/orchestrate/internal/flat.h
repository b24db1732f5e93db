// Internal: the problem as the search sees it — operations numbered 0..n-1 with their job links,
// options in flat arrays, earliest starts, and per-machine availability (ready time, down
// intervals). Built from a Problem (solve) or from a Problem plus an execution state (reschedule:
// only the operations that have not started, with what has started folded into releases and ready
// times).
#pragma once

#include <cstdint>
#include <vector>

#include "kiln/orchestrate/model.h"

namespace kiln::orchestrate::internal {

struct Interval {
  int64_t begin = 0, end = 0;  // [begin, end)
};

// Sorts, drops empty intervals and merges overlapping or touching ones.
void normalize_intervals(std::vector<Interval>& v);

// Earliest s' >= s at which an operation of length p overlaps none of `down` (sorted, disjoint).
// Zero-length operations may not sit strictly inside an interval either.
inline int64_t earliest_fit(const std::vector<Interval>& down, int64_t s, int64_t p) {
  const int64_t len = p > 0 ? p : 1;
  for (const Interval& iv : down) {
    if (iv.end <= s) continue;
    if (s + len <= iv.begin) break;
    s = iv.end;
  }
  return s;
}

struct FlatProblem {
  int n = 0;         // operations
  int m = 0;         // machines
  int num_jobs = 0;  // jobs that have at least one operation here
  std::vector<int> job, jp, js;      // per operation: job, job predecessor / successor (-1: none)
  std::vector<int> job_first;        // per job: its first operation
  std::vector<int64_t> release;      // per operation: earliest start
  std::vector<int> opt_begin;        // n + 1 offsets into the option arrays
  std::vector<int> opt_machine;
  std::vector<int64_t> opt_dur;
  std::vector<int64_t> machine_ready;           // per machine: free from
  std::vector<std::vector<Interval>> down;      // per machine: sorted, disjoint
  std::vector<char> has_down;
  std::vector<int> src_job, src_index;          // where each operation comes from in the Problem
  bool flexible = false;
  int64_t lower_bound = 0;

  int num_options(int o) const { return opt_begin[o + 1] - opt_begin[o]; }

  // Building: start a job, then add its operations in order.
  void begin_job(int source_job);
  // `release` is the operation's own earliest start (the job's release, the end of an operation
  // that is already running, the current time).
  void add_operation(int source_index, int64_t release, const std::vector<Option>& options);
  // Links successors, sets `flexible` and the lower bound. Call once after the last operation.
  void finish();

 private:
  int building_src_job_ = -1;
};

// Every operation of `p`, released at its job's release; machines free from time 0.
FlatProblem flatten(const Problem& p);

}  // namespace kiln::orchestrate::internal
