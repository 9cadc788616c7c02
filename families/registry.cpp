// The family registry: one line per family (docs/adding-a-family.md), the shared config readers,
// and HF's plan lookup.
#include <algorithm>
#include <nlohmann/json.hpp>

#include "families/family.h"
#include "models/errors.h"
#include "models/json_util.h"

namespace sc {

// Each family's spec.cpp defines one of these.
const FamilySpec& family_llama();
const FamilySpec& family_mistral();
const FamilySpec& family_mixtral();
const FamilySpec& family_qwen2();
const FamilySpec& family_qwen2_moe();
const FamilySpec& family_qwen3();
const FamilySpec& family_qwen3_next();
const FamilySpec& family_qwen3_5_moe();
const FamilySpec& family_qwen3_vl_moe();
const FamilySpec& family_gpt_oss();
const FamilySpec& family_phi3();
const FamilySpec& family_glm4_moe();
const FamilySpec& family_deepseek_v3();
const FamilySpec& family_gemma3();

const std::vector<const FamilySpec*>& families() {
  static const std::vector<const FamilySpec*> all = {
      &family_qwen3(),     &family_llama(),      &family_mistral(),     &family_mixtral(),      &family_qwen2(),
      &family_qwen2_moe(), &family_qwen3_next(), &family_qwen3_5_moe(), &family_qwen3_vl_moe(), &family_gpt_oss(),
      &family_phi3(),      &family_glm4_moe(),   &family_deepseek_v3(), &family_gemma3(),
  };
  return all;
}

const FamilySpec* find_family(const std::string& model_type) {
  for (const FamilySpec* f : families()) {
    if (std::find(f->model_types.begin(), f->model_types.end(), model_type) != f->model_types.end()) return f;
    for (const WrapperSpec& w : f->wrappers)
      if (w.model_type == model_type) return f;
  }
  return nullptr;
}

const FamilySpec* family_named(const std::string& name) {
  for (const FamilySpec* f : families())
    if (f->name == name) return f;
  return nullptr;
}

std::string supported_model_types() {
  std::string out;
  for (const FamilySpec* f : families()) {
    for (const std::string& t : f->model_types) out += (out.empty() ? "" : ", ") + t;
    for (const WrapperSpec& w : f->wrappers) out += ", " + w.model_type;
  }
  return out;
}

const FamilySpec& family_of(const ModelConfig& c) {
  const FamilySpec* f = find_family(c.model_type);
  if (!f && !c.wrapper_model_type.empty()) f = find_family(c.wrapper_model_type);
  if (!f)
    throw ConfigError(c.source, "model_type", json_brief(nlohmann::json(c.model_type)),
                      "unsupported model_type (supported: " + supported_model_types() + ")");
  return *f;
}

std::string legacy_tensor_name(const ModelConfig& c, const std::string& name) {
  const FamilySpec* f = family_named(c.family);
  if (!f || f->legacy_renames.empty()) return "";
  std::string n = name;
  for (const auto& [from, to] : f->legacy_renames) {
    const size_t at = n.find(from);
    if (at != std::string::npos) n.replace(at, from.size(), to);
  }
  return n == name ? "" : n;
}

namespace {
ModelConfig read_model_config_with(const nlohmann::json& j, const std::string& source);
}

ModelConfig read_model_config(const nlohmann::json& j, const std::string& source) {
  // The model_type decides the family before anything else is read, so an unknown one is
  // reported as such rather than as a missing key of some other family.
  if (j.is_object()) {
    const nlohmann::json* t = &j;
    if (j.contains("text_config") && j.at("text_config").is_object() && j.at("text_config").contains("model_type"))
      t = &j.at("text_config");
    if (!t->contains("model_type") && j.contains("model_type")) t = &j;
    if (t->contains("model_type") && t->at("model_type").is_string()) {
      const std::string type = t->at("model_type").get<std::string>();
      const std::string top =
          j.contains("model_type") && j.at("model_type").is_string() ? j.at("model_type").get<std::string>() : "";
      if (!find_family(type) && !find_family(top))
        throw ConfigError(source, t == &j ? "model_type" : "text_config.model_type", json_brief(t->at("model_type")),
                          "unsupported model_type (supported: " + supported_model_types() + ")");
    }
  }
  // HF's defaults for keys the file leaves out, under the text config.
  const FamilySpec* pre = nullptr;
  if (j.is_object()) {
    const nlohmann::json& t = j.contains("text_config") && j.at("text_config").is_object() ? j.at("text_config") : j;
    if (t.contains("model_type") && t.at("model_type").is_string())
      pre = find_family(t.at("model_type").get<std::string>());
    if (!pre && j.contains("model_type") && j.at("model_type").is_string())
      pre = find_family(j.at("model_type").get<std::string>());
  }
  if (pre && !pre->defaults_json.empty()) {
    nlohmann::json merged = j;
    nlohmann::json& t =
        merged.contains("text_config") && merged.at("text_config").is_object() ? merged["text_config"] : merged;
    const nlohmann::json defaults = nlohmann::json::parse(pre->defaults_json);
    for (const auto& [k, v] : defaults.items())
      if (!t.contains(k)) t[k] = v;
    return read_model_config_with(merged, source);
  }
  return read_model_config_with(j, source);
}

namespace {
ModelConfig read_model_config_with(const nlohmann::json& j, const std::string& source) {
  ModelConfig c = ModelConfig::from_json(j, source);
  const FamilySpec& f = family_of(c);
  c.family = f.name;
  const bool wrapped = !c.wrapper_model_type.empty();
  if (wrapped) {
    c.module_prefix = "model.language_model";
    for (const WrapperSpec& w : f.wrappers)
      if (w.model_type == c.wrapper_model_type) c.module_prefix = w.module_prefix;
  }
  const ConfigReader r{wrapped ? j.at("text_config") : j, source, wrapped ? "text_config." : ""};
  const ConfigReader top{j, source};
  if (f.read) f.read(r, top, c);
  c.validate();
  return c;
}
}  // namespace

ModelConfig read_model_config_parsed(const nlohmann::json& j, const std::string& path) {
  ModelConfig c = read_model_config(j, path);
  c.name = config_name_from_path(path);
  return c;
}

ModelConfig read_model_config_file(const std::string& path) {
  return read_model_config_parsed(read_json_file(path, InputKind::Config), path);
}

namespace {
// HF's replace_layer_number_by_wildcard: a path component of digits alone becomes '*'.
std::string wildcard(const std::string& name) {
  std::string out;
  size_t i = 0;
  while (i <= name.size()) {
    size_t j = name.find('.', i);
    if (j == std::string::npos) j = name.size();
    const std::string part = name.substr(i, j - i);
    const bool digits =
        !part.empty() && std::all_of(part.begin(), part.end(), [](char ch) { return ch >= '0' && ch <= '9'; });
    out += (i ? "." : "") + (digits && i > 0 ? std::string("*") : part);
    i = j + 1;
  }
  return out;
}
}  // namespace

std::string hf_tp_style(const ModelConfig& c, const std::string& module) {
  const FamilySpec& f = family_of(c);
  if (module == "lm_head") {
    if (!c.wrapper_model_type.empty())
      for (const WrapperSpec& w : f.wrappers)
        if (w.model_type == c.wrapper_model_type) return w.lm_head_style;
    return f.lm_head_style;
  }
  // The base model plan is relative to the decoder stack.
  const std::string prefix = c.module_prefix + ".";
  if (module.rfind(prefix, 0) != 0) return "";
  const std::string rel = wildcard(module.substr(prefix.size()));
  for (const HfRule& rule : f.hf_tp_plan)
    if (rule.pattern == rel) return rule.style;
  return "";
}

bool hf_plan_shards_layers(const ModelConfig& c) {
  for (const HfRule& rule : family_of(c).hf_tp_plan)
    if (rule.pattern.rfind("layers.", 0) == 0) return true;
  return false;
}

namespace hf_plan {

Rules join(std::initializer_list<Rules> parts) {
  Rules out;
  for (const Rules& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}
Rules attention() {
  return {{"layers.*.self_attn.q_proj", "colwise"},
          {"layers.*.self_attn.k_proj", "colwise"},
          {"layers.*.self_attn.v_proj", "colwise"},
          {"layers.*.self_attn.o_proj", "rowwise"}};
}
Rules qk_norms() {
  return {{"layers.*.self_attn.q_norm", "replicated_with_grad_allreduce"},
          {"layers.*.self_attn.k_norm", "replicated_with_grad_allreduce"}};
}
Rules swiglu(const std::string& module) {
  const std::string m = "layers.*." + module;
  return {{m + ".gate_proj", "colwise"}, {m + ".up_proj", "colwise"}, {m + ".down_proj", "rowwise"}};
}
Rules routed_experts() {
  return {{"layers.*.mlp.experts", "moe_tp_experts"},
          {"layers.*.mlp.experts.gate_up_proj", "packed_colwise"},
          {"layers.*.mlp.experts.down_proj", "rowwise"}};
}
Rules embedding_rowwise() { return {{"embed_tokens", "embedding_rowwise"}}; }
Rules gathered(std::initializer_list<const char*> modules) {
  Rules out;
  for (const char* m : modules) out.push_back({std::string("layers.*.") + m, "colwise_gather_output"});
  return out;
}
Rules experts_ep(const std::string& router, bool biases) {
  Rules out = {{"layers.*." + router, "ep_router"},
               {"layers.*.mlp.experts", "moe_tp_experts"},
               {"layers.*.mlp.experts.gate_up_proj", "grouped_gemm"},
               {"layers.*.mlp.experts.down_proj", "grouped_gemm"}};
  if (biases) {
    out.push_back({"layers.*.mlp.experts.gate_up_proj_bias", "grouped_gemm"});
    out.push_back({"layers.*.mlp.experts.down_proj_bias", "grouped_gemm"});
  }
  return out;
}

}  // namespace hf_plan

namespace family_read {

void qwen3_hybrid(const ConfigReader& r, ModelConfig& c) {
  c.attention_output_gate = r.boolean("attn_output_gate", true);
  layer_pattern(r, c, LayerKind::Linear);
  gated_delta_net(r, c);
  gated_shared_expert(r, c);
}


void layer_pattern(const ConfigReader& r, ModelConfig& c, LayerKind other) {
  c.layer_kinds.clear();
  if (r.has("layer_types")) {
    const nlohmann::json& v = r.j.at("layer_types");
    if (!v.is_array()) r.fail("layer_types", v, std::string("must be an array of layer types, not a ") + v.type_name());
    for (size_t i = 0; i < v.size(); ++i) {
      const std::string key = "layer_types[" + std::to_string(i) + "]";
      const std::string t = v[i].is_string() ? v[i].get<std::string>() : "";
      if (t == "full_attention")
        c.layer_kinds.push_back(LayerKind::Full);
      else if (t == "sliding_attention")
        c.layer_kinds.push_back(LayerKind::Sliding);
      else if (t == "linear_attention")
        c.layer_kinds.push_back(LayerKind::Linear);
      else
        r.fail(key, v[i], "unknown layer type (expected full_attention, sliding_attention or linear_attention)");
    }
    return;
  }
  const char* key = r.first_of({"full_attention_interval", "sliding_window_pattern"});
  if (!key) return;
  const int64_t n = r.integer(key, 1, kMaxLayers);
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) c.layer_kinds.push_back((l + 1) % n == 0 ? LayerKind::Full : other);
}

void sliding_window(const ConfigReader& r, ModelConfig& c) {
  c.sliding_window = r.optional_int("sliding_window", 0, 0, kMaxPositions);
}

void every_layer_slides(ModelConfig& c) {
  c.layer_kinds.assign(size_t(c.sliding_window > 0 ? c.num_hidden_layers : 0), LayerKind::Sliding);
}

void gated_shared_expert(const ConfigReader& r, ModelConfig& c) {
  c.shared_expert_intermediate_size = r.optional_int("shared_expert_intermediate_size", 0, 0, kMaxWidth);
  c.shared_expert_gate = c.shared_expert_intermediate_size > 0;
}

void shared_experts(const ConfigReader& r, ModelConfig& c) {
  const int64_t n = r.optional_int("n_shared_experts", 0, 0, kMaxExperts);
  c.shared_expert_intermediate_size = n * c.moe_intermediate_size;
}

void experts_of_intermediate_width(const ConfigReader& r, ModelConfig& c) {
  if (c.num_experts > 0 && c.moe_intermediate_size == 0) {
    if (!r.has("intermediate_size"))
      throw ConfigError(r.file, r.prefix + "intermediate_size", "(missing)",
                        "required key is missing (the experts' width)");
    c.moe_intermediate_size = c.intermediate_size;
  }
}

void gated_delta_net(const ConfigReader& r, ModelConfig& c) {
  c.linear_num_key_heads = r.required_int("linear_num_key_heads", 1, kMaxHeads);
  c.linear_num_value_heads = r.required_int("linear_num_value_heads", 1, kMaxHeads);
  c.linear_key_head_dim = r.required_int("linear_key_head_dim", 1, kMaxWidth);
  c.linear_value_head_dim = r.required_int("linear_value_head_dim", 1, kMaxWidth);
  c.linear_conv_kernel_dim = r.optional_int("linear_conv_kernel_dim", 4, 1, 64);
}

}  // namespace family_read
}  // namespace sc
