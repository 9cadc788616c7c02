// ModelConfig: real fixture configs, both HF spellings, sparse-layer rule, and bad input.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "models/config.h"
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
    ModelConfig::from_json_text(b.text, "bad/config.json");
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
        BadCase{keep(with("model_type", "\"llama\"")), "model_type", "llama"},
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
