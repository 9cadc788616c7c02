// The CLI's contract: exit codes (0 pass, 1 error findings, 2 bad usage/input), exact error text,
// JSON output, and one clear line naming the file for bad input.
#include "tests/cli_runner.h"
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <sys/wait.h>
#include <iterator>
#include <utility>
#include <vector>

namespace {

using Out = sctest::CliOut;
Out run(const std::string& args) { return sctest::run_cli(args); }

std::string cfg(const std::string& name) { return std::string(SC_FIXTURES) + "/configs/" + name + "/config.json"; }

std::string temp_file(const std::string& name, const std::string& content) {
  std::string path = ::testing::TempDir() + "/" + name;
  std::ofstream(path) << content;
  return path;
}

}  // namespace

TEST(Cli, CheckReproducesUsersErrorWithExitCode1) {
  Out o = run("check " + cfg("qwen3-235b-a22b") + " --tp 8 --batch 64 --seq 103");
  EXPECT_EQ(o.code, 1) << o.out;
  EXPECT_NE(o.out.find("shape '[64, 103, -1, 128]' is invalid for input of size 421888"), std::string::npos) << o.out;
  EXPECT_NE(o.out.find("4 KV heads x 128 = 512"), std::string::npos) << o.out;
  EXPECT_NE(o.out.find("replicate-kv"), std::string::npos);
}

TEST(Cli, CheckPassesWithExitCode0) {
  EXPECT_EQ(run("check " + cfg("qwen3-235b-a22b") + " --tp 4").code, 0);
  EXPECT_EQ(run("check " + cfg("qwen3-235b-a22b") + " --tp 8 --plan replicate-kv").code, 0);
}

TEST(Cli, CheckJson) {
  Out o = run("check " + cfg("qwen3-235b-a22b") + " --tp 8 --batch 64 --seq 103 --json");
  EXPECT_EQ(o.code, 1);
  auto j = nlohmann::json::parse(o.out);
  EXPECT_FALSE(j["ok"].get<bool>());
  EXPECT_EQ(j["findings"][0]["error_text"], "shape '[64, 103, -1, 128]' is invalid for input of size 421888");
  EXPECT_EQ(j["memory"].size(), 8u);
  EXPECT_EQ(j["plan"]["tp"], 8);
}

TEST(Cli, MatrixTextAndJson) {
  Out t = run("matrix " + cfg("qwen3-235b-a22b") + " --tp 1,2,4,8,16 --ep 1,8 --pp 1,2 --batch 64 --seq 103");
  EXPECT_EQ(t.code, 1) << t.out;
  EXPECT_NE(t.out.find("kv-heads-split: shape '[64, 103, -1, 128]' is invalid for input of size 421888"),
            std::string::npos)
      << t.out;
  Out j = run("matrix " + cfg("qwen3-30b-a3b") + " --tp 1,2,4 --json");
  EXPECT_EQ(j.code, 0) << j.out;
  EXPECT_EQ(nlohmann::json::parse(j.out)["rows"].size(), 3u);
}

TEST(Cli, BadInputExit2NamesFile) {
  std::string bad = temp_file("bad_config.json", "{\"model_type\": \"qwen3_moe\", \"hidden_size\": -4}");
  Out o = run("check " + bad + " --tp 2");
  EXPECT_EQ(o.code, 2);
  EXPECT_NE(o.out.find(bad), std::string::npos) << o.out;
  EXPECT_NE(o.out.find("hidden_size"), std::string::npos) << o.out;
  EXPECT_NE(o.out.find("-4"), std::string::npos) << o.out;
  EXPECT_EQ(std::count(o.out.begin(), o.out.end(), '\n'), 1) << o.out;  // one clear line

  Out missing = run("check /does/not/exist.json");
  EXPECT_EQ(missing.code, 2);
  EXPECT_NE(missing.out.find("/does/not/exist.json"), std::string::npos);

  Out tp0 = run("check " + cfg("qwen3-32b") + " --tp 0");
  EXPECT_EQ(tp0.code, 2);
  EXPECT_NE(tp0.out.find("--tp"), std::string::npos) << tp0.out;

  Out ep_dense = run("check " + cfg("qwen3-32b") + " --ep 2");
  EXPECT_EQ(ep_dense.code, 2);

  Out list = run("matrix " + cfg("qwen3-32b") + " --tp 1,x");
  EXPECT_EQ(list.code, 2);
  EXPECT_NE(list.out.find("'--tp' = x"), std::string::npos) << list.out;

  EXPECT_EQ(run("frobnicate").code, 2);
  EXPECT_EQ(run("check").code, 2);  // missing positional
}

TEST(Cli, HelpExit0) {
  Out o = run("--help");
  EXPECT_EQ(o.code, 0);
  EXPECT_NE(o.out.find("check"), std::string::npos);
  EXPECT_NE(o.out.find("matrix"), std::string::npos);
}

namespace {
// Qwen3-30B-A3B as its model card says to enable YaRN for 131072 tokens.
std::string yarn_config(const std::string& rope_scaling) {
  std::ifstream f(cfg("qwen3-30b-a3b"));
  nlohmann::json j = nlohmann::json::parse(f);
  j["rope_scaling"] = nlohmann::json::parse(rope_scaling);
  // One folder per test process and test: CTest runs the tests of this file in parallel processes.
  const std::string dir = ::testing::TempDir() + "/" + std::to_string(getpid()) + "-" +
                          ::testing::UnitTest::GetInstance()->current_test_info()->name() + "/qwen3-30b-a3b-yarn";
  std::system(("mkdir -p '" + dir + "'").c_str());
  std::ofstream(dir + "/config.json") << j.dump(2);
  return dir + "/config.json";
}
const char* kYarn = R"({"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32768})";
}  // namespace

