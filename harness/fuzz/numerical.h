// Numerical fuzz properties: the checker's prediction against real sharded runs on Gloo ranks.
#pragma once
#include <vector>

#include "checks/fuzz/fuzz.h"

namespace sc {

// 1. predicted-equals-observed: for a tiny random-weight model and plan, every rank raises exactly
//    the text the checker predicts for it, or runs when the checker predicts a pass.
// 2. sharded-equals-reference: when the run passes, the sharded output equals the single-device
//    reference within the dtype's tolerance, or differs only by benign router flips.
std::vector<fuzz::Property> numerical_properties();

}  // namespace sc
