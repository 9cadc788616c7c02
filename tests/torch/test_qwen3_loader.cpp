// Weight loading: slices read from a safetensors checkpoint equal the deterministic random
// weights every rank generates; only the rank's bytes are read; broken checkpoints give clear errors.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "checks/strategies.h"
#include "checks/tensors.h"
#include "families/family.h"
#include "models/errors.h"
#include "families/decoder/model.h"
#include "families/decoder/weights.h"
#include "models/safetensors.h"
#include "tensor_util.h"

namespace fs = std::filesystem;

namespace sc {
namespace {

ModelConfig tiny(bool tied = false) {
  ModelConfig c;
  c.name = "unit-load";
  c.model_type = "qwen3_moe";
  c.hidden_size = 32;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.head_dim = 8;
  c.intermediate_size = 48;
  c.moe_intermediate_size = 12;  // 2I != H: the packed layouts are distinguishable
  c.num_experts = 4;
  c.num_experts_per_tok = 2;
  c.mlp_only_layers = {0};
  c.num_hidden_layers = 3;
  c.vocab_size = 40;
  c.tie_word_embeddings = tied;
  c.rope_theta = 10000;
  return c;
}

constexpr uint64_t kSeed = 42;

struct TempDir {
  fs::path path;
  TempDir() {
    char tmpl[] = "/tmp/sc_qwen3_loader_XXXXXX";
    path = mkdtemp(tmpl);
  }
  ~TempDir() {
    testutil::remove_tree(path);
  }
};

// Writes the model's random tensors (converted to `dtype`) to dir/model.safetensors. `edit` may
// change the list (drop, reshape, repack) before writing.
void write_checkpoint(const ModelConfig& c, const fs::path& file, at::ScalarType dtype,
                      const std::function<void(std::vector<std::pair<std::string, at::Tensor>>&)>& edit = {}) {
  std::vector<std::pair<std::string, at::Tensor>> ts;
  for (const TensorSpec& s : model_tensors(c)) ts.emplace_back(s.name, random_tensor(c, s.name, kSeed).to(dtype));
  if (edit) edit(ts);
  testutil::write_tensors(file.string(), std::move(ts));
}

void expect_same(const ModelWeights& a, const ModelWeights& b) {
  auto eq = [](const at::Tensor& x, const at::Tensor& y, const std::string& what) {
    ASSERT_EQ(x.defined(), y.defined()) << what;
    if (x.defined()) EXPECT_TRUE(at::equal(x, y)) << what;
  };
  eq(a.embed, b.embed, "embed");
  eq(a.final_norm, b.final_norm, "norm");
  eq(a.lm_head, b.lm_head, "lm_head");
  ASSERT_EQ(a.layers.size(), b.layers.size());
  for (size_t i = 0; i < a.layers.size(); ++i) {
    const LayerWeights &x = a.layers[i], &y = b.layers[i];
    const std::string l = "layer " + std::to_string(x.index) + " ";
    eq(x.input_norm, y.input_norm, l + "input_norm");
    eq(x.post_norm, y.post_norm, l + "post_norm");
    eq(x.attn.q, y.attn.q, l + "q");
    eq(x.attn.k, y.attn.k, l + "k");
    eq(x.attn.v, y.attn.v, l + "v");
    eq(x.attn.o, y.attn.o, l + "o");
    eq(x.attn.q_norm, y.attn.q_norm, l + "q_norm");
    eq(x.attn.k_norm, y.attn.k_norm, l + "k_norm");
    eq(x.moe.router, y.moe.router, l + "router");
    eq(x.dense.gate, y.dense.gate, l + "dense gate");
    eq(x.dense.down, y.dense.down, l + "dense down");
    ASSERT_EQ(x.moe.experts.size(), y.moe.experts.size()) << l;
    for (const auto& kv : x.moe.experts) {
      const ExpertWeights& e = y.moe.experts.at(kv.first);
      const std::string n = l + "expert " + std::to_string(kv.first);
      eq(kv.second.gate, e.gate, n + " gate");
      eq(kv.second.up, e.up, n + " up");
      eq(kv.second.down, e.down, n + " down");
    }
  }
}

std::vector<ParallelPlan> plans() {
  std::vector<ParallelPlan> v;
  auto add = [&](int64_t tp, int64_t ep, int64_t pp, PlanStyle s) {
    ParallelPlan p;
    p.tp = tp;
    p.ep = ep;
    p.pp = pp;
    p.style = s;
    v.push_back(p);
  };
  add(1, 1, 1, PlanStyle::HfAuto);
  add(2, 1, 1, PlanStyle::HfAuto);
  add(4, 1, 1, PlanStyle::ReplicateKv);
  add(1, 4, 1, PlanStyle::HfAuto);
  add(2, 4, 1, PlanStyle::HfAuto);
  add(4, 2, 1, PlanStyle::HfAuto);
  add(2, 1, 2, PlanStyle::HfAuto);
  add(1, 1, 3, PlanStyle::HfAuto);
  return v;
}

TEST(Qwen3Loader, SlicesEqualRandomWeightsForEveryRankOfEveryPlan) {
  for (bool tied : {false, true}) {
    const ModelConfig c = tiny(tied);
    TempDir dir;
    write_checkpoint(c, dir.path / "model.safetensors", at::kFloat);
    const Checkpoint ck = Checkpoint::open(dir.path.string());
    for (const ParallelPlan& p : plans()) {
      for (int64_t r = 0; r < p.world_size(); ++r) {
        SCOPED_TRACE(p.describe() + " rank " + std::to_string(r) + (tied ? " tied" : ""));
        LoadStats st;
        const ModelWeights got = load_weights(ck, c, p, r, {}, &st);
        const ModelWeights want = random_weights(c, p, r, kSeed, at::kFloat);
        expect_same(got, want);
        EXPECT_EQ(st.bytes_kept, got.nbytes());
        EXPECT_GE(st.peak_bytes_held, st.bytes_kept);
        // Only the rank's bytes were read (fp32 checkpoint: read == kept, tied head shares embed rows
        // or reads them once).
        if (!tied) EXPECT_EQ(st.bytes_read, st.bytes_kept);
        // The same rank reading whole tensors gets the same weights and reads more.
        LoadOptions full;
        full.full_tensor_reads = true;
        LoadStats fst;
        expect_same(load_weights(ck, c, p, r, full, &fst), want);
        EXPECT_GE(fst.bytes_read, st.bytes_read);
        if (p.tp > 1 || p.ep > 1) EXPECT_GT(fst.bytes_read, st.bytes_read);
        // Experts stacked while loading (grouped_experts): the same values, stacked per layer.
        LoadOptions stacked;
        stacked.stack_experts = true;
        const ModelWeights sw = load_weights(ck, c, p, r, stacked);
        expect_same(sw, want);
        for (const LayerWeights& L : sw.layers)
          if (L.sparse && !L.moe.experts.empty()) EXPECT_TRUE(L.moe.stacked()) << "layer " << L.index;
      }
    }
  }
}

// The generator random_weights uses off the CPU (tensor operations, so the GPU makes its own
// weights) gives the host generator's values bit for bit: whole tensors of every role (biases
// included: the qwen2-moe fixture's config), and slices along either dimension.
TEST(Qwen3Loader, TensorOpRandomGeneratorEqualsHostGenerator) {
  const ModelConfig q = tiny(false);
  const ModelConfig b = read_model_config_file(std::string(SC_FIXTURES) + "/models/qwen2-moe-tiny/config.json");
  int n = 0;
  for (const ModelConfig* c : {&q, &b})
    for (const TensorSpec& s : model_tensors(*c)) {
      const at::Tensor host = random_tensor(*c, s.name, kSeed);
      ASSERT_TRUE(at::equal(random_tensor(*c, s.name, kSeed, at::kCPU), host)) << s.name;
      ++n;
      if (s.shape.size() == 2) {
        for (int dim : {0, 1}) {
          const int64_t len = s.shape[size_t(dim)], b0 = len / 3, e0 = len / 3 + std::max<int64_t>(1, len / 2);
          const at::Tensor part = random_tensor(*c, s.name, kSeed, at::kCPU, SliceSpec{true, dim, b0, e0});
          EXPECT_TRUE(at::equal(part, host.narrow(dim, b0, e0 - b0))) << s.name << " dim " << dim;
        }
      }
    }
  EXPECT_GT(n, 50);
}

TEST(Qwen3Loader, ConvertsCheckpointDtypeToComputeDtype) {
  const ModelConfig c = tiny();
  TempDir dir;
  write_checkpoint(c, dir.path / "model.safetensors", at::kBFloat16);
  const Checkpoint ck = Checkpoint::open(dir.path.string());
  ParallelPlan p;
  p.tp = 2;
  LoadOptions o;
  o.dtype = at::kDouble;
  LoadStats st;
  const ModelWeights got = load_weights(ck, c, p, 1, o, &st);
  EXPECT_EQ(got.layers[1].attn.k.scalar_type(), at::kDouble);
  const ModelWeights want = random_weights(c, p, 1, kSeed, at::kFloat);
  EXPECT_TRUE(at::equal(got.layers[1].attn.k, want.layers[1].attn.k.to(at::kBFloat16).to(at::kDouble)));
  EXPECT_EQ(st.bytes_read * 4, st.bytes_kept);  // bf16 read, fp64 kept
}

TEST(Qwen3Loader, PackedExpertLayouts) {
  const ModelConfig c = tiny();
  for (bool transposed : {false, true}) {
    TempDir dir;
    write_checkpoint(c, dir.path / "model.safetensors", at::kFloat, [&](auto& ts) {
      std::map<std::string, at::Tensor> m(ts.begin(), ts.end());
      std::vector<std::pair<std::string, at::Tensor>> out;
      for (auto& kv : ts)
        if (kv.first.find(".mlp.experts.") == std::string::npos) out.push_back(kv);
      for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
        if (!c.layer_is_sparse(l)) continue;
        std::vector<at::Tensor> gu, dn;
        for (int64_t e = 0; e < c.num_experts; ++e) {
          gu.push_back(at::cat({m.at(tensor_name(Role::ExpertGate, l, e)), m.at(tensor_name(Role::ExpertUp, l, e))}, 0));
          dn.push_back(m.at(tensor_name(Role::ExpertDown, l, e)));
        }
        at::Tensor g = at::stack(gu), d = at::stack(dn);  // [E, 2I, H], [E, H, I]
        if (transposed) {
          g = g.transpose(1, 2);
          d = d.transpose(1, 2);
        }
        const std::string pre = "model.layers." + std::to_string(l) + ".mlp.experts.";
        out.emplace_back(pre + "gate_up_proj", g);
        out.emplace_back(pre + "down_proj", d);
      }
      ts = out;
    });
    const Checkpoint ck = Checkpoint::open(dir.path.string());
    // The inventory check that runs before any rank starts accepts the packed layout too.
    const CheckpointSummary summary = summarize_checkpoint(c, dir.path.string());
    EXPECT_TRUE(summary.consistent()) << (summary.problems.empty() ? "" : summary.problems[0]);
    EXPECT_NO_THROW(summary.require_loadable());
    for (const ParallelPlan& p : plans()) {
      for (int64_t r = 0; r < p.world_size(); ++r) {
        SCOPED_TRACE(p.describe() + " rank " + std::to_string(r) + (transposed ? " transposed" : ""));
        expect_same(load_weights(ck, c, p, r), random_weights(c, p, r, kSeed, at::kFloat));
      }
    }
  }
}

TEST(Qwen3Loader, ShardedIndexCheckpoint) {
  const ModelConfig c = tiny();
  TempDir dir;
  // Two files: embeddings + layer 0 in the first, the rest in the second.
  std::vector<std::pair<std::string, at::Tensor>> all;
  write_checkpoint(c, dir.path / "model-00001-of-00002.safetensors", at::kFloat, [&](auto& ts) {
    all = ts;
    std::vector<std::pair<std::string, at::Tensor>> first;
    for (auto& kv : ts)
      if (kv.first.rfind("model.layers.0.", 0) == 0 || kv.first == "model.embed_tokens.weight") first.push_back(kv);
    ts = first;
  });
  write_checkpoint(c, dir.path / "model-00002-of-00002.safetensors", at::kFloat, [&](auto& ts) {
    std::vector<std::pair<std::string, at::Tensor>> second;
    for (auto& kv : ts)
      if (!(kv.first.rfind("model.layers.0.", 0) == 0 || kv.first == "model.embed_tokens.weight")) second.push_back(kv);
    ts = second;
  });
  nlohmann::json idx;
  for (auto& kv : all)
    idx["weight_map"][kv.first] = (kv.first.rfind("model.layers.0.", 0) == 0 || kv.first == "model.embed_tokens.weight")
                                      ? "model-00001-of-00002.safetensors"
                                      : "model-00002-of-00002.safetensors";
  std::ofstream(dir.path / "model.safetensors.index.json") << idx.dump();
  const Checkpoint ck = Checkpoint::open(dir.path.string());
  ParallelPlan p;
  p.ep = 2;
  expect_same(load_weights(ck, c, p, 1), random_weights(c, p, 1, kSeed, at::kFloat));
}

std::string load_error(const std::string& path, const ModelConfig& c) {
  try {
    const Checkpoint ck = Checkpoint::open(path);
    load_weights(ck, c, ParallelPlan{}, 0);
  } catch (const CheckpointError& e) {
    return e.what();
  }
  return "";
}

TEST(Qwen3Loader, WrongShapeNamesTensorAndShapes) {
  const ModelConfig c = tiny();
  TempDir dir;
  write_checkpoint(c, dir.path / "model.safetensors", at::kFloat, [&](auto& ts) {
    for (auto& kv : ts)
      if (kv.first == "model.layers.2.self_attn.k_proj.weight") kv.second = at::zeros({8, 32});
  });
  const std::string msg = load_error(dir.path.string(), c);
  EXPECT_NE(msg.find("model.layers.2.self_attn.k_proj.weight"), std::string::npos) << msg;
  EXPECT_NE(msg.find("expected [16, 32]"), std::string::npos) << msg;
  EXPECT_NE(msg.find("checkpoint has [8, 32]"), std::string::npos) << msg;
}

TEST(Qwen3Loader, MissingTensorIsNamed) {
  const ModelConfig c = tiny();
  TempDir dir;
  write_checkpoint(c, dir.path / "model.safetensors", at::kFloat, [&](auto& ts) {
    std::vector<std::pair<std::string, at::Tensor>> out;
    for (auto& kv : ts)
      if (kv.first != "model.layers.1.mlp.experts.3.down_proj.weight") out.push_back(kv);
    ts = out;
  });
  const std::string msg = load_error(dir.path.string(), c);
  EXPECT_NE(msg.find("model.layers.1.mlp.experts.3.down_proj.weight"), std::string::npos) << msg;
  EXPECT_NE(msg.find("missing"), std::string::npos) << msg;
  // A rank that does not own expert 3 loads fine.
  const Checkpoint ck = Checkpoint::open(dir.path.string());
  ParallelPlan p;
  p.ep = 2;
  EXPECT_NO_THROW(load_weights(ck, c, p, 0));
  EXPECT_THROW(load_weights(ck, c, p, 1), CheckpointError);
}

TEST(Qwen3Loader, TruncatedFileIsACheckpointError) {
  const ModelConfig c = tiny();
  TempDir dir;
  const fs::path f = dir.path / "model.safetensors";
  write_checkpoint(c, f, at::kFloat);
  fs::resize_file(f, fs::file_size(f) - 100);
  const std::string msg = load_error(dir.path.string(), c);
  EXPECT_NE(msg.find("model.safetensors"), std::string::npos) << msg;
  EXPECT_NE(msg.find("checkpoint error"), std::string::npos) << msg;
}

TEST(Qwen3Loader, RandomWeightsAreSlicesOfTheFullTensors) {
  ModelConfig c = tiny();
  ParallelPlan p;
  p.tp = 2;
  const ModelWeights w = random_weights(c, p, 1, kSeed, at::kFloat);
  const at::Tensor o = random_tensor(c, "model.layers.1.self_attn.o_proj.weight", kSeed);  // [32, 32]
  EXPECT_TRUE(at::equal(w.layers[1].attn.o, o.narrow(1, 16, 16)));
  const at::Tensor q = random_tensor(c, "model.layers.1.self_attn.q_proj.weight", kSeed);
  EXPECT_TRUE(at::equal(w.layers[1].attn.q, q.narrow(0, 16, 16)));
  // Different names and seeds give different values; std of Linear weights ~ 1/sqrt(in).
  EXPECT_FALSE(at::equal(q, random_tensor(c, "model.layers.1.self_attn.q_proj.weight", kSeed + 1)));
  EXPECT_NEAR(q.std().item<double>(), 1.0 / std::sqrt(32.0), 0.02);
}

}  // namespace
}  // namespace sc
