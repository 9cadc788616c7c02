#include "models/config.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "models/errors.h"
#include "models/json_util.h"
#include "models/reduced.h"

namespace sc {

using nlohmann::json;

bool ModelConfig::layer_is_sparse(int64_t layer) const {
  if (!is_moe()) return false;
  if (std::find(mlp_only_layers.begin(), mlp_only_layers.end(), layer) != mlp_only_layers.end()) return false;
  return decoder_sparse_step > 0 && (layer + 1) % decoder_sparse_step == 0;
}

int64_t ModelConfig::num_sparse_layers() const {
  int64_t n = 0;
  for (int64_t l = 0; l < num_hidden_layers; ++l) n += layer_is_sparse(l) ? 1 : 0;
  return n;
}

int64_t ModelConfig::attention_params_per_layer() const {
  const int64_t q = num_attention_heads * head_dim, kv = num_key_value_heads * head_dim;
  // q, k, v, o projections + q_norm, k_norm + the two RMSNorms of the block.
  return hidden_size * q + 2 * hidden_size * kv + q * hidden_size + 2 * head_dim + 2 * hidden_size;
}
int64_t ModelConfig::expert_params() const { return 3 * hidden_size * moe_intermediate_size; }
int64_t ModelConfig::dense_mlp_params() const { return 3 * hidden_size * intermediate_size; }
int64_t ModelConfig::router_params() const { return num_experts * hidden_size; }
int64_t ModelConfig::layer_params(int64_t layer) const {
  return attention_params_per_layer() +
         (layer_is_sparse(layer) ? router_params() + num_experts * expert_params() : dense_mlp_params());
}
int64_t ModelConfig::embedding_params() const { return vocab_size * hidden_size; }
int64_t ModelConfig::lm_head_params() const { return tie_word_embeddings ? 0 : vocab_size * hidden_size; }
int64_t ModelConfig::total_params() const {
  int64_t n = embedding_params() + lm_head_params() + hidden_size;  // + final norm
  for (int64_t l = 0; l < num_hidden_layers; ++l) n += layer_params(l);
  return n;
}

namespace {

// Upper bounds that keep every derived product inside int64 (and far beyond any real model).
constexpr int64_t kMaxWidth = int64_t(1) << 20;    // hidden, head_dim, intermediate sizes
constexpr int64_t kMaxHeads = int64_t(1) << 14;
constexpr int64_t kMaxLayers = int64_t(1) << 14;
constexpr int64_t kMaxExperts = int64_t(1) << 16;
constexpr int64_t kMaxVocab = int64_t(1) << 24;
constexpr int64_t kMaxPositions = int64_t(1) << 32;
constexpr int64_t kMaxParams = int64_t(1) << 50;  // total_params (real models: < 2^41)

struct Reader {
  const json& j;
  const std::string& file;
  std::string prefix = "";  // "rope_scaling." for a nested object: keys in messages are full

  [[noreturn]] void fail(const std::string& key, const json& v, const std::string& problem) const {
    throw ConfigError(file, prefix + key, json_brief(v), problem);
  }
  bool has(const char* key) const { return j.contains(key) && !j.at(key).is_null(); }

