// ModelConfig: real fixture configs, both HF spellings, sparse-layer rule, and bad input.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "families/family.h"
#include "models/config.h"
#include "models/json_util.h"
#include "models/errors.h"

using namespace sc;
using nlohmann::json;

static std::string fixture(const std::string& name) { return std::string(SC_FIXTURES) + "/configs/" + name + "/config.json"; }

TEST(Config, FixturesEqualPublishedValues) {
  for (const ModelConfig& want : configs::all_real()) {
    SCOPED_TRACE(want.name);
    ModelConfig got = ModelConfig::from_file(fixture(want.name));
    EXPECT_EQ(got.name, want.name);
    EXPECT_EQ(got.model_type, want.model_type);
    EXPECT_EQ(got.hidden_size, want.hidden_size);
    EXPECT_EQ(got.num_attention_heads, want.num_attention_heads);
    EXPECT_EQ(got.num_key_value_heads, want.num_key_value_heads);
    EXPECT_EQ(got.head_dim, want.head_dim);
    EXPECT_EQ(got.intermediate_size, want.intermediate_size);
    EXPECT_EQ(got.moe_intermediate_size, want.moe_intermediate_size);
    EXPECT_EQ(got.num_experts, want.num_experts);
    EXPECT_EQ(got.num_experts_per_tok, want.num_experts_per_tok);
    EXPECT_EQ(got.norm_topk_prob, want.norm_topk_prob);
    EXPECT_EQ(got.num_hidden_layers, want.num_hidden_layers);
    EXPECT_EQ(got.vocab_size, want.vocab_size);
    EXPECT_EQ(got.tie_word_embeddings, want.tie_word_embeddings);
    EXPECT_EQ(got.max_position_embeddings, want.max_position_embeddings);
    EXPECT_DOUBLE_EQ(got.rope_theta, want.rope_theta);
    EXPECT_DOUBLE_EQ(got.rms_norm_eps, want.rms_norm_eps);
    EXPECT_EQ(got.dtype, DType::BF16);
  }
}

TEST(Config, Qwen3_235B_Geometry) {
  ModelConfig c = ModelConfig::from_file(fixture("qwen3-235b-a22b"));
  EXPECT_EQ(c.kv_groups(), 16);
  EXPECT_NE(c.num_attention_heads * c.head_dim, c.hidden_size);  // 8192 != 4096, legal
  EXPECT_EQ(c.num_sparse_layers(), 94);
  // ~235B parameters in total (embedding + 94 layers of 128 experts + lm_head).
  EXPECT_NEAR(double(c.total_params()) / 1e9, 235.1, 0.5);
  ModelConfig small = ModelConfig::from_file(fixture("qwen3-30b-a3b"));
  EXPECT_NEAR(double(small.total_params()) / 1e9, 30.5, 0.3);
}

TEST(Config, AcceptsTransformers5Spelling) {
  json j = {{"model_type", "qwen3_moe"}, {"hidden_size", 64}, {"num_attention_heads", 8},
            {"num_key_value_heads", 2}, {"head_dim", 32}, {"num_hidden_layers", 2}, {"vocab_size", 128},
            {"intermediate_size", 96}, {"moe_intermediate_size", 32}, {"num_local_experts", 8},
            {"num_experts_per_tok", 2}, {"norm_topk_prob", true},
            {"rope_parameters", {{"rope_theta", 10000.0}, {"rope_type", "default"}}}, {"dtype", "float32"}};
  ModelConfig c = ModelConfig::from_json(j, "mem.json");
  EXPECT_EQ(c.num_experts, 8);
  EXPECT_DOUBLE_EQ(c.rope_theta, 10000.0);
  EXPECT_EQ(c.dtype, DType::F32);
}

