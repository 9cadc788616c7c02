// Communication model: how many bytes a forward pass moves between GPUs per token of the batch,
// from the ModelConfig and the ParallelPlan alone (a prediction; nothing is measured). Torch-free.
//
// Notation: a = bytes per element of the plan's dtype, H = hidden_size, K = num_experts_per_tok,
// V = vocab_size, tp / ep / pp from the plan, etp = expert tensor-parallel size (plan.etp()).
//
// Collective primitives (bandwidth term of the ring algorithms, per rank):
//   ring all-reduce of X bytes over n ranks: each rank sends 2(n-1)/n * X (reduce-scatter, then
//     all-gather) and receives as much;                                 ring_allreduce_bytes(n, X)
//   ring all-gather producing X bytes over n ranks: each rank sends (n-1)/n * X;
//                                                                      ring_allgather_bytes(n, X)
//
// Per token of the batch (the unit of every figure below):
//   TP attention   every layer, o_proj is rowwise, so its output is all-reduced over tp:
//                    2(tp-1)/tp * H * a                                   (only when tp > 1)
//   TP MLP         dense layers: down_proj rowwise over tp     -> 2(tp-1)/tp * H * a
//                  sparse layers: the experts' down_proj rowwise over etp -> 2(etp-1)/etp * H * a
//                    (etp = tp when ep = 1: HF's TP of experts; etp = 1 when ep = tp: TP x EP)
//   EP             every sparse layer, dispatch (token -> expert owners) and combine (back):
//                    2 * K * H * a * (ep-1)/ep      (K copies, fraction (ep-1)/ep of them remote)
//   PP             every stage boundary, the residual stream goes to the next stage:
//                    H * a per boundary, pp-1 boundaries
//   logits         lm_head is vocab-parallel; the logits are all-gathered over tp once per token:
//                    (tp-1)/tp * V * a                                    (only when tp > 1)
// TP and logits figures are what each rank of the group sends; EP is the token's own dispatch and
// combine traffic; PP is the activation crossing each boundary. Latency is not modelled, but the
// number of collectives per forward (each a synchronisation point) is counted.
#pragma once
#include <cstdint>

#include <nlohmann/json_fwd.hpp>

#include "layout/plan.h"
#include "models/config.h"

namespace sc {

// 2(n-1)/n * bytes (0 for n <= 1).
double ring_allreduce_bytes(int64_t n, double bytes);
// (n-1)/n * bytes (0 for n <= 1).
double ring_allgather_bytes(int64_t n, double bytes);

struct CommEstimate {
  int64_t dtype_bytes = 0;
  int64_t layers = 0, sparse_layers = 0, dense_layers = 0;
  int64_t stage_boundaries = 0;  // pp - 1

  // Bytes per token, per layer of the given kind (or per boundary).
  double tp_attention_per_layer = 0;  // o_proj all-reduce
  double tp_dense_mlp_per_layer = 0;  // dense down_proj all-reduce
  double tp_experts_per_layer = 0;    // routed experts' down_proj all-reduce over etp
  double ep_per_layer = 0;            // dispatch + combine, per sparse layer
  double pp_per_boundary = 0;

  // Bytes per token over the whole forward pass.
  double tp_bytes = 0;      // all TP all-reduces (attention + MLP)
  double ep_bytes = 0;      // all dispatch + combine
  double pp_bytes = 0;      // all stage-boundary transfers
  double logits_bytes = 0;  // vocab-parallel logits all-gather
  double total_bytes() const { return tp_bytes + ep_bytes + pp_bytes + logits_bytes; }

  // Collectives per forward pass (synchronisation points).
  int64_t all_reduces = 0;   // TP attention + MLP
  int64_t all_to_alls = 0;   // EP: 2 per sparse layer (dispatch, combine)
  int64_t all_gathers = 0;   // logits
  int64_t p2p_sends = 0;     // PP: one per boundary
  int64_t collectives() const { return all_reduces + all_to_alls + all_gathers + p2p_sends; }
};

CommEstimate estimate_comm(const ModelConfig& c, const ParallelPlan& p);

void to_json(nlohmann::json& j, const CommEstimate& e);

}  // namespace sc
