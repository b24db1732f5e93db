// kiln/orchestrate/gantt_svg.h — a schedule as a Gantt chart in SVG: one row per resource, one
// colour per job, the critical path outlined and joined, a time axis, hover titles per operation.
// Self-contained (no scripts, no external fonts or styles), so it opens in any browser.
//
//   std::string svg = kiln::orchestrate::gantt_svg(problem, solution.schedule, {.title = "ft10"});
//   KILN_RETURN_IF_ERROR(kiln::write_file_atomic("ft10.svg", svg));
#pragma once

#include <string>
#include <vector>

#include "kiln/orchestrate/model.h"
#include "kiln/orchestrate/schedule.h"

namespace kiln::orchestrate {

struct GanttOptions {
  std::string title;             // shown above the chart, with the makespan
  int width = 1200;              // pixels of the whole picture
  int row_height = 22;
  bool mark_critical_path = true;
  // Intervals during which a resource is unavailable, drawn hatched: {resource, begin, end}.
  struct Down {
    int resource;
    int64_t begin, end;
  };
  std::vector<Down> down;
};

std::string gantt_svg(const Problem& p, const Schedule& s, const GanttOptions& options = {});

}  // namespace kiln::orchestrate
