#include "harness/fuzz/numerical.h"

#include "checks/checker.h"
#include "harness/executor.h"

namespace sc {

namespace {

fuzz::Limits tiny_limits() {
  fuzz::Limits lim;
  lim.max_ranks = 8;
  lim.tiny = true;
  return lim;
}

PlanRun run_case(const fuzz::FuzzCase& fc) {
  RunSpec spec;
  spec.dtype = at::kDouble;
  spec.seed = 11;
  spec.launch.timeout = std::chrono::milliseconds(20000);
  spec.launch.grace = std::chrono::milliseconds(20000);
  RunInputs in = random_inputs(fc.config, fc.plan.batch, fc.plan.seq, 5);
  return run_plan(fc.config, fc.plan, spec, in);
}

}  // namespace

std::vector<fuzz::Property> numerical_properties() {
  std::vector<fuzz::Property> v;
  v.push_back({"predicted-equals-observed",
               "every rank raises exactly the checker's predicted text, or runs where it predicts a pass", true,
               [](fuzz::CaseRecord& last) {
                 fuzz::FuzzCase fc = *fuzz::gen_case(tiny_limits());
                 last = fc;
                 CheckResult predicted = check(fc.config, fc.plan);
                 PlanRun run = run_case(fc);
                 const bool observed_error = run.result.verdict == Verdict::Error;
                 // Per TP rank of stage 0: predicted attention outcome == observed exception.
                 for (int64_t r = 0; r < fc.plan.tp; ++r) {
                   AttentionOutcome o = predict_attention(fc.config, fc.plan, r, fc.plan.batch, fc.plan.seq);
                   std::string observed;
                   for (const auto& e : run.result.errors)
                     if (e.rank == r) observed = e.what;
                   if (!o.ok) RC_ASSERT(observed == o.error_text);
                 }
                 RC_ASSERT((predicted.predicted_runtime_failure() != nullptr) == observed_error);
               }});
  v.push_back({"sharded-equals-reference",
               "a plan the checker passes runs and equals the single-device reference (fp64), or differs only by "
               "benign router flips",
               true, [](fuzz::CaseRecord& last) {
                 fuzz::FuzzCase fc = *fuzz::gen_case(tiny_limits());
                 last = fc;
                 RC_PRE(check(fc.config, fc.plan).ok());
                 PlanRun run = run_case(fc);
                 RC_ASSERT(run.result.ok());
               }});
  return v;
}

}  // namespace sc
