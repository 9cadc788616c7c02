// `shardcheck run` and `shardcheck repro`: the harness on real ranks.
#include <nlohmann/json.hpp>

#include "families/family.h"
#include "apps/cli.h"
#include "checks/checker.h"
#include "harness/executor.h"
#include "models/errors.h"
#include "models/fault_hooks.h"
#include "families/decoder/weights.h"
#include "models/reduced.h"
#include "reports/text.h"

namespace sc::cli {
namespace {

struct RunArgs {
  std::string model, config, kernels = "auto", inject_fault;
  PlanFlags plan;
  DeviceFlags device;
  bool json = false, no_padding = false, ignore_memory = false;
  uint64_t seed = 1234;
  int timing = 0;
  double timeout_s = 120;
};

const bool kRun = register_command({"run", 30, [](CLI::App& app) {
  auto a = std::make_shared<RunArgs>();
  a->plan.batch = 2;
  a->plan.seq = 16;
  app.description("run a model sharded over real process groups and compare with the single-device reference");
  add_model_source(app, &a->model, &a->config);
  a->plan.add_to(&app);
  a->device.add_to(&app);
  app.add_option("--seed", a->seed, "seed of random weights and inputs")->capture_default_str();
  app.add_option("--timing", a->timing, "time the forward N times (median)")->capture_default_str();
  app.add_option("--kernels", a->kernels,
                 "auto (best on CUDA, eager on CPU) | eager | best | e.g. sdpa+grouped_experts (torch 2.x, CUDA)")
      ->capture_default_str();
  app.add_option("--timeout", a->timeout_s, "seconds before a stuck collective fails the run")->capture_default_str();
  app.add_flag("--ignore-memory-estimate", a->ignore_memory,
               "run even when the predicted host memory of the ranks exceeds what this host has available");
  app.add_flag("--no-padding", a->no_padding,
               "inputs without padding (default: rows 1.. left-padded, attention mask, generate-style positions)");
  app.add_option("--inject-fault", a->inject_fault,
                 "detection self-test: seed a sharding bug, e.g. q-shard-offset,rank=1,layer=0 (docs/detection.md)");
  app.add_flag("--json", a->json, "JSON output");
  return [a]() -> int {
    std::unique_ptr<faults::Scoped> fault;
    if (!a->inject_fault.empty()) fault = std::make_unique<faults::Scoped>(faults::parse(a->inject_fault));
    ModelConfig c = read_model_config_file(model_config_path(a->model, a->config));
    require_forward_support(c);  // a family with a spec only: one line, before anything else
    if (a->plan.dtype.empty()) a->plan.dtype = "float32";
    ParallelPlan p = a->plan.to_plan(c);
    if (c.max_position_embeddings > 0 && p.seq > c.max_position_embeddings)
      throw PlanError("--seq", std::to_string(p.seq),
                      "longer than max_position_embeddings = " + std::to_string(c.max_position_embeddings) + " of " +
                          c.source);
    RunSpec spec;
    spec.checkpoint = a->model;
    spec.seed = a->seed;
    spec.dtype = to_scalar_type(p.dtype);
    spec.launch.first_gpu = a->device.resolve();
    spec.backend = a->device.backend;
    spec.timing_repeats = a->timing;
    spec.kernels = a->kernels;
    spec.full_tensor_reads = !p.shard_only_loading;
    spec.launch.timeout = std::chrono::milliseconds(int64_t(a->timeout_s * 1000));
    spec.check_memory = !a->ignore_memory;
    spec.progress = ProgressLine();
    RunInputs in = random_inputs(c, p.batch, p.seq, a->seed, !a->no_padding);
    CheckResult predicted = check(c, p);
    PlanRun run = run_plan(c, p, spec, in);
    // Under torchrun rank 0 compares and reports once; the other processes exit with its verdict.
    if (run.follower) return run.result.ok() ? 0 : 1;
    // Prediction vs observation: the checker's first error text must be what the ranks raised.
    const Finding* f = predicted.predicted_runtime_failure();
    if (!f) f = predicted.first_error();
    const bool predicted_fail = predicted.predicted_runtime_failure() != nullptr;
    const bool observed_fail = run.result.verdict == Verdict::Error;
    std::string agreement = predicted_fail == observed_fail ? "prediction agrees" : "PREDICTION DIFFERS";
    if (predicted_fail && observed_fail && !f->error_text.empty() && !run.result.errors.empty() &&
        run.result.errors[0].what != f->error_text)
      agreement = "PREDICTION DIFFERS (text)";
    if (a->json) {
      nlohmann::json j{{"schema", kRunSchema}, {"run", run.result}, {"predicted", predicted}, {"agreement", agreement}};
      if (fault) j["injected_fault"] = a->inject_fault;
      print(j.dump(2));
    } else {
      if (fault) print("injected fault (self-test): " + faults::describe(faults::parse(a->inject_fault)));
      print(render_run_text(run.result));
      print("checker: " + std::string(predicted.ok() ? "predicted pass" : "predicted " + f->id + (predicted_fail ? ": " + f->error_text : "")) +
            " - " + agreement);
    }
    return run.result.ok() ? 0 : 1;
  };
}});

struct ReproArgs {
  std::string backend = "gloo";
  int64_t batch = 64, seq = 103, hidden = 256;
  bool json = false;
};

const bool kRepro = register_command({"repro", 5, [](CLI::App& app) {
  auto a = std::make_shared<ReproArgs>();
  app.description(
      "reproduce the reported Qwen3-235B-A22B TP=8 failure on 8 ranks, explain it, and show the fixes run and match");
  app.add_option("--backend", a->backend, "gloo (8 ranks as threads on CPU) | nccl (8 GPUs)")->capture_default_str();
  app.add_option("--batch", a->batch, "batch")->capture_default_str();
  app.add_option("--seq", a->seq, "sequence length")->capture_default_str();
  app.add_option("--hidden", a->hidden, "hidden size of the reduced-width model (the error text does not depend on it)")
      ->capture_default_str();
  app.add_flag("--json", a->json, "JSON output");
  return [a]() -> int {
    // Under torchrun: one rank per process, 8 processes; the TP=4 fix runs on the first 4 (the
    // others sit it out), rank 0 reports, and every process exits with rank 0's result.
    const bool torchrun = torchrun_job();
    if (torchrun && read_env_rank().world != 8)
      throw PlanError("WORLD_SIZE", std::getenv("WORLD_SIZE"),
                      "repro runs the 8-rank failure and its fixes: start torchrun with --nproc-per-node 8");
    const ModelConfig real = configs::qwen3_235b_a22b();
    const ModelConfig c = configs::qwen3_235b_attention_repro(a->hidden);
    ParallelPlan p8;
    p8.tp = 8;
    p8.batch = a->batch;
    p8.seq = a->seq;
    p8.dtype = DType::F32;
    CheckResult diag = check(real, p8);
    const Finding* f = diag.first_error();

    RunSpec spec;
    spec.backend = a->backend;
    spec.dtype = at::kFloat;
    spec.progress = ProgressLine();
    spec.launch.timeout = std::chrono::milliseconds(120000);
    spec.allow_fewer_ranks_than_processes = true;
    if (a->backend == "nccl") spec.dtype = at::kBFloat16;
    RunInputs in = random_inputs(c, a->batch, a->seq, spec.seed);
    Captures ref = run_reference(c, spec, in);

    PlanRun naive = run_plan(c, p8, spec, in, &ref);
    ParallelPlan fix_rkv = p8;
    fix_rkv.style = PlanStyle::ReplicateKv;
    PlanRun rkv = run_plan(c, fix_rkv, spec, in, &ref);
    ParallelPlan tp4 = p8;
    tp4.tp = 4;
    PlanRun four = run_plan(c, tp4, spec, in, &ref);

    bool reproduced = naive.result.verdict == Verdict::Error && !naive.result.errors.empty() && f;
    for (const auto& e : naive.result.errors) reproduced &= f && e.what == f->error_text;
    reproduced &= naive.result.errors.size() == 8;
    const bool fixes_ok = rkv.result.ok() && four.result.ok();
    if (torchrun && read_env_rank().rank != 0)  // rank 0 reports; every process exits with its result
      return share_from_rank0("") == "0" ? 0 : 1;

    if (a->json) {
      nlohmann::json j{{"schema", kReproSchema}, {"reproduced", reproduced}, {"fixes_match", fixes_ok}, {"diagnosis", diag},
                       {"hf_auto_tp8", naive.result}, {"replicate_kv_tp8", rkv.result}, {"hf_auto_tp4", four.result}};
      print(j.dump(2));
    } else {
      std::string out;
      out += "shardcheck repro: Qwen3-235B-A22B at reduced width: " + describe_reduction(real, c) +
             "; kept: 64 query heads, 4 KV heads, head_dim 128, 128 experts top-8; random weights, batch " +
             std::to_string(a->batch) + " x seq " +
             std::to_string(a->seq) + ", " + a->backend + " backend, 8 ranks\n\n";
      out += "1. hf-auto at TP=8 (what tp_plan=\"auto\" does):\n";
      for (const auto& e : naive.result.errors)
        out += "   rank " + std::to_string(e.rank) + (e.where.empty() ? "" : " (" + e.where + ")") + ": " + e.what + "\n";
      out += reproduced ? "   => reproduced: every rank raises the users' error\n"
                        : "   => NOT reproduced: " + naive.result.summary + "\n";
      out += "\n2. diagnosis (shardcheck check, before any weights load):\n";
      if (f) {
        out += "   " + f->message + "\n   fix: " + f->fix + "\n";
      }
      out += "\n3. the fixes, run on the same ranks and compared with the single-device reference:\n";
      out += "   replicate-kv at TP=8: " + rkv.result.summary + "\n";
      out += "   hf-auto at TP=4:      " + four.result.summary + "\n";
      if (torchrun) out += "\n(one job across 8 torchrun processes, one rank each; the TP=4 fix ran on ranks 0-3)\n";
      print(out);
    }
    const int code = reproduced && fixes_ok ? 0 : 1;
    if (torchrun) share_from_rank0(code == 0 ? "0" : "1");
    return code;
  };
}});

}  // namespace
}  // namespace sc::cli
