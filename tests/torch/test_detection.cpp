// The detection self-test (CTest label `detection`, docs/detection.md): sharding bugs of 15
// kinds, each seeded through a test-only fault hook (models/fault_hooks.h) and each visible only
// at world size > 1, must be caught and located to the right layer, module and ranks, on real
// Gloo ranks (the harness `run` uses), on the fuzzer's in-process ranks, by the CLI's `run` and
// by `fuzz`. The same battery with no fault injected must match.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <chrono>
#include <string>
#include <vector>

#include "tests/cli_runner.h"
#include "harness/executor.h"
#include "harness/fuzz/numerical_case.h"
#include "harness/fuzz/thread_runs.h"
#include "models/fault_hooks.h"

using namespace sc;

namespace {

const std::string kConfig = std::string(SC_FIXTURES) + "/detection/config.json";

ModelConfig config() { return ModelConfig::from_file(kConfig); }

ParallelPlan plan(int64_t tp, int64_t ep, int64_t pp, int64_t mb = 1, PlanStyle st = PlanStyle::HfAuto) {
  ParallelPlan p;
  p.tp = tp;
  p.ep = ep;
  p.pp = pp;
  p.micro_batches = mb;
  p.style = st;
  p.batch = pp > 1 ? 5 : 4;  // 5 rows in 2 micro-batches: sizes 3 and 2
  p.seq = 8;
  p.dtype = DType::F64;
  return p;
}

RunSpec spec() {
  RunSpec s;
  s.dtype = at::kDouble;
  s.seed = 7;
  s.launch.timeout = std::chrono::milliseconds(30000);
  s.launch.grace = std::chrono::milliseconds(5000);
  return s;
}

struct Case {
  const char* fault;  // --inject-fault text
  ParallelPlan plan;
  int64_t layer;      // expected localisation
  const char* module;
  std::vector<int64_t> ranks;
  std::vector<int64_t> experts = {};  // checked when not empty
};

// One case per bug class of the issue (docs/detection.md has the table).
const std::vector<Case>& cases() {
  static const std::vector<Case> v = {
      {"skip-tp-allreduce,layer=2", plan(2, 1, 1), 2, "self_attn.o_proj all_reduce (tp group)", {0, 1}},
      {"double-expert-allreduce,layer=0", plan(1, 2, 1), 0, "mlp.experts all_reduce (stage group)", {0, 1}},
      {"tp-allreduce-over-stage,layer=3", plan(2, 4, 1), 3, "self_attn.o_proj all_reduce (tp group)", {0, 1, 2, 3}},
      {"q-shard-offset,rank=1,layer=2", plan(2, 1, 1), 2, "self_attn.q_proj", {1}},
      {"o-shard-axis,rank=0,layer=0", plan(2, 1, 1), 0, "self_attn.o_proj", {0}},
      {"k-norm-sliced,rank=1,layer=0", plan(2, 1, 1), 0, "self_attn.k_norm", {1}},
      {"kv-replica,rank=2,layer=0", plan(4, 1, 1, 1, PlanStyle::ReplicateKv), 0, "self_attn.k_proj", {2}},
      {"expert-local-id,rank=1,layer=0", plan(1, 2, 1), 0, "mlp.experts", {1}},
      {"routing-weights-twice,rank=3,layer=2", plan(2, 4, 1), 2, "mlp.experts", {3}},
      {"expert-unowned,rank=1,layer=0", plan(1, 2, 1), 0, "mlp.experts", {1}, {7}},
      {"stage-positions", plan(1, 1, 2, 2), 2, "rotary positions", {1}},
      {"microbatch-mask", plan(1, 1, 2, 2), 0, "attention mask", {0}},
      {"microbatch-order", plan(2, 1, 2, 2), 2, "micro-batch assembly", {2, 3}},
      {"vocab-gather-rotated", plan(2, 1, 1), -1, "lm_head vocab all_gather (tp group)", {0, 1}},
      {"final-norm-sliced,rank=1", plan(2, 1, 1), -1, "model.norm", {1}},
  };
  return v;
}

void expect_located(const RunResult& r, const Case& k, const std::string& how) {
  SCOPED_TRACE(how + " " + k.fault + " " + r.plan.describe());
  ASSERT_EQ(r.verdict, Verdict::Mismatch) << r.summary;
  const Localisation& l = r.localisation;
  ASSERT_TRUE(l.found()) << r.summary;
  EXPECT_EQ(l.layer, k.layer) << l.describe();
  EXPECT_EQ(l.module, k.module) << l.describe();
  EXPECT_EQ(l.ranks, k.ranks) << l.describe();
  if (!k.experts.empty()) EXPECT_EQ(l.experts, k.experts) << l.describe();
  EXPECT_EQ(r.first_divergence, l.describe());
}

}  // namespace

