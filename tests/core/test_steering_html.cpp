// The steering evaluation page (reports/steering_html.h): hand-made data, hand-computed geometry.
#include <gtest/gtest.h>

#include <string>

#include "reports/steering_html.h"

namespace sc {
namespace {

size_t count(const std::string& hay, const std::string& needle) {
  size_t n = 0;
  for (size_t p = hay.find(needle); p != std::string::npos; p = hay.find(needle, p + 1)) ++n;
  return n;
}

SteeringChart chart() {
  SteeringChart c;
  c.title = "toy <model>";
  c.multipliers = {-1, 0, 1};
  c.layers = {{0, 0.5, {-0.5, 0, 0.5}, {0.4, 0.5, 0.6}},
              {1, 2.0, {-2, 0, 2}, {0.1, 0.5, 0.9}},
              {2, -1.0, {1, 0, -1}, {0.7, 0.5, 0.3}}};
  c.best_layer = 1;
  c.notes = "3 examples";
  return c;
}

TEST(SteeringHtml, SlopeBarsAreProportionalAndSigned) {
  const std::string s = steering_slope_svg(chart());
  EXPECT_EQ(count(s, "class=\"bar\""), 3u);
  // Axis: slopes in [-1, 2]; a step of at least 3 / 5 = 0.6 rounds to the nice step 1, so the
  // axis runs -1..2 over the 196 px plot height (260 - 20 - 44): 65.33 px per unit. Bars: 3 slots
  // of 648 / 3 = 216 px, 70 % wide = 151.2 px. Layer 1 (slope 2) is the best layer, drawn green
  // from the top of the plot (y = 20) down to the zero line (y = 20 + 2 * 65.33 = 150.7).
  EXPECT_NE(s.find("data-layer=\"1\" data-slope=\"2\""), std::string::npos) << s;
  EXPECT_NE(s.find("y=\"20.0\" width=\"151.2\" height=\"130.7\" fill=\"#1f883d\""), std::string::npos) << s;
  // Layer 2 (slope -1) hangs below the zero line: from 150.7 down 65.3 px.
  EXPECT_NE(s.find("y=\"150.7\" width=\"151.2\" height=\"65.3\" fill=\"#2f6fbf\""), std::string::npos) << s;
  EXPECT_EQ(s.find("<script"), std::string::npos);
}

TEST(SteeringHtml, OnePolylinePerMultiplierAndEscapedPage) {
  const SteeringChart c = chart();
  const std::string p = steering_pmatch_svg(c);
  EXPECT_EQ(count(p, "<polyline"), 3u);
  // Multiplier 1 at layer 1: p(match) 0.9 -> y = 20 + (1 - 0.9) * 174 = 37.4; x = 56 + 324 = 380.
  EXPECT_NE(p.find("data-multiplier=\"1\""), std::string::npos);
  EXPECT_NE(p.find("380.0,37.4"), std::string::npos) << p;
  const std::string h = render_steering_html(c);
  EXPECT_NE(h.find("<title>toy &lt;model&gt;</title>"), std::string::npos);
  EXPECT_EQ(count(h, "<svg"), 2u);
  EXPECT_NE(h.find("<tr class=\"best\"><td>1</td><td>2</td>"), std::string::npos) << h;
  EXPECT_EQ(h.find("http://") == std::string::npos || h.find("http://www.w3.org/2000/svg") != std::string::npos, true);
  EXPECT_EQ(steering_slope_svg(SteeringChart{}), "");
}

}  // namespace
}  // namespace sc
