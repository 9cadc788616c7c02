// `shardcheck gate CONFIG...`: the CI gate. Runs the checker on every config x layout, writes
// JUnit XML, and exits 1 on any failure the baseline does not list, 3 when a model config could
// not be read (the others are still gated), 0 otherwise, 2 for bad flags or a bad baseline.
// Baseline format and CI usage: docs/gate.md, examples/github-workflow-gate.yml.
#include <cstdio>
#include <nlohmann/json.hpp>

#include "apps/cli.h"
#include "models/atomic_file.h"
#include "models/errors.h"
#include "reports/gate.h"
#include "reports/junit.h"

namespace sc::cli {
namespace {

struct GateArgs {
  std::vector<std::string> configs;
  std::string tps = "1,2,4,8", eps = "1", pps = "1", plans = "hf-auto";
  int64_t batch = 64, seq = 103, micro_batches = 1;
  std::string gpu_mem = "0";
  bool full_tensor_loading = false, json = false;
  std::string baseline, write_baseline, junit;
};

std::vector<PlanStyle> parse_plans(const std::string& text) {
  std::vector<PlanStyle> out;
  size_t i = 0;
  while (i <= text.size()) {
    size_t j = text.find(',', i);
    if (j == std::string::npos) j = text.size();
    out.push_back(plan_style_from_name(text.substr(i, j - i)));  // PlanError names --plan and the value
    i = j + 1;
  }
  return out;
}

// Entries of `old` outside this run's configs x layouts, then the current failures (keeping the
// reasons written for them before, whether the old entry named the config or its path).
std::vector<BaselineEntry> merged_baseline(const std::vector<BaselineEntry>& old, const GateResult& r) {
  auto same_case = [](const BaselineEntry& e, const GateCase& c) {
    return c.status != CaseStatus::Error && (e.config == c.config || e.config == c.config_path) && e.tp == c.plan.tp && e.ep == c.plan.ep &&
           e.pp == c.plan.pp && e.plan == plan_style_name(c.plan.style);
  };
  std::vector<BaselineEntry> out;
  for (const BaselineEntry& e : old) {
    bool in_run = false;
    for (const GateCase& c : r.cases) in_run |= same_case(e, c);
    if (!in_run) out.push_back(e);
  }
  // baseline_from lists the failures case by case, error by error: walk the same order to carry
  // the old reasons over.
  std::vector<BaselineEntry> current = baseline_from(r);
  size_t k = 0;
  for (const GateCase& c : r.cases)
    for (const Finding& f : c.errors) {
      for (const BaselineEntry& o : old)
        if (same_case(o, c) && o.finding == f.id) current[k].reason = o.reason;
      ++k;
    }
  out.insert(out.end(), current.begin(), current.end());
  return out;  // baseline_json sorts and removes duplicates
}

const bool kGate = register_command({"gate", 50, [](CLI::App& app) {
  auto a = std::make_shared<GateArgs>();
  app.description("CI gate: check every config x layout, write JUnit XML; exit 1 on failures not in the baseline");
  app.add_option("configs", a->configs, "HF config.json files")->required();
  app.add_option("--tp", a->tps, "comma list of tensor-parallel sizes")->capture_default_str();
  app.add_option("--ep", a->eps, "comma list of expert-parallel sizes")->capture_default_str();
  app.add_option("--pp", a->pps, "comma list of pipeline sizes")->capture_default_str();
  app.add_option("--plan", a->plans, "comma list of plan styles: hf-auto, replicate-kv")->capture_default_str();
  app.add_option("--batch", a->batch, "batch size (in the exact error texts)")->capture_default_str();
  app.add_option("--seq", a->seq, "sequence length (in the exact error texts)")->capture_default_str();
  app.add_option("--micro-batches", a->micro_batches, "pipeline micro-batches")->capture_default_str();
  app.add_option("--gpu-mem", a->gpu_mem, "per-GPU memory in GiB to gate on (0: memory not gated)")
      ->capture_default_str();
  app.add_flag("--full-tensor-loading", a->full_tensor_loading, "every rank reads full tensors (HF's EP loading)");
  app.add_option("--baseline", a->baseline, "JSON list of known, accepted failures (docs/gate.md)");
  app.add_option("--write-baseline", a->write_baseline, "write the current failures as the baseline to this file");
  app.add_option("--junit", a->junit, "write JUnit XML to this file");
  app.add_flag("--json", a->json, "print the result as JSON to stdout");
  return [a]() -> int {
    // Flags and the baseline are checked before anything runs: a bad one is exit 2. A config that
    // cannot be read becomes an error case (exit 3); a file that is no model config is skipped.
    GateOptions o;
    o.tps = parse_int_list(a->tps, "--tp");
    o.eps = parse_int_list(a->eps, "--ep");
    o.pps = parse_int_list(a->pps, "--pp");
    o.plans = parse_plans(a->plans);
    o.batch = a->batch;
    o.seq = a->seq;
    o.micro_batches = a->micro_batches;
    o.full_tensor_loading = a->full_tensor_loading;
    o.gpu_mem_gib = parse_gib(a->gpu_mem, "--gpu-mem");
    ParallelPlan probe;  // batch / seq / micro-batches are the same for every case: check them once
    probe.batch = o.batch;
    probe.seq = o.seq;
    probe.micro_batches = o.micro_batches;
    probe.validate();
    std::vector<BaselineEntry> baseline;
    if (!a->baseline.empty()) baseline = read_baseline(a->baseline);

    std::vector<GateInput> inputs;
    for (const auto& path : a->configs) inputs.push_back(read_gate_input(path));
    GateResult r = run_gate(inputs, o, baseline);
    for (const GateCase& c : r.cases)
      if (c.status == CaseStatus::Error) std::fprintf(stderr, "shardcheck: %s\n", c.error.c_str());
    for (const SkippedFile& f : r.not_model_configs)
      std::fprintf(stderr, "shardcheck gate: skipped %s: not a model config: %s\n", f.path.c_str(), f.reason.c_str());
    if (!a->write_baseline.empty()) {
      const std::vector<BaselineEntry> fresh = merged_baseline(baseline, r);
      write_file_atomic(a->write_baseline, baseline_json(fresh));
      apply_baseline(r, fresh);
    }
    if (!a->junit.empty()) write_file_atomic(a->junit, render_junit(r));
    for (const auto& e : r.stale)
      std::fprintf(stderr, "shardcheck gate: stale baseline entry %s (no longer fails: remove it)\n",
                   e.describe().c_str());
    if (a->json) {
      nlohmann::json j = r;
      print(j.dump(2));
    } else {
      print(render_gate_text(r));
    }
    return r.exit_code();
  };
}});

}  // namespace
}  // namespace sc::cli
