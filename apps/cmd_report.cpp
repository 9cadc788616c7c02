// `shardcheck report CONFIG`: compare the parallel strategies (layer placement, TP hf-auto /
// replicate-kv, EP full-tensor / shard-only loading, TP x EP, TP x PP) on 1, 2, 4, 8 GPUs and
// write Markdown, JSON and HTML. Informational: exit 0 unless the input is bad (2).
// --run (LibTorch builds) launches the harness for the rows (harness/report_runs.h) and attaches
// the runs as --runs does; without LibTorch it is a usage error.
#include <cstdio>
#include <optional>

#include <nlohmann/json.hpp>

#include "families/family.h"
#include "apps/cli.h"
#include "checks/strategies.h"
#include "models/atomic_file.h"
#include "models/errors.h"
#include "reports/html.h"
#include "reports/markdown.h"
#include "reports/report_json.h"
#if SHARDCHECK_WITH_TORCH
#include "harness/report_runs.h"
#endif

namespace sc::cli {
namespace {

struct ReportArgs {
  std::string config, gpus = "1,2,4,8", dtype, checkpoint, runs;
  int64_t batch = 64, seq = 103, micro_batches = 1;
  std::string gpu_mem = "141";
  std::string md, out_json, html;
  bool json = false;
  bool run = false;
  std::string backend = "gloo";
  int64_t hidden = -1, layers = 0, run_batch = 2, run_seq = 16;
  int timing = 1;
};

const bool kReport = register_command({"report", 40, [](CLI::App& app) {
  auto a = std::make_shared<ReportArgs>();
  app.description("compare parallel strategies per GPU count: feasibility, first failing invariant, memory, "
                  "communication, pipeline bubble (Markdown / JSON / HTML)");
  app.add_option("config", a->config, "HF config.json")->required();
  app.add_option("--gpus", a->gpus, "comma list of GPU counts")->capture_default_str();
  app.add_option("--batch", a->batch, "batch size of one forward")->capture_default_str();
  app.add_option("--seq", a->seq, "sequence length of one forward")->capture_default_str();
  app.add_option("--gpu-mem", a->gpu_mem, "memory per GPU in GiB (141 = H200)")->capture_default_str();
  app.add_option("--micro-batches", a->micro_batches, "pipeline micro-batches for TP x PP")->capture_default_str();
  app.add_option("--dtype", a->dtype, "float32 | bfloat16 | float16 | float64 (default: the config's)");
  app.add_option("--checkpoint", a->checkpoint, "checkpoint (folder or .safetensors) to compare with the config");
  app.add_option("--runs", a->runs, "harness RunResult JSON (object, array, or {\"runs\": [...]}) to attach");
  app.add_option("--md", a->md, "write Markdown to this file");
  app.add_option("--out-json", a->out_json, "write JSON (docs/report-schema.md) to this file");
  app.add_option("--html", a->html, "write a self-contained HTML page to this file");
  app.add_flag("--json", a->json, "print the JSON report to stdout");
  app.add_flag("--run", a->run, "launch harness runs of the rows (reduced width on CPU) and attach them");
  app.add_option("--backend", a->backend, "--run: gloo (ranks as CPU threads) | nccl (one GPU per rank)")
      ->capture_default_str();
  app.add_option("--hidden", a->hidden, "--run: hidden size of the reduced model (default 256 on gloo; 0 = the config's)");
  app.add_option("--layers", a->layers, "--run: layers of the run's model (default: one per pipeline stage)");
  app.add_option("--run-batch", a->run_batch, "--run: batch of the runs' forward")->capture_default_str();
  app.add_option("--run-seq", a->run_seq, "--run: sequence length of the runs' forward")->capture_default_str();
  app.add_option("--timing", a->timing, "--run: timed forwards per run for tokens/s (median; 0 = none)")
      ->capture_default_str();
  return [a]() -> int {
    ModelConfig c = read_model_config_file(a->config);
    StrategyOptions o;
    o.gpus = parse_int_list(a->gpus, "--gpus");
    o.batch = a->batch;
    o.seq = a->seq;
    o.micro_batches = a->micro_batches;
    o.gpu_mem_gib = parse_gib(a->gpu_mem, "--gpu-mem");
    if (!a->dtype.empty()) {
      auto d = dtype_from_torch_name(a->dtype);
      if (!d || !dtype_is_float(*d)) throw PlanError("--dtype", a->dtype, "unknown dtype (float32, bfloat16, float16, float64)");
      o.dtype = *d;
    }
    // Check batch / seq / micro-batches once here, so bad values are exit 2 rather than "n/a" rows.
    ParallelPlan probe;
    probe.batch = o.batch;
    probe.seq = o.seq;
    probe.micro_batches = o.micro_batches;
    probe.validate();

    // A checkpoint that does not match the config is bad input (exit 2), found before any run.
    std::optional<CheckpointSummary> checkpoint;
    if (!a->checkpoint.empty()) {
      checkpoint = summarize_checkpoint(c, a->checkpoint);
      checkpoint->require_loadable();
    }

    std::vector<RunResult> runs;
    if (!a->runs.empty()) runs = read_run_results(a->runs);
    if (a->run) {
#if SHARDCHECK_WITH_TORCH
      ReportRunOptions ro;
      ro.backend = a->backend;
      ro.hidden = a->hidden;
      ro.layers = a->layers;
      ro.batch = a->run_batch;
      ro.seq = a->run_seq;
      ro.timing_repeats = a->timing;
      ReportRuns launched = run_report_rows(c, o, ro, [](const std::string& line) { std::fprintf(stderr, "%s\n", line.c_str()); });
      runs.insert(runs.end(), launched.runs.begin(), launched.runs.end());
      o.launched = launched.launch;
#else
      throw PlanError("--run", "true", "this shardcheck was built without LibTorch; use --runs FILE");
#endif
    }
    StrategyReport r = compare_strategies(c, o, runs);
    r.checkpoint = checkpoint;

    const bool to_files = !a->md.empty() || !a->out_json.empty() || !a->html.empty();
    if (!a->md.empty()) write_file_atomic(a->md, render_report_markdown(r));
    if (!a->out_json.empty()) write_file_atomic(a->out_json, render_report_json(r));
    if (!a->html.empty()) write_file_atomic(a->html, render_report_html(r));
    if (a->json) {
      print(render_report_json(r));
    } else if (!to_files) {
      print(render_report_markdown(r));
    } else {
      for (const auto* f : {&a->md, &a->out_json, &a->html})
        if (!f->empty()) print("shardcheck report: wrote " + *f);
    }
    return 0;
  };
}});

}  // namespace
}  // namespace sc::cli
