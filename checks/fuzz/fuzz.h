// Property-based fuzzing of parallel layouts (rapidcheck). Generators build valid configs and
// plans by construction (gen::mapcat, no filtering); properties are run with an explicit seed and
// case budget; a failure shrinks to a minimal case that is written out as config.json + plan.json
// with a one-line replay command. Torch-free: the numerical properties (harness/fuzz/) plug in
// through the same runner.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <rapidcheck.h>

#include "checks/plan.h"
#include "models/config.h"

namespace sc::fuzz {

struct FuzzCase {
  ModelConfig config;
  ParallelPlan plan;
  std::string describe() const;  // one line: geometry + plan
};
void to_json(nlohmann::json& j, const FuzzCase& c);

struct Limits {
  int64_t max_ranks = 16;    // tp, ep, pp up to this (8 for numerical properties)
  bool tiny = false;         // tiny widths for numerical runs (head_dim <= 16, hidden <= 64, ...)
};

// A valid Qwen3(-MoE) config and a valid plan for it. Shrinks toward small heads/tp/experts.
rc::Gen<FuzzCase> gen_case(const Limits& lim);
// Arbitrary JSON objects shaped like config.json with absurd values (negative, zero, huge, wrong
// types, missing keys) for the never-crash property.
rc::Gen<nlohmann::json> gen_absurd_config();
rc::Gen<ParallelPlan> gen_any_plan();

// A property run.
struct PropertyReport {
  std::string name;
  bool passed = false;
  int cases = 0;              // successful cases before the end (or the failure)
  double seconds = 0;
  std::string failure;        // rapidcheck's description of the failure
  std::string counterexample; // shown values of the minimal case
  std::string reproduce;      // RC reproduce string (for --reproduce)
  nlohmann::json minimal;     // the minimal FuzzCase as JSON (when the property records it)
  std::vector<std::string> written;  // files written for the minimal case
};
void to_json(nlohmann::json& j, const PropertyReport& r);

// A named property. Its body draws its inputs with `*gen` (rapidcheck), stores the case it checks
// in `last` (so the runner can write out the minimal failing case after shrinking), and asserts
// with RC_ASSERT.
struct Property {
  std::string name;
  std::string description;
  bool numerical = false;  // needs the harness (LibTorch)
  std::function<void(nlohmann::json& last)> body;
};
std::vector<Property> static_properties();

struct RunOptions {
  uint64_t seed = 1;
  int cases = 100;
  std::string reproduce;      // replay a failure (from a PropertyReport.reproduce)
  std::string out_dir;        // where a minimal failing case is written ("" = not written)
  std::function<void(const std::string& name, int done, int total)> progress;
};
PropertyReport run_property(const Property& p, const RunOptions& o);

// The CLI line that replays a failure.
std::string replay_command(const Property& p, const RunOptions& o, const PropertyReport& r);

}  // namespace sc::fuzz
