// The glm4_moe family (docs/adding-a-family.md): config keys, attention and MoE kinds, and HF
// transformers 5.17's own tensor-parallel plan as recorded in fixtures/hf_tp/ (tests hold the two
// together).
#include "families/family.h"

namespace sc {
namespace {

void read(const ConfigReader& r, const ConfigReader& top, ModelConfig& c) {
  (void)top;
  c.qk_norm = r.boolean("use_qk_norm", false);
  c.router_bias_correction = true;  // e_score_correction_bias
  family_read::shared_experts(r, c);
}
}  // namespace

const FamilySpec& family_glm4_moe() {
  static const FamilySpec f = [] {
    FamilySpec s;
    s.name = "glm4_moe";
    s.model_types = {"glm4_moe"};
    s.wrappers = {};
    s.summary =
        "GQA with biases and optional q/k norm (use_qk_norm); first_k_dense_replace dense layers, then sigmoid "
        "group-limited routing with bias correction and shared experts";
    s.keys = {"use_qk_norm", "first_k_dense_replace", "n_routed_experts", "n_shared_experts", "n_group",
              "topk_group",  "routed_scaling_factor"};
    s.read = read;
    s.hf_tp_plan = hf_plan::join(
        {hf_plan::attention(), hf_plan::swiglu(), hf_plan::routed_experts(), hf_plan::swiglu("mlp.shared_experts")});
    s.hf_ep_plan = hf_plan::experts_ep();

    return s;
  }();
  return f;
}

}  // namespace sc
