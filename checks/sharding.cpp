#include "checks/sharding.h"

#include <algorithm>

namespace sc {

const char* shard_rule_name(ShardRule r) {
  switch (r) {
    case ShardRule::Replicate: return "replicate";
    case ShardRule::Colwise: return "colwise";
    case ShardRule::Rowwise: return "rowwise";
    case ShardRule::KvHeadColwise: return "kv-head-colwise";
    case ShardRule::ExpertShard: return "expert-shard";
    case ShardRule::VocabParallel: return "vocab-parallel";
  }
  return "?";
}

static std::vector<ShardEntry> make_table(bool rkv, bool ep) {
  std::vector<ShardEntry> t = {
      {"model.embed_tokens", ShardRule::Replicate, "replicate"},
      {"model.layers.*.input_layernorm", ShardRule::Replicate, "replicate"},
      {"model.layers.*.self_attn.q_proj", ShardRule::Colwise, "colwise"},
      {"model.layers.*.self_attn.k_proj", rkv ? ShardRule::KvHeadColwise : ShardRule::Colwise,
       rkv ? "colwise (whole KV heads, replicated tp/kv times)" : "colwise"},
      {"model.layers.*.self_attn.v_proj", rkv ? ShardRule::KvHeadColwise : ShardRule::Colwise,
       rkv ? "colwise (whole KV heads, replicated tp/kv times)" : "colwise"},
      {"model.layers.*.self_attn.q_norm", ShardRule::Replicate, "replicated_with_grad_allreduce"},
      {"model.layers.*.self_attn.k_norm", ShardRule::Replicate, "replicated_with_grad_allreduce"},
      {"model.layers.*.self_attn.o_proj", ShardRule::Rowwise, "rowwise"},
      {"model.layers.*.post_attention_layernorm", ShardRule::Replicate, "replicate"},
      {"model.layers.*.mlp.gate", ShardRule::Replicate, ep ? "ep_router" : "replicate"},
      {"model.layers.*.mlp.experts.*.gate_proj", ep ? ShardRule::ExpertShard : ShardRule::Colwise,
       ep ? "grouped_gemm (expert shard)" : "packed_colwise (gate half of gate_up_proj)"},
      {"model.layers.*.mlp.experts.*.up_proj", ep ? ShardRule::ExpertShard : ShardRule::Colwise,
       ep ? "grouped_gemm (expert shard)" : "packed_colwise (up half of gate_up_proj)"},
      {"model.layers.*.mlp.experts.*.down_proj", ep ? ShardRule::ExpertShard : ShardRule::Rowwise,
       ep ? "grouped_gemm (expert shard)" : "rowwise"},
      {"model.layers.*.mlp.gate_proj", ShardRule::Colwise, "colwise"},
      {"model.layers.*.mlp.up_proj", ShardRule::Colwise, "colwise"},
      {"model.layers.*.mlp.down_proj", ShardRule::Rowwise, "rowwise"},
      {"model.norm", ShardRule::Replicate, "replicate"},
      {"lm_head", ShardRule::VocabParallel, "colwise_gather_output"},
  };
  return t;
}

const std::vector<ShardEntry>& sharding_table(const ParallelPlan& p) {
  // Four variants, built once (the checker evaluates plans at > 10^5 per second).
  static const std::vector<ShardEntry> tables[4] = {make_table(false, false), make_table(false, true),
                                                    make_table(true, false), make_table(true, true)};
  return tables[(p.style == PlanStyle::ReplicateKv ? 2 : 0) + (p.ep > 1 ? 1 : 0)];
}

static size_t table_index(Role role) {
  switch (role) {
    case Role::Embed: return 0;
    case Role::InputNorm: return 1;
    case Role::QProj: return 2;
    case Role::KProj: return 3;
    case Role::VProj: return 4;
    case Role::QNorm: return 5;
    case Role::KNorm: return 6;
    case Role::OProj: return 7;
    case Role::PostNorm: return 8;
    case Role::Router: return 9;
    case Role::ExpertGate: return 10;
    case Role::ExpertUp: return 11;
    case Role::ExpertDown: return 12;
    case Role::DenseGate: return 13;
    case Role::DenseUp: return 14;
    case Role::DenseDown: return 15;
    case Role::FinalNorm: return 16;
    case Role::LmHead: return 17;
  }
  return 0;
}

const ShardEntry& rule_for(const ParallelPlan& p, Role role) { return sharding_table(p)[table_index(role)]; }

int64_t SliceSpec::numel(const std::vector<int64_t>& full) const {
  if (!owned) return 0;
  int64_t n = 1;
  for (size_t d = 0; d < full.size(); ++d) n *= (int(d) == dim) ? (end - begin) : full[d];
  return n;
}

std::vector<int64_t> SliceSpec::shape(const std::vector<int64_t>& full) const {
  std::vector<int64_t> s = full;
  if (!owned) {
    for (auto& d : s) d = 0;
    return s;
  }
  if (dim >= 0 && size_t(dim) < s.size()) s[dim] = end - begin;
  return s;
}

std::pair<int64_t, int64_t> chunk_range(int64_t n, int64_t parts, int64_t i) {
  if (parts <= 1) return {0, n};
  const int64_t chunk = (n + parts - 1) / parts;
  const int64_t b = std::min(i * chunk, n);
  return {b, std::min(b + chunk, n)};
}

std::pair<int64_t, int64_t> expert_range(const ModelConfig& c, const ParallelPlan& p, int64_t ep_rank) {
  return chunk_range(c.num_experts, p.ep, ep_rank);
}

// Rows of k_proj / v_proj a rank holds under replicate-kv.
static std::pair<int64_t, int64_t> kv_head_rows(const ModelConfig& c, const ParallelPlan& p, int64_t tp_rank) {
  const int64_t kv = c.num_key_value_heads, D = c.head_dim;
  if (p.tp <= kv) {
    auto [hb, he] = chunk_range(kv, p.tp, tp_rank);
    return {hb * D, he * D};
  }
  // tp > kv: each KV head serves tp / kv consecutive ranks (the ranks whose query heads use it).
  const int64_t head = (tp_rank * kv) / p.tp;
  return {head * D, (head + 1) * D};
}

SliceSpec slice_for(const ModelConfig& c, const ParallelPlan& p, const TensorSpec& t, int64_t rank) {
  const RankCoord rc = rank_coord(p, rank);
  const ShardEntry& e = rule_for(p, t.role);
  SliceSpec s;
  auto split = [&](int dim, int64_t parts, int64_t idx) {
    s.dim = dim;
    auto [b, en] = chunk_range(t.shape[dim], parts, idx);
    s.begin = b;
    s.end = en;
  };
  switch (e.rule) {
    case ShardRule::Replicate: break;
    case ShardRule::Colwise:
      if (t.expert >= 0) {
        if (p.etp() > 1) split(0, p.etp(), rc.etp_rank);
      } else if (p.tp > 1) {
        split(0, p.tp, rc.tp_rank);
      }
      break;
    case ShardRule::Rowwise:
      if (t.expert >= 0) {
        if (p.etp() > 1) split(1, p.etp(), rc.etp_rank);
      } else if (p.tp > 1) {
        split(1, p.tp, rc.tp_rank);
      }
      break;
    case ShardRule::KvHeadColwise:
      if (p.tp > 1) {
        auto [b, en] = kv_head_rows(c, p, rc.tp_rank);
        s.dim = 0;
        s.begin = b;
        s.end = en;
      }
      break;
    case ShardRule::ExpertShard: {
      auto [eb, ee] = expert_range(c, p, rc.ep_rank);
      if (t.expert < eb || t.expert >= ee) {
        s.owned = false;
        break;
      }
      if (p.etp() > 1) split(t.role == Role::ExpertDown ? 1 : 0, p.etp(), rc.etp_rank);
      break;
    }
    case ShardRule::VocabParallel:
      if (p.tp > 1) split(0, p.tp, rc.tp_rank);
      break;
  }
  return s;
}

AttentionLayout attention_layout(const ModelConfig& c, const ParallelPlan& p, int64_t tp_rank) {
  AttentionLayout a;
  a.head_dim = c.head_dim;
  const int64_t q_total = c.num_attention_heads * c.head_dim, kv_total = c.num_key_value_heads * c.head_dim;
  auto [qb, qe] = p.tp > 1 ? chunk_range(q_total, p.tp, tp_rank) : std::pair<int64_t, int64_t>{0, q_total};
  a.q_row_begin = qb;
  a.q_rows = qe - qb;
  if (p.style == PlanStyle::ReplicateKv && p.tp > 1) {
    auto [kb, ke] = kv_head_rows(c, p, tp_rank);
    a.kv_row_begin = kb;
    a.kv_rows = ke - kb;
    const int64_t local_kv_heads = a.kv_rows / c.head_dim;
    const int64_t local_q_heads = a.q_rows / c.head_dim;
    a.n_rep = local_kv_heads > 0 ? local_q_heads / local_kv_heads : 0;
  } else {
    auto [kb, ke] = p.tp > 1 ? chunk_range(kv_total, p.tp, tp_rank) : std::pair<int64_t, int64_t>{0, kv_total};
    a.kv_row_begin = kb;
    a.kv_rows = ke - kb;
    a.n_rep = c.kv_groups();  // HF: num_key_value_groups = heads / kv heads of the *global* config
  }
  return a;
}

}  // namespace sc
