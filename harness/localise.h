// Localisation by partial results (docs/detection.md). Every rank records, in forward order, the
// tensors it holds before and after each collective (families/decoder/probe.h): its q/k/v heads
// before and after q_norm / k_norm and RoPE, its attention heads, its o_proj partial sum, the
// router's logits and top-k, its experts' partial sum, its dense-MLP partial, its vocab shard,
// and the reduced outputs. The reference (world size 1) records the same points in full; from
// them and its weights this module derives what each rank should hold under the plan (the same
// slice of a full tensor, or the same partial sum: the rank's heads through its o_proj columns,
// its experts on the reference's routing, its intermediate columns, its vocab rows), in the
// plan's own terms (attention_layout, slice_for, expert_range). The first point where any rank
// differs names the layer, the module and exactly the ranks whose tensor is wrong; a point
// whose partial sums all match but whose reduced output differs names the collective.
// This is llama.cpp test-backend-ops' idea (every op against a reference) applied to each
// rank's shard.
#pragma once
#include <ATen/ATen.h>

#include "layout/plan.h"
#include "checks/run_result.h"
#include "harness/compare.h"
#include "models/config.h"

namespace sc {

// ref: the observed reference (ref.ranks has its one rank, ref.weights is set); got: every rank
// of the sharded run (got.ranks). valid [B, S] bool: positions compared (padding excluded).
// Tokens whose router top-k flipped at a near-tie (and what they reach through causal attention)
// are not compared after the flip, by the rule compare_captures uses. Returns the first point
// that differs (not found() when every point matches); *points counts rank x tensor comparisons.
Localisation localise(const ModelConfig& c, const ParallelPlan& p, const Captures& ref, const Captures& got,
                      const at::Tensor& valid, const Tolerance& tol, int64_t* points = nullptr);

}  // namespace sc
