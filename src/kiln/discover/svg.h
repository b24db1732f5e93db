// kiln/discover/svg.h — small, dependency-free SVG line charts (convergence and Top% plots).
//
//   kiln::discover::LineChart c;  c.title = "Top% vs evaluations";  c.x_label = "evaluations";
//   c.series.push_back({"kiln", {1, 2, 3}, {0.0, 0.2, 0.4}});
//   std::string svg = kiln::discover::render_svg(c);
#pragma once

#include <string>
#include <vector>

namespace kiln::discover {

struct Series {
  std::string name;
  std::vector<double> x, y;
};

struct LineChart {
  std::string title, x_label, y_label;
  std::vector<Series> series;
  int width = 720, height = 440;
};

// Non-finite points are skipped; text is XML-escaped.
std::string render_svg(const LineChart& chart);
std::string xml_escape(const std::string& s);

}  // namespace kiln::discover
