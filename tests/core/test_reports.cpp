// The strategy report and its communication model: hand-computed bytes per token, the users' 8-GPU
// experience with Qwen3-235B-A22B (verdicts, exact error text), predicted vs measured figures,
// the documented JSON schema, a self-contained HTML page (well-formed, inline SVG, rendered by
// headless Chromium when installed) and the CLI's outputs and exit codes.
#include "tests/cli_runner.h"
#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>
#include <sys/wait.h>

#include "checks/comm.h"
#include "checks/strategies.h"
#include "reports/html.h"
#include "reports/markdown.h"
#include "reports/report_json.h"

using namespace sc;

// The strict XML parser lives in test_gate.cpp (same test binary): counts of each element name.
namespace sctest {
bool xml_element_counts(const std::string& text, std::map<std::string, int>* counts, std::string* root,
                        std::string* error);
}  // namespace sctest

namespace {

std::string cfg(const std::string& name) { return std::string(SC_FIXTURES) + "/configs/" + name + "/config.json"; }

const ModelConfig& big() {
  static const ModelConfig c = ModelConfig::from_file(cfg("qwen3-235b-a22b"));
  return c;
}

const StrategyReport& big_report() {
  static const StrategyReport r = compare_strategies(big(), StrategyOptions{});
  return r;
}

ParallelPlan plan(int64_t tp, int64_t ep, int64_t pp, DType d, PlanStyle s = PlanStyle::HfAuto) {
  ParallelPlan p;
  p.tp = tp;
  p.ep = ep;
  p.pp = pp;
  p.dtype = d;
  p.style = s;
  return p;
}

const char* kUsersError = "shape '[64, 103, -1, 128]' is invalid for input of size 421888";

using Out = sctest::CliOut;
Out run(const std::string& args) { return sctest::run_cli(args); }

std::string temp_path(const std::string& name) { return ::testing::TempDir() + "/" + name; }

std::string slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

bool contains(const std::string& hay, const std::string& needle) { return hay.find(needle) != std::string::npos; }

}  // namespace

// ---- Communication model against hand-computed numbers ----

TEST(CommModel, RingCollectives) {
  EXPECT_DOUBLE_EQ(ring_allreduce_bytes(8, 8192), 14336);  // 2 * 7/8 * 8192
  EXPECT_DOUBLE_EQ(ring_allreduce_bytes(2, 100), 100);     // 2 * 1/2
  EXPECT_DOUBLE_EQ(ring_allreduce_bytes(1, 8192), 0);
  EXPECT_DOUBLE_EQ(ring_allgather_bytes(8, 303872), 265888);  // 7/8 * 151936 * 2
  EXPECT_DOUBLE_EQ(ring_allgather_bytes(1, 303872), 0);
}

TEST(CommModel, Qwen3_235B_TensorParallel8) {
  // bf16, hidden 4096: one token's hidden vector is 8192 bytes; 94 layers, all sparse.
  const CommEstimate e = estimate_comm(big(), plan(8, 1, 1, DType::BF16));
  EXPECT_EQ(e.dtype_bytes, 2);
  EXPECT_EQ(e.sparse_layers, 94);
  EXPECT_EQ(e.dense_layers, 0);
  EXPECT_DOUBLE_EQ(e.tp_attention_per_layer, 14336);  // o_proj all-reduce
  EXPECT_DOUBLE_EQ(e.tp_experts_per_layer, 14336);    // experts' down_proj over etp = 8
  EXPECT_DOUBLE_EQ(e.tp_bytes, 94 * 28672.0);         // 2,695,168
  EXPECT_DOUBLE_EQ(e.ep_bytes, 0);
  EXPECT_DOUBLE_EQ(e.pp_bytes, 0);
  EXPECT_DOUBLE_EQ(e.logits_bytes, 265888);
  EXPECT_DOUBLE_EQ(e.total_bytes(), 2961056);
  EXPECT_EQ(e.all_reduces, 188);
  EXPECT_EQ(e.all_gathers, 1);
  EXPECT_EQ(e.collectives(), 189);
}

TEST(CommModel, Qwen3_235B_ExpertParallelAndPipeline) {
  // EP=8: 2 directions x top-8 x 8192 bytes x 7/8 remote = 114,688 bytes per layer.
  const CommEstimate ep = estimate_comm(big(), plan(1, 8, 1, DType::BF16));
  EXPECT_DOUBLE_EQ(ep.ep_per_layer, 114688);
  EXPECT_DOUBLE_EQ(ep.ep_bytes, 94 * 114688.0);  // 10,780,672
  EXPECT_DOUBLE_EQ(ep.tp_bytes, 0);              // attention replicated, whole experts: no all-reduce
  EXPECT_DOUBLE_EQ(ep.logits_bytes, 0);
  EXPECT_EQ(ep.all_to_alls, 188);
  // TP x EP: attention all-reduce over 8, experts whole (etp = 1), dispatch + combine over 8.
  const CommEstimate tpep = estimate_comm(big(), plan(8, 8, 1, DType::BF16, PlanStyle::ReplicateKv));
  EXPECT_DOUBLE_EQ(tpep.tp_experts_per_layer, 0);
  EXPECT_DOUBLE_EQ(tpep.tp_bytes, 94 * 14336.0);
  EXPECT_DOUBLE_EQ(tpep.total_bytes(), 94 * 14336.0 + 94 * 114688.0 + 265888);  // 12,394,144
  // PP=8: 7 boundaries x 8192 bytes.
  const CommEstimate pp = estimate_comm(big(), plan(1, 1, 8, DType::BF16));
  EXPECT_DOUBLE_EQ(pp.pp_per_boundary, 8192);
  EXPECT_DOUBLE_EQ(pp.total_bytes(), 57344);
  EXPECT_EQ(pp.p2p_sends, 7);
  EXPECT_EQ(pp.collectives(), 7);
  // Single GPU: nothing moves.
  EXPECT_DOUBLE_EQ(estimate_comm(big(), plan(1, 1, 1, DType::BF16)).total_bytes(), 0);
}

