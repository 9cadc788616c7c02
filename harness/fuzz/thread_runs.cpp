#include "harness/fuzz/thread_runs.h"

#include <torch/torch.h>

#include "models/errors.h"
#include "families/decoder/local_ranks.h"
#include "families/decoder/model.h"
#include "families/decoder/weights.h"

namespace sc {

namespace {

// ATen intra-op threads off while the ranks run (tiny tensors; the ranks are the parallelism).
class OneAtenThread {
 public:
  OneAtenThread() : saved_(at::get_num_threads()) {
    if (saved_ != 1) at::set_num_threads(1);
  }
  ~OneAtenThread() {
    if (saved_ != 1) at::set_num_threads(saved_);
  }

 private:
  int saved_;
};

ForwardInputs forward_inputs(const RunInputs& in) {
  ForwardInputs f;
  f.input_ids = in.input_ids;
  f.attention_mask = in.attention_mask;
  f.positions_from_mask = in.positions_from_mask;
  return f;
}

CaptureSpec capture_all(const RunSpec& spec) {
  CaptureSpec all;
  all.all_layers = true;
  all.router = spec.capture_router;
  return all;
}

void keep(Captures& dst, const StageOutput& o) {
  for (auto& [k, v] : o.layer_out) dst.layer_out[k] = v;
  for (auto& [k, v] : o.attn_out) dst.attn_out[k] = v;
  for (auto& [k, v] : o.router_logits) dst.router_logits[k] = v;
  for (auto& [k, v] : o.topk_ids) dst.topk_ids[k] = v;
  if (o.logits.defined()) dst.logits = o.logits;
}


}  // namespace

Captures reference_in_process(const ModelConfig& c, const RunSpec& spec, const RunInputs& in) {
  if (!spec.checkpoint.empty()) throw PlanError("checkpoint", spec.checkpoint, "in-process runs use random weights only");
  torch::NoGradGuard ng;
  ParallelPlan one;
  one.dtype = from_scalar_type(spec.dtype);
  LoadOptions o;
  o.dtype = spec.dtype;
  auto w = std::make_shared<const ModelWeights>(random_weights(c, one, 0, spec.seed, o));
  // The reference is one rank of the same stage code, observed.
  const std::vector<RankResult> res =
      run_ranks_in_threads(c, one, [&](int64_t) { return *w; }, forward_inputs(in), capture_all(spec), true);
  if (!res[0].error.empty()) throw std::runtime_error("reference run failed: " + res[0].error);
  Captures cap;
  keep(cap, res[0].out);
  cap.ranks.push_back(observation_of(0, res[0].probe, res[0].out));
  cap.weights = w;
  return cap;
}

PlanRun run_plan_in_threads(const ModelConfig& c, const ParallelPlan& p, const RunSpec& spec, const RunInputs& in,
                            const Captures* reference) {
  p.validate();
  if (!spec.checkpoint.empty()) throw PlanError("checkpoint", spec.checkpoint, "in-process runs use random weights only");
  if (p.dp > 1) throw PlanError("--dp", std::to_string(p.dp), "data-parallel replicas are independent; run with dp=1");
  if (p.ep > 1 && !c.is_moe()) throw PlanError("--ep", std::to_string(p.ep), "expert parallelism needs a MoE model");
  PlanRun run;
  RunResult& r = run.result;
  r.model = c.name + " (random weights, seed " + std::to_string(spec.seed) + ")";
  r.plan = p;
  r.backend = "threads";
  r.device = "cpu";

  const int64_t world = p.world_size(), S = p.stage_size();
  OneAtenThread one_thread;
  // The ranks as threads over families/decoder/local_ranks.h's ThreadWorld (checked in-memory
  // collectives), stage by stage.
  LoadOptions o;
  o.dtype = spec.dtype;
  std::vector<RankResult> res = run_ranks_in_threads(
      c, p, [&](int64_t rank) { return random_weights(c, p, rank, spec.seed, o); }, forward_inputs(in),
      capture_all(spec), /*observe=*/true);

  bool failed = false;
  for (int64_t rank = 0; rank < world; ++rank) {
    const RankResult& rr = res[size_t(rank)];
    if (rr.error.empty()) continue;
    failed = true;
    RankError e;
    e.rank = rank;
    e.where = rr.where;
    e.what = clean_exception_text(rr.error.c_str());
    r.errors.push_back(e);
  }
  if (failed) {
    r.verdict = Verdict::Error;
    r.summary = "error: rank " + std::to_string(r.errors[0].rank) + " failed: " + r.errors[0].what;
    return run;
  }
  Captures got;
  for (int64_t rank = 0; rank < world; ++rank) {
    if (rank % S == 0) keep(got, res[size_t(rank)].out);
    got.ranks.push_back(observation_of(rank, res[size_t(rank)].probe, res[size_t(rank)].out));
  }
  Captures ref_local;
  if (!reference) {
    ref_local = reference_in_process(c, spec, in);
    reference = &ref_local;
  }
  compare_captures(c, p, *reference, got, in.attention_mask, tolerance_for(spec.dtype), r);
  run.captures = std::move(got);
  return run;
}

}  // namespace sc
