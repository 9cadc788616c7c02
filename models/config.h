// ModelConfig: the one description of a Qwen3 / Qwen3-MoE model, parsed once from HF config.json
// and passed by const reference everywhere (checker, harness, steering). Torch-free.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "models/dtype.h"

namespace sc {

struct ModelConfig {
  std::string name;        // short name (fixture folder or factory name); informational
  std::string source;      // file it was read from ("" for factories)
  std::string model_type;  // "qwen3_moe" or "qwen3"

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
  // and report accept it and show it as information. "" = the default rope. The numeric rope of
  // `run` / `steer` / `bench` (models/qwen3) is the default rope only: it does not apply this.
  std::string rope_scaling_type;  // as given ("yarn", "su", ...), "" for none or "default"
  std::string rope_scaling;       // the holder object, compact JSON ("" when rope_scaling_type is "")
  bool attention_bias = false;
  DType dtype = DType::BF16;

  bool is_moe() const { return model_type == "qwen3_moe" && num_experts > 0; }
  // HF rule: sparse iff not in mlp_only_layers and (layer + 1) % decoder_sparse_step == 0.
  bool layer_is_sparse(int64_t layer) const;
  int64_t num_sparse_layers() const;
  // GQA group size: query heads per KV head.
  int64_t kv_groups() const { return num_key_value_heads ? num_attention_heads / num_key_value_heads : 0; }

  // Parameter counts (elements) for the whole model, used by memory estimates.
  int64_t attention_params_per_layer() const;
  int64_t expert_params() const;         // one expert: gate, up, down
  int64_t dense_mlp_params() const;
  int64_t router_params() const;
  int64_t layer_params(int64_t layer) const;
  int64_t embedding_params() const;      // embed_tokens
  int64_t lm_head_params() const;        // 0 when tied
  int64_t total_params() const;

  // Throws ConfigError naming source, key and value for any impossible value.
  void validate() const;

  // {"type": rope_scaling_type, "parameters": {...}}, or null for the default rope.
  nlohmann::json rope_scaling_json() const;
  // "yarn (factor 4, original_max_position_embeddings 32768)", "" for the default rope.
  std::string rope_scaling_summary() const;

  // Parsing. Both spellings are accepted: num_experts / num_local_experts, rope_theta /
  // rope_parameters.rope_theta / rope_scaling.rope_theta, torch_dtype / dtype.
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
// model config is a JSON object whose model_type is qwen3 or qwen3_moe, or one with model_type or
// architectures and a size key (hidden_size, num_hidden_layers, num_attention_heads) at the top
// level or in text_config.
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
