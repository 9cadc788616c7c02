// The static checker against hand-computed cases and the users' reported failure.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "checks/checker.h"
#include "checks/matrix.h"
#include "models/errors.h"

using namespace sc;

static ParallelPlan plan(int64_t tp, int64_t ep = 1, int64_t pp = 1, PlanStyle s = PlanStyle::HfAuto, int64_t b = 64,
                         int64_t sq = 103) {
  ParallelPlan p;
  p.tp = tp;
  p.ep = ep;
  p.pp = pp;
  p.style = s;
  p.batch = b;
  p.seq = sq;
  return p;
}

static const Finding* find(const CheckResult& r, const std::string& id) {
  for (const auto& f : r.findings)
    if (f.id == id) return &f;
  return nullptr;
}

static ModelConfig tiny(int64_t heads, int64_t kv, int64_t hd, int64_t hidden = 64) {
  ModelConfig c;
  c.name = "tiny";
  c.model_type = "qwen3_moe";
  c.hidden_size = hidden;
  c.num_attention_heads = heads;
  c.num_key_value_heads = kv;
  c.head_dim = hd;
  c.intermediate_size = 96;
  c.moe_intermediate_size = 32;
  c.num_experts = 8;
  c.num_experts_per_tok = 2;
  c.num_hidden_layers = 2;
  c.vocab_size = 128;
  c.dtype = DType::F32;
  c.validate();
  return c;
}

TEST(ErrorText, ViewMessages) {
  EXPECT_EQ(view_error_text(64, 103, 128, 421888), "shape '[64, 103, -1, 128]' is invalid for input of size 421888");
  EXPECT_EQ(view_error_text(2, 3, 4, 0),
            "cannot reshape tensor of 0 elements into shape [2, 3, -1, 4] because the unspecified dimension size -1 "
            "can be any value and is ambiguous");
  EXPECT_EQ(broadcast_error_text(8, 16, 1),
            "The size of tensor a (8) must match the size of tensor b (16) at non-singleton dimension 1");
}

TEST(Checker, UsersFailureQwen3_235B_TP8) {
  const ModelConfig c = configs::qwen3_235b_a22b();
  CheckResult r = check(c, plan(8));
  ASSERT_FALSE(r.ok());
  const Finding* f = r.first_error();
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(f->id, "kv-heads-split");
  EXPECT_EQ(f->error_text, "shape '[64, 103, -1, 128]' is invalid for input of size 421888");
  EXPECT_EQ(f->module, "model.layers.*.self_attn.k_proj");
  EXPECT_EQ(f->ranks, (std::vector<int64_t>{0, 1, 2, 3, 4, 5, 6, 7}));
  EXPECT_EQ(f->values["kv_rows_per_rank"], 64);  // 4 x 128 / 8 = half a head
  EXPECT_NE(f->message.find("64 x 103 x 64 = 421888"), std::string::npos) << f->message;
  EXPECT_NE(f->fix.find("replicate-kv"), std::string::npos);
}

TEST(Checker, Qwen3_235B_Tp4WorksAndReplicateKvFixesTp8) {
  const ModelConfig c = configs::qwen3_235b_a22b();
  EXPECT_TRUE(check(c, plan(4)).ok());   // one KV head per rank
  EXPECT_TRUE(check(c, plan(2)).ok());
  CheckResult r = check(c, plan(8, 1, 1, PlanStyle::ReplicateKv));
  EXPECT_TRUE(r.ok());
  const Finding* f = find(r, "kv-replicated");
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(f->values["replicas"], 2);
  // tp=16 hf-auto: 512 / 16 = 32 columns -> 64 x 103 x 32.
  EXPECT_EQ(check(c, plan(16)).first_error()->error_text, "shape '[64, 103, -1, 128]' is invalid for input of size 210944");
  // tp=16 replicate-kv: 4 query heads per rank, KV head r/4: fine.
  EXPECT_TRUE(check(c, plan(16, 1, 1, PlanStyle::ReplicateKv)).ok());
}

TEST(Checker, OtherRealModels) {
  // 30B-A3B: 4 KV heads, same failure at tp=8 (batch 4, seq 178 like transformers #48307's shape).
  CheckResult r = check(configs::qwen3_30b_a3b(), plan(8, 1, 1, PlanStyle::HfAuto, 4, 178));
  EXPECT_EQ(r.first_error()->error_text, "shape '[4, 178, -1, 128]' is invalid for input of size 45568");
  // Coder-480B and 32B: 8 KV heads: tp=8 works, tp=16 fails.
  EXPECT_TRUE(check(configs::qwen3_coder_480b_a35b(), plan(8)).ok());
  EXPECT_FALSE(check(configs::qwen3_coder_480b_a35b(), plan(16)).ok());
  EXPECT_TRUE(check(configs::qwen3_32b(), plan(8)).ok());
  // 0.6B: 16 heads; tp=32 leaves q_proj with 2048/32 = 64 columns: half a head, q fails first.
  CheckResult small = check(configs::qwen3_0_6b(), plan(32, 1, 1, PlanStyle::HfAuto, 2, 5));
  EXPECT_EQ(small.first_error()->id, "q-heads-split");
  EXPECT_EQ(small.first_error()->error_text, "shape '[2, 5, -1, 128]' is invalid for input of size 640");
}

