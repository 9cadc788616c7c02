// `shardcheck report --run` end to end: the report launches the harness itself for Qwen3-235B-A22B
// on 8 GPUs (8 Gloo ranks as threads, tiny widths with the real head / expert geometry) and puts
// the measured figures beside the predicted ones. The expected texts are hand-computed: at batch
// 2 x seq 16, TP=8 hf-auto gives each rank 512 / 8 = 64 k_proj columns, half a 128-wide head, and
// view(2, 16, -1, 128) of 2 * 16 * 64 = 2048 elements fails.
#include "tests/cli_runner.h"
#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <sys/wait.h>
#include <unistd.h>

namespace {
using Out = sctest::CliOut;
Out run(const std::string& args) { return sctest::run_cli(args); }
std::string slurp(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}
bool contains(const std::string& hay, const std::string& needle) { return hay.find(needle) != std::string::npos; }
const nlohmann::json* row(const nlohmann::json& j, int gpus, const std::string& id) {
  for (const auto& s : j["strategies"])
    if (s["gpus"] == gpus && s["id"] == id) return &s;
  return nullptr;
}
const char* kRunError = "shape '[2, 16, -1, 128]' is invalid for input of size 2048";
const char* kUsersError = "shape '[64, 103, -1, 128]' is invalid for input of size 421888";
}  // namespace

