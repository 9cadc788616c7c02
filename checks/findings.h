// Findings and check results: plain data with a JSON form (rule 4: reports render, never recompute).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "layout/plan.h"

namespace sc {

enum class Severity { Info, Warning, Error };
const char* severity_name(Severity s);
Severity severity_from_name(const std::string& s);

struct Finding {
  std::string id;               // stable identifier, e.g. "kv-heads-split"
  Severity severity = Severity::Info;
  std::string parameter;        // what is compared, e.g. "num_key_value_heads x head_dim / tp"
  std::string module;           // module pattern, e.g. "model.layers.*.self_attn.k_proj"
  std::vector<int64_t> ranks;   // affected global ranks (empty: not rank-specific)
  std::string message;          // explanation with the arithmetic
  std::string error_text;       // exact LibTorch error the plan raises ("" when none is raised)
  std::string fix;              // the ways out
  nlohmann::json values;        // the numbers that caused it
  std::string phase;            // when a raising plan raises: "load" (HF's plan validation while
                                // loading) or "forward" (the first failing op); "" otherwise
};

// Predicted memory of one rank, bytes.
struct RankMemory {
  int64_t rank = 0;
  int64_t stage = 0;
  int64_t layers = 0;               // decoder layers held
  int64_t weight_bytes = 0;         // resident weights under the plan
  int64_t load_peak_shard_bytes = 0;  // peak while loading with shard-only reads
  int64_t load_peak_full_bytes = 0;   // peak while loading when every rank reads full tensors
  int64_t activation_bytes = 0;     // peak activations of one forward (batch x seq)
  int64_t total_bytes(bool shard_only) const;  // max(loading peak, weights + activations)
};

struct CheckResult {
  std::string config_name;
  std::string config_source;
  ParallelPlan plan;
  std::vector<Finding> findings;
  std::vector<RankMemory> memory;   // one per global rank
  double memory_limit_gib = 0;      // 0: not checked
  nlohmann::json rope_scaling;      // the config's rope scaling (ModelConfig::rope_scaling_json), null: default
  bool ok() const;                  // no Error finding
  const Finding* first_error() const;
  int64_t max_total_bytes() const;
  // An error finding that makes a run raise (shape failures, uneven vocab all-gather), the first
  // one HF meets (load-time validation before forward), as opposed
  // to a plan HF refuses but that runs here (experts-ep, pp-layers), one that runs and computes
  // wrong numbers (gqa-misaligned), or memory.
  const Finding* predicted_runtime_failure() const;
};

void to_json(nlohmann::json& j, const Finding& f);
void from_json(const nlohmann::json& j, Finding& f);
void to_json(nlohmann::json& j, const RankMemory& m);
void from_json(const nlohmann::json& j, RankMemory& m);
void to_json(nlohmann::json& j, const CheckResult& r);
void from_json(const nlohmann::json& j, CheckResult& r);

double to_gib(int64_t bytes);

}  // namespace sc
