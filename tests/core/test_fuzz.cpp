// The fuzzing runner: static properties pass with a fixed seed; a planted failing property
// shrinks to the minimal case, is written out as config.json + plan.json, and replays.
#include <gtest/gtest.h>

#include <fstream>
#include <memory>
#include <set>

#include "checks/fuzz/fuzz.h"
#include "models/config.h"

using namespace sc;
using namespace sc::fuzz;

TEST(Fuzz, StaticPropertiesPassWithFixedSeed) {
  RunOptions o;
  o.seed = 42;
  o.cases = 300;
  for (const Property& p : static_properties()) {
    PropertyReport r = run_property(p, o);
    EXPECT_TRUE(r.passed) << p.name << ": " << r.failure << "\n" << r.counterexample << r.minimal.dump();
    EXPECT_GE(r.cases, 100) << p.name;  // not all discarded
  }
}

TEST(Fuzz, GeneratedCasesAreValidByConstruction) {
  RunOptions o;
  o.cases = 300;
  Property p{"valid", "configs and plans validate", false, [](CaseRecord& last) {
               Limits lim;
               lim.max_ranks = 8;
               FuzzCase fc = *gen_case(lim);
               last = fc;
               fc.config.validate();
               fc.plan.validate();
               RC_ASSERT(fc.plan.world_size() <= 8);
               RC_ASSERT(fc.config.num_attention_heads % fc.config.num_key_value_heads == 0);
             }};
  PropertyReport r = run_property(p, o);
  EXPECT_TRUE(r.passed) << r.failure << r.minimal.dump();
}

TEST(Fuzz, PlantedFailureShrinksWritesAndReplays) {
  // Claim: "hf-auto never fails at tp >= 2 when kv heads >= 2" -- false; minimal counterexample
  // has the smallest tp that breaks a KV split.
  Property p{"planted", "planted failure", false, [](CaseRecord& last) {
               Limits lim;
               FuzzCase fc = *gen_case(lim);
               last = fc;
               const int64_t kv = fc.config.num_key_value_heads, tp = fc.plan.tp;
               RC_ASSERT(!(tp >= 2 && kv % tp != 0 && fc.config.num_attention_heads % tp == 0));
             }};
  RunOptions o;
  o.seed = 7;
  o.cases = 500;
  o.out_dir = ::testing::TempDir() + "/fuzz-out";
  PropertyReport r = run_property(p, o);
  ASSERT_FALSE(r.passed);
  ASSERT_TRUE(r.minimal.is_object()) << r.minimal.dump();
  // Shrunk: kv heads shrink toward 1 (gen::element's first), tp toward 1 -> minimal breaking tp is 2.
  EXPECT_EQ(r.minimal["plan"]["tp"], 2) << r.minimal.dump();
  EXPECT_EQ(r.minimal["config"]["num_key_value_heads"], 1) << r.minimal.dump();
  ASSERT_EQ(r.written.size(), 2u);
  // The written config parses back into the same geometry.
  ModelConfig back = ModelConfig::from_file(r.written[0]);
  EXPECT_EQ(back.num_key_value_heads, 1);
  // Replay with the reproduce string: fails again on the same minimal case.
  RunOptions replay = o;
  replay.reproduce = r.reproduce;
  replay.out_dir.clear();
  PropertyReport again = run_property(p, replay);
  EXPECT_FALSE(again.passed);
  EXPECT_EQ(again.minimal.dump(), r.minimal.dump());
  EXPECT_NE(replay_command(p, o, r).find("--reproduce '"), std::string::npos);
}

TEST(Fuzz, ChooserReplaysAndClamps) {
  Chooser g(2024);
  std::vector<int64_t> drawn;
  for (int64_t n : {1, 2, 7, 300, 5}) drawn.push_back(g.pick(n));
  EXPECT_LT(drawn[3], 300);
  EXPECT_EQ(drawn[0], 0);
  for (size_t i = 0; i < drawn.size(); ++i) EXPECT_EQ(int64_t(g.choices()[i]), drawn[i]);
  // Replaying the recorded choices gives the same draws; past its range a choice is clamped,
  // past the end of the record it is 0.
  const std::vector<uint32_t> record = g.choices();
  Chooser again(&record);
  const int64_t ns[] = {1, 2, 7, 300, 5};
  for (size_t i = 0; i < 5; ++i) EXPECT_EQ(again.pick(ns[i]), drawn[i]);
  std::vector<uint32_t> rec = {9, 3};
  Chooser clamp(&rec);
  EXPECT_EQ(clamp.pick(4), 3);
  EXPECT_EQ(clamp.pick(10), 3);
  EXPECT_EQ(clamp.pick(10), 0);
  EXPECT_EQ(clamp.choices(), (std::vector<uint32_t>{3, 3, 0}));
}

TEST(Fuzz, ShrinkChoicesSmallestFirst) {
  // Small choices: every smaller value, smallest first; large ones: halving steps toward 0.
  auto s = shrink_choices({5, 2}, 1);
  ASSERT_EQ(s.size(), 2u);
  EXPECT_EQ(s[0], (std::vector<uint32_t>{5, 0}));
  EXPECT_EQ(s[1], (std::vector<uint32_t>{5, 1}));
  auto big = shrink_choices({100}, 0);
  std::vector<uint32_t> firsts;
  for (const auto& v : big) firsts.push_back(v[0]);
  EXPECT_EQ(firsts, (std::vector<uint32_t>{0, 50, 75, 88, 94, 97, 99}));
  EXPECT_TRUE(shrink_choices({0}, 0).empty());
}

TEST(Fuzz, ChoiceGeneratorShrinksToTheExactBoundary) {
  // "x < 37" over x in [0, 1000): rapidcheck shrinking over the choices must end at exactly 37.
  Property p{"boundary", "x < 37", false, [gen = gen_from_choices<int64_t>([](Chooser& ch) { return ch.pick(1000); })](
                                               CaseRecord& last) {
               const int64_t x = *gen;
               last = nlohmann::json{{"x", x}};
               RC_ASSERT(x < 37);
             }};
  RunOptions o;
  o.seed = 3;
  o.cases = 200;
  PropertyReport r = run_property(p, o);
  ASSERT_FALSE(r.passed);
  EXPECT_EQ(r.minimal, (nlohmann::json{{"x", 37}}));
}

TEST(Fuzz, TpPreconditionIsBuiltIntoTheGenerator) {
  // tp_ok restricts tp without discarding: every case satisfies it, and tp still varies.
  auto seen = std::make_shared<std::set<int64_t>>();
  Limits lim;
  lim.tp_ok = [](const ModelConfig& c, int64_t tp) { return c.num_attention_heads % tp == 0; };
  Property p{"tp-ok", "tp divides the heads", false, [gen = gen_case(lim), seen](CaseRecord& last) {
               FuzzCase fc = *gen;
               last = fc;
               seen->insert(fc.plan.tp);
               RC_ASSERT(fc.config.num_attention_heads % fc.plan.tp == 0);
               fc.plan.validate();
             }};
  RunOptions o;
  o.cases = 500;
  PropertyReport r = run_property(p, o);
  EXPECT_TRUE(r.passed) << r.failure << r.minimal.dump();
  EXPECT_EQ(r.cases, 500);
  EXPECT_GE(seen->size(), 6u);  // 1, 2, 3, 4, 6, 8, 12, 16 ... all reachable
  EXPECT_GT(*seen->rbegin(), 8);
}
