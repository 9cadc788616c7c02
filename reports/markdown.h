// Markdown rendering of the strategy report (`shardcheck report --md`), sized for a pull-request
// comment: the verdicts on the largest GPU count first, one table of every strategy, then the
// exact errors, notes and formulas in collapsed <details> blocks. Renders, never recomputes.
#pragma once
#include <string>

#include "checks/strategies.h"

namespace sc {

std::string render_report_markdown(const StrategyReport& r);

}  // namespace sc