TEST(ReportRun, Qwen3_235B_OnEightGpusMeasuredBesidePredicted) {
  const std::string dir = ::testing::TempDir() + "report_run_" + std::to_string(getpid());
  const std::string md = dir + ".md", js = dir + ".json";
  Out o = run("report " SC_FIXTURES "/configs/qwen3-235b-a22b/config.json --gpus 8 --run --md " + md +
              " --out-json " + js);
  ASSERT_EQ(o.code, 0) << o.out;
  const nlohmann::json j = nlohmann::json::parse(slurp(js));
  const std::string m = slurp(md);

  ASSERT_FALSE(j["runs_launched"].is_null());
  EXPECT_EQ(j["runs_launched"]["backend"], "gloo");
  EXPECT_EQ(j["runs_launched"]["batch"], 2);
  EXPECT_EQ(j["runs_launched"]["seq"], 16);
  EXPECT_EQ(j["runs_launched"]["scale"],
            "tiny width, hidden 256 (of 4096), moe_intermediate 96 (of 1536), vocab 1024 (of 151936), one layer per "
            "pipeline stage (of 94); random weights, gloo on cpu");

  // TP=8 hf-auto: every rank raises exactly the text the checker predicts for the run's shape; the
  // report's own (predicted) first failing invariant keeps the users' text at batch 64 x seq 103.
  const auto* tp = row(j, 8, "tp-hf-auto");
  ASSERT_TRUE(tp);
  EXPECT_EQ((*tp)["outcome"]["value"], "fails");
  EXPECT_EQ((*tp)["outcome"]["source"], "measured");
  EXPECT_EQ((*tp)["predicted_outcome"], "fails");
  EXPECT_FALSE((*tp)["prediction_disagrees"].get<bool>());
  EXPECT_EQ((*tp)["first_failing_invariant"]["error_text"], kUsersError);
  EXPECT_EQ((*tp)["correctness"]["predicted_error_text"], kRunError);
  ASSERT_EQ((*tp)["correctness"]["observed_errors"].size(), 1u);
  EXPECT_EQ((*tp)["correctness"]["observed_errors"][0]["text"], kRunError);
  EXPECT_EQ((*tp)["correctness"]["observed_errors"][0]["ranks"], nlohmann::json({0, 1, 2, 3, 4, 5, 6, 7}));
  EXPECT_TRUE((*tp)["correctness"]["error_text_matches"].get<bool>());
  EXPECT_TRUE((*tp)["correctness"]["max_nmse"].is_null());

  // The layouts that work are measured matching the single-device reference (float32 tolerance),
  // with measured tiny-width throughput; memory, communication and bubble stay predicted.
  for (const char* id : {"tp-pp", "tp-replicate-kv", "pp", "ep-shard-only", "tp-ep"}) {
    const auto* r = row(j, 8, id);
    ASSERT_TRUE(r) << id;
    EXPECT_EQ((*r)["outcome"]["value"], "works") << id;
    EXPECT_EQ((*r)["outcome"]["source"], "measured") << id;
    EXPECT_EQ((*r)["correctness"]["value"], "match") << id;
    EXPECT_EQ((*r)["correctness"]["source"], "measured") << id;
    EXPECT_TRUE((*r)["correctness"]["predicted_error_text"].is_null()) << id;
    ASSERT_TRUE((*r)["correctness"]["max_nmse"].is_object()) << id;
    EXPECT_EQ((*r)["correctness"]["max_nmse"]["source"], "measured") << id;
    EXPECT_LE((*r)["correctness"]["max_nmse"]["value"].get<double>(), 1e-4) << id;
    EXPECT_EQ((*r)["memory"]["per_gpu_bytes"]["source"], "predicted") << id;
    EXPECT_EQ((*r)["communication"]["source"], "predicted") << id;
    EXPECT_EQ((*r)["pipeline"]["source"], "predicted") << id;
    ASSERT_TRUE((*r)["throughput"].is_object()) << id;
    EXPECT_EQ((*r)["throughput"]["tokens_per_s"]["source"], "measured") << id;
    EXPECT_GT((*r)["throughput"]["tokens_per_s"]["value"].get<double>(), 0) << id;
    EXPECT_EQ((*r)["throughput"]["tokens"], 32) << id;
    EXPECT_EQ((*r)["throughput"]["device"], "cpu") << id;
    EXPECT_TRUE(contains((*r)["throughput"]["scale"].get<std::string>(), "tiny width, hidden 256 (of 4096)")) << id;
    // A tiny-width loading peak is not put beside the full-size prediction.
    EXPECT_TRUE((*r)["memory"]["measured_loading_peak_bytes"].is_null()) << id;
  }
  EXPECT_EQ((*row(j, 8, "tp-pp"))["run"]["plan"]["tp"], 4);
  EXPECT_EQ((*row(j, 8, "tp-pp"))["run"]["plan"]["pp"], 2);
  EXPECT_EQ((*row(j, 8, "pp"))["pipeline"]["bubble"], "7/8");
  EXPECT_TRUE(contains((*row(j, 8, "pp"))["run"]["scale"].get<std::string>(), "8 layers (of 94)"));

  // EP with full-tensor loading: memory is the failure, so it is not run, and the row says so.
  const auto* ep = row(j, 8, "ep-full-loading");
  ASSERT_TRUE(ep);
  EXPECT_EQ((*ep)["outcome"]["value"], "out-of-memory");
  EXPECT_EQ((*ep)["outcome"]["source"], "predicted");
  EXPECT_TRUE((*ep)["run"].is_null());
  EXPECT_EQ((*ep)["correctness"]["value"], "not-run");
  EXPECT_TRUE(contains((*ep)["note"].get<std::string>(), "Not run: not run at full size: memory is the failure"))
      << (*ep)["note"];

  // The Markdown shows both: the predicted users' text and what the ranks raised.
  EXPECT_TRUE(contains(m, "**TP=8 (hf-auto)** *(tried)* — failsᵐ: `" + std::string(kUsersError) + "`ᵖ")) << m;
  EXPECT_TRUE(contains(m, "ᵐ gloo run (tiny width, batch 2 × seq 16): ranks 0-7 raised `" + std::string(kRunError) +
                              "` — exactly the checker's prediction for this shape"))
      << m;
  EXPECT_TRUE(contains(m, "ᵐ gloo run (tiny width, batch 2 × seq 16): match vs the single-device reference (max NMSE "))
      << m;
  EXPECT_TRUE(contains(m, "**Harness runs** (`--run`): 6 layouts run by the report in ")) << m;
  EXPECT_TRUE(contains(m, "(every GPU reads full tensors before slicing) (`memory-loading`)  \n  Not run at full size: memory "
                          "is the failure (predicted 437.9 GiB per GPU while loading > 141 GiB), which a reduced-width "
                          "run cannot show.\n"))
      << m;
  EXPECT_TRUE(contains(m, "matchᵐ (NMSE ")) << m;
  EXPECT_TRUE(contains(m, "errorᵐ (text = predicted)")) << m;
  EXPECT_TRUE(contains(m, "ᵐ (tiny cpu)")) << m;
  std::remove(md.c_str());
  std::remove(js.c_str());
}

TEST(ReportRun, BadRunOptionsExitTwo) {
  Out o = run("report " SC_FIXTURES "/configs/qwen3-235b-a22b/config.json --gpus 8 --run --backend mpi");
  EXPECT_EQ(o.code, 2) << o.out;
  EXPECT_TRUE(contains(o.out, "--backend")) << o.out;
  EXPECT_TRUE(contains(o.out, "mpi")) << o.out;
  o = run("report " SC_FIXTURES "/configs/qwen3-235b-a22b/config.json --gpus 8 --run --run-batch 0");
  EXPECT_EQ(o.code, 2) << o.out;
  EXPECT_TRUE(contains(o.out, "--run-batch")) << o.out;
}
