#include "kiln/orchestrate/gantt_svg.h"

#include <gtest/gtest.h>

#include "kiln/orchestrate/formats.h"
#include "kiln/orchestrate/solver.h"
#include "kiln/orchestrate/testing/feasibility.h"

namespace kiln::orchestrate {
namespace {

size_t count(const std::string& s, const std::string& what) {
  size_t n = 0;
  for (size_t at = s.find(what); at != std::string::npos; at = s.find(what, at + 1)) ++n;
  return n;
}

TEST(GanttSvg, OneRowPerResourceOneBoxPerOperationAndTheCriticalPath) {
  Result<Problem> p = parse_instance(testing::kFt06, InstanceFormat::kJobShop, "ft06");
  ASSERT_TRUE(p.is_ok());
  p->resources[3].name = "robot <arm> & \"gripper\"";
  SolveOptions o;
  o.time_limit_seconds = 0;
  o.max_iterations = 5000;
  Result<Solution> s = solve(*p, o);
  ASSERT_TRUE(s.is_ok());
  GanttOptions g;
  g.title = "ft06";
  g.down.push_back({1, 10, 20});
  std::string svg = gantt_svg(*p, s->schedule, g);
  EXPECT_EQ(svg.rfind("<svg xmlns=\"http://www.w3.org/2000/svg\"", 0), 0u);
  EXPECT_NE(svg.find("</svg>"), std::string::npos);
  EXPECT_NE(svg.find("makespan " + std::to_string(s->schedule.makespan)), std::string::npos);
  // One titled box per operation, the critical ones outlined in red, and the path drawn.
  EXPECT_EQ(count(svg, "<title>job "), 36u);
  const size_t crit = critical_path(*p, s->schedule).size();
  EXPECT_EQ(count(svg, ", critical</title>"), crit);
  EXPECT_EQ(count(svg, "stroke=\"#d00\" stroke-width=\"2.5\""), crit);
  EXPECT_EQ(count(svg, "class=\"critical-path\""), 1u);
  // Resource names are escaped; every resource has its label.
  EXPECT_NE(svg.find("robot &lt;arm&gt; &amp; &quot;gripper&quot;"), std::string::npos);
  EXPECT_EQ(svg.find("<arm>"), std::string::npos);
  for (int m : {0, 1, 2, 4, 5}) EXPECT_NE(svg.find(">m" + std::to_string(m) + "</text>"), std::string::npos);
  EXPECT_NE(svg.find("fill=\"url(#down)\""), std::string::npos);
  // Without the critical path: no red.
  g.mark_critical_path = false;
  EXPECT_EQ(gantt_svg(*p, s->schedule, g).find("#d00"), std::string::npos);
}

TEST(GanttSvg, EmptyScheduleStillDraws) {
  Problem p;
  p.add_resource("a");
  std::string svg = gantt_svg(p, Schedule{});
  EXPECT_NE(svg.find("</svg>"), std::string::npos);
}

}  // namespace
}  // namespace kiln::orchestrate