  int64_t integer(const char* key, int64_t lo, int64_t hi) const {
    const json& v = j.at(key);
    int64_t x = 0;
    if (v.is_number_unsigned()) {
      if (v.get<uint64_t>() > uint64_t(hi)) fail(key, v, "must be at most " + std::to_string(hi));
      x = int64_t(v.get<uint64_t>());
    } else if (v.is_number_integer()) {
      x = v.get<int64_t>();
    } else if (v.is_number_float()) {
      fail(key, v, "must be an integer, not a floating-point number");
    } else {
      fail(key, v, std::string("must be an integer, not a ") + v.type_name());
    }
    if (x < lo) fail(key, v, lo == 1 ? "must be positive" : "must be at least " + std::to_string(lo));
    if (x > hi) fail(key, v, "must be at most " + std::to_string(hi));
    return x;
  }
  int64_t required_int(const char* key, int64_t lo, int64_t hi) const {
    if (!has(key)) throw ConfigError(file, prefix + key, "(missing)", "required key is missing");
    return integer(key, lo, hi);
  }
  bool boolean(const char* key, bool dflt) const {
    if (!has(key)) return dflt;
    const json& v = j.at(key);
    if (!v.is_boolean()) fail(key, v, std::string("must be true or false, not a ") + v.type_name());
    return v.get<bool>();
  }
  double positive_number(const json& v, const std::string& key) const {
    if (!v.is_number()) fail(key, v, std::string("must be a number, not a ") + v.type_name());
    double x = v.get<double>();
    if (!std::isfinite(x) || x <= 0) fail(key, v, "must be a positive finite number");
    return x;
  }
  std::string string(const char* key) const {
    const json& v = j.at(key);
    if (!v.is_string()) fail(key, v, std::string("must be a string, not a ") + v.type_name());
    return v.get<std::string>();
  }
};

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
  const Reader r{h, file, holder + "."};
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

ModelConfig ModelConfig::from_json(const json& j, const std::string& source) {
  if (!j.is_object()) throw ConfigError(source, "", json_brief(j), "config must be a JSON object");
  Reader r{j, source};
  ModelConfig c;
  c.source = source;
  if (!r.has("model_type")) throw ConfigError(source, "model_type", "(missing)", "required key is missing");
  c.model_type = r.string("model_type");
  if (c.model_type != "qwen3_moe" && c.model_type != "qwen3")
    r.fail("model_type", j.at("model_type"), "unsupported model_type (supported: qwen3_moe, qwen3)");

  c.hidden_size = r.required_int("hidden_size", 1, kMaxWidth);
  c.num_attention_heads = r.required_int("num_attention_heads", 1, kMaxHeads);
  c.num_key_value_heads = r.has("num_key_value_heads") ? r.integer("num_key_value_heads", 1, kMaxHeads)
                                                       : c.num_attention_heads;
  c.head_dim = r.has("head_dim") ? r.integer("head_dim", 1, kMaxWidth) : c.hidden_size / c.num_attention_heads;
  if (c.head_dim == 0)
    throw ConfigError(source, "head_dim", "(missing)",
                      "head_dim defaults to hidden_size / num_attention_heads = " + std::to_string(c.hidden_size) +
                          " / " + std::to_string(c.num_attention_heads) + " = 0");
  c.num_hidden_layers = r.required_int("num_hidden_layers", 1, kMaxLayers);
  c.vocab_size = r.required_int("vocab_size", 1, kMaxVocab);
  c.intermediate_size = r.has("intermediate_size") ? r.integer("intermediate_size", 1, kMaxWidth) : 0;
  c.max_position_embeddings =
      r.has("max_position_embeddings") ? r.integer("max_position_embeddings", 1, kMaxPositions) : 0;
  c.tie_word_embeddings = r.boolean("tie_word_embeddings", false);
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
    const std::string type = read_rope_holder(h, source, holder);
    if (!type.empty() && !c.rope_scaling_type.empty() && type != c.rope_scaling_type)
      throw ConfigError(source, std::string(holder) + ".rope_type", json_brief(type),
                        "disagrees with " + scaling_holder + " (rope type \"" + c.rope_scaling_type + "\")");
    if (!type.empty() && c.rope_scaling_type.empty()) {
      c.rope_scaling_type = type;
      c.rope_scaling = h.dump();
      scaling_holder = holder;
    }
    if (h.contains("rope_theta") && !have_theta) {
      c.rope_theta = r.positive_number(h.at("rope_theta"), std::string(holder) + ".rope_theta");
      have_theta = true;
    }
  }

  // dtype (5.x) or torch_dtype (4.x).
  for (const char* key : {"dtype", "torch_dtype"}) {
    if (!r.has(key)) continue;
    const json& v = j.at(key);
    if (!v.is_string()) r.fail(key, v, std::string("must be a string, not a ") + v.type_name());
    auto d = dtype_from_torch_name(v.get<std::string>());
    if (!d || !dtype_is_float(*d)) r.fail(key, v, "unknown dtype (expected float32, bfloat16, float16 or float64)");
    c.dtype = *d;
    break;
  }
  if (r.has("hidden_act")) {
    std::string act = r.string("hidden_act");
    if (act != "silu") r.fail("hidden_act", j.at("hidden_act"), "only silu is supported (Qwen3)");
  }