TEST(Config, DefaultsFollowHF) {
  json j = {{"model_type", "qwen3"}, {"hidden_size", 64}, {"num_attention_heads", 4},
            {"num_hidden_layers", 1}, {"vocab_size", 10}, {"intermediate_size", 8}};
  ModelConfig c = ModelConfig::from_json(j, "m.json");
  EXPECT_EQ(c.num_key_value_heads, 4);  // default: heads
  EXPECT_EQ(c.head_dim, 16);            // default: hidden / heads
  EXPECT_FALSE(c.is_moe());
}

TEST(Config, SparseLayerRuleAsHF) {
  ModelConfig c = configs::qwen3_30b_a3b();
  c.num_hidden_layers = 6;
  c.decoder_sparse_step = 2;
  c.mlp_only_layers = {3};
  // sparse iff not in mlp_only_layers and (l + 1) % 2 == 0: layers 1 and 5 (3 is excluded).
  std::vector<bool> want = {false, true, false, false, false, true};
  for (int l = 0; l < 6; ++l) EXPECT_EQ(c.layer_is_sparse(l), want[l]) << "layer " << l;
}

// Bad input: every error names the file, the key and the value.
struct BadCase {
  const char* text;
  const char* key;
  const char* value;
};

class ConfigBad : public ::testing::TestWithParam<BadCase> {};

static const char* kValid =
    R"({"model_type":"qwen3_moe","hidden_size":64,"num_attention_heads":8,"num_key_value_heads":2,"head_dim":32,)"
    R"("num_hidden_layers":2,"vocab_size":128,"intermediate_size":96,"moe_intermediate_size":32,)"
    R"("num_experts":8,"num_experts_per_tok":2})";

TEST(Config, ValidBaseParses) { EXPECT_NO_THROW(ModelConfig::from_json_text(kValid, "x.json")); }

TEST_P(ConfigBad, NamesFileKeyValue) {
  const BadCase& b = GetParam();
  try {
    read_model_config(parse_json_strict(b.text, "bad/config.json", InputKind::Config), "bad/config.json");
    FAIL() << "no error for " << b.text;
  } catch (const ConfigError& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("bad/config.json"), std::string::npos) << m;
    EXPECT_NE(m.find(b.key), std::string::npos) << m;
    EXPECT_NE(m.find(b.value), std::string::npos) << m;
  }
}

static std::string with(const std::string& key, const std::string& raw) {
  json j = json::parse(kValid);
  j[key] = json::parse(raw);
  return j.dump();
}
static std::vector<std::string>& store() {
  static std::vector<std::string> s;
  return s;
}
static const char* keep(std::string s) {
  store().push_back(std::move(s));
  return store().back().c_str();
}

INSTANTIATE_TEST_SUITE_P(
    All, ConfigBad,
    ::testing::Values(
        BadCase{"{\"model_type\": \"qwen3\", ", "", "invalid JSON"},
        BadCase{R"({"model_type":"qwen3","hidden_size":64,"hidden_size":32})", "/hidden_size", "duplicate key"},
        BadCase{keep(with("hidden_size", "\"64\"")), "hidden_size", "\"64\""},
        BadCase{keep(with("hidden_size", "-64")), "hidden_size", "-64"},
        BadCase{keep(with("num_attention_heads", "0")), "num_attention_heads", "0"},
        BadCase{keep(with("head_dim", "12.5")), "head_dim", "12.5"},
        BadCase{keep(with("model_type", "\"mamba\"")), "model_type", "mamba"},
        BadCase{keep(with("num_experts_per_tok", "9")), "num_experts_per_tok", "9"},
        BadCase{keep(with("num_key_value_heads", "3")), "num_key_value_heads", "3"},
        BadCase{keep(with("num_key_value_heads", "16")), "num_key_value_heads", "16"},
        BadCase{keep(with("mlp_only_layers", "[5]")), "mlp_only_layers[0]", "5"},
        BadCase{keep(with("torch_dtype", "\"float13\"")), "torch_dtype", "float13"},
        BadCase{keep(with("rms_norm_eps", "0")), "rms_norm_eps", "0"},
        BadCase{keep(with("tie_word_embeddings", "1")), "tie_word_embeddings", "1"},
        BadCase{keep(with("hidden_size", "99999999999999999999")), "hidden_size", "1e+20"},
        BadCase{"[1,2,3]", "", "JSON object"},
        BadCase{"", "", "invalid JSON"}));

