#include "kiln/orchestrate/internal/flat.h"

#include <algorithm>

namespace kiln::orchestrate::internal {

void normalize_intervals(std::vector<Interval>& v) {
  v.erase(std::remove_if(v.begin(), v.end(), [](const Interval& i) { return i.end <= i.begin; }), v.end());
  std::sort(v.begin(), v.end(), [](const Interval& a, const Interval& b) { return a.begin < b.begin; });
  size_t w = 0;
  for (size_t i = 0; i < v.size(); ++i) {
    if (w > 0 && v[i].begin <= v[w - 1].end) v[w - 1].end = std::max(v[w - 1].end, v[i].end);
    else v[w++] = v[i];
  }
  v.resize(w);
}

void FlatProblem::begin_job(int source_job) {
  job_first.push_back(n);
  ++num_jobs;
  building_src_job_ = source_job;
}

void FlatProblem::add_operation(int source_index, int64_t rel, const std::vector<Option>& options) {
  const int o = n++;
  const bool first_of_job = job_first.back() == o;
  job.push_back(num_jobs - 1);
  jp.push_back(first_of_job ? -1 : o - 1);
  js.push_back(-1);
  release.push_back(rel);
  if (opt_begin.empty()) opt_begin.push_back(0);
  for (const Option& x : options) {
    opt_machine.push_back(x.resource);
    opt_dur.push_back(x.duration);
  }
  opt_begin.push_back(static_cast<int>(opt_machine.size()));
  src_index.push_back(source_index);
  src_job.push_back(building_src_job_);
}

void FlatProblem::finish() {
  if (opt_begin.empty()) opt_begin.push_back(0);
  for (int o = 0; o < n; ++o)
    if (jp[o] >= 0) js[jp[o]] = o;
  machine_ready.resize(m, 0);
  down.resize(m);
  has_down.assign(m, 0);
  for (int k = 0; k < m; ++k) {
    normalize_intervals(down[k]);
    has_down[k] = !down[k].empty();
  }
  flexible = false;
  for (int o = 0; o < n; ++o)
    if (num_options(o) > 1) flexible = true;
  // Lower bound: longest job chain from its first release (shortest options), and the work that can
  // only go to one machine. Down time is ignored: still a valid (weaker) bound.
  int64_t lb = 0;
  std::vector<int64_t> load(m, 0);
  int64_t total = 0;
  for (int j = 0; j < num_jobs; ++j) {
    int64_t t = 0;
    for (int o = job_first[j]; o >= 0; o = js[o]) {
      int64_t best = opt_dur[opt_begin[o]];
      for (int k = opt_begin[o]; k < opt_begin[o + 1]; ++k) best = std::min(best, opt_dur[k]);
      t = std::max(t, release[o]) + best;
      total += best;
      if (num_options(o) == 1) load[opt_machine[opt_begin[o]]] += opt_dur[opt_begin[o]];
    }
    lb = std::max(lb, t);
  }
  for (int k = 0; k < m; ++k) {
    int64_t first_free = machine_ready[k];
    lb = std::max(lb, load[k] > 0 ? first_free + load[k] : 0);
  }
  if (m > 0) {
    int64_t earliest = machine_ready.empty() ? 0 : *std::min_element(machine_ready.begin(), machine_ready.end());
    lb = std::max(lb, earliest + (total + m - 1) / m);
  }
  lower_bound = lb;
}

FlatProblem flatten(const Problem& p) {
  FlatProblem f;
  f.m = static_cast<int>(p.resources.size());
  for (size_t j = 0; j < p.jobs.size(); ++j) {
    const Job& job = p.jobs[j];
    if (job.operations.empty()) continue;
    f.begin_job(static_cast<int>(j));
    for (size_t i = 0; i < job.operations.size(); ++i) {
      f.add_operation(static_cast<int>(i), job.release, job.operations[i].options);
    }
  }
  f.finish();
  return f;
}

}  // namespace kiln::orchestrate::internal
