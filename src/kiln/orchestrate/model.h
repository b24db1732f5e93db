// kiln/orchestrate/model.h — what a plant has to do: resources, jobs, operations.
//
// A resource is anything that runs one operation at a time: a machine, a robot, a station. A job
// is an ordered list of operations (operation i+1 may start only when operation i has ended); each
// operation can run on one of its eligible resources, with a duration that depends on the
// resource. One eligible resource per operation is the classical job shop; several is the
// flexible job shop. Times are integers in whatever unit the plant uses (seconds, minutes, ticks).
//
//   kiln::orchestrate::Problem p;
//   int lathe = p.add_resource("lathe", {"turn"});
//   int mill1 = p.add_resource("mill-1", {"mill"});
//   int mill2 = p.add_resource("mill-2", {"mill"});
//   kiln::orchestrate::Job& j = p.add_job("housing");
//   j.operations.push_back({{{lathe, 30}}});              // turn for 30 on the lathe
//   p.add_operation_by_capability(j, "mill", 45);          // mill for 45 on mill-1 or mill-2
//   KILN_RETURN_IF_ERROR(p.validate());
#pragma once

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "kiln/core/status.h"

namespace kiln::orchestrate {

// Durations and times are bounded so that sums over any realistic plant cannot overflow int64.
inline constexpr int64_t kMaxDuration = int64_t{1} << 40;
inline constexpr int64_t kNoDueDate = std::numeric_limits<int64_t>::max();

struct Resource {
  std::string name;
  std::vector<std::string> capabilities;  // what it can do ("mill", "pick", "anneal")
};

// One way to run an operation: on `resource`, taking `duration` time units.
struct Option {
  int resource = 0;
  int64_t duration = 0;
};

struct Operation {
  std::vector<Option> options;  // eligible resources; at least one
};

struct Job {
  std::string name;
  std::vector<Operation> operations;  // technological order; at least one
  int64_t release = 0;                // may not start before this time
  int64_t due = kNoDueDate;           // reported (tardiness), not optimised in v1
};

struct Problem {
  std::vector<Resource> resources;
  std::vector<Job> jobs;

  int add_resource(std::string name, std::vector<std::string> capabilities = {});
  Job& add_job(std::string name, int64_t release = 0);
  // Adds an operation that any resource with `capability` can run in `duration`. Fails (and adds
  // nothing) when no resource has it.
  Status add_operation_by_capability(Job& job, const std::string& capability, int64_t duration);

  // Checks everything the solver relies on: at least one resource and one job, every job with at
  // least one operation, every operation with at least one option, resource indices in range,
  // no resource listed twice for one operation, durations in [0, kMaxDuration], releases >= 0.
  // The message names the job and operation.
  Status validate() const;

  int num_operations() const;
  // True when some operation has more than one eligible resource.
  bool is_flexible() const;
  // A simple lower bound on the makespan: the longest job (shortest options, from its release)
  // and, for resources that some operation can only run on, the work that must go there.
  int64_t lower_bound() const;
};

}  // namespace kiln::orchestrate