TEST(CommModel, DenseAndMixedLayers) {
  // Qwen3-32B (dense, hidden 5120, 64 layers), TP=4 in bf16: 2 all-reduces of 2 * 3/4 * 10240 per layer.
  const ModelConfig dense = ModelConfig::from_file(cfg("qwen3-32b"));
  const CommEstimate d = estimate_comm(dense, plan(4, 1, 1, DType::BF16));
  EXPECT_DOUBLE_EQ(d.tp_dense_mlp_per_layer, 15360);
  EXPECT_DOUBLE_EQ(d.tp_bytes, 64 * 2 * 15360.0);
  EXPECT_DOUBLE_EQ(d.logits_bytes, 0.75 * 151936 * 2);
  EXPECT_EQ(d.all_reduces, 128);
  // moe-sparse-step (f32, hidden 64, 4 layers: 0 and 2 dense, 1 and 3 sparse, top-2, vocab 128), TP=2 x EP=2:
  // attention 4 x 256, dense MLP 2 x 256, experts whole; EP 2 x (2 * 2 * 256 * 1/2); logits 1/2 * 128 * 4.
  const ModelConfig mixed = ModelConfig::from_file(std::string(SC_FIXTURES) + "/models/moe-sparse-step/config.json");
  const CommEstimate m = estimate_comm(mixed, plan(2, 2, 1, DType::F32));
  EXPECT_EQ(m.sparse_layers, 2);
  EXPECT_EQ(m.dense_layers, 2);
  EXPECT_DOUBLE_EQ(m.tp_bytes, 4 * 256.0 + 2 * 256.0);
  EXPECT_DOUBLE_EQ(m.ep_per_layer, 512);
  EXPECT_DOUBLE_EQ(m.ep_bytes, 1024);
  EXPECT_DOUBLE_EQ(m.logits_bytes, 256);
  EXPECT_EQ(m.all_reduces, 6);
  EXPECT_EQ(m.all_to_alls, 4);
}

// ---- The users' experience: Qwen3-235B-A22B on 8 GPUs ----

TEST(ReportStrategies, Qwen3_235B_OnEightGpus) {
  const StrategyReport& r = big_report();
  EXPECT_EQ(r.options.batch, 64);
  EXPECT_EQ(r.options.seq, 103);
  EXPECT_EQ(r.options.gpu_mem_gib, 141);
  EXPECT_EQ(r.options.gpus, (std::vector<int64_t>{1, 2, 4, 8}));

  // Layer placement works but one GPU computes at a time: bubble 7/8.
  const StrategyResult* pp = find_result(r, 8, "pp");
  ASSERT_NE(pp, nullptr);
  EXPECT_EQ(pp->outcome, Outcome::Works);
  EXPECT_EQ(pp->strategy.plan.pp, 8);
  EXPECT_EQ(pp->bubble_num, 7);
  EXPECT_EQ(pp->bubble_den, 8);
  EXPECT_DOUBLE_EQ(pp->busy(), 0.125);
  EXPECT_TRUE(contains(pp->verdict, "only one GPU computes at a time")) << pp->verdict;

  // TP=8 hf-auto fails with the users' exact error.
  const StrategyResult* tp = find_result(r, 8, "tp-hf-auto");
  ASSERT_NE(tp, nullptr);
  EXPECT_EQ(tp->outcome, Outcome::Fails);
  EXPECT_EQ(tp->outcome_source, Source::Predicted);
  ASSERT_TRUE(tp->first_error);
  EXPECT_EQ(tp->first_error->id, "kv-heads-split");
  EXPECT_EQ(tp->first_error->error_text, kUsersError);
  EXPECT_EQ(tp->verdict, std::string("fails: ") + kUsersError);

  // EP=8 with full-tensor loading exceeds 141 GiB while loading (shard-only loading fits).
  const StrategyResult* epf = find_result(r, 8, "ep-full-loading");
  ASSERT_NE(epf, nullptr);
  EXPECT_EQ(epf->outcome, Outcome::OutOfMemory);
  EXPECT_FALSE(epf->strategy.plan.shard_only_loading);
  EXPECT_GT(to_gib(epf->memory.loading_bytes), 141);
  EXPECT_TRUE(contains(epf->verdict, "out of memory while loading")) << epf->verdict;
  const StrategyResult* eps = find_result(r, 8, "ep-shard-only");
  ASSERT_NE(eps, nullptr);
  EXPECT_EQ(eps->outcome, Outcome::Works);
  EXPECT_LT(to_gib(eps->memory.per_gpu_bytes()), 141);

  // TP=4 works: on 8 GPUs as TP=4 x PP=2 (explained against TP=4 alone), on 4 GPUs as TP=4.
  const StrategyResult* tpp = find_result(r, 8, "tp-pp");
  ASSERT_NE(tpp, nullptr);
  EXPECT_EQ(tpp->outcome, Outcome::Works);
  EXPECT_EQ(tpp->strategy.plan.tp, 4);
  EXPECT_EQ(tpp->strategy.plan.pp, 2);
  EXPECT_EQ(tpp->strategy.name, "TP=4 x PP=2 (hf-auto)");
  EXPECT_TRUE(contains(tpp->note, "Chosen over TP=4 alone on 4 of the 8 GPUs")) << tpp->note;
  const StrategyResult* tp4 = find_result(r, 4, "tp-hf-auto");
  ASSERT_NE(tp4, nullptr);
  EXPECT_EQ(tp4->outcome, Outcome::Works);
  EXPECT_LT(tpp->memory.per_gpu_bytes(), tp4->memory.per_gpu_bytes());

  // What works better: TP=8 replicate-kv and TP x EP with replicate-kv attention.
  const StrategyResult* rkv = find_result(r, 8, "tp-replicate-kv");
  ASSERT_NE(rkv, nullptr);
  EXPECT_EQ(rkv->outcome, Outcome::Works);
  EXPECT_DOUBLE_EQ(rkv->busy(), 1.0);
  const StrategyResult* tpep = find_result(r, 8, "tp-ep");
  ASSERT_NE(tpep, nullptr);
  EXPECT_EQ(tpep->outcome, Outcome::Works);
  EXPECT_EQ(tpep->strategy.plan.style, PlanStyle::ReplicateKv);
  EXPECT_EQ(tpep->strategy.plan.ep, 8);

  // Recommendations: nothing fits on 1 or 2 GPUs; TP=4 on 4; TP=8 replicate-kv on 8.
  ASSERT_EQ(r.summaries.size(), 4u);
  EXPECT_EQ(r.summaries[0].recommended, "");
  EXPECT_EQ(r.summaries[1].recommended, "");
  EXPECT_EQ(r.summaries[2].recommended, "tp-hf-auto");
  EXPECT_EQ(r.summaries[3].recommended, "tp-replicate-kv");
  EXPECT_TRUE(r.unmatched_runs.empty());
}

