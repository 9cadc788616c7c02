// Communication per token: the formulas are documented in checks/comm.h.
#include "checks/comm.h"

#include <nlohmann/json.hpp>

namespace sc {

double ring_allreduce_bytes(int64_t n, double bytes) {
  if (n <= 1) return 0;
  return 2.0 * double(n - 1) / double(n) * bytes;
}

double ring_allgather_bytes(int64_t n, double bytes) {
  if (n <= 1) return 0;
  return double(n - 1) / double(n) * bytes;
}

CommEstimate estimate_comm(const ModelConfig& c, const ParallelPlan& p) {
  CommEstimate e;
  const int64_t a = dtype_size(p.dtype);
  const double hidden_bytes = double(c.hidden_size) * double(a);  // one token's residual stream
  e.dtype_bytes = a;
  e.layers = c.num_hidden_layers;
  e.sparse_layers = c.num_sparse_layers();
  e.dense_layers = e.layers - e.sparse_layers;
  e.stage_boundaries = p.pp > 1 ? p.pp - 1 : 0;

  // Tensor parallelism: the rowwise projections end in an all-reduce of one hidden vector.
  e.tp_attention_per_layer = ring_allreduce_bytes(p.tp, hidden_bytes);
  e.tp_dense_mlp_per_layer = ring_allreduce_bytes(p.tp, hidden_bytes);
  e.tp_experts_per_layer = ring_allreduce_bytes(p.etp(), hidden_bytes);
  // Expert parallelism: K copies of the token go out, (ep-1)/ep of them to another rank, and back.
  if (p.ep > 1)
    e.ep_per_layer = 2.0 * double(c.num_experts_per_tok) * hidden_bytes * double(p.ep - 1) / double(p.ep);
  // Pipeline: the residual stream crosses each boundary once.
  e.pp_per_boundary = p.pp > 1 ? hidden_bytes : 0;

  e.tp_bytes = double(e.layers) * e.tp_attention_per_layer + double(e.dense_layers) * e.tp_dense_mlp_per_layer +
               double(e.sparse_layers) * e.tp_experts_per_layer;
  e.ep_bytes = double(e.sparse_layers) * e.ep_per_layer;
  e.pp_bytes = double(e.stage_boundaries) * e.pp_per_boundary;
  e.logits_bytes = ring_allgather_bytes(p.tp, double(c.vocab_size) * double(a));

  e.all_reduces = (p.tp > 1 ? e.layers + e.dense_layers : 0) + (p.etp() > 1 ? e.sparse_layers : 0);
  e.all_to_alls = p.ep > 1 ? 2 * e.sparse_layers : 0;
  e.all_gathers = p.tp > 1 ? 1 : 0;
  e.p2p_sends = e.stage_boundaries;
  return e;
}

void to_json(nlohmann::json& j, const CommEstimate& e) {
  j = nlohmann::json{
      {"unit", "bytes per token"},
      {"source", "predicted"},
      {"dtype_bytes", e.dtype_bytes},
      {"per_layer",
       {{"tp_attention", e.tp_attention_per_layer},
        {"tp_dense_mlp", e.tp_dense_mlp_per_layer},
        {"tp_experts", e.tp_experts_per_layer},
        {"ep_dispatch_combine", e.ep_per_layer},
        {"pp_per_boundary", e.pp_per_boundary}}},
      {"layers", {{"total", e.layers}, {"sparse", e.sparse_layers}, {"dense", e.dense_layers}}},
      {"stage_boundaries", e.stage_boundaries},
      {"tp_bytes", e.tp_bytes},
      {"ep_bytes", e.ep_bytes},
      {"pp_bytes", e.pp_bytes},
      {"logits_bytes", e.logits_bytes},
      {"total_bytes", e.total_bytes()},
      {"collectives_per_forward",
       {{"all_reduce", e.all_reduces},
        {"all_to_all", e.all_to_alls},
        {"all_gather", e.all_gathers},
        {"p2p_send", e.p2p_sends},
        {"total", e.collectives()}}}};
}

}  // namespace sc
