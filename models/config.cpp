#include "models/config.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "models/errors.h"
#include "models/json_util.h"
#include "models/config_reader.h"
#include "models/reduced.h"

namespace sc {

using nlohmann::json;

bool ModelConfig::layer_is_sparse(int64_t layer) const {
  if (!is_moe()) return false;
  if (layer < first_k_dense_replace) return false;
  if (std::find(mlp_only_layers.begin(), mlp_only_layers.end(), layer) != mlp_only_layers.end()) return false;
  return decoder_sparse_step > 0 && (layer + 1) % decoder_sparse_step == 0;
}

int64_t ModelConfig::num_sparse_layers() const {
  int64_t n = 0;
  for (int64_t l = 0; l < num_hidden_layers; ++l) n += layer_is_sparse(l) ? 1 : 0;
  return n;
}

// These counts are the sums of the tensor inventory (checks/tensors.cpp, layer_tensors), which a
// test holds them to for every family fixture.
int64_t ModelConfig::attention_params_per_layer() const {
  const int64_t H = hidden_size, heads = num_attention_heads;
  int64_t n = 2 * H;  // the two RMSNorms of the block
  if (attention_kind == AttentionKind::Mla) {
    const int64_t qd = q_head_dim();
    n += q_lora_rank > 0 ? H * q_lora_rank + q_lora_rank + q_lora_rank * heads * qd : H * heads * qd;
    n += H * (kv_lora_rank + qk_rope_head_dim) + kv_lora_rank + kv_lora_rank * heads * (qk_nope_head_dim + v_head_dim);
    n += heads * v_head_dim * H;
    return n;
  }
  const int64_t q = num_attention_heads * head_dim, kv = num_key_value_heads * head_dim;
  const int64_t qrows = attention_output_gate ? 2 * q : q;
  n += H * qrows + 2 * H * kv + q * H;  // q (with its output gate), k, v (or the fused qkv), o
  if (attention_bias) n += qrows + 2 * kv + (family == "gpt_oss" ? H : 0);
  if (family == "gemma3") n += 2 * H;  // pre / post feed-forward norms
  if (qk_norm) n += 2 * head_dim;
  if (attention_sinks) n += heads;
  return n;
}
int64_t ModelConfig::linear_attention_params() const {
  const int64_t H = hidden_size;
  const int64_t kd = linear_num_key_heads * linear_key_head_dim, vd = linear_num_value_heads * linear_value_head_dim;
  const int64_t conv = 2 * kd + vd;
  return 2 * H + H * (conv + vd + 2 * linear_num_value_heads)  // in projections: qkv, z, b and a
         + conv * linear_conv_kernel_dim                        // depthwise conv1d
         + 2 * linear_num_value_heads                           // dt_bias, A_log
         + linear_value_head_dim                                // gated RMSNorm
         + vd * H;                                              // out_proj
}
int64_t ModelConfig::attention_params(int64_t layer) const {
  return layer_kind(layer) == LayerKind::Linear ? linear_attention_params() : attention_params_per_layer();
}
int64_t ModelConfig::expert_params() const {
  return 3 * hidden_size * moe_intermediate_size + (expert_bias ? 2 * moe_intermediate_size + hidden_size : 0);
}
int64_t ModelConfig::dense_mlp_params() const { return 3 * hidden_size * intermediate_size; }
int64_t ModelConfig::router_params() const {
  return num_experts * hidden_size + (expert_bias || router_bias_correction ? num_experts : 0);
}
int64_t ModelConfig::layer_params(int64_t layer) const {
  int64_t mlp = dense_mlp_params();
  if (layer_is_sparse(layer)) {
    mlp = router_params() + num_experts * expert_params();
    if (shared_expert_intermediate_size > 0)
      mlp += 3 * hidden_size * shared_expert_intermediate_size + (shared_expert_gate ? hidden_size : 0);
  }
  return attention_params(layer) + mlp;
}
int64_t ModelConfig::embedding_params() const { return vocab_size * hidden_size; }
int64_t ModelConfig::lm_head_params() const { return tie_word_embeddings ? 0 : vocab_size * hidden_size; }
int64_t ModelConfig::total_params() const {
  int64_t n = embedding_params() + lm_head_params() + hidden_size;  // + final norm
  for (int64_t l = 0; l < num_hidden_layers; ++l) n += layer_params(l);
  return n;
}

namespace {

// The rope types HF's rope_config_validation accepts (transformers/modeling_rope_utils.py; "su" is
// longrope's old name, "mrope" Qwen2-VL's multimodal rope) and the keys each one requires.
struct RopeType {
  const char* name;
  std::vector<const char*> required;
};
const std::vector<RopeType>& rope_types() {
  static const std::vector<RopeType> t = {
      {"default", {}},
      {"linear", {"factor"}},
      {"dynamic", {"factor"}},
      {"yarn", {"factor"}},
      {"longrope", {"short_factor", "long_factor"}},
      {"su", {"short_factor", "long_factor"}},
      {"llama3", {"factor", "low_freq_factor", "high_freq_factor", "original_max_position_embeddings"}},
      {"mrope", {"mrope_section"}},
  };
  return t;
}

// One rope holder (rope_scaling or rope_parameters): its type ("" for the default rope), after
// checking every value the rope types use. Keys HF ignores are ignored here too.
std::string read_rope_holder(const json& h, const std::string& file, const std::string& holder) {
  const ConfigReader r{h, file, holder + "."};
  std::string type;
  for (const char* key : {"rope_type", "type"}) {
    if (!r.has(key)) continue;
    const std::string t = r.string(key);
    if (!type.empty() && t != type)
      r.fail(key, h.at(key), "disagrees with " + holder + ".rope_type = \"" + type + "\"");
    type = t;
  }
  const RopeType* rt = nullptr;
  for (const RopeType& x : rope_types())
    if (type == x.name) rt = &x;
  if (!type.empty() && !rt) {
    std::string known;
    for (const RopeType& x : rope_types()) known += std::string(known.empty() ? "" : ", ") + x.name;
    r.fail(h.contains("rope_type") ? "rope_type" : "type", json(type), "unknown rope type (HF accepts " + known + ")");
  }
  if (rt)
    for (const char* key : rt->required)
      if (!r.has(key)) throw ConfigError(file, holder + "." + key, "(missing)", "required for rope type \"" + type + "\"");
  for (const char* key : {"factor", "attention_factor", "beta_fast", "beta_slow", "low_freq_factor", "high_freq_factor"})
    if (r.has(key)) r.positive_number(h.at(key), key);
  for (const char* key : {"mscale", "mscale_all_dim"})
    if (r.has(key) && (!h.at(key).is_number() || !std::isfinite(h.at(key).get<double>())))
      r.fail(key, h.at(key), "must be a finite number");
  if (r.has("original_max_position_embeddings")) r.integer("original_max_position_embeddings", 1, kMaxPositions);
  for (const char* key : {"short_factor", "long_factor", "mrope_section"}) {
    if (!r.has(key)) continue;
    const json& v = h.at(key);
    if (!v.is_array() || v.empty()) r.fail(key, v, "must be a non-empty array of numbers");
    for (size_t i = 0; i < v.size(); ++i) {
      const std::string at = std::string(key) + "[" + std::to_string(i) + "]";
      if (std::string(key) == "mrope_section") {
        if (!v[i].is_number_integer() || v[i].get<int64_t>() < 1) r.fail(at, v[i], "must be a positive integer");
      } else {
        r.positive_number(v[i], at);
      }
    }
  }
  return type == "default" ? "" : type;
}

}  // namespace

ModelConfig ModelConfig::from_json(const json& top, const std::string& source) {
  if (!top.is_object()) throw ConfigError(source, "", json_brief(top), "config must be a JSON object");
  ModelConfig c;
  c.source = source;
  // Vision-language wrappers (qwen3_vl_moe, qwen3_5_moe, gemma3, ...) keep the decoder in text_config.
  const bool wrapped = top.contains("text_config") && top.at("text_config").is_object();
  const json& j = wrapped ? top.at("text_config") : top;
  ConfigReader r{j, source, wrapped ? "text_config." : ""};
  const ConfigReader rt{top, source};
  if (wrapped) {
    if (!rt.has("model_type")) throw ConfigError(source, "model_type", "(missing)", "required key is missing");
    c.wrapper_model_type = rt.string("model_type");
  }
  if (r.has("model_type")) {
    c.model_type = r.string("model_type");
  } else if (wrapped) {
    c.model_type = c.wrapper_model_type + "_text";  // as HF's text config classes name it
  } else {
    throw ConfigError(source, "model_type", "(missing)", "required key is missing");
  }

  c.hidden_size = r.required_int("hidden_size", 1, kMaxWidth);
  c.num_attention_heads = r.required_int("num_attention_heads", 1, kMaxHeads);
  c.num_key_value_heads = r.has("num_key_value_heads") ? r.integer("num_key_value_heads", 1, kMaxHeads)
                                                       : c.num_attention_heads;
  c.head_dim = r.has("head_dim") ? r.integer("head_dim", 1, kMaxWidth) : c.hidden_size / c.num_attention_heads;
  if (c.head_dim == 0)
    throw ConfigError(source, r.prefix + "head_dim", "(missing)",
                      "head_dim defaults to hidden_size / num_attention_heads = " + std::to_string(c.hidden_size) +
                          " / " + std::to_string(c.num_attention_heads) + " = 0");
  c.num_hidden_layers = r.required_int("num_hidden_layers", 1, kMaxLayers);
  c.vocab_size = r.required_int("vocab_size", 1, kMaxVocab);
  c.intermediate_size = r.has("intermediate_size") ? r.integer("intermediate_size", 1, kMaxWidth) : 0;
  c.max_position_embeddings =
      r.has("max_position_embeddings") ? r.integer("max_position_embeddings", 1, kMaxPositions) : 0;
  // tie_word_embeddings sits on the wrapper in some VL configs.
  c.tie_word_embeddings = r.has("tie_word_embeddings") ? r.boolean("tie_word_embeddings", false)
                                                       : rt.boolean("tie_word_embeddings", false);
  c.attention_bias = r.boolean("attention_bias", false);
  if (r.has("rms_norm_eps")) c.rms_norm_eps = r.positive_number(j.at("rms_norm_eps"), "rms_norm_eps");

  // rope_theta: top level (transformers 4.x) or inside rope_parameters / rope_scaling (5.x).
  bool have_theta = false;
  if (r.has("rope_theta")) {
    c.rope_theta = r.positive_number(j.at("rope_theta"), "rope_theta");
    have_theta = true;
  }
  // Rope scaling changes no shape: any type HF accepts is kept as information (see config.h).
  std::string scaling_holder;
  for (const char* holder : {"rope_parameters", "rope_scaling"}) {
    if (!r.has(holder)) continue;
    const json& h = j.at(holder);
    if (!h.is_object()) r.fail(holder, h, std::string("must be an object, not a ") + h.type_name());
    const std::string type = read_rope_holder(h, source, r.prefix + holder);
    if (!type.empty() && !c.rope_scaling_type.empty() && type != c.rope_scaling_type)
      throw ConfigError(source, r.prefix + holder + ".rope_type", json_brief(type),
                        "disagrees with " + scaling_holder + " (rope type \"" + c.rope_scaling_type + "\")");
    if (!type.empty() && c.rope_scaling_type.empty()) {
      c.rope_scaling_type = type;
      c.rope_scaling = h.dump();
      scaling_holder = r.prefix + holder;
    }
    if (h.contains("rope_theta") && !have_theta) {
      c.rope_theta = r.positive_number(h.at("rope_theta"), std::string(holder) + ".rope_theta");
      have_theta = true;
    }
  }

  // dtype (5.x) or torch_dtype (4.x), in the text config or on the wrapper.
  for (const ConfigReader* rr : std::initializer_list<const ConfigReader*>{&r, &rt}) {
    bool found = false;
    for (const char* key : {"dtype", "torch_dtype"}) {
      if (!rr->has(key)) continue;
      const json& v = rr->j.at(key);
      if (!v.is_string()) rr->fail(key, v, std::string("must be a string, not a ") + v.type_name());
      auto d = dtype_from_torch_name(v.get<std::string>());
      if (!d || !dtype_is_float(*d)) rr->fail(key, v, "unknown dtype (expected float32, bfloat16, float16 or float64)");
      c.dtype = *d;
      found = true;
      break;
    }
    if (found || !wrapped) break;
  }
  if (r.has("hidden_act")) c.hidden_act = r.string("hidden_act");
  else if (r.has("hidden_activation")) c.hidden_act = r.string("hidden_activation");

  // Routed experts, under the names the families use.
  if (const char* ekey = r.first_of({"num_experts", "num_local_experts", "n_routed_experts"})) {
    c.num_experts = r.integer(ekey, 0, kMaxExperts);
    if (c.num_experts > 0) {
      const char* kkey = r.first_of({"num_experts_per_tok", "experts_per_token"});
      if (!kkey) throw ConfigError(source, r.prefix + "num_experts_per_tok", "(missing)", "required key is missing");
      c.num_experts_per_tok = r.integer(kkey, 1, kMaxExperts);
      c.norm_topk_prob = r.boolean("norm_topk_prob", false);  // HF Qwen3MoeConfig default
      c.decoder_sparse_step = r.has("decoder_sparse_step") ? r.integer("decoder_sparse_step", 1, kMaxLayers) : 1;
      if (r.has("moe_intermediate_size")) c.moe_intermediate_size = r.integer("moe_intermediate_size", 1, kMaxWidth);
      c.first_k_dense_replace = r.optional_int("first_k_dense_replace", 0, 0, kMaxLayers);
      if (r.has("mlp_only_layers")) {
        const json& v = j.at("mlp_only_layers");
        if (!v.is_array()) r.fail("mlp_only_layers", v, std::string("must be an array of layer indices, not a ") + v.type_name());
        for (size_t i = 0; i < v.size(); ++i) {
          const json& e = v[i];
          std::string key = r.prefix + "mlp_only_layers[" + std::to_string(i) + "]";
          if (!e.is_number_integer()) throw ConfigError(source, key, json_brief(e), "must be an integer layer index");
          c.mlp_only_layers.push_back(e.get<int64_t>());
        }
      }
    }
  }
  if (c.model_type == "qwen3_moe" && c.num_experts == 0)
    throw ConfigError(source, r.prefix + (r.has("num_experts") ? "num_experts" : "num_local_experts"),
                      r.has("num_experts") ? "0" : "(missing)",
                      r.has("num_experts") ? "must be positive" : "required key is missing");
  if ((c.model_type == "qwen3" || c.model_type == "qwen3_moe") && c.hidden_act != "silu")
    r.fail("hidden_act", j.at("hidden_act"), "only silu is supported (Qwen3)");
  if (c.model_type == "qwen3_moe" && c.moe_intermediate_size == 0)
    throw ConfigError(source, r.prefix + "moe_intermediate_size", "(missing)", "required key is missing");
  if (c.model_type == "qwen3" || c.model_type == "qwen3_moe") {
    c.validate();
  } else {
    // The family completes and validates the rest (read_model_config); until then the config
    // belongs to no family, so nothing computes it as Qwen3 by mistake.
    c.family.clear();
    c.validate_size_bounds();
  }
  return c;
}

int64_t ModelConfig::first_attention_layer() const {
  for (int64_t l = 0; l < num_hidden_layers; ++l)
    if (layer_kind(l) != LayerKind::Linear) return l;
  return -1;
}

const char* attention_kind_name(AttentionKind k) {
  switch (k) {
    case AttentionKind::Gqa: return "gqa";
    case AttentionKind::FusedQkv: return "fused-qkv";
    case AttentionKind::Mla: return "mla";
  }
  return "?";
}

const char* layer_kind_name(LayerKind k) {
  switch (k) {
    case LayerKind::Full: return "full_attention";
    case LayerKind::Sliding: return "sliding_attention";
    case LayerKind::Linear: return "linear_attention";
  }
  return "?";
}

void ModelConfig::validate() const {
  auto fail = [&](const std::string& key, int64_t v, const std::string& problem) {
    throw ConfigError(source, key, std::to_string(v), problem);
  };
  auto positive = [&](const char* key, int64_t v) {
    if (v <= 0) fail(key, v, "must be positive");
  };
  positive("hidden_size", hidden_size);
  positive("num_attention_heads", num_attention_heads);
  positive("num_key_value_heads", num_key_value_heads);
  positive("head_dim", head_dim);
  positive("num_hidden_layers", num_hidden_layers);
  positive("vocab_size", vocab_size);
  if (num_key_value_heads > num_attention_heads)
    fail("num_key_value_heads", num_key_value_heads,
         "more KV heads than query heads (num_attention_heads = " + std::to_string(num_attention_heads) + ")");
  if (num_attention_heads % num_key_value_heads != 0)
    fail("num_key_value_heads", num_key_value_heads,
         "num_attention_heads = " + std::to_string(num_attention_heads) +
             " is not a multiple of it: grouped-query attention needs a whole number of query heads per KV head");
  if (!(rms_norm_eps > 0)) throw ConfigError(source, "rms_norm_eps", std::to_string(rms_norm_eps), "must be positive");
  if (!(rope_theta > 0)) throw ConfigError(source, "rope_theta", std::to_string(rope_theta), "must be positive");
  bool needs_dense = !is_moe();
  if (is_moe()) {
    positive("num_experts", num_experts);
    positive("num_experts_per_tok", num_experts_per_tok);
    positive("moe_intermediate_size", moe_intermediate_size);
    positive("decoder_sparse_step", decoder_sparse_step);
    if (num_experts_per_tok > num_experts)
      fail("num_experts_per_tok", num_experts_per_tok,
           "top-k exceeds num_experts = " + std::to_string(num_experts));
    for (size_t i = 0; i < mlp_only_layers.size(); ++i) {
      int64_t l = mlp_only_layers[i];
      if (l < 0 || l >= num_hidden_layers)
        fail("mlp_only_layers[" + std::to_string(i) + "]", l,
             "layer index outside [0, num_hidden_layers = " + std::to_string(num_hidden_layers) + ")");
    }
    needs_dense = num_sparse_layers() < num_hidden_layers;
  }
  if (!layer_kinds.empty() && int64_t(layer_kinds.size()) != num_hidden_layers)
    fail("layer_types", int64_t(layer_kinds.size()),
         "entries, one per layer expected (num_hidden_layers = " + std::to_string(num_hidden_layers) + ")");
  if (needs_dense && intermediate_size <= 0)
    fail("intermediate_size", intermediate_size, "must be positive (dense MLP layers use it)");
  validate_size_bounds();
}

void ModelConfig::validate_size_bounds() const {
  auto fail = [&](const std::string& key, int64_t v, const std::string& problem) {
    throw ConfigError(source, key, std::to_string(v), problem);
  };
  // The per-key limits keep each layer's count inside int64, not the sum over layers (the fuzzer
  // found 2^14 layers of 2^56 overflowing total_params): bound the total, summed in 128 bits.
  const bool within_key_limits = num_hidden_layers <= kMaxLayers && hidden_size <= kMaxWidth && vocab_size <= kMaxVocab &&
                                 num_attention_heads <= kMaxHeads && head_dim <= kMaxWidth &&
                                 intermediate_size <= kMaxWidth && moe_intermediate_size <= kMaxWidth &&
                                 num_experts <= kMaxExperts && shared_expert_intermediate_size <= kMaxWidth &&
                                 linear_num_key_heads <= kMaxHeads && linear_num_value_heads <= kMaxHeads &&
                                 linear_key_head_dim <= kMaxWidth && linear_value_head_dim <= kMaxWidth &&
                                 q_lora_rank <= kMaxWidth && kv_lora_rank <= kMaxWidth &&
                                 qk_nope_head_dim <= kMaxWidth && qk_rope_head_dim <= kMaxWidth && v_head_dim <= kMaxWidth;
  if (within_key_limits) {
    __int128 total = __int128(vocab_size) * hidden_size * (tie_word_embeddings ? 1 : 2) + hidden_size;
    for (int64_t l = 0; l < num_hidden_layers; ++l) total += layer_params(l);
    if (total > __int128(kMaxParams))
    {
      char approx[32];
      std::snprintf(approx, sizeof approx, "%.3g", double(total));
      fail("num_hidden_layers", num_hidden_layers,
           std::string("the model would have about ") + approx +
               " parameters, more than the 2^50 this tool supports (check hidden_size, head counts and layer count)");
    }
  }
}

ModelConfig ModelConfig::from_json_text(const std::string& text, const std::string& source) {
  return from_json(parse_json_strict(text, source, InputKind::Config), source);
}

ModelConfig ModelConfig::from_file(const std::string& path) {
  return from_parsed_file(read_json_file(path, InputKind::Config), path);
}

ModelConfig ModelConfig::from_parsed_file(const json& j, const std::string& path) {
  ModelConfig c = from_json(j, path);
  c.name = config_name_from_path(path);
  return c;
}

std::string config_name_from_path(const std::string& path) {
  auto slash = path.find_last_of('/');
  if (slash == std::string::npos) return "";
  std::string dir = path.substr(0, slash);
  auto s2 = dir.find_last_of('/');
  return s2 == std::string::npos ? dir : dir.substr(s2 + 1);
}

std::string not_a_model_config(const json& j) {
  if (!j.is_object()) return std::string("not a JSON object (a ") + j.type_name() + ")";
  const json* type = j.contains("model_type") ? &j.at("model_type") : nullptr;
  if (!type && !j.contains("architectures"))
    return "no model_type or architectures key (a generation, tokenizer or processor config?)";
  static const char* const kSizeKeys[] = {"hidden_size", "num_hidden_layers", "num_attention_heads"};
  for (const json* holder : {&j, j.contains("text_config") ? &j.at("text_config") : nullptr}) {
    if (!holder || !holder->is_object()) continue;
    for (const char* k : kSizeKeys)
      if (holder->contains(k)) return "";
  }
  return "no hidden_size, num_hidden_layers or num_attention_heads at the top level or in text_config";
}

json ModelConfig::to_json() const {
  json j;
  static const std::map<std::string, const char*> arch = {
      {"qwen3_moe", "Qwen3MoeForCausalLM"}, {"llama", "LlamaForCausalLM"},     {"mistral", "MistralForCausalLM"},
      {"mixtral", "MixtralForCausalLM"},    {"qwen2", "Qwen2ForCausalLM"},     {"qwen2_moe", "Qwen2MoeForCausalLM"}};
  const auto a = arch.find(model_type);
  j["architectures"] = json::array({a != arch.end() ? a->second : "Qwen3ForCausalLM"});
  j["model_type"] = model_type;
  j["attention_bias"] = attention_bias;
  j["attention_dropout"] = 0.0;
  j["hidden_act"] = "silu";
  j["hidden_size"] = hidden_size;
  j["head_dim"] = head_dim;
  j["intermediate_size"] = intermediate_size;
  if (max_position_embeddings > 0) j["max_position_embeddings"] = max_position_embeddings;
  j["num_attention_heads"] = num_attention_heads;
  j["num_hidden_layers"] = num_hidden_layers;
  j["num_key_value_heads"] = num_key_value_heads;
  j["rms_norm_eps"] = rms_norm_eps;
  j["rope_theta"] = rope_theta;
  j["rope_scaling"] = rope_scaling.empty() ? json(nullptr) : json::parse(rope_scaling);
  j["tie_word_embeddings"] = tie_word_embeddings;
  j["torch_dtype"] = dtype_torch_name(dtype);
  j["vocab_size"] = vocab_size;
  j["use_cache"] = true;
  auto qwen_moe_keys = [&] {  // Qwen3-MoE and Qwen2-MoE spell their experts the same way
    j["decoder_sparse_step"] = decoder_sparse_step;
    j["mlp_only_layers"] = mlp_only_layers;
    j["moe_intermediate_size"] = moe_intermediate_size;
    j["norm_topk_prob"] = norm_topk_prob;
    j["num_experts"] = num_experts;
    j["num_experts_per_tok"] = num_experts_per_tok;
  };
  if (model_type == "qwen3_moe") {
    qwen_moe_keys();
    j["output_router_logits"] = false;
    j["router_aux_loss_coef"] = 0.001;
  }
  // The other families with a forward (the fuzzer's minimal cases): their own spellings.
  if (sliding_window > 0) j["sliding_window"] = sliding_window;
  if (model_type == "qwen2_moe") {
    j.erase("attention_bias");
    j["qkv_bias"] = attention_bias;
    qwen_moe_keys();
    j["shared_expert_intermediate_size"] = shared_expert_intermediate_size;
  } else if (model_type == "mixtral") {
    j["intermediate_size"] = moe_intermediate_size;  // the experts' width
    j["num_local_experts"] = num_experts;
    j["num_experts_per_tok"] = num_experts_per_tok;
  }
  return j;
}

json ModelConfig::rope_scaling_json() const {
  if (rope_scaling_type.empty()) return nullptr;
  return {{"type", rope_scaling_type}, {"parameters", json::parse(rope_scaling)}};
}

std::string ModelConfig::rope_scaling_summary() const {
  if (rope_scaling_type.empty()) return "";
  std::string params;
  const json h = json::parse(rope_scaling);
  for (const auto& [k, v] : h.items()) {
    if (k == "rope_type" || k == "type" || k == "rope_theta") continue;
    params += (params.empty() ? "" : ", ") + k + " " + json_brief(v);
  }
  return rope_scaling_type + (params.empty() ? "" : " (" + params + ")");
}

namespace configs {

namespace {
ModelConfig dense(const char* name, int64_t layers, int64_t hidden, int64_t heads, int64_t kv, int64_t inter,
                  bool tied, int64_t max_pos = 40960, double theta = 1e6) {
  ModelConfig c;
  c.name = name;
  c.model_type = "qwen3";
  c.num_hidden_layers = layers;
  c.hidden_size = hidden;
  c.num_attention_heads = heads;
  c.num_key_value_heads = kv;
  c.head_dim = 128;
  c.intermediate_size = inter;
  c.vocab_size = 151936;
  c.max_position_embeddings = max_pos;
  c.rope_theta = theta;
  c.rms_norm_eps = 1e-6;
  c.tie_word_embeddings = tied;
  c.dtype = DType::BF16;
  return c;
}
// A Qwen3-MoE: the dense shape plus every layer sparse, top-8 renormalised.
ModelConfig moe(const char* name, int64_t layers, int64_t hidden, int64_t heads, int64_t kv, int64_t inter,
                int64_t moe_inter, int64_t experts, int64_t max_pos, double theta) {
  ModelConfig c = dense(name, layers, hidden, heads, kv, inter, /*tied=*/false, max_pos, theta);
  c.model_type = "qwen3_moe";
  c.moe_intermediate_size = moe_inter;
  c.num_experts = experts;
  c.num_experts_per_tok = 8;
  c.norm_topk_prob = true;
  c.decoder_sparse_step = 1;
  return c;
}
}  // namespace

ModelConfig qwen3_235b_a22b() { return moe("qwen3-235b-a22b", 94, 4096, 64, 4, 12288, 1536, 128, 40960, 1e6); }
ModelConfig qwen3_30b_a3b() { return moe("qwen3-30b-a3b", 48, 2048, 32, 4, 6144, 768, 128, 40960, 1e6); }
ModelConfig qwen3_coder_480b_a35b() {
  return moe("qwen3-coder-480b-a35b", 62, 6144, 96, 8, 8192, 2560, 160, 262144, 1e7);
}
ModelConfig qwen3_32b() { return dense("qwen3-32b", 64, 5120, 64, 8, 25600, false); }
ModelConfig qwen3_0_6b() { return dense("qwen3-0.6b", 28, 1024, 16, 8, 3072, true); }
ModelConfig qwen3_235b_attention_repro(int64_t hidden) {
  // The one reduction the report's runs use too (models/reduced.h): heads, head_dim, experts and
  // top-k as in the model; hidden, widths and vocab shrink with the same divisibility.
  ReduceOptions o;
  o.hidden = hidden;
  ModelConfig c = reduce_config(qwen3_235b_a22b(), o);
  c.dtype = DType::F32;
  return c;
}
std::vector<ModelConfig> all_real() {
  return {qwen3_235b_a22b(), qwen3_30b_a3b(), qwen3_coder_480b_a35b(), qwen3_32b(), qwen3_0_6b()};
}

}  // namespace configs
}  // namespace sc
