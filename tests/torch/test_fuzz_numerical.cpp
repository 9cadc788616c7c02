// The numerical fuzz properties with a fixed seed and a small case budget (CI time), and the
// in-process threads backend against real Gloo ranks on fixed cases.
#include <gtest/gtest.h>

#include "checks/checker.h"
#include "harness/executor.h"
#include "harness/fuzz/numerical.h"
#include "harness/fuzz/numerical_case.h"
#include "harness/fuzz/thread_runs.h"

using namespace sc;

namespace {

ModelConfig tiny(bool moe, int64_t heads, int64_t kv, int64_t head_dim, int64_t vocab = 64) {
  ModelConfig c;
  c.name = "tiny";
  c.model_type = moe ? "qwen3_moe" : "qwen3";
  c.hidden_size = 16;
  c.num_attention_heads = heads;
  c.num_key_value_heads = kv;
  c.head_dim = head_dim;
  c.intermediate_size = 24;
  c.num_hidden_layers = 2;
  c.vocab_size = vocab;
  if (moe) {
    c.num_experts = 4;
    c.num_experts_per_tok = 2;
    c.moe_intermediate_size = 8;
  }
  c.dtype = DType::F32;
  return c;
}

ParallelPlan plan(int64_t tp, int64_t ep, int64_t pp, PlanStyle style = PlanStyle::HfAuto) {
  ParallelPlan p;
  p.tp = tp;
  p.ep = ep;
  p.pp = pp;
  p.style = style;
  p.batch = 2;
  p.seq = 3;
  p.dtype = DType::F64;
  return p;
}

// A fixed case, run exactly as the fuzzer runs a generated one (harness/fuzz/numerical_case.h).
fuzz::FuzzCase fuzz_case(const ModelConfig& c, const ParallelPlan& p) {
  fuzz::FuzzCase fc;
  fc.config = c;
  fc.plan = p;
  return fc;
}

std::string error_of(const RunResult& r, int64_t rank) {
  for (const auto& e : r.errors)
    if (e.rank == rank) return e.what;
  return "(no error)";
}

}  // namespace

TEST(FuzzNumerical, PropertiesHoldOnThreadsWithGlooSamples) {
  fuzz::RunOptions o;
  o.seed = 2024;
  o.cases = 25;
  NumericalFuzzOptions n;
  n.gloo_every = 5;  // both properties share the counter: every 5th run also on Gloo
  n.counts = std::make_shared<NumericalFuzzCounts>();
  for (const auto& p : numerical_properties(n)) {
    fuzz::PropertyReport r = fuzz::run_property(p, o);
    EXPECT_TRUE(r.passed) << p.name << ": " << r.failure << "\n" << r.counterexample << r.minimal.dump();
    EXPECT_GE(r.cases, 10) << p.name;
  }
  EXPECT_EQ(n.counts->threads, 50);
  EXPECT_GE(n.counts->gloo, 10);  // the sampled ones (more only if a case had failed on threads)
}

TEST(FuzzNumerical, GlooBackendRunsEveryCaseOnGloo) {
  fuzz::RunOptions o;
  o.seed = 7;
  o.cases = 4;
  NumericalFuzzOptions n;
  n.backend = "gloo";
  n.counts = std::make_shared<NumericalFuzzCounts>();
  auto props = numerical_properties(n);
  fuzz::PropertyReport r = fuzz::run_property(props[0], o);
  EXPECT_TRUE(r.passed) << r.failure << r.minimal.dump();
  EXPECT_EQ(n.counts->gloo, 4);
  EXPECT_EQ(n.counts->threads, 0);
  NumericalFuzzOptions bad;
  bad.backend = "nccl";
  EXPECT_THROW(numerical_properties(bad), PlanError);
}

