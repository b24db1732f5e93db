#include "kiln/orchestrate/gantt_svg.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <sstream>

namespace kiln::orchestrate {
namespace {

std::string escape(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      default:
        // Control characters are not allowed in XML 1.0 text.
        if (static_cast<unsigned char>(c) < 0x20 && c != '\t' && c != '\n') out += ' ';
        else out += c;
    }
  }
  return out;
}

// Well-spread hues (golden angle), alternating lightness so neighbouring jobs differ.
std::string job_colour(int j) {
  double hue = std::fmod(j * 137.508, 360.0);
  int light = j % 2 ? 72 : 60;
  char buf[48];
  std::snprintf(buf, sizeof buf, "hsl(%.0f,62%%,%d%%)", hue, light);
  return buf;
}

// A tick step of 1, 2 or 5 times a power of ten giving about `target` ticks.
int64_t tick_step(int64_t span, int target) {
  if (span <= 0) return 1;
  double raw = static_cast<double>(span) / target;
  double p = std::pow(10.0, std::floor(std::log10(raw)));
  double m = raw / p;
  double step = (m < 1.5 ? 1 : m < 3.5 ? 2 : m < 7.5 ? 5 : 10) * p;
  return std::max<int64_t>(1, static_cast<int64_t>(std::llround(step)));
}

}  // namespace

