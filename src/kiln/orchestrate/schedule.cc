#include "kiln/orchestrate/schedule.h"

#include <algorithm>
#include <numeric>

namespace kiln::orchestrate {

void Schedule::normalize() {
  std::sort(ops.begin(), ops.end(), [](const ScheduledOp& a, const ScheduledOp& b) {
    return a.job != b.job ? a.job < b.job : a.index < b.index;
  });
  makespan = 0;
  for (const ScheduledOp& o : ops) makespan = std::max(makespan, o.end);
}

int Schedule::find(int job, int index) const {
  for (size_t k = 0; k < ops.size(); ++k)
    if (ops[k].job == job && ops[k].index == index) return static_cast<int>(k);
  return -1;
}

Status verify_schedule(const Problem& p, const Schedule& s) {
  const int njobs = static_cast<int>(p.jobs.size());
  std::vector<std::vector<int>> at(njobs);
  for (int j = 0; j < njobs; ++j) at[j].assign(p.jobs[j].operations.size(), -1);
  int64_t latest = 0;
  for (size_t k = 0; k < s.ops.size(); ++k) {
    const ScheduledOp& o = s.ops[k];
    if (o.job < 0 || o.job >= njobs || o.index < 0 || o.index >= static_cast<int>(at[o.job].size()))
      return Status::invalid("schedule entry ", k, " names operation (", o.job, ", ", o.index, ") which does not exist");
    if (at[o.job][o.index] >= 0) return Status::invalid("operation (", o.job, ", ", o.index, ") is scheduled twice");
    at[o.job][o.index] = static_cast<int>(k);
    const Operation& op = p.jobs[o.job].operations[o.index];
    const Option* opt = nullptr;
    for (const Option& x : op.options)
      if (x.resource == o.machine) opt = &x;
    if (!opt) return Status::invalid("operation (", o.job, ", ", o.index, ") runs on resource ", o.machine, ", which is not eligible");
    if (o.end - o.start != opt->duration)
      return Status::invalid("operation (", o.job, ", ", o.index, ") lasts ", o.end - o.start, "; its duration on resource ",
                             o.machine, " is ", opt->duration);
    if (o.start < p.jobs[o.job].release)
      return Status::invalid("operation (", o.job, ", ", o.index, ") starts at ", o.start, " before its job's release ",
                             p.jobs[o.job].release);
    latest = std::max(latest, o.end);
  }
  for (int j = 0; j < njobs; ++j)
    for (size_t i = 0; i < at[j].size(); ++i) {
      if (at[j][i] < 0) return Status::invalid("operation (", j, ", ", i, ") is not scheduled");
      if (i > 0 && s.ops[at[j][i]].start < s.ops[at[j][i - 1]].end)
        return Status::invalid("operation (", j, ", ", i, ") starts at ", s.ops[at[j][i]].start, " before operation (", j,
                               ", ", i - 1, ") ends at ", s.ops[at[j][i - 1]].end);
    }
  std::vector<int> order(s.ops.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](int a, int b) {
    const ScheduledOp &x = s.ops[a], &y = s.ops[b];
    if (x.machine != y.machine) return x.machine < y.machine;
    if (x.start != y.start) return x.start < y.start;
    return x.end < y.end;
  });
  // Zero-length operations occupy no time and clash with nothing; among the others, each must
  // start no earlier than every earlier one on its machine has ended.
  int busy = -1;  // the operation with the latest end so far on the current machine
  for (size_t k = 0; k < order.size(); ++k) {
    const ScheduledOp& b = s.ops[order[k]];
    if (busy >= 0 && s.ops[busy].machine != b.machine) busy = -1;
    if (b.end == b.start) continue;
    if (busy >= 0 && b.start < s.ops[busy].end) {
      const ScheduledOp& a = s.ops[busy];
      return Status::invalid("operations (", a.job, ", ", a.index, ") and (", b.job, ", ", b.index, ") overlap on resource ",
                             a.machine, ": [", a.start, ", ", a.end, ") and [", b.start, ", ", b.end, ")");
    }
    if (busy < 0 || b.end > s.ops[busy].end) busy = order[k];
  }
  if (s.makespan != latest) return Status::invalid("makespan is ", s.makespan, " but the latest end is ", latest);
  return Status::ok();
}

std::vector<int> critical_path(const Problem& p, const Schedule& s) {
  std::vector<int> path;
  if (s.ops.empty()) return path;
  // Previous operation on the same machine: sort each machine's operations by start.
  std::vector<int> order(s.ops.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](int a, int b) {
    const ScheduledOp &x = s.ops[a], &y = s.ops[b];
    return x.machine != y.machine ? x.machine < y.machine : x.start != y.start ? x.start < y.start : x.end < y.end;
  });
  std::vector<int> mprev(s.ops.size(), -1), jprev(s.ops.size(), -1);
  for (size_t k = 1; k < order.size(); ++k)
    if (s.ops[order[k]].machine == s.ops[order[k - 1]].machine) mprev[order[k]] = order[k - 1];
  std::vector<std::vector<int>> at(p.jobs.size());
  for (size_t k = 0; k < s.ops.size(); ++k) {
    const ScheduledOp& o = s.ops[k];
    if (o.job < 0 || o.job >= static_cast<int>(p.jobs.size()) || o.index < 0) continue;
    if (at[o.job].size() <= static_cast<size_t>(o.index)) at[o.job].resize(o.index + 1, -1);
    at[o.job][o.index] = static_cast<int>(k);
  }
  for (size_t k = 0; k < s.ops.size(); ++k) {
    const ScheduledOp& o = s.ops[k];
    if (o.job >= 0 && o.job < static_cast<int>(p.jobs.size()) && o.index > 0 && o.index <= static_cast<int>(at[o.job].size()))
      jprev[k] = at[o.job][o.index - 1];
  }
  int cur = 0;
  for (size_t k = 1; k < s.ops.size(); ++k)
    if (s.ops[k].end > s.ops[cur].end) cur = static_cast<int>(k);
  // Walk back along tight arcs; prefer the machine predecessor so blocks stay together. Each step
  // goes to an operation that ends no later than the current one starts, so the walk terminates
  // (the size bound guards against zero-length loops).
  while (cur >= 0 && path.size() <= s.ops.size()) {
    path.push_back(cur);
    int mp = mprev[cur], jp = jprev[cur];
    if (mp >= 0 && s.ops[mp].end == s.ops[cur].start) cur = mp;
    else if (jp >= 0 && s.ops[jp].end == s.ops[cur].start) cur = jp;
    else cur = -1;
  }
  std::reverse(path.begin(), path.end());
  return path;
}

int64_t total_tardiness(const Problem& p, const Schedule& s) {
  std::vector<int64_t> done(p.jobs.size(), 0);
  for (const ScheduledOp& o : s.ops)
    if (o.job >= 0 && o.job < static_cast<int>(done.size())) done[o.job] = std::max(done[o.job], o.end);
  int64_t t = 0;
  for (size_t j = 0; j < p.jobs.size(); ++j)
    if (p.jobs[j].due != kNoDueDate && done[j] > p.jobs[j].due) t += done[j] - p.jobs[j].due;
  return t;
}

}  // namespace kiln::orchestrate
