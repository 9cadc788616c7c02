// How the numerical fuzz properties (harness/fuzz/numerical.h) build and run one case: the spec
// and inputs every run of a case uses, the two backends, and the two comparisons the properties
// make. Exposed so that tests run fixed cases exactly as the fuzzer runs generated ones.
#pragma once
#include <string>

#include "checks/checker.h"
#include "checks/fuzz/fuzz.h"
#include "harness/executor.h"

namespace sc {

// fp64, the fuzzer's weight seed, and the launch bounds of its Gloo runs.
RunSpec numerical_case_spec();
// The case's input ids: batch x seq of the case's plan, from the fuzzer's input seed.
RunInputs numerical_case_inputs(const fuzz::FuzzCase& fc);

// The case on the in-process threads backend (harness/fuzz/thread_runs.h).
PlanRun run_numerical_case_on_threads(const fuzz::FuzzCase& fc);
// The case on Gloo thread-ranks (the harness's executor). A plan the checker passes is compared
// with the single-device reference computed in this thread.
PlanRun run_numerical_case_on_gloo(const fuzz::FuzzCase& fc, const CheckResult& predicted);

// "" when the run agrees with the prediction: every TP rank of stage 0 whose attention the checker
// predicts to fail raised exactly the predicted text, and the run failed iff a failure is predicted.
std::string numerical_predicted_vs_observed(const fuzz::FuzzCase& fc, const CheckResult& predicted,
                                            const RunResult& run);
// "" when a run that the checker predicts to run agrees with the reference: it matches (or differs
// only by benign router flips), except that a plan flagged gqa-misaligned must diverge, first in
// the attention of ranks the finding names.
std::string numerical_sharded_vs_reference(const CheckResult& predicted, const RunResult& run);
// "" when two runs of one case observed the same: the verdict, and the text of every rank whose
// attention the checker predicts to fail.
std::string numerical_same_outcome(const fuzz::FuzzCase& fc, const RunResult& a, const RunResult& b);

}  // namespace sc