TEST(Checker, QueryHeadsNotDividingTp) {
  ModelConfig c = tiny(6, 2, 16);
  CheckResult r = check(c, plan(4, 1, 1, PlanStyle::HfAuto, 2, 3));
  // q: 96 features, chunk 24 -> 1.5 heads on ranks 0-3.
  const Finding* f = r.first_error();
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(f->id, "q-heads-split");
  EXPECT_EQ(f->error_text, "shape '[2, 3, -1, 16]' is invalid for input of size 144");
}

TEST(Checker, ZeroColumnsOnTrailingRanks) {
  // 1 KV head of width 4 over tp=8: chunk 1 -> ranks 0-3 hold 1 column, ranks 4-7 none.
  ModelConfig c = tiny(8, 1, 4);
  CheckResult r = check(c, plan(8, 1, 1, PlanStyle::HfAuto, 2, 3));
  ASSERT_FALSE(r.ok());
  std::vector<std::string> texts;
  for (const auto& f : r.findings)
    if (f.severity == Severity::Error) texts.push_back(f.error_text);
  ASSERT_EQ(texts.size(), 2u);
  EXPECT_EQ(texts[0], "shape '[2, 3, -1, 4]' is invalid for input of size 6");
  // Ranks 4-7: view to 0 KV heads passes, the empty attention output then fails in o_proj
  // (checked against LibTorch in tests/torch/test_error_text.cpp).
  EXPECT_EQ(texts[1], "mat1 and mat2 shapes cannot be multiplied (6x0 and 4x64)");
}

TEST(Checker, ReplicateKvMisalignedGroupsIsSilentWrong) {
  // 48 query heads in groups of 8 over 6 KV heads, tp=8: 6 query heads per rank straddle groups.
  ModelConfig c = tiny(48, 6, 16);
  CheckResult r = check(c, plan(8, 1, 1, PlanStyle::ReplicateKv, 1, 4));
  const Finding* f = find(r, "gqa-misaligned");
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(f->severity, Severity::Error);
  EXPECT_TRUE(f->error_text.empty());  // runs without an exception: wrong numbers
  EXPECT_NE(f->message.find("query head"), std::string::npos);
}

TEST(Checker, ExpertsAndVocabAndPipeline) {
  ModelConfig c = tiny(8, 2, 32);
  EXPECT_EQ(check(c, plan(1, 3)).first_error()->id, "experts-ep");   // 8 % 3
  EXPECT_EQ(check(c, plan(1, 16)).first_error()->id, "experts-ep");  // 16 > 8
  CheckResult ep8 = check(c, plan(1, 8));
  EXPECT_TRUE(ep8.ok());
  EXPECT_NE(find(ep8, "experts-per-rank"), nullptr);  // 1 expert per rank < top-2
  c.vocab_size = 129;
  EXPECT_EQ(check(c, plan(2, 1, 1, PlanStyle::HfAuto, 1, 4)).first_error()->id, "vocab-split");
  c.vocab_size = 128;
  EXPECT_EQ(check(c, plan(1, 1, 3)).first_error()->id, "pp-layers");  // 3 stages, 2 layers
  CheckResult pp2 = check(c, plan(1, 1, 2));
  EXPECT_TRUE(pp2.ok());
  const Finding* bubble = find(pp2, "pp-bubble");
  ASSERT_NE(bubble, nullptr);
  EXPECT_DOUBLE_EQ(bubble->values["bubble_fraction"].get<double>(), 0.5);  // (2-1)/(1+2-1)
}

TEST(Checker, TiedEmbeddingsAcrossStages) {
  ModelConfig c = configs::qwen3_0_6b();
  CheckResult r = check(c, plan(1, 1, 2));
  EXPECT_NE(find(r, "pp-tied-embeddings"), nullptr);
  // The last stage holds a copy of the embedding as lm_head: counted in memory.
  EXPECT_GT(r.memory.back().weight_bytes, 0);
  const int64_t V = c.vocab_size, H = c.hidden_size;
  EXPECT_GE(r.memory.back().weight_bytes, V * H * 2);
}