TEST(ReportStrategies, DenseModelAndOddGpuCounts) {
  StrategyOptions o;
  o.gpus = {3, 8};
  const StrategyReport r = compare_strategies(ModelConfig::from_file(cfg("qwen3-32b")), o);
  for (const char* id : {"ep-full-loading", "ep-shard-only", "tp-ep"}) {
    const StrategyResult* x = find_result(r, 8, id);
    ASSERT_NE(x, nullptr) << id;
    EXPECT_EQ(x->outcome, Outcome::NotApplicable) << id;
    EXPECT_TRUE(contains(x->strategy.not_applicable, "dense")) << x->strategy.not_applicable;
  }
  // 3 GPUs: no TP x PP split exists; 64 heads / 3 fail under TP.
  EXPECT_EQ(find_result(r, 3, "tp-pp")->outcome, Outcome::NotApplicable);
  EXPECT_EQ(find_result(r, 3, "tp-hf-auto")->outcome, Outcome::Fails);
  EXPECT_EQ(find_result(r, 3, "pp")->outcome, Outcome::Works);
  // Micro-batches shrink the TP x PP bubble: 1 / (8 + 1).
  StrategyOptions m;
  m.gpus = {8};
  m.micro_batches = 8;
  const StrategyReport rm = compare_strategies(big(), m);
  const StrategyResult* tpp = find_result(rm, 8, "tp-pp");
  EXPECT_EQ(tpp->bubble_num, 1);
  EXPECT_EQ(tpp->bubble_den, 9);
  EXPECT_EQ(find_result(rm, 8, "pp")->bubble_den, 8);  // device_map placement stays at one micro-batch
}

// ---- Markdown ----

TEST(ReportMarkdown, Qwen3_235B_VerdictsAndExactError) {
  const std::string md = render_report_markdown(big_report());
  EXPECT_LT(md.size(), 65536u);  // fits a GitHub PR comment
  EXPECT_TRUE(contains(md, std::string("`") + kUsersError + "`")) << md;
  EXPECT_TRUE(contains(md, "**141 GiB per GPU**"));
  EXPECT_TRUE(contains(md, "batch 64 × seq 103"));
  EXPECT_TRUE(contains(md, "### On 8 GPUs"));
  EXPECT_TRUE(contains(md, "**PP=8 (device_map)** *(tried)* — works, but only one GPU computes at a time: bubble "
                           "(pp-1)/(m+pp-1) = 7/8 of GPU time idle"))
      << md;
  EXPECT_TRUE(contains(md, std::string("**TP=8 (hf-auto)** *(tried)* — fails: `") + kUsersError));
  EXPECT_TRUE(contains(md, "**EP=8 (full-tensor loading)** *(tried)* — out of memory while loading: 437.9 GiB per GPU > 141 GiB"))
      << md;
  EXPECT_TRUE(contains(md, "✅ **TP=4 x PP=2 (hf-auto)** *(workaround)* — works"));
  EXPECT_TRUE(contains(md, "✅ **TP=8 (replicate-kv)** *(fix)* — works"));
  EXPECT_TRUE(contains(md, "✅ **TP=8 x EP=8 (replicate-kv)** *(fix)* — works"));
  EXPECT_TRUE(contains(md, "**Recommended on 8 GPUs: TP=8 (replicate-kv)**"));
  EXPECT_TRUE(contains(md, "Chosen over TP=4 alone on 4 of the 8 GPUs"));
  EXPECT_TRUE(contains(md, "| 4 | TP=4 (hf-auto) | `tp=4 ep=1 pp=1 plan=hf-auto` | ✅ worksᵖ |")) << md;
  EXPECT_TRUE(contains(md, "ᵖ predicted") && contains(md, "ᵐ measured"));
  EXPECT_TRUE(contains(md, "2(n−1)/n"));  // the communication formula is stated
}

// ---- Measured figures from harness runs ----