TEST(Config, MissingFileNamesPath) {
  try {
    ModelConfig::from_file("/nonexistent/config.json");
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/config.json"), std::string::npos);
  }
}

TEST(Config, MissingRequiredKey) {
  json j = json::parse(kValid);
  j.erase("vocab_size");
  try {
    ModelConfig::from_json(j, "m.json");
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_EQ(e.key(), "vocab_size");
    EXPECT_EQ(e.value(), "(missing)");
  }
}

TEST(Config, JsonRoundTrip) {
  for (const ModelConfig& c : configs::all_real()) {
    ModelConfig back = ModelConfig::from_json(c.to_json(), "rt");
    EXPECT_EQ(back.total_params(), c.total_params()) << c.name;
    EXPECT_EQ(back.num_experts, c.num_experts);
  }
}

// ---- RoPE scaling (issue #22): every type HF accepts is kept as information; malformed values
// are config errors naming the nested key.

static ModelConfig with_rope(const std::string& holder, const std::string& raw) {
  json j = json::parse(kValid);
  j[holder] = json::parse(raw);
  return ModelConfig::from_json(j, "c.json");
}
static std::string rope_error(const std::string& holder, const std::string& raw) {
  try {
    with_rope(holder, raw);
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(ConfigRope, AcceptsEveryHfRopeScalingType) {
  struct Case {
    const char* holder;
    const char* raw;
    const char* type;
    const char* summary;
  };
  const Case cases[] = {
      // The Qwen3 model cards' YaRN block, in both spellings.
      {"rope_scaling", R"({"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32768})", "yarn",
       "yarn (factor 4.0, original_max_position_embeddings 32768)"},
      {"rope_scaling", R"({"type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32768})", "yarn",
       "yarn (factor 4.0, original_max_position_embeddings 32768)"},
      {"rope_scaling", R"({"rope_type": "linear", "factor": 2})", "linear", "linear (factor 2)"},
      {"rope_scaling", R"({"type": "dynamic", "factor": 2.5})", "dynamic", "dynamic (factor 2.5)"},
      {"rope_scaling",
       R"({"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 8192})",
       "llama3", "llama3 (factor 8.0, high_freq_factor 4.0, low_freq_factor 1.0, original_max_position_embeddings 8192)"},
      {"rope_scaling", R"({"rope_type": "longrope", "short_factor": [1.0, 1.5], "long_factor": [2.0, 3]})", "longrope",
       "longrope (long_factor [2.0,3], short_factor [1.0,1.5])"},
      {"rope_scaling", R"({"type": "su", "short_factor": [1.0], "long_factor": [2.0]})", "su",
       "su (long_factor [2.0], short_factor [1.0])"},
      {"rope_scaling", R"({"type": "mrope", "mrope_section": [16, 24, 24]})", "mrope", "mrope (mrope_section [16,24,24])"},
      // transformers 5.x: rope_parameters holds rope_theta too (not repeated in the summary).
      {"rope_parameters", R"({"rope_type": "yarn", "factor": 4.0, "rope_theta": 5e6})", "yarn", "yarn (factor 4.0)"},
  };
  const ModelConfig base = ModelConfig::from_json_text(kValid, "c.json");
  EXPECT_EQ(base.rope_scaling_type, "");
  EXPECT_TRUE(base.rope_scaling_json().is_null());
  for (const Case& k : cases) {
    SCOPED_TRACE(k.raw);
    const ModelConfig c = with_rope(k.holder, k.raw);
    EXPECT_EQ(c.rope_scaling_type, k.type);
    EXPECT_EQ(c.rope_scaling_summary(), k.summary);
    EXPECT_EQ(c.rope_scaling_json()["type"], k.type);
    EXPECT_EQ(c.rope_scaling_json()["parameters"], json::parse(k.raw));
    EXPECT_EQ(c.total_params(), base.total_params());  // no shape changes
    // to_json keeps it (the fuzz round trip compares to_json of the re-read config).
    const ModelConfig back = ModelConfig::from_json(c.to_json(), "rt");
    EXPECT_EQ(back.rope_scaling, c.rope_scaling);
    EXPECT_EQ(back.to_json(), c.to_json());
  }
  EXPECT_DOUBLE_EQ(with_rope("rope_parameters", cases[8].raw).rope_theta, 5e6);
  // "default" is no scaling.
  EXPECT_EQ(with_rope("rope_scaling", R"({"rope_type": "default"})").rope_scaling_type, "");
}

