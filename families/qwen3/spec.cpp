// The qwen3 family (docs/adding-a-family.md): config keys, attention and MoE kinds, and HF
// transformers 5.17's own tensor-parallel plan as recorded in fixtures/hf_tp/ (tests hold the two
// together).
#include "families/family.h"

namespace sc {
const FamilySpec& family_qwen3() {
  static const FamilySpec f = [] {
    FamilySpec s;
    s.name = "qwen3";
    s.model_types = {"qwen3", "qwen3_moe"};
    s.wrappers = {};
    s.summary =
        "GQA with q_norm / k_norm; dense SwiGLU MLP or softmax top-k experts (norm_topk_prob), decoder_sparse_step / "
        "mlp_only_layers";
    s.keys = {"num_experts",    "num_experts_per_tok", "moe_intermediate_size",
              "norm_topk_prob", "decoder_sparse_step", "mlp_only_layers"};
    s.hf_tp_plan =
        hf_plan::join({hf_plan::attention(), hf_plan::qk_norms(), hf_plan::swiglu(), hf_plan::routed_experts()});
    s.hf_ep_plan = hf_plan::experts_ep();
    s.has_forward = true;
    return s;
  }();
  return f;
}

}  // namespace sc
