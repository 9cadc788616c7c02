// The qwen3_vl_moe family (docs/adding-a-family.md): config keys, attention and MoE kinds, and HF
// transformers 5.17's own tensor-parallel plan as recorded in fixtures/hf_tp/ (tests hold the two
// together).
#include "families/family.h"

namespace sc {
const FamilySpec& family_qwen3_vl_moe() {
  static const FamilySpec f = [] {
    FamilySpec s;
    s.name = "qwen3_vl_moe";
    s.model_types = {"qwen3_vl_moe_text"};
    s.wrappers = {
        WrapperSpec{"qwen3_vl_moe", "model.language_model", ""},
    };
    s.summary =
        "Qwen3-MoE text model (GQA with q/k norm, softmax top-k experts) in a vision-language wrapper; HF 5.17 plans "
        "no expert sharding for it";
    s.keys = {"num_experts",    "num_experts_per_tok", "moe_intermediate_size",
              "norm_topk_prob", "decoder_sparse_step", "mlp_only_layers"};
    s.hf_tp_plan = hf_plan::join({hf_plan::embedding_rowwise(), hf_plan::attention(), hf_plan::swiglu()});
    s.hf_ep_plan = hf_plan::experts_ep();

    return s;
  }();
  return f;
}

}  // namespace sc
