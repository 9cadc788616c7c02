// The sharding vocabulary, torch-free and model-free: the rules a plan assigns to modules, a
// rank's slice of a tensor, and the chunk rule uneven splits follow. checks/sharding.h applies it
// to a model (its family's HF plan); the torch modules slice by the same SliceSpec.
#pragma once
#include <cstdint>
#include <utility>
#include <vector>

namespace sc {

enum class ShardRule {
  Replicate,      // whole tensor on every rank
  Colwise,        // split output features (Linear weight dim 0) over the TP group
  Rowwise,        // split input features (Linear weight dim 1) over the TP group; output all-reduced
  KvHeadColwise,  // replicate-kv: whole KV heads per rank, each head replicated on tp / kv ranks
  ExpertShard,    // routed experts split over EP groups; inside an expert colwise/rowwise over ETP
  VocabParallel,  // lm_head rows split over the TP group; logits all-gathered
};
const char* shard_rule_name(ShardRule r);

// A rank's part of a tensor: elements [begin, end) along dim (dim = -1: the whole tensor).
// owned = false: the rank holds nothing of it (an expert of another EP group).
struct SliceSpec {
  bool owned = true;
  int dim = -1;
  int64_t begin = 0, end = 0;
  int64_t numel(const std::vector<int64_t>& full) const;
  std::vector<int64_t> shape(const std::vector<int64_t>& full) const;
};

// torch.chunk-style split of n into `parts`: chunk = ceil(n / parts); part i gets
// [min(i*chunk, n), min((i+1)*chunk, n)) (trailing parts may be short or empty), as HF's
// get_tensor_shard does for uneven sizes.
std::pair<int64_t, int64_t> chunk_range(int64_t n, int64_t parts, int64_t i);

}  // namespace sc