  if (c.model_type == "qwen3_moe") {
    const char* ekey = r.has("num_experts") ? "num_experts" : "num_local_experts";
    c.num_experts = r.required_int(ekey, 1, kMaxExperts);
    c.num_experts_per_tok = r.required_int("num_experts_per_tok", 1, kMaxExperts);
    c.moe_intermediate_size = r.required_int("moe_intermediate_size", 1, kMaxWidth);
    c.norm_topk_prob = r.boolean("norm_topk_prob", false);  // HF Qwen3MoeConfig default
    c.decoder_sparse_step = r.has("decoder_sparse_step") ? r.integer("decoder_sparse_step", 1, kMaxLayers) : 1;
    if (r.has("mlp_only_layers")) {
      const json& v = j.at("mlp_only_layers");
      if (!v.is_array()) r.fail("mlp_only_layers", v, std::string("must be an array of layer indices, not a ") + v.type_name());
      for (size_t i = 0; i < v.size(); ++i) {
        const json& e = v[i];
        std::string key = "mlp_only_layers[" + std::to_string(i) + "]";
        if (!e.is_number_integer()) throw ConfigError(source, key, json_brief(e), "must be an integer layer index");
        c.mlp_only_layers.push_back(e.get<int64_t>());
      }
    }
  }
  c.validate();
  return c;
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
  bool needs_dense = model_type == "qwen3";
  if (model_type == "qwen3_moe") {
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
  if (needs_dense && intermediate_size <= 0)
    fail("intermediate_size", intermediate_size, "must be positive (dense MLP layers use it)");
  // The per-key limits keep each layer's count inside int64, not the sum over layers (the fuzzer
  // found 2^14 layers of 2^56 overflowing total_params): bound the total, summed in 128 bits.
  const bool within_key_limits = num_hidden_layers <= kMaxLayers && hidden_size <= kMaxWidth && vocab_size <= kMaxVocab &&
                                 num_attention_heads <= kMaxHeads && head_dim <= kMaxWidth &&
                                 intermediate_size <= kMaxWidth && moe_intermediate_size <= kMaxWidth &&
                                 num_experts <= kMaxExperts;
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
  // A config this tool reads is a model config whatever else it lacks: its errors must show.
  if (type && (*type == "qwen3" || *type == "qwen3_moe")) return "";
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
  j["architectures"] = json::array({model_type == "qwen3_moe" ? "Qwen3MoeForCausalLM" : "Qwen3ForCausalLM"});
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
  if (model_type == "qwen3_moe") {
    j["decoder_sparse_step"] = decoder_sparse_step;
    j["mlp_only_layers"] = mlp_only_layers;
    j["moe_intermediate_size"] = moe_intermediate_size;
    j["norm_topk_prob"] = norm_topk_prob;
    j["num_experts"] = num_experts;
    j["num_experts_per_tok"] = num_experts_per_tok;
    j["output_router_logits"] = false;
    j["router_aux_loss_coef"] = 0.001;
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
ModelConfig moe(const char* name, int64_t layers, int64_t hidden, int64_t heads, int64_t kv, int64_t inter,
                int64_t moe_inter, int64_t experts, int64_t max_pos, double theta) {
  ModelConfig c;
  c.name = name;
  c.model_type = "qwen3_moe";
  c.num_hidden_layers = layers;
  c.hidden_size = hidden;
  c.num_attention_heads = heads;
  c.num_key_value_heads = kv;
  c.head_dim = 128;
  c.intermediate_size = inter;
  c.moe_intermediate_size = moe_inter;
  c.num_experts = experts;
  c.num_experts_per_tok = 8;
  c.norm_topk_prob = true;
  c.decoder_sparse_step = 1;
  c.vocab_size = 151936;
  c.max_position_embeddings = max_pos;
  c.rope_theta = theta;
  c.rms_norm_eps = 1e-6;
  c.tie_word_embeddings = false;
  c.dtype = DType::BF16;
  return c;
}
ModelConfig dense(const char* name, int64_t layers, int64_t hidden, int64_t heads, int64_t kv, int64_t inter,
                  bool tied) {
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
  c.max_position_embeddings = 40960;
  c.rope_theta = 1e6;
  c.rms_norm_eps = 1e-6;
  c.tie_word_embeddings = tied;
  c.dtype = DType::BF16;
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
