// Strategy comparison (`shardcheck report`): for one config and a list of GPU counts, evaluate the
// parallel strategies users try with HF transformers and the fixes shardcheck proposes:
//
//   id                origin      layout on g GPUs
//   single            baseline    the whole model on one GPU (g = 1 only)
//   pp                tried       device_map-style layer placement, pp = g, one micro-batch
//   tp-hf-auto        tried       tp = g, HF tp_plan="auto" (k/v colwise on raw columns)
//   ep-full-loading   tried       ep = g, attention replicated, every GPU reads full tensors (HF EP)
//   tp-pp             workaround  tp = t x pp = g/t, t the largest TP < g that hf-auto splits into
//                                 whole heads (235B on 8 GPUs: TP=4 x PP=2)
//   tp-replicate-kv   fix         tp = g, each KV head replicated on tp / kv ranks (vLLM-style)
//   ep-shard-only     fix         ep = g, each GPU reads only its experts' bytes
//   tp-ep             fix         tp = ep = g: attention TP with replicate-kv, whole experts per GPU
//
// Every figure is a prediction from the checker (feasibility, first failing invariant with the
// exact LibTorch text, memory per rank, loading peak), the communication model (checks/comm.h) or
// the pipeline schedule (bubble), unless a harness RunResult for the same layout is attached: then
// correctness, the loading peak and throughput are measured, and each figure says which it is.
// Plain data with a JSON form (docs/report-schema.md); the renderers in reports/ never recompute.
// Torch-free.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "checks/comm.h"
#include "checks/findings.h"
#include "layout/plan.h"
#include "checks/run_result.h"
#include "models/config.h"

