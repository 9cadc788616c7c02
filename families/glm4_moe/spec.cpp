// families/glm4_moe: the spec (docs/adding-a-family.md; fixtures/hf_tp/glm4_moe.json holds what HF 5.17 does).
#include "families/family.h"

namespace sc {

static void read_glm4_moe(const ConfigReader& r, const ConfigReader&, ModelConfig& c) {
  c.qk_norm = r.boolean("use_qk_norm", false);
  c.router_bias_correction = true;  // e_score_correction_bias
  family_read::shared_experts(r, c);
}

const FamilySpec& family_glm4_moe() {
  static const FamilySpec f{"glm4_moe", {"glm4_moe"},
      "GQA with biases and optional q/k norm (use_qk_norm); first_k_dense_replace dense layers, then sigmoid "
      "group-limited routing with bias correction and shared experts",
      {"use_qk_norm", "first_k_dense_replace", "n_routed_experts", "n_shared_experts", "n_group", "topk_group",
          "routed_scaling_factor"},
      read_glm4_moe,
      hf_plan::join(
          {hf_plan::attention(), hf_plan::swiglu(), hf_plan::routed_experts(), hf_plan::swiglu("mlp.shared_experts")}),
      hf_plan::experts_ep()};
  return f;
}

}  // namespace sc
