// The fuzzing runner: static properties pass with a fixed seed; a planted failing property
// shrinks to the minimal case, is written out as config.json + plan.json, and replays.
#include <gtest/gtest.h>

#include <fstream>

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
  Property p{"valid", "configs and plans validate", false, [](nlohmann::json& last) {
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
  Property p{"planted", "planted failure", false, [](nlohmann::json& last) {
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