TEST(FuzzNumerical, ThreadsBackendObservesWhatGlooObserves) {
  struct Case {
    const char* what;
    ModelConfig c;
    ParallelPlan p;
    Verdict expect;
  };
  const std::vector<Case> cases = {
      // hf-auto with 1 KV head over tp=2: each rank holds half a head of K; independent text:
      // k_proj 1 x 8 = 8 columns / 2 = 4 per rank, batch 2 x seq 3 x 4 = 24 elements.
      {"kv split", tiny(false, 2, 1, 8), plan(2, 1, 1), Verdict::Error},
      {"replicate-kv", tiny(false, 2, 1, 8), plan(2, 1, 1, PlanStyle::ReplicateKv), Verdict::Match},
      {"moe tp2 ep2 pp2", tiny(true, 4, 2, 4), plan(2, 2, 2), Verdict::Match},
      {"moe ep4 over tp2", tiny(true, 4, 2, 4), plan(2, 4, 1), Verdict::Match},
      // vocab 64 over tp=3: logits shards of 22, 22, 20 columns cannot be all-gathered.
      {"uneven vocab gather", tiny(false, 3, 3, 4), plan(3, 1, 1), Verdict::Error},
  };
  for (const Case& k : cases) {
    SCOPED_TRACE(k.what);
    const fuzz::FuzzCase fc = fuzz_case(k.c, k.p);
    const CheckResult predicted = check(k.c, k.p);
    const PlanRun t = run_numerical_case_on_threads(fc);
    const PlanRun g = run_numerical_case_on_gloo(fc, predicted);
    EXPECT_EQ(t.result.backend, "threads");
    EXPECT_EQ(t.result.verdict, k.expect) << t.result.summary;
    EXPECT_EQ(g.result.verdict, k.expect) << g.result.summary;
    EXPECT_EQ((predicted.predicted_runtime_failure() != nullptr), k.expect == Verdict::Error);
    // Every predicted per-rank text raised on both backends, and both observe the same.
    EXPECT_EQ(numerical_predicted_vs_observed(fc, predicted, t.result), "");
    EXPECT_EQ(numerical_predicted_vs_observed(fc, predicted, g.result), "");
    EXPECT_EQ(numerical_same_outcome(fc, t.result, g.result), "");
    if (k.expect == Verdict::Match) {
      ASSERT_TRUE(t.captures.logits.defined() && g.captures.logits.defined());
      // Same forward code and weights; only the order of the sums may differ.
      EXPECT_LT((t.captures.logits - g.captures.logits).abs().max().item<double>(), 1e-12);
    }
  }
  // The independent text for the KV split.
  EXPECT_EQ(error_of(run_numerical_case_on_threads(fuzz_case(cases[0].c, cases[0].p)).result, 0),
            "shape '[2, 3, -1, 8]' is invalid for input of size 24");
  // Uneven vocab: HF refuses the plan while loading (lm_head is colwise_gather_output), and so does
  // every rank here, with HF's text (no rank hangs or passes).
  const RunResult u = run_numerical_case_on_threads(fuzz_case(cases[4].c, cases[4].p)).result;
  ASSERT_EQ(u.errors.size(), 3u);
  for (const auto& e : u.errors)
    EXPECT_EQ(e.what,
              "The output size of `lm_head` (64) must be divisible by the tensor parallel size (3) when gathering a "
              "colwise output.");
}

TEST(FuzzNumerical, ReferenceInProcessEqualsTheHarnessReference) {
  const ModelConfig c = tiny(true, 4, 2, 4);
  const RunInputs in = numerical_case_inputs(fuzz_case(c, plan(1, 1, 1)));
  const Captures a = reference_in_process(c, numerical_case_spec(), in);
  const Captures b = run_reference(c, numerical_case_spec(), in);
  ASSERT_EQ(a.layer_out.size(), 2u);
  ASSERT_EQ(b.layer_out.size(), 2u);
  EXPECT_TRUE(at::equal(a.logits, b.logits));
  for (const auto& [l, t] : a.layer_out) EXPECT_TRUE(at::equal(t, b.layer_out.at(l))) << "layer " << l;
  for (const auto& [l, t] : a.topk_ids) EXPECT_TRUE(at::equal(t, b.topk_ids.at(l))) << "layer " << l;
}
