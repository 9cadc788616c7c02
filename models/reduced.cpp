#include "models/reduced.h"

#include <algorithm>

namespace sc {

int64_t reduced_size(int64_t original, int64_t target, int64_t max_split) {
  if (target <= 0 || original <= 0 || target >= original) return original;
  for (int64_t r = std::max<int64_t>(target, 1); r < original; ++r) {
    bool same = true;
    for (int64_t d = 2; d <= max_split && same; ++d) same = (r % d == 0) == (original % d == 0);
    if (same) return r;
  }
  return original;
}

ModelConfig reduce_config(const ModelConfig& c, const ReduceOptions& o) {
  ModelConfig r = c;
  r.name = (c.name.empty() ? std::string("model") : c.name) + "-reduced";
  if (r.head_dim == 0 && r.num_attention_heads > 0) r.head_dim = c.hidden_size / c.num_attention_heads;
  r.hidden_size = reduced_size(c.hidden_size, o.hidden, o.max_split);
  const int64_t inter = o.intermediate > 0 ? o.intermediate : (o.hidden > 0 ? 4 * r.hidden_size : 0);
  r.intermediate_size = reduced_size(c.intermediate_size, inter, o.max_split);
  r.moe_intermediate_size = reduced_size(c.moe_intermediate_size, o.moe_intermediate, o.max_split);
  r.vocab_size = reduced_size(c.vocab_size, o.vocab, o.max_split);
  if (o.layers > 0 && o.layers < c.num_hidden_layers) {
    r.num_hidden_layers = o.layers;
    r.mlp_only_layers.clear();
    for (int64_t l : c.mlp_only_layers)
      if (l < o.layers) r.mlp_only_layers.push_back(l);
  }
  if (r.layer_kinds.size() > size_t(r.num_hidden_layers)) r.layer_kinds.resize(size_t(r.num_hidden_layers));
  // Rope scaling changes no shape, and the reduced model is run against itself at world size 1:
  // a rope the forward does not compute is replaced by the default one, and the reduction says so.
  if (!r.forward_computes_rope()) {
    r.rope_scaling_type.clear();
    r.rope_scaling.clear();
  }
  r.validate();
  return r;
}

std::string describe_reduction(const ModelConfig& full, const ModelConfig& reduced) {
  std::string out;
  auto add = [&](const char* what, int64_t a, int64_t b) {
    if (a == b) return;
    out += (out.empty() ? "" : ", ") + std::string(what) + " " + std::to_string(b) + " (of " + std::to_string(a) + ")";
  };
  add("hidden", full.hidden_size, reduced.hidden_size);
  if (!full.is_moe() || full.num_sparse_layers() < full.num_hidden_layers)
    add("intermediate", full.intermediate_size, reduced.intermediate_size);
  if (full.is_moe()) add("moe_intermediate", full.moe_intermediate_size, reduced.moe_intermediate_size);
  add("vocab", full.vocab_size, reduced.vocab_size);
  if (full.num_hidden_layers != reduced.num_hidden_layers)
    out += (out.empty() ? "" : ", ") + std::to_string(reduced.num_hidden_layers) +
           (reduced.num_hidden_layers == 1 ? " layer" : " layers") + " (of " + std::to_string(full.num_hidden_layers) + ")";
  if (!full.rope_scaling_type.empty() && reduced.rope_scaling_type.empty())
    out += (out.empty() ? "" : ", ") + std::string("default rope (of ") + full.rope_scaling_type + ")";
  return out.empty() ? "full widths" : out;
}

}  // namespace sc
