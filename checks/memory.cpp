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

bool is_expert(const TensorSpec& t) {
  return t.role == Role::ExpertGate || t.role == Role::ExpertUp || t.role == Role::ExpertDown;
}

// One layer of each kind (layer_kind_index), its tensors with a single representative expert
// (index 0), built once per estimate: the per-rank loop only slices them.
struct LayerSig {
  bool sparse = false;
  std::vector<TensorSpec> tensors;  // without routed experts
  std::vector<TensorSpec> expert;   // the tensors of expert 0 (weights and biases)
  int64_t expert_full_elems = 0;    // elements of one expert
};

}  // namespace

std::vector<RankMemory> estimate_memory(const ModelConfig& c, const ParallelPlan& p) {
  const int64_t H = c.hidden_size, D = c.head_dim;
  const int64_t a = dtype_size(p.dtype);
  const int64_t world = p.world_size();
  std::vector<RankMemory> out;
  out.reserve(size_t(world));
  // The kinds of layer, and how many of each every stage holds.
  const LayerKindIndex kinds = layer_kind_index(c);
  std::vector<LayerSig> sigs;
  for (int64_t first : kinds.first) {
    LayerSig g;
    g.sparse = c.layer_is_sparse(first);
    for (TensorSpec& t : representative_layer_tensors(c, first)) {
      if (is_expert(t)) {
        g.expert_full_elems += t.numel();
        g.expert.push_back(std::move(t));
      } else {
        g.tensors.push_back(std::move(t));
      }
    }
    sigs.push_back(std::move(g));
  }
  std::vector<std::vector<int64_t>> count(size_t(p.pp), std::vector<int64_t>(sigs.size(), 0));  // [stage][kind]
  std::vector<int64_t> n_sparse(size_t(p.pp), 0), n_dense(size_t(p.pp), 0);
  for (int64_t st = 0; st < p.pp; ++st) {
    auto [b, e] = stage_layers(c.num_hidden_layers, p.pp, st);
    for (int64_t l = b; l < e; ++l) {
      count[size_t(st)][kinds.of_layer[size_t(l)]]++;
      (c.layer_is_sparse(l) ? n_sparse : n_dense)[size_t(st)]++;
    }
  }
  const int64_t mb = std::max<int64_t>(1, p.micro_batches);
  const int64_t B = (p.batch + mb - 1) / mb, S = p.seq, T = B * S;

  for (int64_t rank = 0; rank < world; ++rank) {
    const RankCoord rc = rank_coord(p, rank);
    const int64_t st = rc.stage;
    const int64_t nl = n_sparse[st] + n_dense[st];
    Acc acc;
    int64_t owned_experts = 0, expert_local_inter = 0;
    for (size_t g = 0; g < sigs.size(); ++g) {
      const int64_t n = count[size_t(st)][g];
      if (n == 0) continue;
      for (const TensorSpec& t : sigs[g].tensors) acc.add(c, p, t, rank, n);
      if (!sigs[g].sparse) continue;
      const int64_t E = c.num_experts;
      auto [eb, ee] = p.ep > 1 ? expert_range(c, p, rc.ep_rank) : std::pair<int64_t, int64_t>{0, E};
      owned_experts = ee - eb;
      // Unsharded bytes of the experts the stage touches are all E experts (full-tensor reads).
      Acc experts;
      for (TensorSpec t : sigs[g].expert) {
        t.expert = owned_experts > 0 ? eb : 0;
        experts.add(c, p, t, rank, n * owned_experts);
        if (t.role == Role::ExpertGate && !t.bias && owned_experts > 0)
          expert_local_inter = slice_for(c, p, t, rank).numel(t.shape) / std::max<int64_t>(H, 1);
      }
      acc.elems += experts.elems;
      acc.max_slice = std::max(acc.max_slice, experts.max_slice);
      acc.full_elems += sigs[g].expert_full_elems * E * n;
    }
    const bool first = st == 0, last = st == p.pp - 1;
    const TensorSpec embed{"", {c.vocab_size, H}, Role::Embed, -1, -1};
    if (first) acc.add(c, p, embed, rank, 1);
    if (last) {
      acc.add(c, p, TensorSpec{"", {H}, Role::FinalNorm, -1, -1}, rank, 1);
      // Tied: on a single stage lm_head is the embedding itself; across stages the last needs a copy.
      if (!c.tie_word_embeddings || p.pp > 1) acc.add(c, p, TensorSpec{"", {c.vocab_size, H}, Role::LmHead, -1, -1}, rank, 1);
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
    if (n_dense[st] > 0 && c.intermediate_size > 0) {
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
