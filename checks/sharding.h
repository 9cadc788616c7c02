// The one sharding table. A plan style is data: module pattern -> rule, plus the attention
// reshape behaviour. The checker's predictions and the harness's slicing both read it, so
// prediction and execution cannot drift apart. Torch-free.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "layout/plan.h"
#include "layout/sharding.h"
#include "checks/tensors.h"
#include "models/config.h"

namespace sc {

struct ShardEntry {
  std::string pattern;  // module pattern inside the model, '*' matches one path component or number
  ShardRule rule;
  std::string hf_name;  // the HF tp_plan / ep_plan spelling of the same rule
};
// The table of a model under a plan: one entry per kind of tensor the model has, derived from its
// family's HF plan (families/<name>/spec.cpp) with the plan's variants (replicate-kv: whole KV
// heads; ep > 1: routed experts shard by expert). The checker and the harness both slice by it.
std::vector<ShardEntry> sharding_table(const ModelConfig& c, const ParallelPlan& p);
// The rule of one tensor (by its role; biases of rowwise modules are replicated, as HF does).
ShardRule rule_for(const ModelConfig& c, const ParallelPlan& p, const TensorSpec& t);
// HF's style for a role of this model ("" when HF's plan leaves it replicated).
const std::string& hf_style_of(const ModelConfig& c, Role role);

// Which experts an EP rank owns: [begin, end) by the same chunk rule.
std::pair<int64_t, int64_t> expert_range(const ModelConfig& c, const ParallelPlan& p, int64_t ep_rank);

SliceSpec slice_for(const ModelConfig& c, const ParallelPlan& p, const TensorSpec& t, int64_t rank);

// The attention a TP rank actually runs, from the same table:
//   q = view(q_proj(x), [B, S, -1, D]); k, v likewise; k, v repeated n_rep times; softmax(qk^T)v.
struct AttentionLayout {
  bool sharded = true;      // false: HF's plan leaves this family's attention whole on every rank
                            // (MLA, phi3's gathered qkv_proj, gpt_oss): full rows below
  int64_t q_rows = 0;       // local q_proj output features (= o_proj local input features; without
                            // the output gate's rows, which q_proj holds as many of again)
  int64_t q_proj_rows = 0;  // local q_proj output features (2 x q_rows with the output gate)
  int64_t kv_rows = 0;      // local k_proj / v_proj output features
  int64_t head_dim = 0;
  int64_t n_rep = 1;        // repeat_kv factor: global heads/kv under hf-auto, local ratio under replicate-kv
  int64_t q_row_begin = 0;  // global row offsets of the local slices
  int64_t kv_row_begin = 0;
};
AttentionLayout attention_layout(const ModelConfig& c, const ParallelPlan& p, int64_t tp_rank);
// Whether the plan splits the attention heads over the TP ranks: q/k/v colwise in HF's plan (GQA).
bool attention_is_sharded(const ModelConfig& c, const ParallelPlan& p);

}  // namespace sc
