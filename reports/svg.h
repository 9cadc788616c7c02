// Small SVG writing helpers shared by the HTML pages (reports/html.cpp, reports/steering_html.cpp):
// numbers with one decimal, escaped text, rect / line / text elements, "nice" axis steps.
#pragma once
#include <string>

namespace sc::svg {

std::string num(double v);                        // "%.1f"
double nice_step(double top, int ticks);          // 1, 2, 2.5 or 5 x 10^k giving <= ticks intervals
std::string tick_label(double v);                 // "%g" of v rounded to 1e-3
std::string text(double x, double y, const std::string& s, const std::string& attrs = "");
std::string rect(double x, double y, double w, double h, const std::string& fill, const std::string& attrs = "");
std::string line(double x1, double y1, double x2, double y2, const std::string& stroke, double width,
                 const std::string& attrs = "");

}  // namespace sc::svg
