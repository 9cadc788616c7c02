#include "checks/tensors.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace sc {

const char* role_module(Role r) {
  switch (r) {
    case Role::Embed: return "embed_tokens";
    case Role::InputNorm: return "input_layernorm";
    case Role::QProj: return "self_attn.q_proj";
    case Role::KProj: return "self_attn.k_proj";
    case Role::VProj: return "self_attn.v_proj";
    case Role::OProj: return "self_attn.o_proj";
    case Role::QNorm: return "self_attn.q_norm";
    case Role::KNorm: return "self_attn.k_norm";
    case Role::PostNorm: return "post_attention_layernorm";
    case Role::Router: return "mlp.gate";
    case Role::ExpertGate: return "mlp.experts.*.gate_proj";
    case Role::ExpertUp: return "mlp.experts.*.up_proj";
    case Role::ExpertDown: return "mlp.experts.*.down_proj";
    case Role::DenseGate: return "mlp.gate_proj";
    case Role::DenseUp: return "mlp.up_proj";
    case Role::DenseDown: return "mlp.down_proj";
    case Role::FinalNorm: return "norm";
    case Role::LmHead: return "lm_head";
    case Role::QkvProj: return "self_attn.qkv_proj";
    case Role::DenseGateUp: return "mlp.gate_up_proj";
    case Role::Sinks: return "self_attn";
    case Role::PreFfnNorm: return "pre_feedforward_layernorm";
    case Role::PostFfnNorm: return "post_feedforward_layernorm";
    case Role::SharedGate: return "mlp.shared_expert.gate_proj";
    case Role::SharedUp: return "mlp.shared_expert.up_proj";
    case Role::SharedDown: return "mlp.shared_expert.down_proj";
    case Role::SharedExpertGate: return "mlp.shared_expert_gate";
    case Role::QAProj: return "self_attn.q_a_proj";
    case Role::QANorm: return "self_attn.q_a_layernorm";
    case Role::QBProj: return "self_attn.q_b_proj";
    case Role::KvAProj: return "self_attn.kv_a_proj_with_mqa";
    case Role::KvANorm: return "self_attn.kv_a_layernorm";
    case Role::KvBProj: return "self_attn.kv_b_proj";
    case Role::LinInQkvz: return "linear_attn.in_proj_qkvz";
    case Role::LinInBa: return "linear_attn.in_proj_ba";
    case Role::LinInQkv: return "linear_attn.in_proj_qkv";
    case Role::LinInZ: return "linear_attn.in_proj_z";
    case Role::LinInB: return "linear_attn.in_proj_b";
    case Role::LinInA: return "linear_attn.in_proj_a";
    case Role::LinConv: return "linear_attn.conv1d";
    case Role::LinDtBias: return "linear_attn";
    case Role::LinALog: return "linear_attn";
    case Role::LinNorm: return "linear_attn.norm";
    case Role::LinOut: return "linear_attn.out_proj";
  }
  return "?";
}

std::string role_module(const ModelConfig& c, Role r) {
  if (r == Role::Router && c.family == "gpt_oss") return "mlp.router";
  if (!c.shared_expert_gate) {
    switch (r) {
      case Role::SharedGate: return "mlp.shared_experts.gate_proj";
      case Role::SharedUp: return "mlp.shared_experts.up_proj";
      case Role::SharedDown: return "mlp.shared_experts.down_proj";
      default: break;
    }
  }
  if (r == Role::QProj && c.attention_kind == AttentionKind::Mla && c.q_lora_rank == 0) return "self_attn.q_proj";
  return role_module(r);
}

int64_t TensorSpec::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::string TensorSpec::module() const {
  const auto dot = name.find_last_of('.');
  return dot == std::string::npos ? name : name.substr(0, dot);
}

namespace {
const char* param_name(Role r, bool bias) {
  switch (r) {
    case Role::Sinks: return "sinks";
    case Role::LinDtBias: return "dt_bias";
    case Role::LinALog: return "A_log";
    default: return bias ? "bias" : "weight";
  }
}
std::string name_of(const std::string& prefix, const std::string& module, Role role, int64_t layer, int64_t expert,
                    bool bias) {
  switch (role) {
    case Role::Embed: return prefix + ".embed_tokens.weight";
    case Role::FinalNorm: return prefix + ".norm.weight";
    case Role::LmHead: return "lm_head.weight";
    default: break;
  }
  std::string m = module;
  auto star = m.find('*');
  if (star != std::string::npos) m = m.substr(0, star) + std::to_string(expert) + m.substr(star + 1);
  return prefix + ".layers." + std::to_string(layer) + "." + m + "." + param_name(role, bias);
}
}  // namespace