TEST(Memory, HandComputedTinyTp2) {
  // Dense layers only, fp32: hidden 8, 2 heads x 4, 2 KV heads, intermediate 6, vocab 10, untied.
  ModelConfig c;
  c.model_type = "qwen3";
  c.hidden_size = 8;
  c.num_attention_heads = 2;
  c.num_key_value_heads = 2;
  c.head_dim = 4;
  c.intermediate_size = 6;
  c.num_hidden_layers = 1;
  c.vocab_size = 10;
  c.dtype = DType::F32;
  ParallelPlan p = plan(2, 1, 1, PlanStyle::HfAuto, 1, 1);
  p.dtype = DType::F32;
  auto m = estimate_memory(c, p);
  ASSERT_EQ(m.size(), 2u);
  // Per rank: norms 8+8 (replicated), q 4x8, k 4x8, v 4x8, o 8x4, q_norm 4, k_norm 4,
  // gate 3x8, up 3x8, down 8x3, embed 10x8 (replicated), final norm 8, lm_head 5x8.
  const int64_t elems = 16 + 32 * 4 + 8 + 24 * 3 + 80 + 8 + 40;
  EXPECT_EQ(m[0].weight_bytes, elems * 4);
  EXPECT_EQ(m[1].weight_bytes, elems * 4);
  // Full-tensor loading holds every unsharded tensor: the whole model here.
  EXPECT_EQ(m[0].load_peak_full_bytes, c.total_params() * 4);
}

TEST(Memory, ExpertParallelFullLoadingExceedsMemory) {
  const ModelConfig c = configs::qwen3_235b_a22b();
  ParallelPlan p = plan(1, 8);
  CheckOptions o;
  o.memory_limit_gib = 80;
  p.shard_only_loading = false;
  CheckResult full = check(c, p, o);
  ASSERT_FALSE(full.ok());
  EXPECT_EQ(full.first_error()->id, "memory-loading");
  p.shard_only_loading = true;
  CheckResult shard = check(c, p, o);
  EXPECT_EQ(find(shard, "memory-loading"), nullptr);
  // EP=8: each rank owns 16 of 128 experts; weights per rank well under the full 438 GiB.
  EXPECT_LT(to_gib(shard.memory[0].weight_bytes), 80);
  EXPECT_GT(to_gib(full.memory[0].load_peak_full_bytes), 400);
}

TEST(Memory, SumOverRanksMatchesModelForPureTp) {
  // Evenly divisible TP: sharded tensors sum to the model; replicated ones are counted tp times.
  ModelConfig c = tiny(8, 4, 16, 64);
  ParallelPlan p = plan(4, 1, 1, PlanStyle::HfAuto, 1, 1);
  p.dtype = DType::F32;
  auto m = estimate_memory(c, p);
  int64_t sum = 0;
  for (auto& r : m) sum += r.weight_bytes / 4;
  const int64_t H = 64, L = 2;
  const int64_t replicated = L * (2 * H + 2 * 16 + 8 * H) + 128 * H + H;  // norms, q/k norms, router, embed, final norm
  EXPECT_EQ(sum, c.total_params() + 3 * replicated);
}

TEST(Checker, JsonRoundTrip) {
  CheckResult r = check(configs::qwen3_235b_a22b(), plan(8));
  nlohmann::json j = r;
  CheckResult back = j.get<CheckResult>();
  EXPECT_EQ(back.findings.size(), r.findings.size());
  EXPECT_EQ(back.findings[0].error_text, r.findings[0].error_text);
  EXPECT_EQ(back.memory.size(), r.memory.size());
  EXPECT_EQ(nlohmann::json(back).dump(), j.dump());
}

TEST(Checker, InvalidPlanThrowsPlanError) {
  EXPECT_THROW(check(configs::qwen3_235b_a22b(), plan(0)), PlanError);
  EXPECT_THROW(check(configs::qwen3_235b_a22b(), plan(4, 3)), PlanError);  // 4 and 3 do not divide
}

TEST(Matrix, RowsForTheUsersModel) {
  ParallelPlan base = plan(1);
  auto rows = run_matrix(configs::qwen3_235b_a22b(), base, {1, 2, 4, 8}, {1, 8}, {1});
  ASSERT_EQ(rows.size(), 8u);
  // ep=1 rows: tp 1,2,4 pass, 8 fails with the users' text.
  EXPECT_TRUE(rows[0].ok);
  EXPECT_TRUE(rows[2].ok);
  EXPECT_FALSE(rows[3].ok);
  EXPECT_EQ(rows[3].first_error_text, "shape '[64, 103, -1, 128]' is invalid for input of size 421888");
  // ep=8 with tp=8 (TP x EP) fails in attention too; tp=1 ep=8 passes.
  EXPECT_TRUE(rows[4].ok);
  EXPECT_FALSE(rows[7].ok);
}