TEST(ReportRuns, MeasuredFiguresReplacePredictedOnesAndAreMarked) {
  RunResult ok;
  ok.model = "qwen3-235b-a22b";
  ok.plan = plan(8, 1, 1, DType::BF16, PlanStyle::ReplicateKv);
  ok.backend = "nccl";
  ok.device = "cuda";
  ok.verdict = Verdict::Match;
  ok.summary = "all 94 layers and the logits within bf16 tolerance";
  ok.load_peak_bytes = std::vector<int64_t>(8, int64_t(60) << 30);
  ok.tokens_per_s = 1234;
  ok.forward_ms = 5342;
  RunResult err;
  err.plan = plan(8, 1, 1, DType::BF16);
  err.plan.batch = 64;  // the error text is the one of this shape
  err.plan.seq = 103;
  err.backend = "nccl";
  err.device = "cuda";
  err.verdict = Verdict::Error;
  err.errors = {RankError{0, "layer 0 self_attn (k view)", kUsersError}};
  RunResult wrong;  // predicted to work, measured mismatching: the disagreement is reported
  wrong.plan = plan(8, 8, 1, DType::BF16, PlanStyle::ReplicateKv);
  wrong.verdict = Verdict::Mismatch;
  wrong.summary = "layer 3 mlp differs on rank 5";
  RunResult stray;
  stray.plan = plan(2, 1, 3, DType::BF16);

  StrategyOptions o;
  o.gpus = {8};
  const StrategyReport r = compare_strategies(big(), o, {ok, err, wrong, stray});
  const StrategyResult* rkv = find_result(r, 8, "tp-replicate-kv");
  EXPECT_EQ(rkv->outcome_source, Source::Measured);
  EXPECT_EQ(rkv->correctness, "match");
  ASSERT_TRUE(rkv->tokens_per_s);
  EXPECT_DOUBLE_EQ(*rkv->tokens_per_s, 1234);
  ASSERT_TRUE(rkv->memory.measured_loading_bytes);
  EXPECT_EQ(*rkv->memory.measured_loading_bytes, int64_t(60) << 30);
  EXPECT_FALSE(rkv->prediction_disagrees);
  const StrategyResult* tp = find_result(r, 8, "tp-hf-auto");
  EXPECT_EQ(tp->outcome, Outcome::Fails);
  EXPECT_EQ(tp->outcome_source, Source::Measured);
  EXPECT_FALSE(tp->prediction_disagrees);
  EXPECT_TRUE(contains(tp->verdict, kUsersError));
  const StrategyResult* tpep = find_result(r, 8, "tp-ep");
  EXPECT_EQ(tpep->outcome, Outcome::SilentWrong);
  EXPECT_TRUE(tpep->prediction_disagrees);
  EXPECT_TRUE(contains(tpep->note, "disagrees"));
  ASSERT_EQ(r.unmatched_runs.size(), 1u);

  const std::string md = render_report_markdown(r);
  EXPECT_TRUE(contains(md, "| 1234ᵐ |")) << md;
  EXPECT_TRUE(contains(md, "matchᵐ"));
  EXPECT_TRUE(contains(md, "60.0 GiBᵐ"));
  EXPECT_TRUE(contains(md, "matches no strategy"));
  const auto j = nlohmann::json::parse(render_report_json(r));
  for (const auto& s : j["strategies"]) {
    if (s["id"] == "tp-replicate-kv") {
      EXPECT_EQ(s["outcome"]["source"], "measured");
      EXPECT_EQ(s["throughput"]["tokens_per_s"]["value"], 1234.0);
      EXPECT_EQ(s["throughput"]["tokens_per_s"]["source"], "measured");
      EXPECT_EQ(s["memory"]["measured_loading_peak_bytes"]["source"], "measured");
      EXPECT_EQ(s["memory"]["per_gpu_bytes"]["source"], "predicted");
      EXPECT_EQ(s["correctness"]["value"], "match");
      EXPECT_EQ(s["run"]["backend"], "nccl");
    }
  }
  const std::string html = render_report_html(r);
  EXPECT_TRUE(contains(html, "tokens per second (measured ᵐ)"));
  EXPECT_TRUE(contains(html, "1234 tok/s"));
}

