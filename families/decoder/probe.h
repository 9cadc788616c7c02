// Observation points of a rank's forward (docs/detection.md): what the rank holds before and
// after each collective, in forward order, so that a comparison can name where a sharded run
// first differs from the reference, not where the difference shows. The forward records a tensor
// at each point when the rank's Comm carries a Probe; at world size 1 (the reference) the same
// points hold the full tensors, from which the harness derives every rank's expected slice or
// partial sum (harness/localise.h).
#pragma once
#include <cstdint>
#include <map>
#include <utility>
#include <vector>

#include <ATen/ATen.h>

namespace sc {

// In forward order inside a layer; every tensor is batch-first ([b, ...]).
enum class Tap : int {
  AttnMask,      // [b, S, S] additive attention mask of this stage's micro-batch (query rows)
  Positions,     // [b, S] rotary positions of this stage's micro-batch (derived from the mask)
  LayerIn,       // [b, S, H] the layer's input (the stage input at a stage's first layer)
  AttnIn,        // [b, S, H] input_layernorm(x)
  QProj,         // [b, S, h_local, D] q_proj(x).view(...)
  KProj,         // [b, S, kv_local, D]
  VProj,         // [b, S, kv_local, D]
  QNorm,         // [b, S, h_local, D] after q_norm (eager path)
  KNorm,         // [b, S, kv_local, D] after k_norm
  QRope,         // [b, S, h_local, D] after RoPE
  KRope,         // [b, S, kv_local, D]
  AttnHeads,     // [b, S, q_rows] attention output of the local heads, before o_proj
  OPartial,      // [b, S, H] o_proj of the local heads: the partial sum before all_reduce_tp
  AttnOut,       // [b, S, H] after all_reduce_tp
  MlpIn,         // [b, S, H] post_attention_layernorm(h)
  RouterLogits,  // [b, S, E]
  TopK,          // [b, S, k] int64 expert ids
  TopKWeights,   // [b, S, k] routing weights as applied
  ExpertsPartial,  // [b, S, H] this rank's experts' weighted sum, before all_reduce_experts
  ExpertsOut,    // [b, S, H] after all_reduce_experts
  SharedExpert,  // [b, S, H] the gated shared expert's output (after its all_reduce_tp, if split)
  MlpPartial,    // [b, S, H] dense MLP down_proj partial, before all_reduce_tp
  MlpOut,        // [b, S, H] after all_reduce_tp
  LayerOut,      // [b, S, H] the layer's output
  FinalNorm,     // [b, S, H] model.norm(x) (layer -1)
  LmHeadShard,   // [b, S, V_local] this rank's vocab shard of the logits (layer -1)
  Logits,        // [b, S, V] after the vocab gather (layer -1)
  Count
};
const char* tap_name(Tap t);

// One rank's recorded tensors, keyed by (layer, tap); layer -1 is the head. Micro-batches are
// recorded one after another and concatenated along the batch dimension.
struct Probe {
  int64_t rank = 0;
  int64_t layer = -1;  // the layer being run (set by decoder_layer_forward); -1 in the head
  bool sharded = true; // a rank of a plan of world size > 1 (only those take injected faults)
  std::map<std::pair<int64_t, int>, std::vector<at::Tensor>> parts;

  void record(Tap t, const at::Tensor& x) { record_at(layer, t, x); }
  void record_at(int64_t l, Tap t, const at::Tensor& x) { parts[{l, int(t)}].push_back(x.detach().clone()); }
  // (layer, tap) -> the micro-batches concatenated (on the CPU).
  std::map<std::pair<int64_t, int>, at::Tensor> stitched() const;
};

}  // namespace sc
