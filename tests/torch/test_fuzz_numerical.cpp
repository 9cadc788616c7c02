// The numerical fuzz properties with a fixed seed and a small case budget (CI time).
#include <gtest/gtest.h>

#include "harness/fuzz/numerical.h"

using namespace sc;

TEST(FuzzNumerical, PropertiesHoldOnRealGlooRuns) {
  fuzz::RunOptions o;
  o.seed = 2024;
  o.cases = 25;
  for (const auto& p : numerical_properties()) {
    fuzz::PropertyReport r = fuzz::run_property(p, o);
    EXPECT_TRUE(r.passed) << p.name << ": " << r.failure << "\n" << r.counterexample << r.minimal.dump();
    EXPECT_GE(r.cases, 10) << p.name;
  }
}
