// The checker held to HF transformers 5.17's own tensor parallelism, family by family: for every
// record in fixtures/hf_tp/ (tools/hf_tp/record_hf_tp.py: tp_plan="auto" on CPU Gloo ranks, TP 2,
// 3, 4, 6, 8 and 16, tiny random models keeping a real checkpoint's head geometry), the checker's
// prediction must be HF's outcome exactly: the phase (load-time refusal or the first failing
// forward op), the exact text, the ranks, the view and the first failing layer; a plan HF runs
// must be predicted to run. The families' specs must carry HF's plans as recorded, and the
// recorded models must keep the geometry of the committed real configs (fixtures/families/).
#include <gtest/gtest.h>

#include <algorithm>
#include <dirent.h>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "checks/checker.h"
#include "checks/sharding.h"
#include "families/family.h"
#include "models/json_util.h"

using namespace sc;
using nlohmann::json;

namespace {

std::vector<std::string> records() {
  std::vector<std::string> out;
  const std::string dir = std::string(SC_FIXTURES) + "/hf_tp";
  if (DIR* d = opendir(dir.c_str())) {
    while (dirent* e = readdir(d)) {
      const std::string n = e->d_name;
      if (n.size() > 5 && n.substr(n.size() - 5) == ".json") out.push_back(dir + "/" + n);
    }
    closedir(d);
  }
  std::sort(out.begin(), out.end());
  return out;
}

// One distinct outcome over a set of ranks.
struct Outcome {
  std::string phase;  // "ok", "load", "forward"
  std::string text;
  std::vector<int64_t> ranks;
  std::string op;     // forward: "q view", "k view", "v view", "lm_head"
  std::string module; // forward: HF's innermost module ("model.layers.3.self_attn", "lm_head")
  bool operator<(const Outcome& o) const { return std::tie(phase, text, ranks) < std::tie(o.phase, o.text, o.ranks); }
};

std::string show(const std::vector<Outcome>& v) {
  std::ostringstream os;
  for (const Outcome& o : v) {
    os << "  " << o.phase << " [" << o.op << " @ " << o.module << "] ranks";
    for (int64_t r : o.ranks) os << " " << r;
    os << ": " << o.text << "\n";
  }
  return os.str();
}

std::vector<Outcome> hf_outcomes(const json& run) {
  std::vector<Outcome> out;
  for (const json& o : run.at("outcomes")) {
    Outcome x;
    x.phase = o.at("phase").get<std::string>();
    x.text = o.value("message", "");
    x.ranks = o.at("ranks").get<std::vector<int64_t>>();
    std::sort(x.ranks.begin(), x.ranks.end());
    x.op = o.value("op", "");
    x.module = o.value("module", "");
    out.push_back(x);
  }
  std::sort(out.begin(), out.end());
  return out;
}

// What the checker says a run of the plan does, in HF's terms.
std::vector<Outcome> predicted_outcomes(const ModelConfig& c, const ParallelPlan& p, const CheckResult& r) {
  std::vector<int64_t> all(size_t(p.tp));
  for (int64_t i = 0; i < p.tp; ++i) all[size_t(i)] = i;
  std::vector<Outcome> out;
  for (const char* phase : {"load", "forward"}) {
    for (const Finding& f : r.findings) {
      if (f.severity != Severity::Error || f.phase != phase) continue;
      Outcome x{phase, f.error_text, f.ranks.empty() ? all : f.ranks, "", ""};
      std::sort(x.ranks.begin(), x.ranks.end());
      if (f.values.contains("first_layer")) {
        x.op = f.values.at("op").get<std::string>();
        x.module = c.module_prefix + ".layers." + std::to_string(f.values.at("first_layer").get<int64_t>()) + ".self_attn";
      } else if (f.module == "lm_head") {
        x.op = "lm_head";
        x.module = "lm_head";
      }
      out.push_back(x);
    }
    // A run raises the load-time refusal alone; forward failures are those of the first failing
    // op (the attention's views come before lm_head).
    if (!out.empty()) break;
  }
  if (out.size() > 1 && !out.front().op.empty()) {
    const bool attention = out.front().op != "lm_head";
    out.erase(std::remove_if(out.begin(), out.end(), [&](const Outcome& o) { return (o.op != "lm_head") != attention; }),
              out.end());
  }
  if (out.empty()) out.push_back(Outcome{"ok", "", all, "", ""});
  std::sort(out.begin(), out.end());
  return out;
}

std::map<std::string, std::string> as_map(const std::vector<HfRule>& rules) {
  std::map<std::string, std::string> m;
  for (const HfRule& r : rules) m[r.pattern] = r.style;
  return m;
}

// The committed real config the record keeps the geometry of.
std::string real_config_path(const json& doc) {
  const std::string name = doc.at("name").get<std::string>();
  const std::string fam = std::string(SC_FIXTURES) + "/families/" + name + "/config.json";
  if (std::ifstream(fam).good()) return fam;
  return std::string(SC_FIXTURES) + "/configs/" + name + "/config.json";
}

}  // namespace