namespace sc {

// Where a figure comes from.
enum class Source { Predicted, Measured };
const char* source_name(Source s);  // "predicted", "measured"

// What happens when the strategy runs.
enum class Outcome {
  Works,          // runs and (as far as predicted / measured) computes the right thing
  Fails,          // raises (shape error, or an invariant the framework enforces)
  OutOfMemory,    // does not fit the GPU memory while loading or running
  SilentWrong,    // runs without an error but computes wrong results
  NotApplicable,  // the layout does not exist for this model / GPU count
};
const char* outcome_name(Outcome o);  // "works", "fails", "out-of-memory", "silent-wrong", "not-applicable"

enum class StrategyKind { Single, LayerPlacement, TpHfAuto, EpFullLoading, TpPp, TpReplicateKv, EpShardOnly, TpEp };
const char* strategy_id(StrategyKind k);  // "single", "pp", "tp-hf-auto", ...

enum class Origin { Baseline, Tried, Workaround, Fix };
const char* origin_name(Origin o);  // "baseline", "tried", "workaround", "fix"

// Set when the report launched the harness itself (`report --run`): how the runs were made.
struct RunLaunch {
  std::string backend = "gloo";   // "gloo" (ranks as CPU threads) | "nccl" (one GPU per rank)
  std::string device = "cpu";
  std::string scale;              // how the runs' model differs from the config ("full widths" if not)
  int64_t batch = 0, seq = 0;     // shape of the runs' forward
  std::string dtype;              // compute dtype of the runs
  double seconds = 0;             // wall clock of all runs
};

struct StrategyOptions {
  std::vector<int64_t> gpus = {1, 2, 4, 8};
  int64_t batch = 64, seq = 103;    // one forward of batch x seq tokens (the users' shape)
  double gpu_mem_gib = 141;         // per GPU (H200)
  int64_t micro_batches = 1;        // for tp-pp; device_map placement always runs 1 micro-batch
  std::optional<DType> dtype;       // default: the config's dtype
  std::optional<RunLaunch> launched;  // report --run: rows without a run say why they were not run
};

struct Strategy {
  StrategyKind kind = StrategyKind::Single;
  Origin origin = Origin::Baseline;
  int64_t gpus = 1;
  ParallelPlan plan;            // meaningful when applicable
  bool applicable = true;
  std::string not_applicable;   // why, when !applicable
  std::string name;             // with sizes: "TP=8 (hf-auto)"
  std::string family;           // without sizes: "TP (hf-auto)"
  std::string description;      // what the layout is
};

// The strategies for one GPU count, in report order (tried, workaround, fixes).
std::vector<Strategy> strategies_for(const ModelConfig& c, int64_t gpus, const StrategyOptions& o);

struct MemoryFigures {
  double limit_gib = 0;
  int64_t weight_bytes = 0;    // predicted, max over ranks
  int64_t run_bytes = 0;       // predicted, max over ranks: weights + activations of one forward
  int64_t loading_bytes = 0;   // predicted, max over ranks: peak while loading (the plan's loading mode)
  std::optional<int64_t> measured_loading_bytes;  // max of the RunResult's per-rank load peaks
  std::vector<RankMemory> per_rank;               // predicted
  std::vector<int64_t> measured_loading_per_rank; // RunResult.load_peak_bytes
  int64_t per_gpu_bytes() const { return run_bytes > loading_bytes ? run_bytes : loading_bytes; }
};

struct StrategyResult {
  Strategy strategy;
  Outcome outcome = Outcome::NotApplicable;
  Source outcome_source = Source::Predicted;
  Outcome predicted_outcome = Outcome::NotApplicable;
  std::string verdict;                   // one line for humans
  std::optional<Finding> first_error;    // first failing invariant (checker, predicted)
  std::vector<Finding> findings;         // every error and warning finding (predicted)
  std::string correctness;               // "not-run" or the RunResult verdict ("match", ...)
  std::optional<RunResult> run;          // the harness run of this layout, when given
  bool prediction_disagrees = false;     // run outcome differs from the predicted one
  MemoryFigures memory;
  CommEstimate comm;                     // predicted
  int64_t micro_batches = 1;
  int64_t bubble_num = 0, bubble_den = 1;  // (pp-1)/(m+pp-1), reduced
  double bubble = 0;                     // fraction of GPU time idle in the pipeline schedule
  double busy() const { return 1.0 - bubble; }
  std::optional<double> tokens_per_s;    // measured
  std::optional<double> forward_ms;      // measured
  // With a run: the checker's runtime error text for the run's own batch x seq ("" when it
  // predicts the run completes), and whether the ranks raised exactly that text.
  std::string predicted_run_error;
  bool error_text_matches = false;
  // With a completed run: worst error vs the single-device reference over every layer and the
  // logits (measured), and the router attribution (tokens whose top-k differ; benign near-ties).
  std::optional<double> max_nmse, max_abs;
  int64_t router_flips = 0, router_flips_benign = 0;
  std::string note;                      // extra explanation (why this layout, disagreement, ...)
};

struct GpuSummary {
  int64_t gpus = 0;
  std::string recommended;       // strategy id, "" when nothing works
  std::string recommended_name;
  std::string reason;
};

// A checkpoint compared with the config's tensor inventory (optional input of the report).
struct CheckpointSummary {
  std::string path;
  int64_t tensors = 0;
  int64_t bytes = 0;
  std::string dtype;                    // dtype of most tensors (safetensors spelling)
  int64_t missing = 0, unexpected = 0, shape_mismatches = 0;
  std::vector<std::string> problems;    // the first few, human-readable
  // The first missing or misshapen tensor: its name, what the checkpoint has there, the problem.
  std::string first_tensor, first_value, first_problem;
  bool consistent() const { return missing == 0 && unexpected == 0 && shape_mismatches == 0; }
  // CheckpointError naming the file, the first missing or misshapen tensor and its value when a
  // tensor the loader needs is missing or has another shape (tensors the loader does not read,
  // e.g. rotary buffers of older checkpoints, are listed as unexpected but load).
  void require_loadable() const;
};
// Opens the checkpoint (CheckpointError on a bad file) and compares names and shapes with the
// config's inventory (per-expert or packed experts, as the loader reads them).
CheckpointSummary summarize_checkpoint(const ModelConfig& c, const std::string& path);

struct StrategyReport {
  ModelConfig config;
  StrategyOptions options;
  DType dtype = DType::BF16;
  std::optional<CheckpointSummary> checkpoint;
  std::vector<StrategyResult> results;   // by GPU count, then strategy order
  std::vector<GpuSummary> summaries;     // one per GPU count
  std::vector<RunResult> unmatched_runs; // runs whose layout matched no strategy
};

// Evaluates every strategy for every GPU count. A run is attached to the strategy whose plan has
// the same tp, ep, pp, plan style and loading mode.
StrategyReport compare_strategies(const ModelConfig& c, const StrategyOptions& o,
                                  const std::vector<RunResult>& runs = {});

// "" when `report --run` launches this row (the checker predicts it runs, computes silently wrong
// results, or raises a shape error a run reproduces); otherwise why not: not applicable, out of
// memory at full size (a reduced-width run cannot show it), or an invariant HF enforces before
// any forward (the harness would run it).
std::string why_not_run(const StrategyResult& r);

// A failing row whose harness run raised exactly the checker's prediction for the run's own shape:
// the users' text (the first failing invariant's, at the report's batch x seq) leads and the run's
// text confirms it. `report --run` on CPU runs a reduced width at batch 2 x seq 16, so the ranks
// raise e.g. "shape '[2, 16, -1, 128]' ... 2048" for the users' "shape '[64, 103, -1, 128]' ...
// 421888"; RunResult carries only the ranks' texts, so the users' text comes from the checker.
struct ConfirmedFailure {
  std::string users_text;  // first_error->error_text (predicted at the report's batch x seq)
  std::string run_text;    // what the first failing rank raised (measured)
  std::string where;       // "reduced-width ranks" or "the ranks" (a run at the config's widths)
};
// nullopt unless the row fails, measured, with error_text_matches and a predicted users' text.
std::optional<ConfirmedFailure> confirmed_failure(const StrategyResult& r);

// Results of one GPU count (pointers into r.results).
std::vector<const StrategyResult*> results_for(const StrategyReport& r, int64_t gpus);
// The recommendations, the largest GPU count first (the reports lead with them).
std::vector<const GpuSummary*> summaries_largest_first(const StrategyReport& r);
const StrategyResult* find_result(const StrategyReport& r, int64_t gpus, const std::string& id);

// "shardcheck.report/1": see docs/report-schema.md.
extern const char* const kReportSchema;
void to_json(nlohmann::json& j, const CheckpointSummary& s);
void to_json(nlohmann::json& j, const StrategyResult& r);
void to_json(nlohmann::json& j, const StrategyReport& r);

}  // namespace sc