// Every fault on real Gloo ranks (the harness of `shardcheck run`) and on the fuzzer's in-process
// ranks: caught (verdict mismatch) and located to exactly the expected layer, module and ranks.
TEST(Detection, EveryInjectedBugIsCaughtAndLocated) {
  const ModelConfig c = config();
  int caught = 0;
  for (const Case& k : cases()) {
    const RunInputs in = random_inputs(c, k.plan.batch, k.plan.seq, 4);
    ASSERT_TRUE(in.attention_mask.defined());
    const Captures ref = run_reference(c, spec(), in);
    faults::Scoped f(faults::parse(k.fault));
    const PlanRun gloo = run_plan(c, k.plan, spec(), in, &ref);
    expect_located(gloo.result, k, "gloo");
    const PlanRun threads = run_plan_in_threads(c, k.plan, spec(), in);
    expect_located(threads.result, k, "threads");
    caught += gloo.result.localisation.module == k.module && threads.result.localisation.module == k.module;
  }
  EXPECT_EQ(caught, int(cases().size()));
  std::printf("[ detection] %d of %zu injected bug classes caught and located on both backends\n", caught,
              cases().size());
}

// The same battery of plans without a fault: every rank matches at every point.
TEST(Detection, CleanBatteryMatches) {
  const ModelConfig c = config();
  std::vector<ParallelPlan> plans;
  for (const Case& k : cases()) plans.push_back(k.plan);
  plans.push_back(plan(4, 2, 1, 1, PlanStyle::ReplicateKv));  // tp > ep
  plans.push_back(plan(2, 2, 2, 3));
  plans.push_back(plan(1, 3, 1));  // uneven EP: 8 experts over 3 ranks
  plans.push_back(plan(1, 3, 2, 2));
  for (const ParallelPlan& p : plans) {
    const RunInputs in = random_inputs(c, p.batch, p.seq, 4);
    const PlanRun gloo = run_plan(c, p, spec(), in);
    EXPECT_TRUE(gloo.result.ok()) << p.describe() << ": " << gloo.result.summary;
    EXPECT_FALSE(gloo.result.localisation.found()) << gloo.result.localisation.describe();
    EXPECT_GT(gloo.result.points_compared, 0);
    const PlanRun threads = run_plan_in_threads(c, p, spec(), in);
    EXPECT_TRUE(threads.result.ok()) << p.describe() << ": " << threads.result.summary;
  }
}

// The hooks are inert without an injection, and an injection never reaches the reference.
TEST(Detection, FaultSpecParsesAndRejectsBadInput) {
  const faults::Injection f = faults::parse("expert-unowned,rank=1,layer=0");
  EXPECT_EQ(f.kind, faults::Kind::ExpertUnowned);
  EXPECT_EQ(f.rank, 1);
  EXPECT_EQ(f.layer, 0);
  EXPECT_EQ(faults::describe(f), "expert-unowned,rank=1,layer=0");
  EXPECT_EQ(faults::active(), nullptr);
  for (const char* bad : {"nope", "q-shard-offset,rank=x", "q-shard-offset,core=1", "q-shard-offset,rank=-1"}) {
    try {
      faults::parse(bad);
      ADD_FAILURE() << bad;
    } catch (const PlanError& e) {
      EXPECT_NE(std::string(e.what()).find("--inject-fault"), std::string::npos) << e.what();
    }
  }
}

// `shardcheck run` names layer, module and ranks; a bad --inject-fault is one line, exit 2.
TEST(Detection, CliRunLocatesInjectedBugs) {
  struct CliCase {
    const char* args;
    const char* located;
  };
  const CliCase cli[] = {
      {"--tp 2 --inject-fault q-shard-offset,rank=1,layer=2",
       "first divergence: layer 2 self_attn.q_proj on rank 1 (stage 0): q_proj output differs"},
      {"--ep 2 --inject-fault expert-unowned,rank=1,layer=0",
       "first divergence: layer 0 mlp.experts (expert 7) on rank 1 (stage 0)"},
      {"--tp 2 --inject-fault final-norm-sliced,rank=1",
       "first divergence: model.norm on rank 1 (stage 0): final norm output differs"},
  };
  for (const CliCase& k : cli) {
    const auto r = sctest::run_cli("run --config " + kConfig + " --dtype float64 --batch 4 --seq 8 --seed 7 " + k.args);
    EXPECT_EQ(r.code, 1) << r.out;
    EXPECT_NE(r.out.find(k.located), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("verdict: mismatch"), std::string::npos) << r.out;
  }
  const auto clean = sctest::run_cli("run --config " + kConfig + " --dtype float64 --batch 4 --seq 8 --tp 2 --ep 2");
  EXPECT_EQ(clean.code, 0) << clean.out;
  EXPECT_NE(clean.out.find("verdict: match"), std::string::npos) << clean.out;
  const auto bad = sctest::run_cli("run --config " + kConfig + " --tp 2 --inject-fault bogus", true);
  EXPECT_EQ(bad.code, 2);
  EXPECT_EQ(bad.err.rfind("shardcheck: plan error: key '--inject-fault' = bogus: unknown fault", 0), 0u) << bad.err;
}

// `shardcheck fuzz` with an injected fault: the numerical property fails and its message carries
// the localisation.
TEST(Detection, FuzzCatchesAndLocatesInjectedBug) {
  const auto r = sctest::run_cli(
      "fuzz --property sharded-equals-reference --cases 40 --seed 3 --out " + ::testing::TempDir() +
      "/sc_detect_fuzz --inject-fault final-norm-sliced");
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find("sharded-equals-reference"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("FAIL"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("model.norm on rank"), std::string::npos) << r.out;
}
