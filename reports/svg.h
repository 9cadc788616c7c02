// Small SVG writing helpers shared by the HTML pages (reports/html.cpp, reports/steering_html.cpp):
// numbers with one decimal, escaped text, rect / line / text elements, "nice" axis steps.
#pragma once
#include <string>

namespace sc::svg {

std::string num(double v);                        // "%.1f"
double nice_step(double top, int ticks);          // 1, 2, 2.5 or 5 x 10^k giving <= ticks intervals
// Decimals an axis with this step needs so that neighbouring ticks differ: 0 for 1, 2, 5, 10;
// 1 for 0.5; 2 for 0.25; 3 for 0.001 and 0.002; 4 for 0.0025.
int tick_decimals(double step);
// v with tick_decimals(step) decimals, trailing zeros dropped ("0.5", "1", "0.0025"); values
// within step / 1000 of 0 print "0", never "-0".
std::string tick_label(double v, double step);
std::string text(double x, double y, const std::string& s, const std::string& attrs = "");
std::string rect(double x, double y, double w, double h, const std::string& fill, const std::string& attrs = "");
std::string line(double x1, double y1, double x2, double y2, const std::string& stroke, double width,
                 const std::string& attrs = "");

}  // namespace sc::svg
