// JSON rendering of the strategy report (`shardcheck report --json` / `--out-json`): the stable
// "shardcheck.report/1" document described in docs/report-schema.md (keys sorted, 2-space indent).
#pragma once
#include <string>
#include <vector>

#include "checks/run_result.h"
#include "checks/strategies.h"

namespace sc {

std::string render_report_json(const StrategyReport& r);

// Reads harness results for `--runs FILE`: a RunResult object, an array of them, or an object
// with a "runs" array. InputError (usage) naming the file on anything else.
std::vector<RunResult> read_run_results(const std::string& path);

}  // namespace sc
