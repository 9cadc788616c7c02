#include "harness/fuzz/numerical.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>

#include "checks/checker.h"
#include "harness/executor.h"
#include "harness/fuzz/numerical_case.h"
#include "harness/fuzz/thread_runs.h"
#include "models/errors.h"

namespace sc {

namespace {

fuzz::Limits tiny_limits() {
  fuzz::Limits lim;
  lim.max_ranks = 8;
  lim.tiny = true;
  return lim;
}

// SC_FUZZ_TRACE=1: one stderr line per run (backend, milliseconds, verdict, case).
const bool kTrace = std::getenv("SC_FUZZ_TRACE") != nullptr;
void trace(const char* backend, std::chrono::steady_clock::time_point t0, const fuzz::FuzzCase& fc, const RunResult& r) {
  if (!kTrace) return;
  const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  std::fprintf(stderr, "[fuzz] %-7s %8.1f ms  %-6s %s\n", backend, ms, verdict_name(r.verdict), fc.describe().c_str());
}

std::string error_of(const RunResult& r, int64_t rank) {
  for (const auto& e : r.errors)
    if (e.rank == rank) return e.what;
  return "";
}

// Runs one case as the options say and returns the run whose observation the property checks:
// the Gloo one whenever the case ran on Gloo. `violates` tells whether a run breaks the property.
struct Runner {
  NumericalFuzzOptions opt;
  std::shared_ptr<int> calls = std::make_shared<int>(0);

