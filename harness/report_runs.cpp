#include "harness/report_runs.h"

#include <algorithm>
#include <chrono>
#include <map>
#include <memory>

#include "checks/checker.h"
#include "harness/executor.h"
#include "models/errors.h"
#include "families/decoder/weights.h"
#include "models/reduced.h"

namespace sc {

namespace {

struct Reference {
  Captures captures;
  double ms = 0;
};

}  // namespace

ReportRuns run_report_rows(const ModelConfig& c, const StrategyOptions& o, const ReportRunOptions& ro,
                           const std::function<void(const std::string&)>& progress) {
  if (ro.backend != "gloo" && ro.backend != "nccl") throw PlanError("--backend", ro.backend, "must be gloo or nccl");
  if (ro.hidden < -1) throw PlanError("--hidden", std::to_string(ro.hidden), "must be >= 0 (0 = the config's)");
  if (ro.layers < 0) throw PlanError("--layers", std::to_string(ro.layers), "must be >= 0 (0 = one per stage)");
  if (ro.batch < 1) throw PlanError("--run-batch", std::to_string(ro.batch), "must be >= 1");
  if (ro.seq < 1) throw PlanError("--run-seq", std::to_string(ro.seq), "must be >= 1");
  if (ro.timing_repeats < 0) throw PlanError("--timing", std::to_string(ro.timing_repeats), "must be >= 0");
  const auto t0 = std::chrono::steady_clock::now();
  const bool gpu = ro.backend == "nccl";
  const DType dtype = gpu ? DType::BF16 : DType::F32;
  ReduceOptions red;
  red.hidden = ro.hidden == -1 ? (gpu ? 0 : 256) : ro.hidden;
  if (red.hidden == 0) {  // real widths: only the layer count shrinks
    red.moe_intermediate = 0;
    red.vocab = 0;
  }
  int64_t max_split = 16;
  for (int64_t g : o.gpus) max_split = std::max(max_split, g);
  red.max_split = max_split;

  ReportRuns out;
  out.launch.backend = ro.backend;
  out.launch.device = gpu ? "cuda" : "cpu";
  out.launch.batch = ro.batch;
  out.launch.seq = ro.seq;
  out.launch.dtype = dtype_torch_name(dtype);

  const StrategyReport predicted = compare_strategies(c, o);
  std::map<int64_t, std::unique_ptr<Reference>> refs;  // by layer count
  std::map<int64_t, ModelConfig> models;
  auto model_for = [&](int64_t layers) -> const ModelConfig& {
    auto it = models.find(layers);
    if (it == models.end()) {
      ReduceOptions r = red;
      r.layers = std::min(layers, c.num_hidden_layers);
      it = models.emplace(layers, reduce_config(c, r)).first;
    }
    return it->second;
  };
  {
    ReduceOptions all_layers = red;
    all_layers.layers = 0;
    const std::string widths = describe_reduction(c, reduce_config(c, all_layers));
    out.launch.scale = std::string(red.hidden > 0 ? "tiny width" : "real widths") +
                       (widths == "full widths" ? "" : ", " + widths) + ", " +
                       (ro.layers > 0 ? std::to_string(std::min(ro.layers, c.num_hidden_layers)) + " layers"
                                      : std::string("one layer per pipeline stage")) +
                       " (of " + std::to_string(c.num_hidden_layers) + "); random weights, " + ro.backend + " on " +
                       out.launch.device;
  }
  for (const StrategyResult& row : predicted.results) {
    if (!why_not_run(row).empty()) continue;
    ParallelPlan p = row.strategy.plan;
    p.batch = ro.batch;
    p.seq = ro.seq;
    p.dtype = dtype;
    if (p.micro_batches > p.batch) p.micro_batches = p.batch;
    p.validate();
    const int64_t layers = ro.layers > 0 ? ro.layers : std::max<int64_t>(1, p.pp);
    const ModelConfig& m = model_for(layers);
    const std::string widths = describe_reduction(c, m);
    const std::string row_scale = std::string(red.hidden > 0 ? "tiny width" : "real widths") +
                                  (widths == "full widths" ? "" : ", " + widths) + "; random weights, " + ro.backend +
                                  " on " + out.launch.device;
    if (progress)
      progress("report --run: " + std::to_string(row.strategy.gpus) + " GPUs, " + row.strategy.name + " (" +
               p.describe() + ", " + std::to_string(p.world_size()) + " ranks)");
    RunSpec spec;
    spec.seed = ro.seed;
    spec.dtype = to_scalar_type(dtype);
    spec.backend = ro.backend;
    spec.timing_repeats = ro.timing_repeats;
    spec.full_tensor_reads = !p.shard_only_loading;
    spec.launch.timeout = std::chrono::milliseconds(int64_t(ro.timeout_s * 1000));
    const RunInputs in = random_inputs(m, p.batch, p.seq, ro.seed);
    // A row predicted to raise needs no reference (run_plan computes one only if it completes).
    const bool predicted_raise = check(c, p).predicted_runtime_failure() != nullptr;
    const Reference* ref = nullptr;
    if (!predicted_raise) {
      auto& slot = refs[layers];
      if (!slot) {
        slot = std::make_unique<Reference>();
        slot->captures = run_reference(m, spec, in, ro.timing_repeats > 0 ? &slot->ms : nullptr);
      }
      ref = slot.get();
    }
    PlanRun run = run_plan(m, p, spec, in, ref ? &ref->captures : nullptr);
    RunResult r = std::move(run.result);
    if (ref && r.reference_ms == 0) r.reference_ms = ref->ms;
    r.model = c.name + " (" + row_scale + ", seed " + std::to_string(ro.seed) + ")";
    r.scale = red.hidden > 0 || m.num_hidden_layers != c.num_hidden_layers ? row_scale : "full widths";
    out.runs.push_back(std::move(r));
  }
  out.launch.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return out;
}

}  // namespace sc