TEST(ConfigRope, RejectsMalformedValuesNamingTheKey) {
  EXPECT_EQ(rope_error("rope_scaling", R"({"rope_type": 5, "factor": 4.0})"),
            "config error: c.json: key 'rope_scaling.rope_type' = 5: must be a string, not a number");
  EXPECT_EQ(rope_error("rope_scaling", R"({"rope_type": "yarn", "factor": -1})"),
            "config error: c.json: key 'rope_scaling.factor' = -1: must be a positive finite number");
  EXPECT_EQ(rope_error("rope_scaling", R"({"rope_type": "yarn", "factor": 0})"),
            "config error: c.json: key 'rope_scaling.factor' = 0: must be a positive finite number");
  EXPECT_EQ(rope_error("rope_scaling", R"({"type": "linear", "factor": "4"})"),
            "config error: c.json: key 'rope_scaling.factor' = \"4\": must be a number, not a string");
  EXPECT_EQ(rope_error("rope_scaling", R"({"rope_type": "yarn", "original_max_position_embeddings": 32768})"),
            "config error: c.json: key 'rope_scaling.factor' = (missing): required for rope type \"yarn\"");
  EXPECT_EQ(rope_error("rope_scaling", R"({"rope_type": "ntk", "factor": 2})"),
            "config error: c.json: key 'rope_scaling.rope_type' = \"ntk\": unknown rope type (HF accepts default, "
            "linear, dynamic, yarn, longrope, su, llama3, mrope)");
  EXPECT_EQ(rope_error("rope_scaling", R"({"rope_type": "yarn", "type": "linear", "factor": 2})"),
            "config error: c.json: key 'rope_scaling.type' = \"linear\": disagrees with rope_scaling.rope_type = \"yarn\"");
  EXPECT_EQ(rope_error("rope_scaling", R"({"rope_type": "yarn", "factor": 4, "original_max_position_embeddings": 0})"),
            "config error: c.json: key 'rope_scaling.original_max_position_embeddings' = 0: must be positive");
  EXPECT_EQ(rope_error("rope_scaling", R"({"type": "mrope", "mrope_section": [16, "x"]})"),
            "config error: c.json: key 'rope_scaling.mrope_section[1]' = \"x\": must be a positive integer");
  EXPECT_EQ(rope_error("rope_scaling", R"({"rope_type": "longrope", "short_factor": [], "long_factor": [1]})"),
            "config error: c.json: key 'rope_scaling.short_factor' = []: must be a non-empty array of numbers");
  EXPECT_EQ(rope_error("rope_scaling", R"("yarn")"),
            "config error: c.json: key 'rope_scaling' = \"yarn\": must be an object, not a string");
  json both = json::parse(kValid);
  both["rope_parameters"] = {{"rope_type", "linear"}, {"factor", 2}};
  both["rope_scaling"] = {{"rope_type", "yarn"}, {"factor", 4}};
  try {
    ModelConfig::from_json(both, "c.json");
    FAIL() << "no error";
  } catch (const ConfigError& e) {
    EXPECT_EQ(std::string(e.what()), "config error: c.json: key 'rope_scaling.rope_type' = \"yarn\": disagrees with "
                                     "rope_parameters (rope type \"linear\")");
  }
}
