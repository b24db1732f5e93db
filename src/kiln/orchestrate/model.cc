#include "kiln/orchestrate/model.h"

#include <algorithm>

namespace kiln::orchestrate {

int Problem::add_resource(std::string name, std::vector<std::string> capabilities) {
  resources.push_back({std::move(name), std::move(capabilities)});
  return static_cast<int>(resources.size()) - 1;
}

Job& Problem::add_job(std::string name, int64_t release) {
  jobs.push_back({});
  jobs.back().name = std::move(name);
  jobs.back().release = release;
  return jobs.back();
}

Status Problem::add_operation_by_capability(Job& job, const std::string& capability, int64_t duration) {
  Operation op;
  for (size_t r = 0; r < resources.size(); ++r) {
    const auto& caps = resources[r].capabilities;
    if (std::find(caps.begin(), caps.end(), capability) != caps.end())
      op.options.push_back({static_cast<int>(r), duration});
  }
  if (op.options.empty())
    return Status::invalid("job '", job.name, "': no resource has capability '", capability, "'");
  job.operations.push_back(std::move(op));
  return Status::ok();
}

Status Problem::validate() const {
  if (resources.empty()) return Status::invalid("the problem has no resources");
  if (jobs.empty()) return Status::invalid("the problem has no jobs");
  const int m = static_cast<int>(resources.size());
  std::vector<int> seen(m, -1);
  int stamp = 0;
  for (size_t j = 0; j < jobs.size(); ++j) {
    const Job& job = jobs[j];
    auto where = [&](size_t i) {
      return "job " + std::to_string(j) + (job.name.empty() ? "" : " ('" + job.name + "')") + " operation " +
             std::to_string(i);
    };
    if (job.operations.empty())
      return Status::invalid("job ", j, job.name.empty() ? "" : " ('" + job.name + "')",
                             " has zero operations; every job needs at least one");
    if (job.release < 0 || job.release > kMaxDuration)
      return Status::invalid("job ", j, " has release ", job.release, "; expected 0..", kMaxDuration);
    for (size_t i = 0; i < job.operations.size(); ++i) {
      const Operation& op = job.operations[i];
      if (op.options.empty()) return Status::invalid(where(i), " has no eligible resource");
      ++stamp;
      for (const Option& o : op.options) {
        if (o.resource < 0 || o.resource >= m)
          return Status::invalid(where(i), ": resource ", o.resource, " is out of range (", m, " resources)");
        if (o.duration < 0 || o.duration > kMaxDuration)
          return Status::invalid(where(i), ": duration ", o.duration, " on resource ", o.resource, " is not in 0..",
                                 kMaxDuration);
        if (seen[o.resource] == stamp)
          return Status::invalid(where(i), ": resource ", o.resource, " is listed twice");
        seen[o.resource] = stamp;
      }
    }
  }
  return Status::ok();
}

int Problem::num_operations() const {
  int n = 0;
  for (const Job& j : jobs) n += static_cast<int>(j.operations.size());
  return n;
}

bool Problem::is_flexible() const {
  for (const Job& j : jobs)
    for (const Operation& op : j.operations)
      if (op.options.size() > 1) return true;
  return false;
}

int64_t Problem::lower_bound() const {
  int64_t lb = 0;
  std::vector<int64_t> load(resources.size(), 0);
  int64_t total_min = 0;
  for (const Job& j : jobs) {
    int64_t len = j.release;
    for (const Operation& op : j.operations) {
      int64_t best = kMaxDuration;
      for (const Option& o : op.options) best = std::min(best, o.duration);
      len += best;
      total_min += best;
      if (op.options.size() == 1 && op.options[0].resource >= 0 &&
          op.options[0].resource < static_cast<int>(load.size()))
        load[op.options[0].resource] += op.options[0].duration;
    }
    lb = std::max(lb, len);
  }
  for (int64_t l : load) lb = std::max(lb, l);
  // All the work must fit on all the resources.
  if (!resources.empty()) {
    int64_t m = static_cast<int64_t>(resources.size());
    lb = std::max(lb, (total_min + m - 1) / m);
  }
  return lb;
}

}  // namespace kiln::orchestrate