TEST(ReportRuns, ReducedWidthRunConfirmsTheUsersTextEverywhere) {
  // report --run on CPU: TP=8 hf-auto at batch 2 x seq 16 on reduced widths. Each rank holds
  // 512 / 8 = 64 k_proj columns, so view(2, 16, -1, 128) sees 2 * 16 * 64 = 2048 elements. The
  // users' text (batch 64 x seq 103: 64 * 103 * 64 = 421888) leads, the run's text confirms it.
  const std::string run_text = "shape '[2, 16, -1, 128]' is invalid for input of size 2048";
  RunResult run;
  run.plan = plan(8, 1, 1, DType::F32);
  run.plan.batch = 2;
  run.plan.seq = 16;
  run.backend = "gloo";
  run.device = "cpu";
  run.verdict = Verdict::Error;
  run.scale = "tiny width, hidden 256 (of 4096)";
  for (int64_t k = 0; k < 8; ++k) run.errors.push_back(RankError{k, "layer 0 self_attn (k view)", run_text});
  StrategyOptions o;
  o.gpus = {8};
  const StrategyReport r = compare_strategies(big(), o, {run});
  const StrategyResult* tp = find_result(r, 8, "tp-hf-auto");
  ASSERT_TRUE(tp->error_text_matches);
  EXPECT_EQ(tp->verdict, std::string("fails: ") + kUsersError + " (confirmed on reduced-width ranks: " + run_text + ")");
  const auto cf = confirmed_failure(*tp);
  ASSERT_TRUE(cf);
  EXPECT_EQ(cf->users_text, kUsersError);
  EXPECT_EQ(cf->run_text, run_text);

  const auto j = nlohmann::json::parse(render_report_json(r));
  for (const auto& s : j["strategies"])
    if (s["id"] == "tp-hf-auto") EXPECT_EQ(s["verdict"], tp->verdict);

  const std::string md = render_report_markdown(r);
  EXPECT_TRUE(contains(md, std::string("- ❌ **TP=8 (hf-auto)** *(tried)* — failsᵐ: `") + kUsersError +
                               "`ᵖ (`kv-heads-split` in `model.layers.*.self_attn.k_proj`) — confirmed on "
                               "reduced-width ranks: `" + run_text + "`ᵐ  \n  ᵐ gloo run (tiny width, batch 2 × seq 16): ranks 0-7 "
                               "raised `" + run_text + "` — exactly the checker's prediction for this shape\n"))
      << md;

  // The HTML card: users' text, its invariant, then the confirmation; the reduced text never leads.
  const std::string html = render_report_html(r);
  auto e = [](std::string t) {
    for (size_t p = t.find('\''); p != std::string::npos; p = t.find('\'', p)) t.replace(p, 1, "&apos;");
    return t;
  };
  const std::string card = "<span class=\"name\">TP=8 (hf-auto)</span>";
  const size_t at = html.find(card);
  ASSERT_NE(at, std::string::npos);
  const std::string users = "<div class=\"verdict\">fails ᵐ: <code>" + e(kUsersError) +
                            "</code> ᵖ <span class=\"figs\">(<code>kv-heads-split</code>)</span><div class=\"confirm\">"
                            "confirmed on reduced-width ranks: <code>" + e(run_text) + "</code> ᵐ</div></div>";
  EXPECT_EQ(html.find(users, at), html.find("<div class=\"verdict\">", at)) << html.substr(at, 1200);
  EXPECT_FALSE(contains(html, "fails (measured)"));

  // A run that raises another text is no confirmation: the measured text leads and the disagreement is noted.
  run.errors = {RankError{3, "layer 0 self_attn (k view)", "something else"}};
  const StrategyReport d = compare_strategies(big(), o, {run});
  const StrategyResult* dt = find_result(d, 8, "tp-hf-auto");
  EXPECT_FALSE(confirmed_failure(*dt));
  EXPECT_EQ(dt->verdict, "fails (measured): something else");
  EXPECT_TRUE(dt->prediction_disagrees);
}

TEST(ReportRecommendation, FirstThingAfterTheTitle) {
  // 235B: nothing fits on 1 or 2 GPUs; TP=4 on 4; TP=8 replicate-kv on 8 (ReportStrategies above).
  const StrategyReport& r = big_report();
  const std::string md = render_report_markdown(r);
  const std::string title = "## shardcheck strategy report: qwen3-235b-a22b\n\n";
  ASSERT_EQ(md.rfind(title, 0), 0u);
  const std::string after = md.substr(title.size());
  EXPECT_EQ(after.rfind("- **Recommended on 8 GPUs: TP=8 (replicate-kv)** — ", 0), 0u) << after.substr(0, 300);
  // Largest GPU count first, each once, all before the model description.
  const size_t r8 = md.find("Recommended on 8 GPUs"), r4 = md.find("Recommended on 4 GPUs: TP=4 (hf-auto)"),
               n2 = md.find("**Nothing works on 2 GPUs**"), n1 = md.find("**Nothing works on 1 GPU**"),
               model = md.find("**Model**");
  EXPECT_LT(r8, r4);
  EXPECT_LT(r4, n2);
  EXPECT_LT(n2, n1);
  EXPECT_LT(n1, model);
  EXPECT_EQ(md.find("Recommended on 8 GPUs", r8 + 1), std::string::npos) << "said twice";

  const std::string html = render_report_html(r);
  const size_t h1 = html.find("</h1>");
  ASSERT_NE(h1, std::string::npos);
  EXPECT_EQ(html.find("<section class=\"recs\" aria-label=\"Recommendation\"><div class=\"recommend\"><b>Recommended on 8 "
                      "GPUs: TP=8 (replicate-kv)</b> — "),
            h1 + 5)
      << html.substr(h1, 400);
  const size_t h8 = html.find("Recommended on 8 GPUs");
  EXPECT_LT(html.find("Recommended on 4 GPUs: TP=4 (hf-auto)"), html.find("<p class=\"meta\">"));
  EXPECT_EQ(html.find("Recommended on 8 GPUs", h8 + 1), std::string::npos) << "said twice";
}

// ---- JSON: stable, documented ----

namespace {
void collect_keys(const nlohmann::json& j, std::set<std::string>* keys) {
  if (j.is_object()) {
    for (const auto& [k, v] : j.items()) {
      keys->insert(k);
      if (k != "values") collect_keys(v, keys);  // a finding's "values" are free-form numbers
    }
  } else if (j.is_array()) {
    for (const auto& v : j) collect_keys(v, keys);
  }
}
}  // namespace

