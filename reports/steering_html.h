// Self-contained HTML page of a steering evaluation (`shardcheck steer --out DIR` writes
// DIR/eval.html): inline SVG charts of the steerability slope per layer and of CAA's normalised
// p(match) per layer for each multiplier, plus the table. No JavaScript, nothing fetched. Plain
// data in (steering/ converts its EvalResult), so this stays torch-free.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace sc {

struct SteeringChart {
  std::string title;                       // e.g. model and dataset
  std::vector<double> multipliers;         // the sweep's multipliers (same for every layer)
  struct Layer {
    int64_t layer = 0;
    double slope = 0;                      // d logit_diff / d multiplier
    std::vector<double> logit_diff;        // per multiplier
    std::vector<double> p_match;           // per multiplier, in [0, 1]
  };
  std::vector<Layer> layers;               // ascending layer
  int64_t best_layer = -1;
  std::string notes;                       // one paragraph under the title (sweep, work ratio)
};

std::string steering_slope_svg(const SteeringChart& c);    // bars, one per layer ("" if no layers)
std::string steering_pmatch_svg(const SteeringChart& c);   // one polyline per multiplier
// "Best layer: 1 — the largest steering effect of the 3 layers evaluated: slope 2 (...)": the layer
// the evaluation chose (best_layer: the largest slope, steering/evaluate.h), stated at the top.
std::string best_layer_sentence(const SteeringChart& c);
std::string render_steering_html(const SteeringChart& c);

}  // namespace sc
