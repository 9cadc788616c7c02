// In-process runs for the numerical fuzzer: a plan's ranks as threads of this process whose
// collectives combine tensors in memory (families/decoder/local_ranks.h's ThreadWorld: no sockets, no
// store, no process-group set-up), so a tiny-model case costs milliseconds instead of a Gloo
// world's start-up. The forward code, the weights (random_weights per rank) and the comparison
// (compare_captures) are the harness's own; only the transport differs. Collectives are checked
// as the c10d harness checks them: members that pass different shapes or dtypes all throw an error
// naming every rank's shape, and a member that fails, or returns without joining, releases the
// others with an error instead of a hang. The fuzzer
// still runs a share of its cases (and every failing one) over real Gloo and requires the same
// observed outcome (harness/fuzz/numerical.h).
#pragma once
#include <ATen/ATen.h>

#include "harness/compare.h"
#include "harness/executor.h"

namespace sc {

// Same contract as run_plan (spec.backend and spec.launch are not used; spec.checkpoint must be
// empty: random weights only). result.backend is "threads". Every rank is observed (localise.h).
PlanRun run_plan_in_threads(const ModelConfig& c, const ParallelPlan& p, const RunSpec& spec, const RunInputs& in,
                            const Captures* reference = nullptr);

// The single-device reference computed in this thread (world size 1, identity collectives).
Captures reference_in_process(const ModelConfig& c, const RunSpec& spec, const RunInputs& in);

}  // namespace sc
