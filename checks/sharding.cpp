#include "checks/sharding.h"

#include <algorithm>

#include "families/family.h"

namespace sc {

namespace {

bool is_expert_role(Role r) { return r == Role::ExpertGate || r == Role::ExpertUp || r == Role::ExpertDown; }

// The module HF's plan names for a role: routed experts are packed in HF 5.17
// (mlp.experts.gate_up_proj, mlp.experts.down_proj), everything else as named_modules names it.
std::string hf_module_of(const ModelConfig& c, Role r) {
  switch (r) {
    case Role::Embed: return c.module_prefix + ".embed_tokens";
    case Role::FinalNorm: return c.module_prefix + ".norm";
    case Role::LmHead: return "lm_head";
    case Role::ExpertGate:
    case Role::ExpertUp: return c.module_prefix + ".layers.0.mlp.experts.gate_up_proj";
    case Role::ExpertDown: return c.module_prefix + ".layers.0.mlp.experts.down_proj";
    default: return c.module_prefix + ".layers.0." + role_module(c, r);
  }
}

struct StyleCache {
  std::string key;
  std::vector<std::string> styles;  // by role
};

ShardRule rule_of_style(const std::string& style, Role r) {
  if (r == Role::LmHead || r == Role::Embed)
    return style.empty() || style == "replicated_with_grad_allreduce" ? ShardRule::Replicate : ShardRule::VocabParallel;
  if (style == "colwise" || style == "colwise_gather_output" || style == "packed_colwise") return ShardRule::Colwise;
  if (style == "rowwise" || style == "rowwise_split_input") return ShardRule::Rowwise;
  return ShardRule::Replicate;
}

}  // namespace

const std::string& hf_style_of(const ModelConfig& c, Role role) {
  // The checker evaluates > 10^5 plans per second: the styles of a family are looked up once per thread.
  thread_local std::vector<StyleCache> cache;
  const std::string key = c.family + "|" + c.model_type + "|" + c.wrapper_model_type + "|" + c.module_prefix +
                          (c.shared_expert_gate ? "|g" : "|u") + (c.q_lora_rank ? "|q" : "|d");
  for (const StyleCache& e : cache)
    if (e.key == key) return e.styles[size_t(role)];
  StyleCache e{key, std::vector<std::string>(kNumRoles)};
  for (int r = 0; r < kNumRoles; ++r) e.styles[size_t(r)] = hf_tp_style(c, hf_module_of(c, Role(r)));
  cache.push_back(std::move(e));
  return cache.back().styles[size_t(role)];
}

ShardRule rule_for(const ModelConfig& c, const ParallelPlan& p, const TensorSpec& t) {
  if (t.role == Role::Router) return ShardRule::Replicate;  // ep_router slices its outputs only
  if (is_expert_role(t.role) && p.ep > 1) return ShardRule::ExpertShard;
  const std::string& style = hf_style_of(c, t.role);
  ShardRule rule = rule_of_style(style, t.role);
  if (p.style == PlanStyle::ReplicateKv && rule == ShardRule::Colwise && (t.role == Role::KProj || t.role == Role::VProj))
    rule = ShardRule::KvHeadColwise;
  if (t.bias && rule == ShardRule::Rowwise) rule = ShardRule::Replicate;  // added once after the reduce
  return rule;
}

std::vector<ShardEntry> sharding_table(const ModelConfig& c, const ParallelPlan& p) {
  // One entry per role, in the order the model's tensors first use them.
  std::vector<Role> roles;
  auto note = [&](const std::vector<TensorSpec>& ts) {
    for (const TensorSpec& t : ts)
      if (!t.bias && std::find(roles.begin(), roles.end(), t.role) == roles.end()) roles.push_back(t.role);
  };
  note({TensorSpec{"", {}, Role::Embed, -1, -1}});
  for (int64_t l : layer_kind_index(c).first) note(representative_layer_tensors(c, l));
  note({TensorSpec{"", {}, Role::FinalNorm, -1, -1}});
  if (!c.tie_word_embeddings) note({TensorSpec{"", {}, Role::LmHead, -1, -1}});
  std::vector<ShardEntry> out;
  for (Role r : roles) {
    TensorSpec t{"", {}, r, 0, is_expert_role(r) ? 0 : -1};
    const ShardRule rule = rule_for(c, p, t);
    std::string pattern;
    switch (r) {
      case Role::Embed: pattern = c.module_prefix + ".embed_tokens"; break;
      case Role::FinalNorm: pattern = c.module_prefix + ".norm"; break;
      case Role::LmHead: pattern = "lm_head"; break;
      default: pattern = c.module_prefix + ".layers.*." + role_module(c, r);
    }
    std::string hf = hf_style_of(c, r);
    if (r == Role::Router && p.ep > 1) hf = "ep_router";
    else if (is_expert_role(r) && p.ep > 1) hf = "grouped_gemm (expert shard)";
    else if (r == Role::ExpertGate && hf == "packed_colwise") hf = "packed_colwise (gate half of gate_up_proj)";
    else if (r == Role::ExpertUp && hf == "packed_colwise") hf = "packed_colwise (up half of gate_up_proj)";
    else if (rule == ShardRule::KvHeadColwise) hf = "colwise (whole KV heads, replicated tp/kv times)";
    if (hf.empty()) hf = "replicate";
    out.push_back(ShardEntry{pattern, rule, hf});
  }
  return out;
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
  const ShardRule rule = rule_for(c, p, t);
  SliceSpec s;
  auto split = [&](int dim, int64_t parts, int64_t idx) {
    s.dim = dim;
    auto [b, en] = chunk_range(t.shape[dim], parts, idx);
    s.begin = b;
    s.end = en;
  };
  switch (rule) {
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

bool attention_is_sharded(const ModelConfig& c, const ParallelPlan& p) {
  return p.tp > 1 && c.attention_kind == AttentionKind::Gqa && hf_style_of(c, Role::QProj) == "colwise";
}

AttentionLayout attention_layout(const ModelConfig& c, const ParallelPlan& p, int64_t tp_rank) {
  AttentionLayout a;
  a.head_dim = c.head_dim;
  const int64_t q_total = c.num_attention_heads * c.head_dim, kv_total = c.num_key_value_heads * c.head_dim;
  if (!attention_is_sharded(c, p)) {
    a.sharded = p.tp <= 1;
    a.q_rows = q_total;
    a.q_proj_rows = (c.attention_output_gate ? 2 : 1) * q_total;
    a.kv_rows = kv_total;
    a.n_rep = c.kv_groups();
    return a;
  }
  // With an output gate q_proj holds [query | gate] per head (2 x head_dim rows each); the split
  // is over all of its rows, the view over 2 x head_dim.
  const int64_t g = c.attention_output_gate ? 2 : 1;
  auto [qb, qe] = chunk_range(g * q_total, p.tp, tp_rank);
  a.q_proj_rows = qe - qb;
  a.q_row_begin = qb / g;
  a.q_rows = a.q_proj_rows / g;
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
