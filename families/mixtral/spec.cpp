// families/mixtral: the spec (docs/adding-a-family.md; fixtures/hf_tp/mixtral.json holds what HF 5.17 does).
#include "families/family.h"

namespace sc {

static void read_mixtral(const ConfigReader& r, const ConfigReader&, ModelConfig& c) {
  c.qk_norm = false;
  family_read::sliding_window(r, c);
  family_read::every_layer_slides(c);  // MistralModel: the sliding-window mask on every layer when set
  family_read::experts_of_intermediate_width(r, c);
  c.norm_topk_prob = true;  // MixtralSparseMoeBlock divides the top-k weights by their sum
}

const FamilySpec& family_mixtral() {
  static const FamilySpec f{"mixtral", {"mixtral"},
      "GQA without q/k norm; softmax top-k experts renormalised over the chosen k (experts of intermediate_size width)",
      {"num_local_experts", "num_experts_per_tok", "sliding_window"}, read_mixtral,
      hf_plan::join({hf_plan::attention(), hf_plan::routed_experts()}), hf_plan::experts_ep(), /*has_forward=*/true,
      {{".mlp.experts.", ".block_sparse_moe.experts."}, {".mlp.gate.", ".block_sparse_moe.gate."},
          {".gate_proj.", ".w1."}, {".up_proj.", ".w3."}, {".down_proj.", ".w2."}}};
  return f;
}

}  // namespace sc