TEST(ReportJson, SchemaFieldsAndEveryKeyDocumented) {
  const auto j = nlohmann::json::parse(render_report_json(big_report()));
  EXPECT_EQ(j["schema"], "shardcheck.report/1");
  EXPECT_EQ(j["assumptions"]["gpu_mem_gib"], 141.0);
  EXPECT_EQ(j["assumptions"]["batch"], 64);
  EXPECT_EQ(j["assumptions"]["seq"], 103);
  EXPECT_EQ(j["config"]["kv_heads"], 4);
  bool seen = false;
  for (const auto& s : j["strategies"]) {
    EXPECT_TRUE(s.contains("outcome") && s["outcome"].contains("source"));
    if (s["gpus"] == 8 && s["id"] == "tp-hf-auto") {
      seen = true;
      EXPECT_EQ(s["outcome"]["value"], "fails");
      EXPECT_EQ(s["outcome"]["source"], "predicted");
      EXPECT_EQ(s["first_failing_invariant"]["error_text"], kUsersError);
      EXPECT_EQ(s["communication"]["total_bytes"], 2961056.0);
      EXPECT_EQ(s["communication"]["source"], "predicted");
      EXPECT_EQ(s["memory"]["per_gpu_bytes"]["source"], "predicted");
      EXPECT_EQ(s["memory"]["per_rank"].size(), 8u);
      EXPECT_TRUE(s["throughput"].is_null());
      EXPECT_TRUE(s["run"].is_null());
    }
    if (s["gpus"] == 8 && s["id"] == "pp") {
      EXPECT_EQ(s["pipeline"]["bubble"], "7/8");
      EXPECT_DOUBLE_EQ(s["pipeline"]["busy_fraction"].get<double>(), 0.125);
    }
  }
  EXPECT_TRUE(seen);
  // Stable: the same input renders byte-identical JSON.
  EXPECT_EQ(render_report_json(big_report()), render_report_json(compare_strategies(big(), StrategyOptions{})));

  // Every key the report emits is documented in docs/report-schema.md (with and without a run).
  const std::string doc = slurp(std::string(SC_FIXTURES) + "/../docs/report-schema.md");
  ASSERT_FALSE(doc.empty()) << "docs/report-schema.md missing";
  std::set<std::string> keys;
  collect_keys(j, &keys);
  RunResult run;
  run.plan = plan(8, 1, 1, DType::BF16, PlanStyle::ReplicateKv);
  run.tokens_per_s = 10;
  run.comparisons = {TensorComparison{}};
  run.errors = {RankError{}};
  StrategyOptions o;
  o.gpus = {8};
  StrategyReport withrun = compare_strategies(big(), o, {run});
  withrun.checkpoint = CheckpointSummary{};
  collect_keys(nlohmann::json::parse(render_report_json(withrun)), &keys);
  for (const auto& k : keys) EXPECT_TRUE(contains(doc, "`" + k + "`")) << "undocumented key: " << k;
}

// ---- HTML ----

TEST(ReportHtml, SelfContainedWellFormedWithSvgCharts) {
  const std::string html = render_report_html(big_report());
  EXPECT_EQ(html.rfind("<!DOCTYPE html>", 0), 0u);
  EXPECT_TRUE(contains(html, "<svg"));
  EXPECT_TRUE(contains(html, "aria-label=\"Memory per GPU on 8 GPUs\""));
  EXPECT_TRUE(contains(html, "aria-label=\"Communication per token on 8 GPUs\""));
  EXPECT_TRUE(contains(html, "GiB per GPU (predicted ᵖ)"));  // labelled axes
  EXPECT_TRUE(contains(html, "141 GiB per GPU"));
  EXPECT_TRUE(contains(html, "shape &apos;[64, 103, -1, 128]&apos; is invalid for input of size 421888"));
  EXPECT_TRUE(contains(html, "No measured runs attached"));
  // No network and no JavaScript: nothing to fetch, nothing to run.
  for (const char* banned : {"<script", "http://", "https://", "src=", "@import", "url(", "<link", "javascript:"})
    EXPECT_FALSE(contains(html, banned)) << banned;
  // Well-formed: the page parses as XML after the doctype (void elements are self-closed).
  std::map<std::string, int> counts;
  std::string root, err;
  ASSERT_TRUE(sctest::xml_element_counts(html, &counts, &root, &err)) << err;
  EXPECT_EQ(root, "html");
  EXPECT_GE(counts["svg"], 2);
  EXPECT_EQ(counts["table"], 1);
  EXPECT_GE(counts["rect"], 50);
}

TEST(ReportHtml, RendersInHeadlessChromium) {
  std::string browser;
  for (const char* b : {"chromium", "chromium-browser", "google-chrome"})
    if (std::system((std::string("command -v ") + b + " >/dev/null 2>&1").c_str()) == 0) {
      browser = b;
      break;
    }
  if (browser.empty()) GTEST_SKIP() << "chromium not installed (apt-get install -y chromium)";
  const std::string page = temp_path("report_render.html"), png = temp_path("report_render.png"),
                    dom = temp_path("report_render.dom");
  std::ofstream(page) << render_report_html(big_report());
  std::remove(png.c_str());
  const std::string flags = " --headless --no-sandbox --disable-gpu --hide-scrollbars --no-first-run "
                            "--user-data-dir=" + temp_path("chromium-profile") + " ";
  ASSERT_EQ(std::system(("timeout 120 " + browser + flags + "--dump-dom file://" + page + " >" + dom + " 2>/dev/null").c_str()), 0);
  const std::string d = slurp(dom);
  EXPECT_TRUE(contains(d, "<svg")) << d.substr(0, 500);
  EXPECT_TRUE(contains(d, "Recommended on 8 GPUs"));
  ASSERT_EQ(std::system(("timeout 120 " + browser + flags + "--window-size=1280,1600 --screenshot=" + png + " file://" +
                         page + " >/dev/null 2>&1")
                            .c_str()),
            0);
  const std::string bytes = slurp(png);
  ASSERT_GT(bytes.size(), 20000u);  // a blank page compresses to a few KB
  EXPECT_EQ(bytes.substr(0, 8), std::string("\x89PNG\r\n\x1a\n", 8));
}

