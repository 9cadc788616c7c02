// Comparison of a sharded run with the single-device reference, with router attribution:
// a difference explained only by top-k near-ties of the router (and what they cause downstream
// through causal attention) is a benign router flip, anything else is a mismatch naming the
// layer, the module and the rank(s).
#pragma once
#include <map>
#include <string>

#include <ATen/ATen.h>

#include "checks/run_result.h"
#include "models/config.h"

namespace sc {

// What a run keeps for comparison (full positions, [B, S, ...]).
struct Captures {
  std::map<int64_t, at::Tensor> attn_out;       // residual after the attention of layer l (h)
  std::map<int64_t, at::Tensor> layer_out;      // residual after layer l
  std::map<int64_t, at::Tensor> router_logits;  // [B, S, E]
  std::map<int64_t, at::Tensor> topk_ids;       // [B, S, k]
  at::Tensor logits;                            // [B, S, V]
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
// attention_mask [B, S] (optional): padding positions are not compared.
void compare_captures(const ModelConfig& c, const ParallelPlan& p, const Captures& ref, const Captures& got,
                      const at::Tensor& attention_mask, const Tolerance& tol, RunResult& out);

}  // namespace sc