TEST(HfTp, RecordsCoverEveryModelTypeAndTpSize) {
  std::set<std::string> types;
  for (const std::string& f : records()) {
    const json doc = read_json_file(f, InputKind::Config);
    EXPECT_EQ(doc.at("transformers").get<std::string>(), "5.17.0") << f;
    std::set<int64_t> tps;
    for (const json& run : doc.at("runs")) tps.insert(run.at("tp").get<int64_t>());
    EXPECT_EQ(tps, (std::set<int64_t>{2, 3, 4, 6, 8, 16})) << f;
    types.insert(doc.at("model_type").get<std::string>());
  }
  for (const char* t : {"llama", "mistral", "mixtral", "qwen2", "qwen2_moe", "qwen3", "qwen3_moe", "qwen3_next",
                        "qwen3_5_moe", "qwen3_vl_moe", "gpt_oss", "phi3", "glm4_moe", "deepseek_v3", "gemma3",
                        "gemma3_text"})
    EXPECT_TRUE(types.count(t)) << "no HF record for " << t;
}

TEST(HfTp, CheckerPredictsWhatHfDoes) {
  int compared = 0, raising = 0;
  for (const std::string& f : records()) {
    const json doc = read_json_file(f, InputKind::Config);
    const ModelConfig c = read_model_config(doc.at("config"), f);
    for (const json& run : doc.at("runs")) {
      ParallelPlan p;
      p.tp = run.at("tp").get<int64_t>();
      p.batch = doc.at("batch").get<int64_t>();
      p.seq = doc.at("seq").get<int64_t>();
      p.dtype = DType::F32;
      CheckOptions o;
      o.memory = false;
      const CheckResult r = check(c, p, o);
      const std::vector<Outcome> want = hf_outcomes(run);
      const std::vector<Outcome> got = predicted_outcomes(c, p, r);
      ASSERT_EQ(got.size(), want.size()) << f << " tp=" << p.tp << "\nHF:\n" << show(want) << "checker:\n" << show(got);
      for (size_t i = 0; i < want.size(); ++i) {
        EXPECT_EQ(got[i].phase, want[i].phase) << f << " tp=" << p.tp;
        EXPECT_EQ(got[i].text, want[i].text) << f << " tp=" << p.tp;
        EXPECT_EQ(got[i].ranks, want[i].ranks) << f << " tp=" << p.tp << "\nHF:\n" << show(want) << "checker:\n" << show(got);
        if (want[i].phase == "forward") {
          EXPECT_EQ(got[i].op, want[i].op) << f << " tp=" << p.tp;
          EXPECT_EQ(got[i].module, want[i].module) << f << " tp=" << p.tp;
        }
      }
      if (want.front().phase == "ok") {
        // HF's sharded logits equal its single-process ones: nothing silently wrong predicted either.
        EXPECT_LT(run.at("outcomes").at(0).at("max_abs_diff").get<double>(), 1e-4) << f;
        for (const Finding& x : r.findings) EXPECT_NE(x.id, "gqa-misaligned") << f << " tp=" << p.tp;
      } else {
        ++raising;
      }
      ++compared;
    }
  }
  EXPECT_EQ(compared, 16 * 6);
  EXPECT_GT(raising, 40);
}

