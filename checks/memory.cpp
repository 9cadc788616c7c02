// Per-rank memory model. Weights: the exact slice sizes from the sharding table, summed by role
// (one representative tensor per role, times its count), so prediction and loading agree by
// construction. Loading peaks: shard-only reads hold the rank's weights plus one read buffer for
// the largest slice; full-tensor reads (HF's EP loading) hold every tensor of the stage unsharded
// before slicing. Activations: inference forward of one micro-batch (no KV cache, eager attention
// with fp32 scores), the largest of the attention, MLP and logits phases plus the residual stream.
#include <algorithm>

#include "checks/checker.h"

namespace sc {

namespace {

TensorSpec spec(Role r, std::vector<int64_t> shape, int64_t layer, int64_t expert = -1) {
  TensorSpec t;
  t.shape = std::move(shape);
  t.role = r;
  t.layer = layer;
  t.expert = expert;
  return t;
}

struct Acc {
  int64_t elems = 0;          // resident elements on the rank
  int64_t full_elems = 0;     // elements of the unsharded tensors the rank's stage touches
  int64_t max_slice = 0;      // largest slice read at once
  void add(const ModelConfig& c, const ParallelPlan& p, const TensorSpec& t, int64_t rank, int64_t count) {
    if (count <= 0) return;
    const SliceSpec sl = slice_for(c, p, t, rank);
    const int64_t n = sl.numel(t.shape);
    elems += n * count;
    full_elems += t.numel() * count;
    max_slice = std::max(max_slice, n);
  }
};

}  // namespace

std::vector<RankMemory> estimate_memory(const ModelConfig& c, const ParallelPlan& p) {
  const int64_t H = c.hidden_size, D = c.head_dim;
  const int64_t qf = c.num_attention_heads * D, kvf = c.num_key_value_heads * D;
  const int64_t a = dtype_size(p.dtype);
  const int64_t world = p.world_size();
  std::vector<RankMemory> out;
  out.reserve(size_t(world));
  // Layer kinds per stage.
  std::vector<int64_t> first_sparse(size_t(p.pp), -1), first_dense(size_t(p.pp), -1), n_sparse(size_t(p.pp), 0),
      n_dense(size_t(p.pp), 0);
  for (int64_t st = 0; st < p.pp; ++st) {
    auto [b, e] = stage_layers(c.num_hidden_layers, p.pp, st);
    for (int64_t l = b; l < e; ++l) {
      if (c.layer_is_sparse(l)) {
        if (first_sparse[st] < 0) first_sparse[st] = l;
        n_sparse[st]++;
      } else {
        if (first_dense[st] < 0) first_dense[st] = l;
        n_dense[st]++;
      }
    }
  }
  const int64_t mb = std::max<int64_t>(1, p.micro_batches);
  const int64_t B = (p.batch + mb - 1) / mb, S = p.seq, T = B * S;

  for (int64_t rank = 0; rank < world; ++rank) {
    const RankCoord rc = rank_coord(p, rank);
    const int64_t st = rc.stage;
    const int64_t nl = n_sparse[st] + n_dense[st];
    const int64_t l0 = first_sparse[st] >= 0 ? first_sparse[st] : first_dense[st];
    Acc acc;
    if (l0 >= 0) {
      acc.add(c, p, spec(Role::InputNorm, {H}, l0), rank, nl);
      acc.add(c, p, spec(Role::PostNorm, {H}, l0), rank, nl);
      acc.add(c, p, spec(Role::QProj, {qf, H}, l0), rank, nl);
      acc.add(c, p, spec(Role::KProj, {kvf, H}, l0), rank, nl);
      acc.add(c, p, spec(Role::VProj, {kvf, H}, l0), rank, nl);
      acc.add(c, p, spec(Role::OProj, {H, qf}, l0), rank, nl);
      acc.add(c, p, spec(Role::QNorm, {D}, l0), rank, nl);
      acc.add(c, p, spec(Role::KNorm, {D}, l0), rank, nl);
    }
    if (n_dense[st] > 0) {
      const int64_t l = first_dense[st], I = c.intermediate_size;
      acc.add(c, p, spec(Role::DenseGate, {I, H}, l), rank, n_dense[st]);
      acc.add(c, p, spec(Role::DenseUp, {I, H}, l), rank, n_dense[st]);
      acc.add(c, p, spec(Role::DenseDown, {H, I}, l), rank, n_dense[st]);
    }
    int64_t owned_experts = 0, expert_local_inter = 0;
    if (n_sparse[st] > 0) {
      const int64_t l = first_sparse[st], I = c.moe_intermediate_size, E = c.num_experts;
      acc.add(c, p, spec(Role::Router, {E, H}, l), rank, n_sparse[st]);
      auto [eb, ee] = p.ep > 1 ? expert_range(c, p, rc.ep_rank) : std::pair<int64_t, int64_t>{0, E};
      owned_experts = ee - eb;
      // Unsharded bytes of the experts the stage touches are all E experts (full-tensor reads).
      const int64_t e_rep = owned_experts > 0 ? eb : 0;
      Acc experts;
      experts.add(c, p, spec(Role::ExpertGate, {I, H}, l, e_rep), rank, n_sparse[st] * owned_experts);
      experts.add(c, p, spec(Role::ExpertUp, {I, H}, l, e_rep), rank, n_sparse[st] * owned_experts);
      experts.add(c, p, spec(Role::ExpertDown, {H, I}, l, e_rep), rank, n_sparse[st] * owned_experts);
      acc.elems += experts.elems;
      acc.max_slice = std::max(acc.max_slice, experts.max_slice);
      acc.full_elems += 3 * I * H * E * n_sparse[st];
      expert_local_inter = owned_experts > 0 ? slice_for(c, p, spec(Role::ExpertGate, {I, H}, l, e_rep), rank).numel({I, H}) / H : 0;
    }
    const bool first = st == 0, last = st == p.pp - 1;
    if (first) acc.add(c, p, spec(Role::Embed, {c.vocab_size, H}, -1), rank, 1);
    if (last) {
      acc.add(c, p, spec(Role::FinalNorm, {H}, -1), rank, 1);
      // Tied: on a single stage lm_head is the embedding itself; across stages the last needs a copy.
      if (!c.tie_word_embeddings || p.pp > 1) acc.add(c, p, spec(Role::LmHead, {c.vocab_size, H}, -1), rank, 1);
    }

    RankMemory m;
    m.rank = rank;
    m.stage = st;
    m.layers = nl;
    m.weight_bytes = acc.elems * a;
    m.load_peak_shard_bytes = m.weight_bytes + acc.max_slice * dtype_size(c.dtype);
    m.load_peak_full_bytes = std::max(m.load_peak_shard_bytes, acc.full_elems * dtype_size(c.dtype));

    // Activations.
    const AttentionLayout al = attention_layout(c, p, rc.tp_rank);
    const int64_t hq = std::max<int64_t>(al.q_rows / std::max<int64_t>(D, 1), 0);
    const int64_t resid = 2 * T * H * a;
    const int64_t attn = T * (al.q_rows + 2 * al.kv_rows) * a   // q, k, v projections
                         + 2 * T * al.q_rows * a                 // k, v repeated to the query heads
                         + B * hq * S * S * (4 + 4 + a)          // fp32 scores, fp32 softmax, cast
                         + T * al.q_rows * a;                    // attention output
    int64_t mlp = 0;
    if (n_dense[st] > 0) {
      auto [ib, ie] = p.tp > 1 ? chunk_range(c.intermediate_size, p.tp, rc.tp_rank)
                               : std::pair<int64_t, int64_t>{0, c.intermediate_size};
      mlp = std::max(mlp, 3 * T * (ie - ib) * a + T * H * a);
    }
    if (n_sparse[st] > 0) {
      const int64_t E = c.num_experts, K = c.num_experts_per_tok;
      // Routed tokens handled here: T * K spread over E experts, this rank owns owned_experts of them.
      const int64_t routed = (T * K * owned_experts + E - 1) / E;
      mlp = std::max(mlp, 2 * T * E * 4 + 3 * routed * expert_local_inter * a + 2 * routed * H * a + T * H * a);
    }
    int64_t logits = 0;
    if (last) {
      auto [vb, ve] = p.tp > 1 ? chunk_range(c.vocab_size, p.tp, rc.tp_rank)
                               : std::pair<int64_t, int64_t>{0, c.vocab_size};
      logits = T * (ve - vb) * a + (p.tp > 1 ? T * c.vocab_size * a : 0) + T * c.vocab_size * 4;
    }
    m.activation_bytes = resid + std::max({attn, mlp, logits});
    out.push_back(m);
  }
  return out;
}

}  // namespace sc