TEST(CliRope, CheckReportGateAcceptYarnAndShowIt) {
  const std::string c = yarn_config(kYarn);
  Out o = run("check " + c + " --tp 4");
  EXPECT_EQ(o.code, 0) << o.out;
  const std::string line = "rope scaling: yarn (factor 4.0, original_max_position_embeddings 32768) (changes no tensor "
                           "shape; information only)\n";
  ASSERT_GE(o.out.size(), line.size());
  EXPECT_EQ(o.out.substr(o.out.size() - line.size()), line) << o.out;
  // The same findings as without rope scaling: the users' TP=8 failure is still there.
  Out eight = run("check " + c + " --tp 8 --json");
  EXPECT_EQ(eight.code, 1);
  const auto j = nlohmann::json::parse(eight.out);
  EXPECT_EQ(j["rope_scaling"]["type"], "yarn");
  EXPECT_EQ(j["rope_scaling"]["parameters"], nlohmann::json::parse(kYarn));
  EXPECT_EQ(j["findings"], nlohmann::json::parse(run("check " + cfg("qwen3-30b-a3b") + " --tp 8 --json").out)["findings"]);
  EXPECT_TRUE(nlohmann::json::parse(run("check " + cfg("qwen3-30b-a3b") + " --tp 8 --json").out)["rope_scaling"].is_null());

  Out rep = run("report " + c + " --gpus 4 --json");
  EXPECT_EQ(rep.code, 0) << rep.out;
  EXPECT_EQ(nlohmann::json::parse(rep.out)["config"]["rope_scaling"]["type"], "yarn");
  Out md = run("report " + c + " --gpus 4");
  EXPECT_NE(md.out.find("bfloat16, rope scaling `yarn (factor 4.0, original_max_position_embeddings 32768)` (no shape "
                        "change).  \n"),
            std::string::npos)
      << md.out;
  EXPECT_EQ(run("gate " + c + " --tp 1,2,4").code, 0);
  EXPECT_EQ(run("gate " + c + " --tp 8").code, 1);
}

TEST(CliRope, MalformedRopeScalingIsOneLineConfigError) {
  const std::string c = yarn_config(R"({"rope_type": "yarn", "factor": -4.0})");
  const std::string want = "shardcheck: config error: " + c + ": key 'rope_scaling.factor' = -4.0: must be a positive finite number\n";
  for (const std::string& cmd : {"check " + c, "report " + c, "matrix " + c}) {
    Out o = run(cmd);
    EXPECT_EQ(o.code, 2) << cmd;
    EXPECT_EQ(o.out, want) << cmd;
  }
  Out g = run("gate " + c);
  EXPECT_EQ(g.code, 3);
  EXPECT_EQ(g.out.substr(0, want.size()), want);  // stderr first (2>&1), then the text report
}

TEST(Cli, EveryTorchFreeJsonOutputNamesItsSchema) {
  // The top-level "schema" of each torch-free --json output, and each id documented in
  // docs/json-schemas.md (the table the torch commands' ids are reserved in too).
  std::ifstream docf(std::string(SC_FIXTURES) + "/../docs/json-schemas.md");
  const std::string doc((std::istreambuf_iterator<char>(docf)), std::istreambuf_iterator<char>());
  ASSERT_FALSE(doc.empty()) << "docs/json-schemas.md missing";
  const std::string big = cfg("qwen3-235b-a22b");
  const std::vector<std::pair<std::string, std::string>> outputs = {
      {"check " + big + " --tp 8 --json", "shardcheck.check/1"},
      {"check " + big + " --tp 4 --explain --json", "shardcheck.check/1"},
      {"matrix " + big + " --tp 4,8 --json", "shardcheck.matrix/1"},
      {"gate " + big + " --tp 8 --junit " + ::testing::TempDir() + "/schema_gate.xml --json", "shardcheck.gate/1"},
      {"report " + big + " --gpus 8 --json", "shardcheck.report/1"},
  };
  for (const auto& [args, id] : outputs) {
    Out o = run(args);
    ASSERT_LE(o.code, 1) << args << "\n" << o.out;
    const auto j = nlohmann::json::parse(o.out);
    EXPECT_EQ(j.value("schema", ""), id) << args;
    EXPECT_NE(doc.find("`" + id + "`"), std::string::npos) << id << " not in docs/json-schemas.md";
  }
  for (const char* id : {"shardcheck.run/1", "shardcheck.repro/1", "shardcheck.fuzz/1", "shardcheck.steer/1",
                         "shardcheck.bench/1", "shardcheck.steer-eval/1"})
    EXPECT_NE(doc.find(std::string("`") + id + "`"), std::string::npos) << id;
}

// fuzz --cases below 1 is one usage line, exit 2 (it reached vector::reserve before).
TEST(Cli, FuzzCasesMustBePositive) {
  const auto r = sctest::run_cli("fuzz --static-only --cases -5", true);
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(r.err, "shardcheck: usage error: --cases: must be an integer >= 1, got '-5'\n");
}