std::string tensor_name(Role role, int64_t layer, int64_t expert) {
  return name_of("model", role_module(role), role, layer, expert, false);
}
std::string tensor_name(const ModelConfig& c, Role role, int64_t layer, int64_t expert) {
  return name_of(c.module_prefix, role_module(c, role), role, layer, expert, false);
}

std::vector<TensorSpec> layer_tensors(const ModelConfig& c, int64_t l) {
  const int64_t H = c.hidden_size, D = c.head_dim, heads = c.num_attention_heads;
  const int64_t q = heads * D, kv = c.num_key_value_heads * D;
  std::vector<TensorSpec> v;
  auto add = [&](Role r, std::vector<int64_t> shape, int64_t e = -1, bool bias = false) {
    v.push_back(TensorSpec{name_of(c.module_prefix, role_module(c, r), r, l, e, bias), std::move(shape), r, l, e, bias});
  };
  add(Role::InputNorm, {H});
  if (c.layer_kind(l) == LayerKind::Linear) {
    // Gated delta net, in HF's registration order (Qwen3-Next packs q, k, v, z and b, a; Qwen3.5 splits them).
    const int64_t kd = c.linear_num_key_heads * c.linear_key_head_dim;
    const int64_t vd = c.linear_num_value_heads * c.linear_value_head_dim, nv = c.linear_num_value_heads;
    const int64_t conv = 2 * kd + vd;
    add(Role::LinConv, {conv, 1, c.linear_conv_kernel_dim});
    if (c.family == "qwen3_next") {
      add(Role::LinInQkvz, {conv + vd, H});
      add(Role::LinInBa, {2 * nv, H});
      add(Role::LinDtBias, {nv});
      add(Role::LinALog, {nv});
      add(Role::LinNorm, {c.linear_value_head_dim});
      add(Role::LinOut, {H, vd});
    } else {
      add(Role::LinDtBias, {nv});
      add(Role::LinALog, {nv});
      add(Role::LinNorm, {c.linear_value_head_dim});
      add(Role::LinOut, {H, vd});
      add(Role::LinInQkv, {conv, H});
      add(Role::LinInZ, {vd, H});
      add(Role::LinInB, {nv, H});
      add(Role::LinInA, {nv, H});
    }
  } else if (c.attention_kind == AttentionKind::Mla) {
    const int64_t qd = c.q_head_dim();
    if (c.q_lora_rank > 0) {
      add(Role::QAProj, {c.q_lora_rank, H});
      add(Role::QANorm, {c.q_lora_rank});
      add(Role::QBProj, {heads * qd, c.q_lora_rank});
    } else {
      add(Role::QProj, {heads * qd, H});
    }
    add(Role::KvAProj, {c.kv_lora_rank + c.qk_rope_head_dim, H});
    add(Role::KvANorm, {c.kv_lora_rank});
    add(Role::KvBProj, {heads * (c.qk_nope_head_dim + c.v_head_dim), c.kv_lora_rank});
    add(Role::OProj, {H, heads * c.v_head_dim});
  } else {
    const int64_t qrows = c.attention_output_gate ? 2 * q : q;
    if (c.attention_kind == AttentionKind::FusedQkv) {
      add(Role::QkvProj, {q + 2 * kv, H});
      if (c.attention_bias) add(Role::QkvProj, {q + 2 * kv}, -1, true);
    } else {
      add(Role::QProj, {qrows, H});
      if (c.attention_bias) add(Role::QProj, {qrows}, -1, true);
      add(Role::KProj, {kv, H});
      if (c.attention_bias) add(Role::KProj, {kv}, -1, true);
      add(Role::VProj, {kv, H});
      if (c.attention_bias) add(Role::VProj, {kv}, -1, true);
    }
    add(Role::OProj, {H, q});
    if (c.attention_bias && c.family == "gpt_oss") add(Role::OProj, {H}, -1, true);
    if (c.qk_norm) {
      add(Role::QNorm, {D});
      add(Role::KNorm, {D});
    }
    if (c.attention_sinks) add(Role::Sinks, {heads});
  }
  add(Role::PostNorm, {H});
  if (c.family == "gemma3") {
    add(Role::PreFfnNorm, {H});
    add(Role::PostFfnNorm, {H});
  }
  if (c.layer_is_sparse(l)) {
    add(Role::Router, {c.num_experts, H});
    if (c.expert_bias || c.router_bias_correction) add(Role::Router, {c.num_experts}, -1, true);
    const int64_t I = c.moe_intermediate_size;
    for (int64_t e = 0; e < c.num_experts; ++e) {
      add(Role::ExpertGate, {I, H}, e);
      add(Role::ExpertUp, {I, H}, e);
      add(Role::ExpertDown, {H, I}, e);
      if (c.expert_bias) {
        add(Role::ExpertGate, {I}, e, true);
        add(Role::ExpertUp, {I}, e, true);
        add(Role::ExpertDown, {H}, e, true);
      }
    }
    if (c.shared_expert_intermediate_size > 0) {
      const int64_t S = c.shared_expert_intermediate_size;
      add(Role::SharedGate, {S, H});
      add(Role::SharedUp, {S, H});
      add(Role::SharedDown, {H, S});
      if (c.shared_expert_gate) add(Role::SharedExpertGate, {1, H});
    }
  } else if (c.fused_gate_up) {
    add(Role::DenseGateUp, {2 * c.intermediate_size, H});
    add(Role::DenseDown, {H, c.intermediate_size});
  } else {
    add(Role::DenseGate, {c.intermediate_size, H});
    add(Role::DenseUp, {c.intermediate_size, H});
    add(Role::DenseDown, {H, c.intermediate_size});
  }
  return v;
}

