#include "reports/steering_html.h"

#include <algorithm>
#include <cmath>
#include <sstream>

#include "reports/report_format.h"
#include "reports/svg.h"

namespace sc {

namespace {

// Chart geometry (px): wide enough to read 40+ layers, tall enough for small slopes.
constexpr double kW = 1040, kH = 380, kLeft = 72, kRight = 16, kTop = 24, kBottom = 52;
const char* const kSeries[] = {"#cf222e", "#e16f24", "#57606a", "#2f6fbf", "#1f883d", "#8250df", "#bf3989", "#0a7d8c"};

std::string fmt(double v) {
  std::ostringstream os;
  os.precision(4);
  os << v;
  return os.str();
}

}  // namespace

std::string steering_slope_svg(const SteeringChart& c) {
  if (c.layers.empty()) return "";
  double lo = 0, hi = 0;
  for (const auto& l : c.layers) {
    lo = std::min(lo, l.slope);
    hi = std::max(hi, l.slope);
  }
  const double step = svg::nice_step(std::max(hi - lo, 1e-12), 5);
  lo = std::floor(lo / step) * step;
  hi = std::ceil(hi / step) * step;
  if (hi - lo < step) hi = lo + step;
  const double pw = kW - kLeft - kRight, ph = kH - kTop - kBottom;
  auto y = [&](double v) { return kTop + (hi - v) / (hi - lo) * ph; };
  std::ostringstream os;
  os << "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"slope\" width=\"" << kW << "\" height=\"" << kH
     << "\" viewBox=\"0 0 " << kW << " " << kH << "\" role=\"img\" aria-label=\"steerability slope per layer\">";
  const int ticks = int(std::lround((hi - lo) / step));
  for (int i = 0; i <= ticks; ++i) {
    const double v = lo + step * double(i);
    os << svg::line(kLeft, y(v), kW - kRight, y(v), std::abs(v) < step / 2 ? "#8c959f" : "#eaeef2", 1);
    os << svg::text(kLeft - 6, y(v) + 4, svg::tick_label(v, step), "class=\"tick\" text-anchor=\"end\" font-size=\"12\"");
  }
  const double slot = pw / double(c.layers.size()), bw = std::max(2.0, slot * 0.7);
  for (size_t i = 0; i < c.layers.size(); ++i) {
    const auto& l = c.layers[i];
    const double x = kLeft + slot * double(i) + (slot - bw) / 2, y0 = y(0), y1 = y(l.slope);
    os << "<g class=\"bar\" data-layer=\"" << l.layer << "\" data-slope=\"" << fmt(l.slope) << "\"><title>"
       << xml_escape("layer " + std::to_string(l.layer) + ": slope " + fmt(l.slope)) << "</title>"
       << svg::rect(x, std::min(y0, y1), bw, std::abs(y1 - y0), l.layer == c.best_layer ? "#1f883d" : "#2f6fbf")
       << "</g>";
    if (c.layers.size() <= 40 || i % 5 == 0)
      os << svg::text(x + bw / 2, kH - kBottom + 16, std::to_string(l.layer), "text-anchor=\"middle\" font-size=\"11\"");
  }
  os << svg::text(kLeft + pw / 2, kH - 8, "layer (steering added to this layer's output)",
                  "text-anchor=\"middle\" font-size=\"12\"");
  os << svg::text(14, kTop + ph / 2, "slope: d logit diff / d multiplier",
                  "text-anchor=\"middle\" font-size=\"12\" transform=\"rotate(-90 14 " + svg::num(kTop + ph / 2) + ")\"");
  os << "</svg>";
  return os.str();
}

std::string steering_pmatch_svg(const SteeringChart& c) {
  if (c.layers.empty() || c.multipliers.empty()) return "";
  const double pw = kW - kLeft - kRight, ph = kH - kTop - kBottom - 22;
  const double slot = c.layers.size() > 1 ? pw / double(c.layers.size() - 1) : 0;
  auto x = [&](size_t i) { return c.layers.size() > 1 ? kLeft + slot * double(i) : kLeft + pw / 2; };
  auto y = [&](double p) { return kTop + (1.0 - std::clamp(p, 0.0, 1.0)) * ph; };
  std::ostringstream os;
  os << "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"pmatch\" width=\"" << kW << "\" height=\"" << kH
     << "\" viewBox=\"0 0 " << kW << " " << kH << "\" role=\"img\" aria-label=\"p(match) per layer and multiplier\">";
  for (double v = 0; v <= 1.0001; v += 0.25) {
    os << svg::line(kLeft, y(v), kW - kRight, y(v), "#eaeef2", 1);
    os << svg::text(kLeft - 6, y(v) + 4, svg::tick_label(v, 0.25), "class=\"tick\" text-anchor=\"end\" font-size=\"12\"");
  }
  for (size_t m = 0; m < c.multipliers.size(); ++m) {
    const char* color = kSeries[m % (sizeof kSeries / sizeof kSeries[0])];
    std::ostringstream pts;
    for (size_t i = 0; i < c.layers.size(); ++i)
      if (m < c.layers[i].p_match.size()) pts << (i ? " " : "") << svg::num(x(i)) << "," << svg::num(y(c.layers[i].p_match[m]));
    os << "<polyline class=\"series\" data-multiplier=\"" << fmt(c.multipliers[m]) << "\" fill=\"none\" stroke=\""
       << color << "\" stroke-width=\"2\" points=\"" << pts.str() << "\"/>";
    const double lx = kLeft + double(m) * 90;
    os << svg::line(lx, kH - 14, lx + 16, kH - 14, color, 2)
       << svg::text(lx + 20, kH - 10, "x " + fmt(c.multipliers[m]), "font-size=\"11\"");
  }
  for (size_t i = 0; i < c.layers.size(); ++i)
    if (c.layers.size() <= 40 || i % 5 == 0)
      os << svg::text(x(i), kTop + ph + 16, std::to_string(c.layers[i].layer), "text-anchor=\"middle\" font-size=\"11\"");
  os << svg::text(14, kTop + ph / 2, "p(match) / (p(A) + p(B))",
                  "text-anchor=\"middle\" font-size=\"12\" transform=\"rotate(-90 14 " + svg::num(kTop + ph / 2) + ")\"");
  os << "</svg>";
  return os.str();
}

std::string best_layer_sentence(const SteeringChart& c) {
  const auto best = std::find_if(c.layers.begin(), c.layers.end(),
                                 [&](const SteeringChart::Layer& l) { return l.layer == c.best_layer; });
  if (best == c.layers.end()) return "No best layer: no layer was evaluated.";
  std::string s = "Best layer: " + std::to_string(best->layer) + " — the largest steering effect of the " +
                  std::to_string(c.layers.size()) + (c.layers.size() == 1 ? " layer" : " layers") +
                  " evaluated: slope " + fmt(best->slope) +
                  " (the mean logit difference, matching minus non-matching answer, gained per unit of multiplier; "
                  "least squares over the multipliers).";
  if (best->slope <= 0) s += " No layer steers toward the matching answer: every slope is 0 or below.";
  return s;
}

std::string render_steering_html(const SteeringChart& c) {
  std::ostringstream os;
  os << "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>" << xml_escape(c.title)
     << "</title><style>body{font:15px system-ui,sans-serif;color:#1f2328;margin:24px auto;padding:0 24px;"
        "max-width:1100px}svg{max-width:100%;height:auto}"
        "table{border-collapse:collapse}td,th{border:1px solid #d0d7de;padding:3px 8px;text-align:right}"
        "th{background:#f6f8fa}.best{background:#dafbe1}p.bestlayer{font-size:17px;padding:10px 14px;"
        "border:1px solid #4ac26b;background:#dafbe1;border-radius:8px}</style></head><body>\n";
  os << "<h1>" << xml_escape(c.title) << "</h1>\n";
  os << "<p class=\"bestlayer\">" << xml_escape(best_layer_sentence(c)) << "</p>\n";
  if (!c.notes.empty()) os << "<p>" << xml_escape(c.notes) << "</p>\n";
  os << "<h2>Steerability per layer</h2>\n" << steering_slope_svg(c) << "\n";
  os << "<h2>p(match) per layer and multiplier</h2>\n" << steering_pmatch_svg(c) << "\n";
  os << "<h2>Table</h2>\n<table><tr><th>layer</th><th>slope</th>";
  for (double m : c.multipliers) os << "<th>logit diff x " << xml_escape(fmt(m)) << "</th>";
  os << "</tr>\n";
  for (const auto& l : c.layers) {
    os << "<tr" << (l.layer == c.best_layer ? " class=\"best\"" : "") << "><td>" << l.layer << "</td><td>"
       << xml_escape(fmt(l.slope)) << "</td>";
    for (double v : l.logit_diff) os << "<td>" << xml_escape(fmt(v)) << "</td>";
    os << "</tr>\n";
  }
  os << "</table>\n</body></html>\n";
  return os.str();
}

}  // namespace sc
