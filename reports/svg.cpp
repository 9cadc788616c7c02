#include "reports/svg.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "reports/report_format.h"

namespace sc::svg {

std::string num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f", v);
  return buf;
}

double nice_step(double top, int ticks) {
  if (top <= 0) return 1;
  const double raw = top / ticks;
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  for (double m : {1.0, 2.0, 2.5, 5.0, 10.0})
    if (m * mag >= raw) return m * mag;
  return 10 * mag;
}

int tick_decimals(double step) {
  if (!(step > 0) || !std::isfinite(step)) return 0;
  for (int d = 0; d < 15; ++d) {
    const double scaled = step * std::pow(10.0, d);
    if (std::abs(scaled - std::round(scaled)) <= 1e-6 * scaled) return d;
  }
  return 15;
}

std::string tick_label(double v, double step) {
  if (std::abs(v) <= std::abs(step) * 1e-3) return "0";
  char buf[48];
  std::snprintf(buf, sizeof buf, "%.*f", tick_decimals(step), v);
  std::string s = buf;
  if (s.find('.') != std::string::npos) {
    while (s.back() == '0') s.pop_back();
    if (s.back() == '.') s.pop_back();
  }
  return s == "-0" ? "0" : s;
}

std::string text(double x, double y, const std::string& s, const std::string& attrs) {
  return "<text x=\"" + num(x) + "\" y=\"" + num(y) + "\"" + (attrs.empty() ? "" : " " + attrs) + ">" +
         xml_escape(s) + "</text>";
}

std::string rect(double x, double y, double w, double h, const std::string& fill, const std::string& attrs) {
  return "<rect x=\"" + num(x) + "\" y=\"" + num(y) + "\" width=\"" + num(std::max(0.0, w)) + "\" height=\"" +
         num(std::max(0.0, h)) + "\" fill=\"" + fill + "\"" + (attrs.empty() ? "" : " " + attrs) + "/>";
}

std::string line(double x1, double y1, double x2, double y2, const std::string& stroke, double width,
                 const std::string& attrs) {
  return "<line x1=\"" + num(x1) + "\" y1=\"" + num(y1) + "\" x2=\"" + num(x2) + "\" y2=\"" + num(y2) +
         "\" stroke=\"" + stroke + "\" stroke-width=\"" + num(width) + "\"" + (attrs.empty() ? "" : " " + attrs) + "/>";
}

}  // namespace sc::svg
