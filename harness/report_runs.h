// `shardcheck report --run`: launch the harness for the rows of a strategy report, so that the
// report's correctness, error-text, accuracy, throughput and loading-memory columns are measured
// rather than taken from a `--runs` file. Each row the checker predicts runs (or runs silently
// wrong, or raises a shape error) is run on real ranks (Gloo threads on CPU, or NCCL with one GPU
// per rank) and compared with the single-device reference; rows whose failure is memory, or an
// invariant HF enforces before any forward, are not run (strategies.h why_not_run()).
//
// On CPU the model is a reduced-width copy of the config (models/reduced.h): the head counts,
// head_dim, KV heads, experts and top-k stay as the config has them, so the shape failures and
// their texts are the real ones; hidden, MLP / expert widths, vocab and layers shrink (one layer
// per pipeline stage unless `layers` says otherwise). Throughput and memory of such runs are those
// of the reduced model, and RunResult::scale says so.
//
// The header is torch-free (the CLI's report command includes it); the implementation is LibTorch.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "checks/run_result.h"
#include "checks/strategies.h"
#include "models/config.h"

namespace sc {

struct ReportRunOptions {
  std::string backend = "gloo";  // "gloo" | "nccl"
  int64_t hidden = -1;           // reduced hidden size; -1: 256 on gloo, the config's on nccl; 0: the config's
  int64_t layers = 0;            // layers of the run's model; 0: one per pipeline stage of each layout
  int64_t batch = 2, seq = 16;   // the runs' forward (the report's figures keep their own batch x seq)
  uint64_t seed = 1234;          // random weights and token ids
  int timing_repeats = 1;        // timed forwards per run (median) for tokens/s; 0: no timing
  double timeout_s = 120;        // a stuck collective fails the run
};

struct ReportRuns {
  std::vector<RunResult> runs;   // one per launched row, in report order
  RunLaunch launch;              // for StrategyOptions::launched
};

// Runs the rows of compare_strategies(c, o) that why_not_run() admits. PlanError on bad options.
// `progress` (optional) gets one line per row as it starts.
ReportRuns run_report_rows(const ModelConfig& c, const StrategyOptions& o, const ReportRunOptions& ro,
                           const std::function<void(const std::string&)>& progress = nullptr);

}  // namespace sc
