#include "kiln/orchestrate/testing/feasibility.h"

#include <algorithm>
#include <map>
#include <random>
#include <sstream>

namespace kiln::orchestrate::testing {
namespace {

std::string op_name(int j, int i) {
  std::ostringstream os;
  os << "(" << j << "," << i << ")";
  return os.str();
}

bool overlap(int64_t a0, int64_t a1, int64_t b0, int64_t b1) {
  // Zero-length intervals take no time.
  if (a0 == a1 || b0 == b1) return false;
  return a0 < b1 && b0 < a1;
}

// Looks up (job, index) -> entry; reports duplicates and unknown operations.
std::string index_ops(const Problem& p, const Schedule& s, std::map<std::pair<int, int>, ScheduledOp>* out) {
  for (const ScheduledOp& o : s.ops) {
    if (o.job < 0 || o.job >= static_cast<int>(p.jobs.size()) || o.index < 0 ||
        o.index >= static_cast<int>(p.jobs[o.job].operations.size()))
      return "unknown operation " + op_name(o.job, o.index);
    if (out->count({o.job, o.index})) return "operation " + op_name(o.job, o.index) + " appears twice";
    (*out)[{o.job, o.index}] = o;
  }
  return "";
}

std::string check_capacity(const Schedule& s) {
  for (size_t a = 0; a < s.ops.size(); ++a)
    for (size_t b = a + 1; b < s.ops.size(); ++b) {
      const ScheduledOp &x = s.ops[a], &y = s.ops[b];
      if (x.machine == y.machine && overlap(x.start, x.end, y.start, y.end))
        return "operations " + op_name(x.job, x.index) + " and " + op_name(y.job, y.index) + " overlap on resource " +
               std::to_string(x.machine);
    }
  return "";
}

const Option* option_on(const Problem& p, int j, int i, int machine) {
  for (const Option& o : p.jobs[j].operations[i].options)
    if (o.resource == machine) return &o;
  return nullptr;
}

std::string check_makespan(const Schedule& s) {
  int64_t latest = 0;
  for (const ScheduledOp& o : s.ops) latest = o.end > latest ? o.end : latest;
  if (latest != s.makespan)
    return "makespan " + std::to_string(s.makespan) + " differs from the latest end " + std::to_string(latest);
  return "";
}

}  // namespace

std::string check_feasible(const Problem& p, const Schedule& s) {
  std::map<std::pair<int, int>, ScheduledOp> at;
  std::string e = index_ops(p, s, &at);
  if (!e.empty()) return e;
  for (size_t j = 0; j < p.jobs.size(); ++j)
    for (size_t i = 0; i < p.jobs[j].operations.size(); ++i) {
      auto it = at.find({static_cast<int>(j), static_cast<int>(i)});
      if (it == at.end()) return "operation " + op_name(j, i) + " is missing";
      const ScheduledOp& o = it->second;
      const Option* opt = option_on(p, j, i, o.machine);
      if (!opt) return "operation " + op_name(j, i) + " is on ineligible resource " + std::to_string(o.machine);
      if (o.end - o.start != opt->duration) return "operation " + op_name(j, i) + " has the wrong duration";
      if (o.start < p.jobs[j].release) return "operation " + op_name(j, i) + " starts before its job's release";
      if (i > 0 && o.start < at[{static_cast<int>(j), static_cast<int>(i - 1)}].end)
        return "operation " + op_name(j, i) + " starts before its job predecessor ends";
    }
  e = check_capacity(s);
  if (!e.empty()) return e;
  return check_makespan(s);
}

std::string check_rescheduled(const Problem& p, const std::vector<char>& cancelled, const ExecutionState& state,
                              int64_t now, const std::vector<Downtime>& down, const Schedule& s) {
  std::map<std::pair<int, int>, ScheduledOp> at;
  std::string e = index_ops(p, s, &at);
  if (!e.empty()) return e;
  for (size_t j = 0; j < p.jobs.size(); ++j) {
    const bool gone = j < cancelled.size() && cancelled[j];
    for (size_t i = 0; i < p.jobs[j].operations.size(); ++i) {
      const OpState* st = j < state.ops.size() && i < state.ops[j].size() ? &state.ops[j][i] : nullptr;
      const bool started = st && st->status != OpStatus::kPending;
      auto it = at.find({static_cast<int>(j), static_cast<int>(i)});
      if (gone) {
        if (it != at.end()) return "operation " + op_name(j, i) + " of a cancelled job is still scheduled";
        continue;
      }
      if (it == at.end()) return "operation " + op_name(j, i) + " is missing";
      const ScheduledOp& o = it->second;
      if (started) {
        const int64_t end = st->status == OpStatus::kRunning && st->end < now ? now : st->end;
        if (o.machine != st->machine || o.start != st->start || o.end != end)
          return "operation " + op_name(j, i) + " had started and was moved";
        continue;
      }
      const Option* opt = option_on(p, j, i, o.machine);
      if (!opt) return "operation " + op_name(j, i) + " is on ineligible resource " + std::to_string(o.machine);
      if (o.end - o.start != opt->duration) return "operation " + op_name(j, i) + " has the wrong duration";
      if (o.start < now) return "operation " + op_name(j, i) + " starts in the past";
      if (o.start < p.jobs[j].release) return "operation " + op_name(j, i) + " starts before its job's release";
      if (i > 0) {
        auto prev = at.find({static_cast<int>(j), static_cast<int>(i - 1)});
        if (prev == at.end() || o.start < prev->second.end)
          return "operation " + op_name(j, i) + " starts before its job predecessor ends";
      }
      for (const Downtime& d : down)
        if (d.resource == o.machine && d.end > now &&
            (overlap(o.start, o.end, d.begin, d.end) || (o.start == o.end && d.begin <= o.start && o.start < d.end)))
          return "operation " + op_name(j, i) + " runs while resource " + std::to_string(o.machine) + " is down";
    }
  }
  e = check_capacity(s);
  if (!e.empty()) return e;
  return check_makespan(s);
}

std::string check_realised(const Problem& p, const std::vector<Downtime>& outages, const Schedule& s) {
  std::map<std::pair<int, int>, ScheduledOp> at;
  std::string e = index_ops(p, s, &at);
  if (!e.empty()) return e;
  for (const auto& [key, o] : at) {
    if (!option_on(p, key.first, key.second, o.machine))
      return "operation " + op_name(key.first, key.second) + " ran on an ineligible resource";
    if (o.end < o.start) return "operation " + op_name(key.first, key.second) + " ends before it starts";
    if (key.second > 0) {
      auto prev = at.find({key.first, key.second - 1});
      if (prev == at.end()) return "operation " + op_name(key.first, key.second) + " ran but its predecessor did not";
      if (o.start < prev->second.end)
        return "operation " + op_name(key.first, key.second) + " started before its predecessor ended";
    }
    for (const Downtime& d : outages)
      if (d.resource == o.machine && overlap(o.start, o.end, d.begin, d.end))
        return "operation " + op_name(key.first, key.second) + " ran during an outage of its resource";
  }
  e = check_capacity(s);
  if (!e.empty()) return e;
  return check_makespan(s);
}

Problem random_jobshop(int jobs, int machines, uint64_t seed, int64_t lo, int64_t hi) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int64_t> dur(lo, hi);
  Problem p;
  for (int k = 0; k < machines; ++k) p.add_resource("m" + std::to_string(k));
  for (int j = 0; j < jobs; ++j) {
    Job& job = p.add_job("j" + std::to_string(j));
    std::vector<int> perm(machines);
    for (int k = 0; k < machines; ++k) perm[k] = k;
    std::shuffle(perm.begin(), perm.end(), rng);
    for (int k : perm) job.operations.push_back({{{k, dur(rng)}}});
  }
  return p;
}

