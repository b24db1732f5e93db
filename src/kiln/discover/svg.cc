#include "kiln/discover/svg.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace kiln::discover {
namespace {

std::string num(double v) {
  char b[32];
  std::snprintf(b, sizeof b, "%.2f", v);
  return b;
}

std::string tick(double v) {
  char b[32];
  std::snprintf(b, sizeof b, "%.4g", v);
  return b;
}

const char* kColours[] = {"#d1495b", "#00798c", "#edae49", "#30638e", "#66a182", "#8d96a3", "#003d5b", "#a05195"};

}  // namespace

std::string xml_escape(const std::string& s) {
  std::string o;
  for (char c : s) {
    switch (c) {
      case '&': o += "&amp;"; break;
      case '<': o += "&lt;"; break;
      case '>': o += "&gt;"; break;
      case '"': o += "&quot;"; break;
      default: o += c;
    }
  }
  return o;
}

std::string render_svg(const LineChart& c) {
  const double L = 70, R = 160, T = 40, B = 50;
  const double W = c.width - L - R, H = c.height - T - B;
  double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
  for (const Series& s : c.series)
    for (size_t i = 0; i < s.x.size() && i < s.y.size(); ++i) {
      if (!std::isfinite(s.x[i]) || !std::isfinite(s.y[i])) continue;
      x0 = std::min(x0, s.x[i]);
      x1 = std::max(x1, s.x[i]);
      y0 = std::min(y0, s.y[i]);
      y1 = std::max(y1, s.y[i]);
    }
  if (!std::isfinite(x0)) x0 = 0, x1 = 1, y0 = 0, y1 = 1;
  if (x1 <= x0) x1 = x0 + 1;
  if (y1 <= y0) y1 = y0 + 1;
  double pad = 0.05 * (y1 - y0);
  y0 -= pad;
  y1 += pad;
  auto px = [&](double x) { return L + (x - x0) / (x1 - x0) * W; };
  auto py = [&](double y) { return T + H - (y - y0) / (y1 - y0) * H; };
  std::string o = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + std::to_string(c.width) + "\" height=\"" +
                  std::to_string(c.height) + "\" font-family=\"sans-serif\" font-size=\"12\">\n";
  o += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  o += "<text x=\"" + num(L) + "\" y=\"22\" font-size=\"15\">" + xml_escape(c.title) + "</text>\n";
  o += "<rect x=\"" + num(L) + "\" y=\"" + num(T) + "\" width=\"" + num(W) + "\" height=\"" + num(H) + "\" fill=\"none\" stroke=\"#444\"/>\n";
  for (int i = 0; i <= 5; ++i) {
    double xv = x0 + (x1 - x0) * i / 5, yv = y0 + (y1 - y0) * i / 5;
    o += "<line x1=\"" + num(px(xv)) + "\" y1=\"" + num(T) + "\" x2=\"" + num(px(xv)) + "\" y2=\"" + num(T + H) + "\" stroke=\"#eee\"/>\n";
    o += "<line x1=\"" + num(L) + "\" y1=\"" + num(py(yv)) + "\" x2=\"" + num(L + W) + "\" y2=\"" + num(py(yv)) + "\" stroke=\"#eee\"/>\n";
    o += "<text x=\"" + num(px(xv)) + "\" y=\"" + num(T + H + 16) + "\" text-anchor=\"middle\">" + tick(xv) + "</text>\n";
    o += "<text x=\"" + num(L - 6) + "\" y=\"" + num(py(yv) + 4) + "\" text-anchor=\"end\">" + tick(yv) + "</text>\n";
  }
  o += "<text x=\"" + num(L + W / 2) + "\" y=\"" + num(c.height - 10.0) + "\" text-anchor=\"middle\">" + xml_escape(c.x_label) + "</text>\n";
  o += "<text transform=\"translate(16," + num(T + H / 2) + ") rotate(-90)\" text-anchor=\"middle\">" + xml_escape(c.y_label) + "</text>\n";
  for (size_t k = 0; k < c.series.size(); ++k) {
    const Series& s = c.series[k];
    const char* col = kColours[k % 8];
    std::string pts;
    for (size_t i = 0; i < s.x.size() && i < s.y.size(); ++i)
      if (std::isfinite(s.x[i]) && std::isfinite(s.y[i])) pts += num(px(s.x[i])) + "," + num(py(s.y[i])) + " ";
    o += "<polyline fill=\"none\" stroke=\"" + std::string(col) + "\" stroke-width=\"2\" points=\"" + pts + "\"/>\n";
    double ly = T + 14 + 18.0 * k;
    o += "<line x1=\"" + num(L + W + 12) + "\" y1=\"" + num(ly) + "\" x2=\"" + num(L + W + 32) + "\" y2=\"" + num(ly) + "\" stroke=\"" + col + "\" stroke-width=\"2\"/>\n";
    o += "<text x=\"" + num(L + W + 36) + "\" y=\"" + num(ly + 4) + "\">" + xml_escape(s.name) + "</text>\n";
  }
  o += "</svg>\n";
  return o;
}

}  // namespace kiln::discover
