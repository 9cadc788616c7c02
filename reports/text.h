// Plain-text rendering of checker results for the terminal (torch-free). Renders, never recomputes.
#pragma once
#include <string>
#include <vector>

#include "checks/findings.h"
#include "checks/matrix.h"
#include "checks/run_result.h"
#include "models/config.h"

namespace sc {

std::string render_check_text(const CheckResult& r);
std::string render_matrix_text(const std::string& config_name, const std::vector<MatrixRow>& rows);
// The sharding table of a plan (`--explain`).
std::string render_plan_explain(const ModelConfig& c, const ParallelPlan& p);
std::string format_gib(int64_t bytes);
// A harness run: verdict, per-rank errors, per-layer comparison table, measured memory and time.
std::string render_run_text(const RunResult& r);

}  // namespace sc