std::vector<TensorSpec> model_tensors(const ModelConfig& c) {
  std::vector<TensorSpec> v;
  v.push_back(TensorSpec{tensor_name(c, Role::Embed), {c.vocab_size, c.hidden_size}, Role::Embed, -1, -1});
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    auto lt = layer_tensors(c, l);
    v.insert(v.end(), std::make_move_iterator(lt.begin()), std::make_move_iterator(lt.end()));
  }
  v.push_back(TensorSpec{tensor_name(c, Role::FinalNorm), {c.hidden_size}, Role::FinalNorm, -1, -1});
  if (!c.tie_word_embeddings)
    v.push_back(TensorSpec{tensor_name(c, Role::LmHead), {c.vocab_size, c.hidden_size}, Role::LmHead, -1, -1});
  return v;
}

LayerKindIndex layer_kind_index(const ModelConfig& c) {
  LayerKindIndex k;
  k.of_layer.reserve(size_t(c.num_hidden_layers));
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    size_t i = 0;
    while (i < k.first.size() &&
           (c.layer_kind(k.first[i]) != c.layer_kind(l) || c.layer_is_sparse(k.first[i]) != c.layer_is_sparse(l)))
      ++i;
    if (i == k.first.size()) k.first.push_back(l);
    k.of_layer.push_back(i);
  }
  return k;
}

std::vector<TensorSpec> representative_layer_tensors(const ModelConfig& c, int64_t layer) {
  ModelConfig one = c;
  one.num_experts = std::min<int64_t>(c.num_experts, 1);
  std::vector<TensorSpec> v = layer_tensors(one, layer);
  for (TensorSpec& t : v)
    if (t.role == Role::Router) t.shape[0] = c.num_experts;
  return v;
}

bool find_tensor(const ModelConfig& c, const std::string& name, TensorSpec* out) {
  auto match = [&](const TensorSpec& s) {
    if (s.name != name) return false;
    if (out) *out = s;
    return true;
  };
  for (Role r : {Role::Embed, Role::FinalNorm, Role::LmHead}) {
    if (name == tensor_name(c, r)) {
      if (r == Role::LmHead && c.tie_word_embeddings) return false;
      const int64_t rows = r == Role::FinalNorm ? c.hidden_size : c.vocab_size;
      TensorSpec s{name, r == Role::FinalNorm ? std::vector<int64_t>{rows} : std::vector<int64_t>{rows, c.hidden_size}, r,
                   -1, -1};
      return match(s);
    }
  }
  const std::string prefix = c.module_prefix + ".layers.";
  if (name.rfind(prefix, 0) != 0) return false;
  const char* p = name.c_str() + prefix.size();
  char* endp = nullptr;
  long long l = std::strtoll(p, &endp, 10);
  if (endp == p || *endp != '.' || l < 0 || l >= c.num_hidden_layers) return false;
  for (const auto& s : layer_tensors(c, l))
    if (match(s)) return true;
  return false;
}

}  // namespace sc
