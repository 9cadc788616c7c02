// Self-contained HTML page of the strategy report (`shardcheck report --html`): inline CSS and
// inline SVG charts (memory per rank, communication per token, measured throughput), no
// JavaScript, no fonts or images fetched from anywhere. Renders, never recomputes.
#pragma once
#include <string>

#include "checks/strategies.h"

namespace sc {

std::string render_report_html(const StrategyReport& r);

// The charts alone (also embedded by render_report_html); "" when there is nothing to draw.
std::string memory_chart_svg(const StrategyReport& r, int64_t gpus);
std::string comm_chart_svg(const StrategyReport& r, int64_t gpus);
std::string throughput_chart_svg(const StrategyReport& r);

}  // namespace sc
