// The torch subcommands end to end: `shardcheck repro` (the README's main job) and `shardcheck run`.
#include "tests/cli_runner.h"
#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>
#include <sys/wait.h>

namespace {
using Out = sctest::CliOut;
Out run(const std::string& args) { return sctest::run_cli(args); }
size_t count(const std::string& hay, const std::string& needle) {
  size_t n = 0;
  for (size_t p = hay.find(needle); p != std::string::npos; p = hay.find(needle, p + 1)) ++n;
  return n;
}
}  // namespace

TEST(CliRun, ReproReproducesAndShowsFixes) {
  Out o = run("repro --hidden 64");
  EXPECT_EQ(o.code, 0) << o.out;
  // Every one of the 8 ranks raises the users' exact text.
  EXPECT_EQ(count(o.out, "(layer 0): shape '[64, 103, -1, 128]' is invalid for input of size 421888"), 8u) << o.out;
  EXPECT_NE(o.out.find("=> reproduced"), std::string::npos);
  EXPECT_NE(o.out.find("replicate-kv at TP=8: match"), std::string::npos) << o.out;
  EXPECT_NE(o.out.find("hf-auto at TP=4:      match"), std::string::npos) << o.out;
}

TEST(CliRun, RunCheckpointJsonAndExitCodes) {
  const std::string dir = std::string(SC_FIXTURES) + "/models/moe-tiny";
  Out ok = run("run --model " + dir + " --tp 2 --ep 2 --dtype float64 --json");
  ASSERT_EQ(ok.code, 0) << ok.out;
  auto j = nlohmann::json::parse(ok.out);
  EXPECT_EQ(j["run"]["verdict"], "match");
  EXPECT_EQ(j["agreement"], "prediction agrees");
  Out fail = run("run --model " + dir + " --tp 4 --batch 2 --seq 5");
  EXPECT_EQ(fail.code, 1) << fail.out;
  EXPECT_NE(fail.out.find("shape '[2, 5, -1, 32]' is invalid for input of size 160"), std::string::npos) << fail.out;
  EXPECT_NE(fail.out.find("prediction agrees"), std::string::npos) << fail.out;
  Out bad = run("run --model /nonexistent --tp 2");
  EXPECT_EQ(bad.code, 2) << bad.out;
  EXPECT_NE(bad.out.find("/nonexistent"), std::string::npos);
}

// `shardcheck bench` on the CPU: the eager layer timed with its FLOP count (hand-computed for
// moe-tiny layer 0 at batch 2 x seq 8), `best` resolves to eager on a CPU, and a kernel the
// device lacks is bad input (exit 2) naming it.
TEST(CliRun, BenchTimesALayerAndRefusesUnavailableKernels) {
  const std::string dir = std::string(SC_FIXTURES) + "/models/moe-tiny";
  Out ok = run("bench --model " + dir + " --dtype float32 --batch 2 --seq 8 --repeats 2 --warmup 1 --kernels eager"
               " --kernels best --breakdown --json");
  ASSERT_EQ(ok.code, 0) << ok.out;
  auto j = nlohmann::json::parse(ok.out);
  EXPECT_EQ(j["device"], "cpu");
  ASSERT_EQ(j["results"].size(), 2u);
  EXPECT_EQ(j["results"][0]["kernels"], "eager");
  EXPECT_EQ(j["results"][1]["kernels"], "eager");
  EXPECT_GT(j["results"][0]["layer_ms"].get<double>(), 0.0);
  EXPECT_TRUE(j["results"][0]["breakdown"].contains("moe_block_ms"));
  // moe-tiny: hidden 64, 8 q / 2 kv heads x 32, 8 experts top-2, moe_intermediate 32; T = 16.
  const double T = 16, H = 64, q = 256, kv = 64;
  const double flops = 2 * T * H * (q + 2 * kv) + 2 * T * q * H + 2.0 * 2 * 8 * 8 * 8 * 32 + 2 * T * H * 8 +
                       2 * T * 2 * 3 * H * 32;
  EXPECT_NEAR(j["layer_tflop"].get<double>() * 1e12, flops, 1.0);
  Out bad = run("bench --model " + dir + " --dtype float32 --batch 1 --seq 4 --kernels sdpa");
  EXPECT_EQ(bad.code, 2) << bad.out;
  EXPECT_NE(bad.out.find("kernel 'sdpa' is not available for Float on cpu"), std::string::npos) << bad.out;
}
