#include "checks/tensors.h"

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
  }
  return "?";
}

int64_t TensorSpec::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::string tensor_name(Role role, int64_t layer, int64_t expert) {
  switch (role) {
    case Role::Embed: return "model.embed_tokens.weight";
    case Role::FinalNorm: return "model.norm.weight";
    case Role::LmHead: return "lm_head.weight";
    default: break;
  }
  std::string m = role_module(role);
  auto star = m.find('*');
  if (star != std::string::npos) m = m.substr(0, star) + std::to_string(expert) + m.substr(star + 1);
  return "model.layers." + std::to_string(layer) + "." + m + ".weight";
}

std::vector<TensorSpec> layer_tensors(const ModelConfig& c, int64_t l) {
  const int64_t H = c.hidden_size, D = c.head_dim;
  const int64_t q = c.num_attention_heads * D, kv = c.num_key_value_heads * D;
  std::vector<TensorSpec> v;
  auto add = [&](Role r, std::vector<int64_t> shape, int64_t e = -1) {
    v.push_back(TensorSpec{tensor_name(r, l, e), std::move(shape), r, l, e});
  };
  add(Role::InputNorm, {H});
  add(Role::QProj, {q, H});
  add(Role::KProj, {kv, H});
  add(Role::VProj, {kv, H});
  add(Role::OProj, {H, q});
  add(Role::QNorm, {D});
  add(Role::KNorm, {D});
  add(Role::PostNorm, {H});
  if (c.layer_is_sparse(l)) {
    add(Role::Router, {c.num_experts, H});
    for (int64_t e = 0; e < c.num_experts; ++e) {
      add(Role::ExpertGate, {c.moe_intermediate_size, H}, e);
      add(Role::ExpertUp, {c.moe_intermediate_size, H}, e);
      add(Role::ExpertDown, {H, c.moe_intermediate_size}, e);
    }
  } else {
    add(Role::DenseGate, {c.intermediate_size, H});
    add(Role::DenseUp, {c.intermediate_size, H});
    add(Role::DenseDown, {H, c.intermediate_size});
  }
  return v;
}

std::vector<TensorSpec> model_tensors(const ModelConfig& c) {
  std::vector<TensorSpec> v;
  v.push_back(TensorSpec{tensor_name(Role::Embed), {c.vocab_size, c.hidden_size}, Role::Embed, -1, -1});
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    auto lt = layer_tensors(c, l);
    v.insert(v.end(), std::make_move_iterator(lt.begin()), std::make_move_iterator(lt.end()));
  }
  v.push_back(TensorSpec{tensor_name(Role::FinalNorm), {c.hidden_size}, Role::FinalNorm, -1, -1});
  if (!c.tie_word_embeddings)
    v.push_back(TensorSpec{tensor_name(Role::LmHead), {c.vocab_size, c.hidden_size}, Role::LmHead, -1, -1});
  return v;
}

bool find_tensor(const ModelConfig& c, const std::string& name, TensorSpec* out) {
  auto match = [&](const TensorSpec& s) {
    if (s.name != name) return false;
    if (out) *out = s;
    return true;
  };
  for (Role r : {Role::Embed, Role::FinalNorm, Role::LmHead}) {
    if (name == tensor_name(r)) {
      if (r == Role::LmHead && c.tie_word_embeddings) return false;
      for (const auto& s : model_tensors(c))
        if (s.role == r && match(s)) return true;
      return false;
    }
  }
  const char* prefix = "model.layers.";
  if (name.rfind(prefix, 0) != 0) return false;
  const char* p = name.c_str() + std::strlen(prefix);
  char* endp = nullptr;
  long long l = std::strtoll(p, &endp, 10);
  if (endp == p || *endp != '.' || l < 0 || l >= c.num_hidden_layers) return false;
  for (const auto& s : layer_tensors(c, l))
    if (match(s)) return true;
  return false;
}

}  // namespace sc