namespace {
// A report whose table holds the widest cells it can: every GPU count, measured rows (a reduced
// run raising the predicted text, matching runs with NMSE and tokens/s).
StrategyReport report_with_runs() {
  RunResult err;
  err.plan = plan(8, 1, 1, DType::F32);
  err.plan.batch = 2;
  err.plan.seq = 16;
  err.backend = "gloo";
  err.device = "cpu";
  err.verdict = Verdict::Error;
  err.scale = "tiny width, hidden 256 (of 4096)";
  err.errors = {RankError{0, "layer 0 self_attn (k view)", "shape '[2, 16, -1, 128]' is invalid for input of size 2048"}};
  RunResult ok = err;
  ok.plan = plan(8, 1, 1, DType::F32, PlanStyle::ReplicateKv);
  ok.verdict = Verdict::Match;
  ok.errors.clear();
  ok.comparisons = {TensorComparison{"logits", -1, 1.7e-13, 2.4e-06, 32, 0, 3, 3}};
  ok.tolerance_nmse = 1e-8;
  ok.tokens_per_s = 123456;
  RunResult ep = ok;
  ep.plan = plan(8, 8, 1, DType::F32, PlanStyle::ReplicateKv);
  return compare_strategies(big(), StrategyOptions{}, {err, ok, ep});
}

std::string chromium() {
  for (const char* b : {"chromium", "chromium-browser", "google-chrome"})
    if (std::system((std::string("command -v ") + b + " >/dev/null 2>&1").c_str()) == 0) return b;
  return "";
}
}  // namespace

TEST(ReportHtml, AllStrategiesTableSitsInABoundedScrollContainer) {
  // Structure only (no browser): what this proves is that the table can never widen the page —
  // it sits in a container with max-width:100% and overflow-x:auto inside <main> (max-width
  // 1180 px), and no table rule fixes a width in px. It cannot prove the columns fit without a
  // scroll bar: fonts decide that (the Chromium test below measures it).
  const std::string html = render_report_html(report_with_runs());
  EXPECT_TRUE(contains(html, ".tw{overflow-x:auto;max-width:100%}"));
  EXPECT_TRUE(contains(html, "main{max-width:1180px;"));
  EXPECT_TRUE(contains(html, "<h2>All strategies</h2><div class=\"tw\"><table>"));
  const size_t t = html.find("<div class=\"tw\"><table>");
  EXPECT_EQ(html.find("</table></div>", t), html.find("</table>", t));
  EXPECT_EQ(html.find("<table", t + 20), std::string::npos) << "one table";
  // No column with a fixed width: no th / td rule nor cell carries a px width or a no-wrap header.
  const size_t css0 = html.find("<style>"), css1 = html.find("</style>");
  std::istringstream css(html.substr(css0, css1 - css0));
  for (std::string rule; std::getline(css, rule, '}');) {
    const std::string sel = rule.substr(0, rule.find('{'));
    if (sel.find("th") == std::string::npos && sel.find("td") == std::string::npos) continue;
    EXPECT_FALSE(contains(rule, "width:")) << rule;
    if (sel.find("th") != std::string::npos) EXPECT_FALSE(contains(rule, "nowrap")) << rule;
  }
  const std::string table = html.substr(t, html.find("</table>", t) - t);
  EXPECT_FALSE(contains(table, "<th style=")) << "no inline column width";
  EXPECT_FALSE(contains(table, "<col")) << "no fixed column widths";
}

TEST(ReportHtml, AllStrategiesTableFitsA1400PxWindowInChromium) {
  // Measured: a copy of the page with a script (the page itself has none) that records the table
  // container's scrollWidth - clientWidth after layout, in a 1400 px wide headless Chromium; 0 means
  // no horizontal scroll bar. It holds for Chromium's fonts on this machine, with measured rows.
  const std::string browser = chromium();
  if (browser.empty()) GTEST_SKIP() << "chromium not installed (apt-get install -y chromium)";
  std::string page = render_report_html(report_with_runs());
  ASSERT_TRUE(contains(page, "123456 ᵐ (tiny)"));  // the widest tokens/s cell is there
  const std::string probe =
      "<script>addEventListener('load',()=>{const t=document.querySelector('.tw');"
      "document.body.setAttribute('data-overflow',String(t.scrollWidth-t.clientWidth));"
      "document.body.setAttribute('data-page-overflow',String(document.documentElement.scrollWidth-innerWidth))})</script>";
  page.replace(page.find("</body>"), 7, probe + "</body>");
  const std::string path = temp_path("report_1400.html"), dom = temp_path("report_1400.dom");
  std::ofstream(path) << page;
  const std::string cmd = "timeout 120 " + browser + " --headless --no-sandbox --disable-gpu --hide-scrollbars "
                          "--no-first-run --disable-background-networking --user-data-dir=" +
                          temp_path("chromium-profile-1400") + " --window-size=1400,1800 --dump-dom file://" + path +
                          " >" + dom + " 2>/dev/null";
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  const std::string d = slurp(dom);
  EXPECT_TRUE(contains(d, "data-overflow=\"0\"")) << d.substr(d.find("<body"), 200);
  EXPECT_TRUE(contains(d, "data-page-overflow=\"0\"")) << d.substr(d.find("<body"), 200);
}

// ---- Checkpoint comparison ----

