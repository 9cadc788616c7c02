// Reduced-width configs for `report --run` (models/reduced.h): the sizes are hand-computed, and
// the checker must predict the same shape failures (ids and exact texts) for the reduced model as
// for the real one, for every strategy the report runs.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>

#include "checks/checker.h"
#include "checks/strategies.h"
#include "models/reduced.h"

using namespace sc;

TEST(ReducedConfig, SizesKeepDivisibilityByTwoToSixteen) {
  // 12288 = 2^12 * 3: divisible by 2,3,4,6,8,12,16 only; 1024 is not divisible by 3, 1056 = 48 * 22
  // is divisible by 11, 1104 = 48 * 23 is the first that matches.
  EXPECT_EQ(reduced_size(12288, 1024, 16), 1104);
  EXPECT_EQ(reduced_size(1536, 64, 16), 96);        // 1536 = 2^9 * 3: 48 * 2
  EXPECT_EQ(reduced_size(151936, 1024, 16), 1024);  // 151936 = 2^7 * 1187: same divisors in 2..16 as 1024
  EXPECT_EQ(reduced_size(4096, 256, 16), 256);
  EXPECT_EQ(reduced_size(100, 256, 16), 100);  // target above the original: unchanged
  EXPECT_EQ(reduced_size(6, 4, 16), 6);        // neither 4 nor 5 is divisible by exactly 2, 3, 6
  EXPECT_EQ(reduced_size(20, 3, 4), 4);        // d in 2..4: 20 by 2 and 4, not 3; 3 fails, 4 matches
  EXPECT_EQ(reduced_size(10, 3, 4), 10);       // 10 by 2 only: 3..9 each differ (3, 4, 5, 6, 7, 8, 9)
  EXPECT_EQ(reduced_size(4096, 0, 16), 4096);  // 0 = keep
}

TEST(ReducedConfig, Qwen3_235B_KeepsTheFailureGeometry) {
  const ModelConfig c = configs::qwen3_235b_a22b();
  ReduceOptions o;
  o.layers = 1;
  const ModelConfig r = reduce_config(c, o);
  EXPECT_EQ(r.name, "qwen3-235b-a22b-reduced");
  EXPECT_EQ(r.hidden_size, 256);
  EXPECT_EQ(r.moe_intermediate_size, 96);
  EXPECT_EQ(r.vocab_size, 1024);
  EXPECT_EQ(r.num_hidden_layers, 1);
  EXPECT_EQ(r.num_attention_heads, 64);
  EXPECT_EQ(r.num_key_value_heads, 4);
  EXPECT_EQ(r.head_dim, 128);
  EXPECT_EQ(r.num_experts, 128);
  EXPECT_EQ(r.num_experts_per_tok, 8);
  EXPECT_EQ(describe_reduction(c, r),
            "hidden 256 (of 4096), moe_intermediate 96 (of 1536), vocab 1024 (of 151936), 1 layer (of 94)");
  EXPECT_EQ(describe_reduction(c, c), "full widths");
}

// The error findings other than memory, as "id: text" lines.
static std::vector<std::string> shape_errors(const ModelConfig& c, const ParallelPlan& p) {
  std::vector<std::string> out;
  for (const auto& f : check(c, p).findings)
    if (f.severity == Severity::Error && f.id != "memory" && f.id != "memory-loading")
      out.push_back(f.id + ": " + f.error_text);
  std::sort(out.begin(), out.end());
  return out;
}

TEST(ReducedConfig, EveryRealConfigAndStrategyPredictsTheSameFailures) {
  int compared = 0, failing = 0;
  for (const ModelConfig& c : configs::all_real()) {
    StrategyOptions o;
    for (int64_t g : {2, 4, 8, 16}) {
      for (const Strategy& st : strategies_for(c, g, o)) {
        if (!st.applicable) continue;
        ParallelPlan p = st.plan;
        p.batch = 2;
        p.seq = 16;
        p.dtype = DType::F32;
        ReduceOptions ro;
        ro.layers = std::max<int64_t>(1, p.pp);
        const ModelConfig r = reduce_config(c, ro);
        const auto full = shape_errors(c, p), reduced = shape_errors(r, p);
        EXPECT_EQ(full, reduced) << c.name << " on " << g << " GPUs, " << st.name;
        ++compared;
        failing += full.empty() ? 0 : 1;
      }
    }
  }
  EXPECT_GT(compared, 100);
  EXPECT_GT(failing, 5);  // the comparison covers failing layouts, not only passing ones
}

TEST(ReducedConfig, ReportRunsEveryRowExceptMemoryFailures) {
  StrategyOptions o;
  o.gpus = {8};
  const StrategyReport r = compare_strategies(configs::qwen3_235b_a22b(), o);
  for (const char* id : {"pp", "tp-hf-auto", "tp-pp", "tp-replicate-kv", "ep-shard-only", "tp-ep"})
    EXPECT_EQ(why_not_run(*find_result(r, 8, id)), "") << id;
  const std::string why = why_not_run(*find_result(r, 8, "ep-full-loading"));
  EXPECT_EQ(why.rfind("not run at full size: memory is the failure (predicted ", 0), 0u) << why;
  EXPECT_NE(why.find(" while loading > 141 GiB)"), std::string::npos) << why;
}
