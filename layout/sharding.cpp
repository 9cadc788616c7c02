#include "layout/sharding.h"

#include <algorithm>

namespace sc {

const char* shard_rule_name(ShardRule r) {
  switch (r) {
    case ShardRule::Replicate: return "replicate";
    case ShardRule::Colwise: return "colwise";
    case ShardRule::Rowwise: return "rowwise";
    case ShardRule::KvHeadColwise: return "kv-head-colwise";
    case ShardRule::ExpertShard: return "expert-shard";
    case ShardRule::VocabParallel: return "vocab-parallel";
  }
  return "?";
}

int64_t SliceSpec::numel(const std::vector<int64_t>& full) const {
  if (!owned) return 0;
  int64_t n = 1;
  for (size_t d = 0; d < full.size(); ++d) n *= (int(d) == dim) ? (end - begin) : full[d];
  return n;
}

std::vector<int64_t> SliceSpec::shape(const std::vector<int64_t>& full) const {
  std::vector<int64_t> s = full;
  if (!owned) {
    for (auto& d : s) d = 0;
    return s;
  }
  if (dim >= 0 && size_t(dim) < s.size()) s[dim] = end - begin;
  return s;
}

std::pair<int64_t, int64_t> chunk_range(int64_t n, int64_t parts, int64_t i) {
  if (parts <= 1) return {0, n};
  const int64_t chunk = (n + parts - 1) / parts;
  const int64_t b = std::min(i * chunk, n);
  return {b, std::min(b + chunk, n)};
}

}  // namespace sc