TEST(ReportCheckpoint, ComparesNamesAndShapes) {
  const std::string dir = std::string(SC_FIXTURES) + "/models/moe-tiny";
  const ModelConfig c = ModelConfig::from_file(dir + "/config.json");
  const CheckpointSummary s = summarize_checkpoint(c, dir);
  EXPECT_TRUE(s.consistent()) << (s.problems.empty() ? "" : s.problems[0]);
  EXPECT_EQ(s.tensors, 69);
  EXPECT_EQ(s.dtype, "F32");
  EXPECT_EQ(s.bytes, 792320);
  // Another model's config against this checkpoint: shapes and names disagree.
  const ModelConfig other = ModelConfig::from_file(std::string(SC_FIXTURES) + "/models/moe-kv1/config.json");
  const CheckpointSummary bad = summarize_checkpoint(other, dir);
  EXPECT_FALSE(bad.consistent());
  EXPECT_FALSE(bad.problems.empty());
}

// ---- CLI ----

TEST(ReportCli, WritesAllOutputsAtomicallyAndPrintsMarkdownByDefault) {
  const std::string md = temp_path("r.md"), js = temp_path("r.json"), html = temp_path("r.html");
  for (const auto& f : {md, js, html}) std::remove(f.c_str());
  Out o = run("report " + cfg("qwen3-235b-a22b") + " --md " + md + " --out-json " + js + " --html " + html);
  ASSERT_EQ(o.code, 0) << o.out;
  EXPECT_TRUE(contains(slurp(md), kUsersError));
  EXPECT_EQ(nlohmann::json::parse(slurp(js))["schema"], "shardcheck.report/1");
  EXPECT_TRUE(contains(slurp(html), "<svg"));
  EXPECT_TRUE(contains(o.out, "wrote " + html));

  Out plain = run("report " + cfg("qwen3-235b-a22b"));
  EXPECT_EQ(plain.code, 0);
  EXPECT_EQ(plain.out.rfind("## shardcheck strategy report: qwen3-235b-a22b", 0), 0u) << plain.out.substr(0, 200);

  Out json = run("report " + cfg("qwen3-235b-a22b") + " --json --gpus 8 --gpu-mem 80");
  ASSERT_EQ(json.code, 0);
  const auto j = nlohmann::json::parse(json.out);
  EXPECT_EQ(j["assumptions"]["gpu_mem_gib"], 80.0);
  EXPECT_EQ(j["assumptions"]["gpus"], nlohmann::json::array({8}));

  // A checkpoint and harness runs are optional inputs.
  const std::string runs = temp_path("runs.json");
  RunResult r;
  r.plan = plan(2, 1, 1, DType::F32);
  r.tokens_per_s = 99;
  std::ofstream(runs) << nlohmann::json{{"runs", nlohmann::json::array({nlohmann::json(r)})}}.dump();
  const std::string tiny = std::string(SC_FIXTURES) + "/models/moe-tiny";
  Out withck = run("report " + tiny + "/config.json --gpus 1,2 --checkpoint " + tiny + " --runs " + runs + " --json");
  ASSERT_EQ(withck.code, 0) << withck.out;
  const auto k = nlohmann::json::parse(withck.out);
  EXPECT_TRUE(k["checkpoint"]["consistent"].get<bool>());
  bool measured = false;
  for (const auto& s : k["strategies"])
    if (s["id"] == "tp-hf-auto") measured = s["throughput"]["tokens_per_s"]["value"] == 99.0;
  EXPECT_TRUE(measured) << withck.out;
}

TEST(ReportCli, BadInputExitsTwoNamingTheFile) {
  const std::string missing = temp_path("absent/config.json");
  Out o = run("report " + missing);
  EXPECT_EQ(o.code, 2);
  EXPECT_TRUE(contains(o.out, missing)) << o.out;
  const std::string broken = temp_path("broken_config.json");
  std::ofstream(broken) << "{\"hidden_size\": 64,";
  o = run("report " + broken);
  EXPECT_EQ(o.code, 2);
  EXPECT_TRUE(contains(o.out, broken)) << o.out;
  const std::string badruns = temp_path("bad_runs.json");
  std::ofstream(badruns) << "[{\"plan\": {\"tp\": 2, \"plan\": \"nope\"}}]";
  o = run("report " + cfg("qwen3-235b-a22b") + " --runs " + badruns);
  EXPECT_EQ(o.code, 2);
  EXPECT_TRUE(contains(o.out, badruns)) << o.out;
  EXPECT_EQ(run("report " + cfg("qwen3-235b-a22b") + " --gpus 0").code, 2);
  EXPECT_EQ(run("report " + cfg("qwen3-235b-a22b") + " --gpus 1,x").code, 2);
  EXPECT_EQ(run("report " + cfg("qwen3-235b-a22b") + " --seq 0").code, 2);
  EXPECT_EQ(run("report " + cfg("qwen3-235b-a22b") + " --gpu-mem -1").code, 2);
  EXPECT_EQ(run("report " + cfg("qwen3-235b-a22b") + " --checkpoint " + temp_path("no_ckpt")).code, 2);
  EXPECT_EQ(run("report " + cfg("qwen3-235b-a22b") + " --html " + temp_path("no_dir/x.html")).code, 2);
}

TEST(ReportRuns, ReadsTheOutputOfShardcheckRunJson) {
  // `shardcheck run --json` wraps the RunResult: {"run": ..., "predicted": ..., "agreement": ...}.
  RunResult r;
  r.model = "moe-tiny";
  r.plan = plan(2, 2, 1, DType::F64, PlanStyle::HfAuto);
  r.backend = "gloo";
  r.verdict = Verdict::Match;
  const std::string path = ::testing::TempDir() + "/run_output.json";
  std::ofstream(path) << nlohmann::json{{"run", r}, {"agreement", "prediction agrees"}}.dump();
  std::vector<RunResult> got = read_run_results(path);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].plan.tp, 2);
  EXPECT_EQ(got[0].plan.ep, 2);
  EXPECT_EQ(got[0].verdict, Verdict::Match);
}
