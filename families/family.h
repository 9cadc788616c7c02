// A model family: everything shardcheck knows about one HF model family, as data, torch-free.
// One folder per family (families/<name>/spec.cpp) and one line in families/registry.cpp; the
// checker, the memory and communication models, matrix, gate and report read only this and the
// ModelConfig it fills (docs/adding-a-family.md, docs/architecture.md).
#pragma once
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <utility>
#include <vector>

#include "models/config.h"
#include "models/config_reader.h"

namespace sc {

// One rule of HF's tensor-parallel plan, in HF's spelling: a module pattern relative to the
// decoder stack ("layers.*.self_attn.k_proj") and a style ("colwise", "rowwise",
// "colwise_gather_output", "packed_colwise", "moe_tp_experts", "embedding_rowwise", ...).
struct HfRule {
  std::string pattern;
  std::string style;
};

// A vision-language wrapper whose text_config the family reads.
struct WrapperSpec {
  std::string model_type;     // "qwen3_vl_moe"
  std::string module_prefix;  // decoder stack of the class tp_plan="auto" loads ("model.language_model")
  std::string lm_head_style;  // that class's _tp_plan for lm_head ("" when it has none)
};

// Aggregate-initialised in each families/<name>/spec.cpp, in this order (trailing defaults left out).
struct FamilySpec {
  std::string name;                      // the folder: families/<name>
  std::vector<std::string> model_types;  // text model types read (config model_type or text_config.model_type)
  std::string summary;                   // attention and MoE kinds, one line
  std::vector<std::string> keys;         // config keys read beyond the shared ones (ModelConfig::from_json)
  // Fills the family fields of c from the text config (r) and the top level (top, the same
  // object unless a wrapper); throws ConfigError naming file, key and value.
  void (*read)(const ConfigReader& r, const ConfigReader& top, ModelConfig& c) = nullptr;
  // HF transformers 5.17: the text config class's base_model_tp_plan and base_model_ep_plan
  // (fixtures/hf_tp holds them as recorded).
  std::vector<HfRule> hf_tp_plan;
  std::vector<HfRule> hf_ep_plan;
  bool has_forward = false;  // the decoder computes it (families/decoder: run / steer / bench / report --run)
  // Older checkpoint spellings the loader accepts when a tensor's HF 5.17 name is absent: each
  // {from, to} substring replacement applied in turn to the name (Mixtral's hub checkpoints:
  // block_sparse_moe.experts.E.w1 / w3 / w2 and block_sparse_moe.gate).
  std::vector<std::pair<std::string, std::string>> legacy_renames;
  std::vector<WrapperSpec> wrappers;
  // The *ForCausalLM class's _tp_plan for lm_head.
  std::string lm_head_style = "colwise_gather_output";
  // HF's config-class defaults for keys the published files leave out (gemma3's sparse
  // text_config), as JSON text merged under the text config before it is read ("" for none).
  std::string defaults_json;
};

// The name `name` has under the family's legacy_renames ("" when they change nothing).
std::string legacy_tensor_name(const ModelConfig& c, const std::string& name);

// Every family, in registry order.
const std::vector<const FamilySpec*>& families();
// The family reading a model_type (a text model type or a wrapper type), nullptr when none.
const FamilySpec* find_family(const std::string& model_type);
// The family named `name` (FamilySpec::name, as ModelConfig::family holds it), nullptr when none.
const FamilySpec* family_named(const std::string& name);
// The family of a parsed config (c.family); throws ConfigError for a model_type no family reads.
const FamilySpec& family_of(const ModelConfig& c);
// "llama, mistral, ..." (every model type read), for messages.
std::string supported_model_types();

// Parse a config.json the way every command does: the shared keys (ModelConfig::from_json), then
// the family's own (spec.read), then validation. Throws ConfigError for an unknown model_type
// ("unsupported model_type (supported: ...)") or any bad value.
ModelConfig read_model_config(const nlohmann::json& j, const std::string& source);
ModelConfig read_model_config_file(const std::string& path);
// read_model_config, named after the folder holding `path`.
ModelConfig read_model_config_parsed(const nlohmann::json& j, const std::string& path);

// HF's tensor-parallel style of a module of the model (a path as named_modules gives it, e.g.
// "model.layers.3.self_attn.k_proj" or "lm_head"), "" when HF's plan does not name it. Numbers
// between dots match '*', as HF's own lookup does.
std::string hf_tp_style(const ModelConfig& c, const std::string& module);
// Whether HF's plan shards anything of the decoder layers (gpt_oss: no).
bool hf_plan_shards_layers(const ModelConfig& c);

// Building blocks of HF's plans (families share HF's module names): a spec joins the ones its
// family's plan has; tests compare the result with the recorded plan.
namespace hf_plan {
using Rules = std::vector<HfRule>;
Rules join(std::initializer_list<Rules> parts);
Rules attention();  // q, k, v colwise; o rowwise
Rules qk_norms();   // q_norm, k_norm replicated_with_grad_allreduce
// gate / up colwise, down rowwise of `module` ("mlp", "mlp.shared_expert", "mlp.shared_experts").
Rules swiglu(const std::string& module = "mlp");
Rules routed_experts();      // mlp.experts moe_tp_experts, gate_up_proj packed_colwise, down_proj rowwise
Rules embedding_rowwise();   // embed_tokens
Rules gathered(std::initializer_list<const char*> modules);  // colwise_gather_output, per layer
// The EP plan: the router's ep_router, the experts' grouped_gemm (with biases: gpt_oss).
Rules experts_ep(const std::string& router = "mlp.gate", bool biases = false);
}  // namespace hf_plan

// Shared readers for the families' spec.cpp (one copy of each rule).
namespace family_read {
// layer_types (5.x), else full_attention_interval (every n-th layer full, the rest linear), else
// sliding_window_pattern (every n-th layer full, the rest sliding): c.layer_kinds.
void layer_pattern(const ConfigReader& r, ModelConfig& c, LayerKind other);
// sliding_window (null or 0: none).
void sliding_window(const ConfigReader& r, ModelConfig& c);
// Every layer Sliding when c.sliding_window is set (Mistral, Mixtral: one mask for all layers).
void every_layer_slides(ModelConfig& c);
// shared_expert_intermediate_size (Qwen2-MoE, Qwen3-Next, Qwen3.5: one gated shared expert).
void gated_shared_expert(const ConfigReader& r, ModelConfig& c);
// n_shared_experts x moe_intermediate_size (DeepSeek-V3, GLM-4.5: ungated shared_experts).
void shared_experts(const ConfigReader& r, ModelConfig& c);
// Experts whose width is intermediate_size (Mixtral, gpt-oss): no dense MLP layers.
void experts_of_intermediate_width(const ConfigReader& r, ModelConfig& c);
// Gated delta net: linear_num_key_heads, linear_num_value_heads, linear_key_head_dim,
// linear_value_head_dim, linear_conv_kernel_dim.
void gated_delta_net(const ConfigReader& r, ModelConfig& c);
// The Qwen3-Next / Qwen3.5 hybrid: gated-delta-net layers with every n-th layer gated softmax
// attention (attn_output_gate), and a gated shared expert beside the routed ones.
void qwen3_hybrid(const ConfigReader& r, ModelConfig& c);
}  // namespace family_read

}  // namespace sc