std::string gantt_svg(const Problem& p, const Schedule& s, const GanttOptions& o) {
  const int rows = std::max<int>(1, static_cast<int>(p.resources.size()));
  const int left = 100, right = 24, top = 46, axis = 34;
  const int rh = std::max(8, o.row_height);
  const int width = std::max(left + right + 100, o.width);
  const int chart_w = width - left - right;
  const bool legend = !p.jobs.empty() && p.jobs.size() <= 40;
  const int legend_rows = legend ? static_cast<int>((p.jobs.size() + 9) / 10) : 0;
  const int height = top + rows * rh + axis + legend_rows * 18 + 8;
  int64_t horizon = std::max<int64_t>(1, s.makespan);
  for (const auto& d : o.down) horizon = std::max(horizon, std::min(d.end, s.makespan + s.makespan / 10 + 1));
  const double sx = static_cast<double>(chart_w) / static_cast<double>(horizon);
  auto X = [&](int64_t t) { return left + sx * static_cast<double>(std::clamp<int64_t>(t, 0, horizon)); };
  auto Y = [&](int machine) { return top + machine * rh; };
  auto valid = [&](const ScheduledOp& op) { return op.machine >= 0 && op.machine < rows; };

  std::vector<int> crit;
  if (o.mark_critical_path) crit = critical_path(p, s);
  std::vector<char> on_path(s.ops.size(), 0);
  for (int k : crit) on_path[k] = 1;

  std::ostringstream os;
  os.setf(std::ios::fixed);
  os.precision(2);
  os << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << width << "\" height=\"" << height
     << "\" viewBox=\"0 0 " << width << ' ' << height << "\" font-family=\"sans-serif\" font-size=\"11\">\n";
  os << "<defs><pattern id=\"down\" width=\"6\" height=\"6\" patternUnits=\"userSpaceOnUse\" patternTransform=\"rotate(45)\">"
        "<rect width=\"6\" height=\"6\" fill=\"#eee\"/><line x1=\"0\" y1=\"0\" x2=\"0\" y2=\"6\" stroke=\"#999\" stroke-width=\"2\"/>"
        "</pattern></defs>\n";
  os << "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  std::string title = o.title.empty() ? "Schedule" : o.title;
  os << "<text x=\"" << left << "\" y=\"20\" font-size=\"15\" font-weight=\"bold\">" << escape(title) << " — makespan "
     << s.makespan << "</text>\n";
  if (o.mark_critical_path)
    os << "<text x=\"" << left << "\" y=\"37\" fill=\"#555\">" << p.jobs.size() << " jobs, " << p.resources.size()
       << " resources, " << s.ops.size() << " operations; critical path (red): " << crit.size()
       << " operations</text>\n";

  // Rows and grid.
  for (int m = 0; m < rows; ++m) {
    if (m % 2) os << "<rect x=\"" << left << "\" y=\"" << Y(m) << "\" width=\"" << chart_w << "\" height=\"" << rh << "\" fill=\"#f6f6f6\"/>\n";
    std::string name = m < static_cast<int>(p.resources.size()) ? p.resources[m].name : "";
    if (name.empty()) name = "m" + std::to_string(m);
    os << "<text x=\"" << left - 6 << "\" y=\"" << Y(m) + rh / 2 + 4 << "\" text-anchor=\"end\">" << escape(name) << "</text>\n";
  }
  const int64_t step = tick_step(horizon, 10);
  const int axis_y = top + rows * rh;
  os << "<g stroke=\"#ddd\">\n";
  for (int64_t t = 0; t <= horizon; t += step)
    os << "<line x1=\"" << X(t) << "\" y1=\"" << top << "\" x2=\"" << X(t) << "\" y2=\"" << axis_y << "\"/>\n";
  os << "</g>\n";
  os << "<line x1=\"" << left << "\" y1=\"" << axis_y << "\" x2=\"" << left + chart_w << "\" y2=\"" << axis_y
     << "\" stroke=\"#333\"/>\n";
  for (int64_t t = 0; t <= horizon; t += step)
    os << "<text x=\"" << X(t) << "\" y=\"" << axis_y + 15 << "\" text-anchor=\"middle\">" << t << "</text>\n";
  os << "<text x=\"" << left + chart_w << "\" y=\"" << axis_y + 29 << "\" text-anchor=\"end\" fill=\"#555\">time</text>\n";

  // Down time.
  for (const auto& d : o.down) {
    if (d.resource < 0 || d.resource >= rows || d.end <= d.begin) continue;
    os << "<rect x=\"" << X(d.begin) << "\" y=\"" << Y(d.resource) + 1 << "\" width=\"" << std::max(1.0, X(d.end) - X(d.begin))
       << "\" height=\"" << rh - 2 << "\" fill=\"url(#down)\"><title>down " << d.begin << "–" << d.end << "</title></rect>\n";
  }

  // Operations.
  for (size_t k = 0; k < s.ops.size(); ++k) {
    const ScheduledOp& op = s.ops[k];
    if (!valid(op)) continue;
    const double x = X(op.start), w = std::max(1.0, X(op.end) - X(op.start));
    const bool c = on_path[k];
    std::string job_name = op.job >= 0 && op.job < static_cast<int>(p.jobs.size()) ? p.jobs[op.job].name : "";
    os << "<rect x=\"" << x << "\" y=\"" << Y(op.machine) + 2 << "\" width=\"" << w << "\" height=\"" << rh - 4
       << "\" fill=\"" << job_colour(op.job) << "\" stroke=\"" << (c ? "#d00" : "#444") << "\" stroke-width=\""
       << (c ? "2.5" : "0.6") << "\"><title>job " << op.job << (job_name.empty() ? "" : " (" + escape(job_name) + ")")
       << ", operation " << op.index << ", on " << op.machine << ": " << op.start << "–" << op.end
       << (c ? ", critical" : "") << "</title></rect>\n";
    // Label when it fits (about 6 px per character at 10 px).
    std::string label = std::to_string(op.job) + "." + std::to_string(op.index);
    if (w >= 6.0 * label.size() + 4)
      os << "<text x=\"" << x + w / 2 << "\" y=\"" << Y(op.machine) + rh / 2 + 4
         << "\" text-anchor=\"middle\" font-size=\"10\" pointer-events=\"none\">" << label << "</text>\n";
  }
  // The critical path's hand-overs between resources (a job moving on), as red links from the end
  // of one critical operation to the start of the next; within a resource the boxes touch.
  if (crit.size() > 1) {
    os << "<g class=\"critical-path\" stroke=\"#d00\" stroke-width=\"1.5\" stroke-dasharray=\"3 2\">\n";
    for (size_t i = 1; i < crit.size(); ++i) {
      const ScheduledOp &a = s.ops[crit[i - 1]], &b = s.ops[crit[i]];
      if (!valid(a) || !valid(b) || a.machine == b.machine) continue;
      const double ya = Y(a.machine) + (b.machine > a.machine ? rh - 2 : 2);
      const double yb = Y(b.machine) + (b.machine > a.machine ? 2 : rh - 2);
      os << "<line x1=\"" << X(a.end) << "\" y1=\"" << ya << "\" x2=\"" << X(b.start) << "\" y2=\"" << yb << "\"/>\n";
    }
    os << "</g>\n";
  }
  // Legend: job colours.
  if (legend) {
    const int ly = axis_y + axis + 4;
    for (size_t j = 0; j < p.jobs.size(); ++j) {
      const int col = static_cast<int>(j % 10), row = static_cast<int>(j / 10);
      const int lx = left + col * std::max(60, chart_w / 10);
      os << "<rect x=\"" << lx << "\" y=\"" << ly + row * 18 << "\" width=\"12\" height=\"12\" fill=\"" << job_colour(static_cast<int>(j))
         << "\" stroke=\"#444\" stroke-width=\"0.6\"/><text x=\"" << lx + 16 << "\" y=\"" << ly + row * 18 + 10 << "\">"
         << escape(p.jobs[j].name.empty() ? "job " + std::to_string(j) : p.jobs[j].name) << "</text>\n";
    }
  }
  os << "</svg>\n";
  return os.str();
}

}  // namespace kiln::orchestrate
