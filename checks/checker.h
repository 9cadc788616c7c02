// The static invariant checker: from a ModelConfig and a ParallelPlan, predict every shape failure
// (with the exact LibTorch error text), silent-wrong layouts, imbalance and per-rank memory, before
// any weights load. Torch-free; everything it knows about the layout comes from checks/sharding.h.
#pragma once
#include <string>
#include <vector>

#include "checks/findings.h"
#include "layout/plan.h"
#include "checks/sharding.h"
#include "models/config.h"

namespace sc {

// Exact texts LibTorch raises (asserted against a real LibTorch in tests/torch/test_error_text.cpp).
// view(numel elements, [b, s, -1, d]):
std::string view_error_text(int64_t b, int64_t s, int64_t d, int64_t numel);
// matmul / broadcasting of two batch dims that differ:
std::string broadcast_error_text(int64_t size_a, int64_t size_b, int64_t dim);
// linear / matmul of [rows, cols] with a weight whose transpose is [w_in, w_out], cols != w_in:
std::string linear_error_text(int64_t rows, int64_t cols, int64_t w_in, int64_t w_out);

// What one TP rank's attention does under the plan: the first op that throws, if any.
struct AttentionOutcome {
  bool ok = true;
  std::string op;          // "q view", "k view", "v view", "q @ k^T", "probs @ v", "o_proj"
  std::string module;      // module that produced the failing tensor
  std::string error_text;  // exact LibTorch text
  int64_t local_q_heads = 0, local_kv_heads = 0, n_rep = 0;
  bool gqa_aligned = true;  // each local query head sees the KV head it uses globally
  std::string misalignment; // first misaligned head, when !gqa_aligned
};
AttentionOutcome predict_attention(const ModelConfig& c, const ParallelPlan& p, int64_t tp_rank, int64_t batch,
                                   int64_t seq);

// HF 5.17's load-time validation of a tensor-parallel plan (apply_tensor_parallelism): a module
// whose output HF shards colwise and then gathers (colwise_gather_output: lm_head, phi3's fused
// projections, the gated delta net's projections) needs an output size divisible by tp. The first
// failing module in named_modules order, as HF meets it; ok = false when one fails.
struct LoadOutcome {
  bool ok = true;
  std::string module;      // "lm_head", "model.layers.0.mlp.gate_up_proj"
  int64_t size = 0;        // its output size
  std::string error_text;  // HF's ValueError text
};
LoadOutcome predict_hf_load(const ModelConfig& c, const ParallelPlan& p);
std::string gather_output_error_text(const std::string& module, int64_t size, int64_t tp);
// The text DTensor raises when a module mixes a sharded (DTensor) weight with a plain tensor:
// HF's wrappers that tie lm_head to a sharded embedding but give lm_head no plan (gemma3).
std::string mixed_dtensor_error_text(const std::string& op);

struct CheckOptions {
  double memory_limit_gib = 0;  // per-rank capacity; 0 = do not check
  bool memory = true;           // compute per-rank memory
};

CheckResult check(const ModelConfig& c, const ParallelPlan& p, const CheckOptions& o = {});

// Per-rank memory under the plan (see checks/memory.cpp for the model used).
std::vector<RankMemory> estimate_memory(const ModelConfig& c, const ParallelPlan& p);

}  // namespace sc