Problem random_flexible(int jobs, int machines, int max_options, uint64_t seed, int64_t lo, int64_t hi) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int64_t> dur(lo, hi);
  std::uniform_int_distribution<int> nops(std::max(1, machines / 2), std::max(1, machines));
  std::uniform_int_distribution<int> nopt(1, std::max(1, std::min(max_options, machines)));
  Problem p;
  for (int k = 0; k < machines; ++k) p.add_resource("m" + std::to_string(k));
  for (int j = 0; j < jobs; ++j) {
    Job& job = p.add_job("j" + std::to_string(j));
    int n = nops(rng);
    for (int i = 0; i < n; ++i) {
      std::vector<int> perm(machines);
      for (int k = 0; k < machines; ++k) perm[k] = k;
      std::shuffle(perm.begin(), perm.end(), rng);
      Operation op;
      int k = nopt(rng);
      for (int x = 0; x < k; ++x) op.options.push_back({perm[x], dur(rng)});
      job.operations.push_back(op);
    }
  }
  return p;
}

const char* const kFt06 =
    "6 6\n"
    "2  1  0  3  1  6  3  7  5  3  4  6\n"
    "1  8  2  5  4 10  5 10  0 10  3  4\n"
    "2  5  3  4  5  8  0  9  1  1  4  7\n"
    "1  5  0  5  2  5  3  3  4  8  5  9\n"
    "2  9  1  3  4  5  5  4  0  3  3  1\n"
    "1  3  3  3  5  9  0 10  4  4  2  1\n";

}  // namespace kiln::orchestrate::testing
