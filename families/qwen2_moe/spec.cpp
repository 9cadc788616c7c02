// families/qwen2_moe: the spec (docs/adding-a-family.md; fixtures/hf_tp/qwen2_moe.json holds what HF 5.17 does).
#include "families/family.h"

namespace sc {

static void read_qwen2_moe(const ConfigReader& r, const ConfigReader&, ModelConfig& c) {
  c.qk_norm = false;
  c.attention_bias = r.boolean("qkv_bias", true);  // Qwen2MoeAttention: q, k and v biases (HF 5.17 default true)
  family_read::gated_shared_expert(r, c);
}

const FamilySpec& family_qwen2_moe() {
  static const FamilySpec f{"qwen2_moe", {"qwen2_moe"},
      "GQA with q/k/v biases; softmax top-k experts plus one shared expert behind a sigmoid gate",
      {"qkv_bias", "shared_expert_intermediate_size", "norm_topk_prob", "decoder_sparse_step", "mlp_only_layers"},
      read_qwen2_moe, hf_plan::join({hf_plan::attention(), hf_plan::swiglu()}), hf_plan::experts_ep(),
      /*has_forward=*/true};
  return f;
}

}  // namespace sc
