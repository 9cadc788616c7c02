// The torch subcommands end to end: `shardcheck repro` (the README's main job) and `shardcheck run`.
#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>
#include <sys/wait.h>

namespace {
struct Out {
  int code = -1;
  std::string out;
};
Out run(const std::string& args) {
  Out o;
  FILE* p = popen((std::string(SC_CLI) + " " + args + " 2>&1").c_str(), "r");
  if (!p) return o;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) o.out.append(buf.data(), n);
  int st = pclose(p);
  o.code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return o;
}
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
