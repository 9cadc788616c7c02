// ModelConfig: the one description of a decoder-only model (any family of families/), parsed once
// from HF config.json and passed by const reference everywhere (checker, harness, steering).
// Torch-free. ModelConfig::from_json reads the keys every family shares (and descends into the
// text_config of vision-language wrappers); the family of the model_type (families/registry.h,
// read_model_config) reads its own keys and fills the family fields below.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "models/dtype.h"

namespace sc {

// The attention a layer runs (HF module names in families/<name>).
enum class AttentionKind {
  Gqa,       // q_proj, k_proj, v_proj, o_proj (grouped-query; optional q_norm / k_norm, biases, sinks)
  FusedQkv,  // one qkv_proj (phi3), o_proj
  Mla,       // multi-head latent attention (DeepSeek-V3): q_a/q_b, kv_a_proj_with_mqa, kv_b, o_proj
};
const char* attention_kind_name(AttentionKind k);
// Per layer: full attention, sliding-window attention (same shapes), or gated-delta-net linear
// attention (qwen3_next, qwen3_5_moe: linear_attn.*).
enum class LayerKind : uint8_t { Full, Sliding, Linear };
const char* layer_kind_name(LayerKind k);

struct ModelConfig {
  std::string name;        // short name (fixture folder or factory name); informational
  std::string source;      // file it was read from ("" for factories)
  std::string model_type;  // the text model's model_type ("qwen3_moe", "llama", "qwen3_vl_moe_text", ...)
  // Family (families/<family>/spec.cpp), set by read_model_config. The configs:: factories and
  // the tiny fixtures are Qwen3 models; the defaults below are Qwen3's.
  std::string family = "qwen3";
  std::string wrapper_model_type;        // a vision-language wrapper's model_type ("" when none)
  std::string module_prefix = "model";   // module path of the decoder stack ("model.language_model")
  std::string hidden_act = "silu";

  int64_t hidden_size = 0;
  int64_t num_attention_heads = 0;
  int64_t num_key_value_heads = 0;  // default: num_attention_heads
  int64_t head_dim = 0;             // default: hidden_size / num_attention_heads
  int64_t intermediate_size = 0;    // dense MLP width (mlp_only_layers, dense models)
  int64_t moe_intermediate_size = 0;
  int64_t num_experts = 0;          // 0 for dense models
  int64_t num_experts_per_tok = 0;
  bool norm_topk_prob = true;
  int64_t decoder_sparse_step = 1;
  std::vector<int64_t> mlp_only_layers;
  int64_t num_hidden_layers = 0;
  int64_t vocab_size = 0;
  bool tie_word_embeddings = false;
  double rms_norm_eps = 1e-6;
  double rope_theta = 1e6;
  int64_t max_position_embeddings = 0;
  // RoPE scaling as HF accepts it (rope_scaling, or rope_parameters in transformers 5.x): linear,
  // dynamic, yarn, longrope (su), llama3, mrope. It changes no tensor shape, so the checker, gate
  // and report accept it and show it as information. "" = the default rope. The forward of `run` /
  // `steer` / `bench` computes the default, linear and llama3 ropes (forward_computes_rope).
  std::string rope_scaling_type;  // as given ("yarn", "su", ...), "" for none or "default"
  std::string rope_scaling;       // the holder object, compact JSON ("" when rope_scaling_type is "")
  bool attention_bias = false;
  DType dtype = DType::BF16;

  // Attention.
  AttentionKind attention_kind = AttentionKind::Gqa;
  bool qk_norm = true;                 // per-head RMSNorm on q and k (Qwen3, Gemma3, GLM use_qk_norm)
  bool attention_sinks = false;        // gpt_oss: a learned sink logit per head
  // Qwen3-Next / Qwen3.5: q_proj also yields a sigmoid output gate per head, so it has 2 x heads x
  // head_dim rows and its output is first viewed in [B, S, -1, 2 x head_dim].
  bool attention_output_gate = false;
  std::vector<LayerKind> layer_kinds;  // per layer; empty: every layer is Full
  int64_t sliding_window = 0;          // tokens, 0: none
  // MLA (AttentionKind::Mla).
  int64_t q_lora_rank = 0, kv_lora_rank = 0, qk_nope_head_dim = 0, qk_rope_head_dim = 0, v_head_dim = 0;
  // Gated delta net (LayerKind::Linear).
  int64_t linear_num_key_heads = 0, linear_num_value_heads = 0, linear_key_head_dim = 0, linear_value_head_dim = 0;
  int64_t linear_conv_kernel_dim = 0;
  // MoE beyond the routed experts.
  int64_t first_k_dense_replace = 0;             // layers [0, k) dense (DeepSeek-V3, GLM-4.5)
  int64_t shared_expert_intermediate_size = 0;   // width of the shared expert(s), 0: none
  bool shared_expert_gate = false;               // qwen2_moe / qwen3_next: sigmoid gate on the shared expert
  bool fused_gate_up = false;                    // phi3: one mlp.gate_up_proj
  bool expert_bias = false;                      // gpt_oss: biases on experts and router
  bool router_bias_correction = false;           // DeepSeek-V3 / GLM: e_score_correction_bias