  template <typename Violates>
  RunResult run(const fuzz::FuzzCase& fc, const CheckResult& predicted, const Violates& violates) const {
    auto count = [&](bool gloo) {
      if (opt.counts) ++(gloo ? opt.counts->gloo : opt.counts->threads);
    };
    auto t0 = std::chrono::steady_clock::now();
    if (opt.backend == "gloo") {
      count(true);
      RunResult g = run_numerical_case_on_gloo(fc, predicted).result;
      trace("gloo", t0, fc, g);
      return g;
    }
    ++*calls;
    count(false);
    RunResult t = run_numerical_case_on_threads(fc).result;
    trace("threads", t0, fc, t);
    const bool sampled = opt.gloo_every > 0 && *calls % opt.gloo_every == 0;
    if (!sampled && violates(t).empty()) return t;
    count(true);
    t0 = std::chrono::steady_clock::now();
    RunResult g = run_numerical_case_on_gloo(fc, predicted).result;
    trace("gloo", t0, fc, g);
    const std::string diff = numerical_same_outcome(fc, t, g);
    if (!diff.empty()) RC_FAIL("the threads and gloo backends disagree: " + diff);
    return g;
  }
};

}  // namespace

RunSpec numerical_case_spec() {
  RunSpec spec;
  spec.dtype = at::kDouble;
  spec.seed = 11;
  // Tiny models: every collective and group creation takes milliseconds, so 5 s is a guard only.
  // (It was the workaround for later-stage ranks that waited out the Gloo rendezvous timeout when
  // stage 0 failed during their group creation; process_group.cpp now releases them at once.)
  spec.launch.timeout = std::chrono::milliseconds(5000);
  spec.launch.grace = std::chrono::milliseconds(5000);
  return spec;
}

RunInputs numerical_case_inputs(const fuzz::FuzzCase& fc) { return random_inputs(fc.config, fc.plan.batch, fc.plan.seq, 5); }

PlanRun run_numerical_case_on_gloo(const fuzz::FuzzCase& fc, const CheckResult& predicted) {
  const RunSpec spec = numerical_case_spec();
  const RunInputs in = numerical_case_inputs(fc);
  // A plan the checker passes needs the single-device reference: computed in this thread (it is
  // the same forward code at world size 1), which spares a one-rank Gloo world per case.
  if (predicted.predicted_runtime_failure() == nullptr) {
    const Captures ref = reference_in_process(fc.config, spec, in);
    return run_plan(fc.config, fc.plan, spec, in, &ref);
  }
  return run_plan(fc.config, fc.plan, spec, in);
}

PlanRun run_numerical_case_on_threads(const fuzz::FuzzCase& fc) {
  return run_plan_in_threads(fc.config, fc.plan, numerical_case_spec(), numerical_case_inputs(fc));
}

std::string numerical_predicted_vs_observed(const fuzz::FuzzCase& fc, const CheckResult& predicted, const RunResult& run) {
  // HF's load-time refusal comes first (every rank raises its text before any forward); otherwise,
  // per TP rank of stage 0, a predicted attention failure is raised with exactly the predicted text.
  if (const LoadOutcome lo = predict_hf_load(fc.config, fc.plan); !lo.ok) {
    for (int64_t r = 0; r < fc.plan.world_size(); ++r) {
      const std::string observed = error_of(run, r);
      if (observed != lo.error_text)
        return "rank " + std::to_string(r) + " raised '" + observed + "' where the checker predicts HF's load-time '" +
               lo.error_text + "'";
    }
    return run.verdict == Verdict::Error ? std::string() : std::string("the checker predicts HF's load-time refusal but the run ") + verdict_name(run.verdict);
  }
  for (int64_t r = 0; r < fc.plan.tp; ++r) {
    const AttentionOutcome o = predict_attention(fc.config, fc.plan, r, fc.plan.micro_batch_rows(), fc.plan.seq);
    if (o.ok) continue;
    const std::string observed = error_of(run, r);
    if (observed != o.error_text)
      return "rank " + std::to_string(r) + " raised '" + observed + "' where the checker predicts '" + o.error_text + "'";
  }
  const Finding* f = predicted.predicted_runtime_failure();
  const bool observed_error = run.verdict == Verdict::Error;
  if ((f != nullptr) != observed_error)
    return f ? "the checker predicts a failure (" + f->id + ") but the " + run.backend + " run " + verdict_name(run.verdict)
             : "the checker predicts a pass but the " + run.backend + " run failed: " + run.summary;
  return "";
}

std::string numerical_sharded_vs_reference(const CheckResult& predicted, const RunResult& run) {
  const Finding* silent = nullptr;
  for (const Finding& f : predicted.findings)
    if (f.id == "gqa-misaligned") silent = &f;
  if (!silent) return run.ok() ? std::string() : run.backend + " run: " + run.summary;
  // Predicted silently wrong: the run must diverge, first in the attention of the named ranks.
  const std::string attn = "self_attn (scores, mask, softmax, repeat_kv)";
  if (run.verdict != Verdict::Mismatch)
    return "the checker predicts gqa-misaligned (a silently wrong attention) but the " + run.backend + " run is " +
           verdict_name(run.verdict) + ": " + run.summary;
  const Localisation& l = run.localisation;
  bool inside = l.module == attn;
  for (int64_t r : l.ranks)
    inside &= std::find(silent->ranks.begin(), silent->ranks.end(), r) != silent->ranks.end();
  if (!inside) return "the checker predicts gqa-misaligned in the attention, but the " + run.backend +
                      " run first differs at " + run.first_divergence;
  return "";
}

std::string numerical_same_outcome(const fuzz::FuzzCase& fc, const RunResult& a, const RunResult& b) {
  if (a.verdict != b.verdict)
    return std::string(verdict_name(a.verdict)) + " on " + a.backend + " (" + a.summary + ") but " +
           verdict_name(b.verdict) + " on " + b.backend + " (" + b.summary + ")";
  for (int64_t r = 0; r < fc.plan.tp; ++r) {
    if (predict_attention(fc.config, fc.plan, r, fc.plan.micro_batch_rows(), fc.plan.seq).ok) continue;
    if (error_of(a, r) != error_of(b, r))
      return "rank " + std::to_string(r) + " raised '" + error_of(a, r) + "' on " + a.backend + " but '" +
             error_of(b, r) + "' on " + b.backend;
  }
  return "";
}

std::vector<fuzz::Property> numerical_properties(const NumericalFuzzOptions& opt) {
  if (opt.backend != "threads" && opt.backend != "gloo")
    throw PlanError("--backend", opt.backend, "the numerical fuzzer runs on threads or gloo");
  if (opt.gloo_every < 0) throw PlanError("--gloo-every", std::to_string(opt.gloo_every), "must be >= 0");
  const Runner runner{opt};  // one case counter for both properties
  std::vector<fuzz::Property> v;
  v.push_back({"predicted-equals-observed",
               "every rank raises exactly the checker's predicted text, or runs where it predicts a pass", true,
               [gen = fuzz::gen_case(tiny_limits()), runner](fuzz::CaseRecord& last) {
                 fuzz::FuzzCase fc = *gen;
                 last = fc;
                 const CheckResult predicted = check(fc.config, fc.plan);
                 auto violates = [&](const RunResult& r) { return numerical_predicted_vs_observed(fc, predicted, r); };
                 const RunResult run = runner.run(fc, predicted, violates);
                 const std::string why = violates(run);
                 if (!why.empty()) RC_FAIL(why);
               }});
  v.push_back({"sharded-equals-reference",
               "a plan that runs equals the single-device reference (fp64; left-padded batches, micro-batches), "
               "or differs only by benign router flips; a plan the checker flags as silently wrong "
               "(gqa-misaligned) diverges in the attention of the ranks it names",
               true, [gen = fuzz::gen_case(tiny_limits()), runner](fuzz::CaseRecord& last) {
                 fuzz::FuzzCase fc = *gen;
                 last = fc;
                 const CheckResult predicted = check(fc.config, fc.plan);
                 const bool runs = predicted.predicted_runtime_failure() == nullptr;
                 RC_PRE(runs);
                 auto violates = [&predicted](const RunResult& r) {
                   return numerical_sharded_vs_reference(predicted, r);
                 };
                 const RunResult run = runner.run(fc, predicted, violates);
                 const std::string why = violates(run);
                 if (!why.empty()) RC_FAIL(why);
               }});
  return v;
}

}  // namespace sc