TEST(HfTp, SpecsCarryHfPlansAsRecorded) {
  // Per family: every recorded rule is in the spec with HF's style, and the spec names no rule no
  // record of the family shows (qwen3 holds qwen3 and qwen3_moe: their union).
  std::map<std::string, std::map<std::string, std::string>> recorded, recorded_ep;
  for (const std::string& f : records()) {
    const json doc = read_json_file(f, InputKind::Config);
    const ModelConfig c = read_model_config(doc.at("config"), f);
    const FamilySpec& fam = family_of(c);
    const auto spec = as_map(fam.hf_tp_plan);
    for (const auto& [k, v] : doc.at("hf").at("base_model_tp_plan").items()) {
      EXPECT_EQ(spec.count(k) ? spec.at(k) : "(none)", v.get<std::string>()) << f << ": " << k;
      recorded[fam.name][k] = v.get<std::string>();
    }
    for (const auto& [k, v] : doc.at("hf").at("base_model_ep_plan").items()) recorded_ep[fam.name][k] = v.get<std::string>();
    const json& mp = doc.at("hf").at("model_tp_plan");
    EXPECT_EQ(hf_tp_style(c, "lm_head"), mp.contains("lm_head") ? mp.at("lm_head").get<std::string>() : "") << f;
  }
  for (const FamilySpec* fam : families()) {
    ASSERT_TRUE(recorded.count(fam->name) || fam->hf_tp_plan.empty()) << "no record of family " << fam->name;
    EXPECT_EQ(as_map(fam->hf_tp_plan), recorded[fam->name]) << fam->name;
    EXPECT_EQ(as_map(fam->hf_ep_plan), recorded_ep[fam->name]) << fam->name;
  }
}

TEST(HfTp, RecordedModelsKeepTheRealGeometry) {
  for (const std::string& f : records()) {
    const json doc = read_json_file(f, InputKind::Config);
    const ModelConfig tiny = read_model_config(doc.at("config"), f);
    const std::string real_path = real_config_path(doc);
    const ModelConfig real = read_model_config_file(real_path);
    SCOPED_TRACE(f + " vs " + real_path);
    EXPECT_EQ(tiny.family, real.family);
    EXPECT_EQ(tiny.model_type, real.model_type);
    EXPECT_EQ(tiny.num_attention_heads, real.num_attention_heads);
    EXPECT_EQ(tiny.num_key_value_heads, real.num_key_value_heads);
    EXPECT_EQ(tiny.head_dim, real.head_dim);
    EXPECT_EQ(tiny.vocab_size, real.vocab_size);
    EXPECT_EQ(tiny.num_experts, real.num_experts);
    EXPECT_EQ(tiny.num_experts_per_tok, real.num_experts_per_tok);
    EXPECT_EQ(tiny.moe_intermediate_size, real.moe_intermediate_size);
    EXPECT_EQ(tiny.shared_expert_intermediate_size, real.shared_expert_intermediate_size);
    EXPECT_EQ(tiny.linear_num_value_heads, real.linear_num_value_heads);
    EXPECT_EQ(tiny.linear_num_key_heads, real.linear_num_key_heads);
    EXPECT_EQ(tiny.kv_lora_rank, real.kv_lora_rank);
    EXPECT_EQ(tiny.attention_output_gate, real.attention_output_gate);
    EXPECT_EQ(tiny.tie_word_embeddings, real.tie_word_embeddings);
    if (real.num_sparse_layers() < real.num_hidden_layers) EXPECT_EQ(tiny.intermediate_size, real.intermediate_size);
    // The small hidden size keeps the real one's divisibility by every recorded TP size.
    for (int64_t tp : {2, 3, 4, 6, 8, 16}) EXPECT_EQ(tiny.hidden_size % tp == 0, real.hidden_size % tp == 0) << tp;
    // The recorded layers are the real pattern's first ones.
    for (int64_t l = 0; l < tiny.num_hidden_layers; ++l) {
      EXPECT_EQ(tiny.layer_kind(l), real.layer_kind(l)) << "layer " << l;
      EXPECT_EQ(tiny.layer_is_sparse(l), real.layer_is_sparse(l)) << "layer " << l;
    }
  }
}