  bool is_moe() const { return num_experts > 0; }
  LayerKind layer_kind(int64_t layer) const {
    return layer >= 0 && size_t(layer) < layer_kinds.size() ? layer_kinds[size_t(layer)] : LayerKind::Full;
  }
  // The first layer running softmax attention (Full or Sliding), -1 when none: in hybrids the
  // first layer whose q/k/v views can fail.
  int64_t first_attention_layer() const;
  // Width of one head's q / k (qk_nope + qk_rope under MLA, head_dim otherwise) and of v.
  int64_t q_head_dim() const { return attention_kind == AttentionKind::Mla ? qk_nope_head_dim + qk_rope_head_dim : head_dim; }
  int64_t v_dim() const { return attention_kind == AttentionKind::Mla ? v_head_dim : head_dim; }
  // HF rule: sparse iff layer >= first_k_dense_replace, not in mlp_only_layers and
  // (layer + 1) % decoder_sparse_step == 0.
  bool layer_is_sparse(int64_t layer) const;
  int64_t num_sparse_layers() const;
  // GQA group size: query heads per KV head.
  int64_t kv_groups() const { return num_key_value_heads ? num_attention_heads / num_key_value_heads : 0; }

  // Parameter counts (elements) for the whole model, used by memory estimates.
  int64_t attention_params_per_layer() const;  // a softmax-attention layer (Full / Sliding)
  int64_t linear_attention_params() const;     // a gated-delta-net layer
  int64_t attention_params(int64_t layer) const;  // by the layer's kind
  int64_t expert_params() const;         // one expert: gate, up, down
  int64_t dense_mlp_params() const;
  int64_t router_params() const;
  int64_t layer_params(int64_t layer) const;
  int64_t embedding_params() const;      // embed_tokens
  int64_t lm_head_params() const;        // 0 when tied
  int64_t total_params() const;

  // Throws ConfigError naming source, key and value for any impossible value.
  void validate() const;
  // The part of validate() that keeps every derived count inside int64 (any model_type).
  void validate_size_bounds() const;

  // Whether the forward (run, steer, bench, repro) computes this rope as HF does: the default,
  // linear and llama3 ones.
  bool forward_computes_rope() const {
    return rope_scaling_type.empty() || rope_scaling_type == "linear" || rope_scaling_type == "llama3";
  }
  // {"type": rope_scaling_type, "parameters": {...}}, or null for the default rope.
  nlohmann::json rope_scaling_json() const;
  // "yarn (factor 4, original_max_position_embeddings 32768)", "" for the default rope.
  std::string rope_scaling_summary() const;

  // Parsing of the keys every family shares (the family's own keys: families/registry.h,
  // read_model_config, which every command uses). A wrapper's text_config is read in place of the
  // top level. Both spellings are accepted: rope_theta / rope_parameters.rope_theta /
  // rope_scaling.rope_theta, torch_dtype / dtype. For qwen3 / qwen3_moe this is the whole config.
  static ModelConfig from_json(const nlohmann::json& j, const std::string& source);
  static ModelConfig from_json_text(const std::string& text, const std::string& source);
  static ModelConfig from_file(const std::string& path);
  // from_json, named after the folder holding `path` (as from_file does).
  static ModelConfig from_parsed_file(const nlohmann::json& j, const std::string& path);
  // HF-style config.json (transformers 4.51 spelling, as the published Qwen3 files).
  nlohmann::json to_json() const;
};

// The name a config gets from its path: the folder holding it ("" for a bare file name).
std::string config_name_from_path(const std::string& path);

// Whether a parsed JSON document is a model config ("" when it is, else why not). `gate` is given
// every *config.json of a repository, which includes generation_config.json,
// tokenizer_config.json, preprocessor_config.json, ...: it selects model configs by content. A
// model config is a JSON object with model_type or architectures and a size key (hidden_size,
// num_hidden_layers, num_attention_heads) at the top level or in text_config.
std::string not_a_model_config(const nlohmann::json& j);

// Named factories (gemma.cpp style) with the published values of the real models.
namespace configs {
ModelConfig qwen3_235b_a22b();
ModelConfig qwen3_30b_a3b();
ModelConfig qwen3_coder_480b_a35b();
ModelConfig qwen3_32b();
ModelConfig qwen3_0_6b();
// Qwen3-235B-A22B as one layer of reduced width (reduce_config, models/reduced.h: hidden, MLP and
// expert widths and vocab shrink; 64 query / 4 KV heads of 128, 128 experts top-8 stay), fp32: the
// TP=8 view error text depends only on batch, seq, head_dim and the KV columns per rank, so it is
// the users' text exactly.
ModelConfig qwen3_235b_attention_repro(int64_t hidden = 512);
// All of the above, by fixture name ("qwen3-235b-a22b", ...).
std::vector<ModelConfig> all_real();
}  // namespace configs

}  // namespace sc
