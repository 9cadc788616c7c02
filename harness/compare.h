// Comparison of a sharded run with the single-device reference, with router attribution:
// a difference explained only by top-k near-ties of the router (and what they cause downstream
// through causal attention) is a benign router flip, anything else is a mismatch naming the
// layer, the module and the rank(s).
#pragma once
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <ATen/ATen.h>

#include "checks/run_result.h"
#include "models/config.h"
#include "families/decoder/probe.h"
#include "families/decoder/stage.h"
#include "families/decoder/weights.h"

namespace sc {

using TapMap = std::map<std::pair<int64_t, int>, at::Tensor>;  // (layer, Tap) -> tensor

// What one rank of a run recorded (CPU tensors): its taps (probe.h) and the outputs its stage
// assembled from the micro-batches.
struct RankObservation {
  int64_t rank = 0;
  TapMap taps;
  std::map<int64_t, at::Tensor> layer_out;  // [B, S, H] as the stage assembled them
  at::Tensor logits;                        // last stage: [B, S, V]
};

// A rank's observation: its probe's taps and its stage's assembled outputs, on the CPU.
RankObservation observation_of(int64_t rank, const Probe& probe, const StageOutput& out);

// What a run keeps for comparison (full positions, [B, S, ...]).
struct Captures {
  std::map<int64_t, at::Tensor> attn_out;       // residual after the attention of layer l (h)
  std::map<int64_t, at::Tensor> layer_out;      // residual after layer l
  std::map<int64_t, at::Tensor> router_logits;  // [B, S, E]
  std::map<int64_t, at::Tensor> topk_ids;       // [B, S, k]
  at::Tensor logits;                            // [B, S, V]
  // Per rank (every rank of a sharded run; the one rank of the reference): empty when the run
  // was not observed.
  std::vector<RankObservation> ranks;
  // The reference's weights (world size 1), from which each rank's expected partial sums are
  // computed (harness/localise.h); null for a sharded run.
  std::shared_ptr<const ModelWeights> weights;
};

// Tolerance policy per dtype (documented in README "Tolerances"):
//   token_rel  per-token relative L2 error ||a - b|| / ||b|| above which a token has diverged
//   nmse       whole-tensor NMSE above which a tensor does not match
//   margin     router logit gap between the k-th and (k+1)-th expert of the reference below
//              which a different top-k choice is a near-tie (benign)
struct Tolerance {
  double token_rel = 1e-4;
  double nmse = 1e-8;
  double margin = 1e-3;
};
Tolerance tolerance_for(at::ScalarType dtype);

// Fills out.comparisons, out.verdict, out.first_divergence, out.summary, out.tolerance_nmse.
// attention_mask [B, S] (optional): padding positions are not compared. Every layer's output and
// attention output and the logits decide the verdict. When both runs were observed per rank
// (ref.ranks / ref.weights and got.ranks), the first difference is located by partial results
// (harness/localise.h: out.localisation names layer, module and exactly the ranks); otherwise by
// symptoms (which module's output differs first).
void compare_captures(const ModelConfig& c, const ParallelPlan& p, const Captures& ref, const Captures& got,
                      const at::Tensor& attention_mask, const Tolerance& tol, RunResult& out);

}  // namespace sc