TEST(HfTp, RealConfigsPredictTheRecordedOutcomeClass) {
  // The real checkpoints at HF's batch and seq: the same phase, finding and op as the recorded
  // tiny model (the texts differ only where they name hidden-size products).
  for (const std::string& f : records()) {
    const json doc = read_json_file(f, InputKind::Config);
    const ModelConfig tiny = read_model_config(doc.at("config"), f);
    const ModelConfig real = read_model_config_file(real_config_path(doc));
    for (int64_t tp : {2, 3, 4, 6, 8, 16}) {
      ParallelPlan p;
      p.tp = tp;
      p.batch = doc.at("batch").get<int64_t>();
      p.seq = doc.at("seq").get<int64_t>();
      CheckOptions o;
      o.memory = false;
      const CheckResult ra = check(tiny, p, o);
      const Finding* a = ra.predicted_runtime_failure();
      const CheckResult rr = check(real, p);
      const Finding* b = rr.predicted_runtime_failure();
      ASSERT_EQ(a == nullptr, b == nullptr) << f << " tp=" << tp;
      if (a) {
        EXPECT_EQ(a->id, b->id) << f << " tp=" << tp;
        EXPECT_EQ(a->phase, b->phase) << f << " tp=" << tp;
        EXPECT_EQ(a->values.value("op", ""), b->values.value("op", "")) << f << " tp=" << tp;
      }
      EXPECT_FALSE(rr.memory.empty());
    }
  }
}

TEST(HfTp, InventorySumsToTheParameterCount) {
  // The tensor inventory (what memory sums) and ModelConfig's parameter counts agree per family.
  for (const std::string& f : records()) {
    const json doc = read_json_file(f, InputKind::Config);
    const ModelConfig c = read_model_config(doc.at("config"), f);
    int64_t n = 0;
    for (const TensorSpec& t : model_tensors(c)) n += t.numel();
    EXPECT_EQ(n, c.total_params()) << f;
    // HF's own parameter shapes (full_shapes) name every tensor kind of ours with the same shape
    // where the names agree (attention, norms, dense MLP, embeddings).
    const json& hf = doc.at("full_shapes");
    int matched = 0;
    for (const TensorSpec& t : model_tensors(c)) {
      if (t.layer > 0 || t.expert >= 0) continue;
      std::string g = t.name;
      const std::string l0 = ".layers.0.";
      if (auto at = g.find(l0); at != std::string::npos) g.replace(at, l0.size(), ".layers.*.");
      if (!hf.contains(g)) continue;
      EXPECT_EQ(hf.at(g).get<std::vector<int64_t>>(), t.shape) << f << ": " << g;
      ++matched;
    }
    EXPECT_GE(matched, 4) << f;
  }
}

namespace {
const Finding* first_raise(const CheckResult& r) { return r.predicted_runtime_failure(); }
ParallelPlan tp_plan(int64_t tp, int64_t batch, int64_t seq) {
  ParallelPlan p;
  p.tp = tp;
  p.batch = batch;
  p.seq = seq;
  return p;
}
ModelConfig family_fixture(const std::string& name) {
  return read_model_config_file(std::string(SC_FIXTURES) + "/families/" + name + "/config.json");
}
}  // namespace

