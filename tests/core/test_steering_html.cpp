// The steering evaluation page (reports/steering_html.h): hand-made data, hand-computed geometry.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "reports/steering_html.h"
#include "reports/svg.h"

namespace sc {
namespace {

// The y-axis tick labels of a chart, top of the file first (the axis bottom up).
std::vector<std::string> tick_labels(const std::string& svg) {
  std::vector<std::string> out;
  const std::string open = "class=\"tick\" text-anchor=\"end\" font-size=\"12\">";
  for (size_t p = svg.find(open); p != std::string::npos; p = svg.find(open, p + 1)) {
    const size_t b = p + open.size();
    out.push_back(svg.substr(b, svg.find("</text>", b) - b));
  }
  return out;
}

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
  // A 1040 x 380 chart. Axis: slopes in [-1, 2]; a step of at least 3 / 5 = 0.6 rounds to the
  // nice step 1, so the axis runs -1..2 over the 304 px plot height (380 - 24 - 52): 101.33 px per
  // unit. Bars: 3 slots of 952 / 3 = 317.33 px (1040 - 72 - 16 wide), 70 % wide = 222.1 px. Layer 1
  // (slope 2) is the best layer, drawn green from the top of the plot (y = 24) down to the zero
  // line (y = 24 + 2 * 101.33 = 226.7).
  EXPECT_NE(s.find("width=\"1040\" height=\"380\""), std::string::npos) << s;
  EXPECT_NE(s.find("data-layer=\"1\" data-slope=\"2\""), std::string::npos) << s;
  EXPECT_NE(s.find("y=\"24.0\" width=\"222.1\" height=\"202.7\" fill=\"#1f883d\""), std::string::npos) << s;
  // Layer 2 (slope -1) hangs below the zero line: from 226.7 down 101.3 px.
  EXPECT_NE(s.find("y=\"226.7\" width=\"222.1\" height=\"101.3\" fill=\"#2f6fbf\""), std::string::npos) << s;
  EXPECT_EQ(s.find("<script"), std::string::npos);
}

TEST(SteeringHtml, SmallSlopesGetTicksWithEnoughDecimalsAndNoMinusZero) {
  // Slopes of a weakly steerable model: 0.00012, 0.00031, -0.00007 (range 0.00038). A step of at
  // least 0.00038 / 5 = 0.000076 rounds to the nice step 0.0001, so the axis runs from
  // floor(-0.7) = -1 to ceil(3.1) = 4 steps: -0.0001 .. 0.0004. Rounded to 1e-3 (as before) every
  // tick read "0" or "-0".
  SteeringChart c;
  c.multipliers = {-1, 1};
  c.layers = {{3, 0.00012, {}, {}}, {4, 0.00031, {}, {}}, {5, -0.00007, {}, {}}};
  c.best_layer = 4;
  EXPECT_EQ(tick_labels(steering_slope_svg(c)),
            (std::vector<std::string>{"-0.0001", "0", "0.0001", "0.0002", "0.0003", "0.0004"}));
  // Slopes 0.0012, 0.0091 (the axis keeps 0): step 0.002 (0.0091 / 5 = 0.00182 rounds up), axis 0 .. 0.01.
  c.layers = {{0, 0.0012, {}, {}}, {1, 0.0091, {}, {}}};
  EXPECT_EQ(tick_labels(steering_slope_svg(c)),
            (std::vector<std::string>{"0", "0.002", "0.004", "0.006", "0.008", "0.01"}));
  // The helpers: decimals from the step; a tick at (float) zero never prints "-0".
  EXPECT_EQ(svg::tick_decimals(1), 0);
  EXPECT_EQ(svg::tick_decimals(20), 0);
  EXPECT_EQ(svg::tick_decimals(0.5), 1);
  EXPECT_EQ(svg::tick_decimals(0.25), 2);
  EXPECT_EQ(svg::tick_decimals(0.001), 3);
  EXPECT_EQ(svg::tick_decimals(0.0025), 4);
  EXPECT_EQ(svg::tick_label(-1e-19, 0.001), "0");
  EXPECT_EQ(svg::tick_label(-0.0, 1), "0");
  EXPECT_EQ(svg::tick_label(-0.0025, 0.0025), "-0.0025");
  EXPECT_EQ(svg::tick_label(0.005, 0.0025), "0.005");
  EXPECT_EQ(svg::tick_label(150, 50), "150");
}

TEST(SteeringHtml, StatesTheBestLayerAtTheTop) {
  // Layer 1 has the largest slope (2 against 0.5 and -1): the evaluation's best layer.
  const std::string h = render_steering_html(chart());
  const std::string sentence =
      "<p class=\"bestlayer\">Best layer: 1 — the largest steering effect of the 3 layers evaluated: slope 2 (the mean "
      "logit difference, matching minus non-matching answer, gained per unit of multiplier; least squares over the "
      "multipliers).</p>";
  EXPECT_EQ(h.find(sentence), h.find("</h1>\n") + 6) << h.substr(0, 1200);
  EXPECT_LT(h.find(sentence), h.find("<svg"));
  // Every slope at or below 0: still the largest, and the page says no layer steers.
  SteeringChart c = chart();
  for (auto& l : c.layers) l.slope = -l.slope - 1;  // -1.5, -3, 0
  c.best_layer = 2;
  EXPECT_EQ(best_layer_sentence(c),
            "Best layer: 2 — the largest steering effect of the 3 layers evaluated: slope 0 (the mean logit difference, "
            "matching minus non-matching answer, gained per unit of multiplier; least squares over the multipliers). No "
            "layer steers toward the matching answer: every slope is 0 or below.");
  EXPECT_EQ(best_layer_sentence(SteeringChart{}), "No best layer: no layer was evaluated.");
}

TEST(SteeringHtml, OnePolylinePerMultiplierAndEscapedPage) {
  const SteeringChart c = chart();
  const std::string p = steering_pmatch_svg(c);
  EXPECT_EQ(count(p, "<polyline"), 3u);
  // Multiplier 1 at layer 1: p(match) 0.9 -> y = 24 + (1 - 0.9) * 282 = 52.2 (plot height
  // 380 - 24 - 52 - 22 for the legend); x = 72 + 952 / 2 = 548.
  EXPECT_NE(p.find("data-multiplier=\"1\""), std::string::npos);
  EXPECT_NE(p.find("548.0,52.2"), std::string::npos) << p;
  EXPECT_EQ(tick_labels(p), (std::vector<std::string>{"0", "0.25", "0.5", "0.75", "1"}));
  const std::string h = render_steering_html(c);
  EXPECT_NE(h.find("<title>toy &lt;model&gt;</title>"), std::string::npos);
  EXPECT_EQ(count(h, "<svg"), 2u);
  EXPECT_NE(h.find("<tr class=\"best\"><td>1</td><td>2</td>"), std::string::npos) << h;
  EXPECT_EQ(h.find("http://") == std::string::npos || h.find("http://www.w3.org/2000/svg") != std::string::npos, true);
  EXPECT_EQ(steering_slope_svg(SteeringChart{}), "");
}

}  // namespace
}  // namespace sc
