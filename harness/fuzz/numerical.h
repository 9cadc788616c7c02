// Numerical fuzz properties: the checker's prediction against real sharded runs.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "checks/fuzz/fuzz.h"

namespace sc {

// Cases run per backend (filled when NumericalFuzzOptions::counts is set).
struct NumericalFuzzCounts {
  int threads = 0, gloo = 0;
};

struct NumericalFuzzOptions {
  // "threads": ranks as threads with in-memory collectives (harness/fuzz/thread_runs.h), and in
  // addition every `gloo_every`-th case and every case that fails the property run over real Gloo
  // ranks; those cases must observe the same outcome on both (a difference fails the property),
  // and for a failing case the Gloo observation is the one checked.
  // "gloo": every case over Gloo thread-ranks (c10d, the harness's executor).
  std::string backend = "threads";
  int gloo_every = 10;  // threads backend only; 0: only failing cases go to Gloo
  std::shared_ptr<NumericalFuzzCounts> counts;  // optional
};

// 1. predicted-equals-observed: for a tiny random-weight model and plan, every rank raises exactly
//    the text the checker predicts for it, or runs when the checker predicts a pass.
// 2. sharded-equals-reference: when the run passes, the sharded output equals the single-device
//    reference within the dtype's tolerance, or differs only by benign router flips.
// Throws PlanError for an unknown backend or a negative gloo_every.
std::vector<fuzz::Property> numerical_properties(const NumericalFuzzOptions& o = {});

}  // namespace sc