TEST(HfTp, ReportedFailuresReproduceOnTheRealConfigs) {
  // transformers #48306 (Qwen3.6-35B-A3B: the Qwen3.5-MoE geometry, 2 KV heads of 256) and #48307
  // (Qwen3-VL-30B-A3B, 4 KV heads of 128), TP=8, batch 4 x 178 tokens: the texts the users got.
  for (const char* name : {"qwen3_5_moe", "qwen3_5_moe_text"}) {
    const CheckResult r = check(family_fixture(name), tp_plan(8, 4, 178));
    ASSERT_NE(first_raise(r), nullptr) << name;
    EXPECT_EQ(first_raise(r)->error_text, "shape '[4, 178, -1, 256]' is invalid for input of size 45568") << name;
    EXPECT_EQ(first_raise(r)->values.at("first_layer").get<int64_t>(), 3) << name;  // layers 0-2 are linear attention
  }
  const CheckResult vl = check(family_fixture("qwen3_vl_moe"), tp_plan(8, 4, 178));
  ASSERT_NE(first_raise(vl), nullptr);
  EXPECT_EQ(first_raise(vl)->error_text, "shape '[4, 178, -1, 128]' is invalid for input of size 45568");
  EXPECT_EQ(first_raise(vl)->module, "model.language_model.layers.*.self_attn.k_proj");
  // exo #1669 (Qwen3-Next, 2 KV heads) at TP=4; torchtitan #932 (Llama 3 8B) at TP=16.
  EXPECT_EQ(first_raise(check(family_fixture("qwen3_next"), tp_plan(4, 1, 7)))->id, "kv-heads-split");
  EXPECT_EQ(first_raise(check(family_fixture("llama"), tp_plan(16, 1, 7)))->error_text,
            "shape '[1, 7, -1, 128]' is invalid for input of size 448");
  // NeMo Automodel #799 (phi-4, 40 heads / 10 KV): HF gathers phi3's fused projections, so TP=16
  // runs; vLLM refuses it (40 heads), and TP=3 fails HF's load-time check on mlp.gate_up_proj.
  const CheckResult phi16 = check(family_fixture("phi3"), tp_plan(16, 1, 7));
  EXPECT_EQ(first_raise(phi16), nullptr);
  bool vllm = false;
  for (const Finding& f : phi16.findings)
    if (f.id == "vllm-refuses-tp") {
      vllm = true;
      EXPECT_EQ(f.error_text, "ValueError: Total number of attention heads (40) must be divisible by tensor parallel size (16).");
    }
  EXPECT_TRUE(vllm);
  EXPECT_EQ(first_raise(check(family_fixture("phi3"), tp_plan(3, 1, 7)))->error_text,
            "The output size of `model.layers.0.mlp.gate_up_proj` (35840) must be divisible by the tensor parallel "
            "size (3) when gathering a colwise output.");
  // gpt-oss-120b (transformers #40953, 16 GPUs): HF has no plan for its layers, so TP shards only
  // lm_head and every rank holds the whole model.
  const CheckResult oss = check(family_fixture("gpt_oss"), tp_plan(16, 1, 7));
  EXPECT_EQ(first_raise(oss), nullptr);
  bool warned = false;
  for (const Finding& f : oss.findings) warned |= f.id == "no-hf-tp-plan";
  EXPECT_TRUE(warned);
}

TEST(HfTp, EveryFamilyFixtureChecksAtEveryTp) {
  // check, and what the static commands derive from it, on every committed real config.
  for (const char* name : {"llama", "mistral", "mixtral", "qwen2", "qwen2_moe", "qwen3_next", "qwen3_5_moe",
                           "qwen3_5_moe_text", "qwen3_vl_moe", "gpt_oss", "phi3", "glm4_moe", "deepseek_v3", "gemma3",
                           "gemma3_text"}) {
    const ModelConfig c = family_fixture(name);
    int64_t n = 0;
    for (const TensorSpec& t : model_tensors(c)) n += t.numel();
    EXPECT_EQ(n, c.total_params()) << name;
    for (int64_t tp : {1, 2, 3, 4, 6, 8, 16}) {
      const CheckResult r = check(c, tp_plan(tp, 2, 64));
      EXPECT_EQ(int64_t(r.memory.size()), tp) << name;
      EXPECT_GT(r.memory.front().weight_bytes, 0) << name;
    }
  }
}

TEST(HfTp, ParameterCountsMatchThePublishedOnes) {
  // The inventory of each family against the parameter count its model card publishes (billions).
  const std::vector<std::pair<const char*, double>> published = {
      {"deepseek_v3", 671.0}, {"glm4_moe", 355.0}, {"gpt_oss", 116.8}, {"llama", 8.03}, {"mistral", 7.25},
      {"mixtral", 46.7},      {"phi3", 14.7},      {"qwen2", 72.7},    {"qwen2_moe", 57.4}, {"qwen3_next", 80.0},
      {"gemma3_text", 1.0}};
  for (const auto& [name, billions] : published) {
    const double got = double(family_fixture(name).total_params()) / 1e9;
    EXPECT_NEAR(got, billions, billions * 0.01) << name;
  }
}
