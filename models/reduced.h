// A reduced-width copy of a ModelConfig for fast CPU runs (`shardcheck report --run`): the
// geometry that decides whether a parallel layout fails and with which text (query / KV head
// counts, head_dim, experts, top-k, norm_topk_prob, dense / sparse pattern) stays as the config
// has it; hidden size, MLP and expert widths, vocabulary and layer count shrink. Every reduced
// width keeps the original's divisibility by 2..max_split, so each TP / EP / vocab split of up to
// max_split ranks is even, uneven or zero-width exactly as in the real model, and the checker
// predicts the same shape failures (with the same LibTorch texts: they depend on batch, seq,
// head_dim and heads per rank, never on hidden). Torch-free.
#pragma once
#include <cstdint>
#include <string>

#include "models/config.h"

namespace sc {

struct ReduceOptions {
  int64_t hidden = 256;            // target hidden size; 0 = keep
  int64_t intermediate = 0;        // dense MLP width; 0 = 4 x the reduced hidden
  int64_t moe_intermediate = 64;   // expert width; 0 = keep
  int64_t vocab = 1024;            // 0 = keep
  int64_t layers = 1;              // 0 = keep
  int64_t max_split = 16;          // keep divisibility by every d in 2..max_split
};

// The smallest value in [min(target, original), original] divisible by exactly the same
// d in 2..max_split as `original` (original itself when none is smaller). target <= 0: original.
int64_t reduced_size(int64_t original, int64_t target, int64_t max_split);

// The reduced config (name "<name>-reduced", default rope); ConfigError if the result is invalid.
ModelConfig reduce_config(const ModelConfig& c, const ReduceOptions& o);

// "hidden 256 (of 4096), moe_intermediate 96 (of 1536), vocab 1024 (of 151936), 1 layer (of 94)":
// the sizes that differ between the two configs.
std::string describe_reduction(const ModelConfig& full, const ModelConfig& reduced);

}  // namespace sc
