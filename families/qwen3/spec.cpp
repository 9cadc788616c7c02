// families/qwen3: the spec (docs/adding-a-family.md; fixtures/hf_tp/qwen3.json holds what HF 5.17 does).
#include "families/family.h"

namespace sc {

const FamilySpec& family_qwen3() {
  static const FamilySpec f{"qwen3", {"qwen3", "qwen3_moe"},
      "GQA with q_norm / k_norm; dense SwiGLU MLP or softmax top-k experts (norm_topk_prob), decoder_sparse_step / "
      "mlp_only_layers",
      {"num_experts", "num_experts_per_tok", "moe_intermediate_size", "norm_topk_prob", "decoder_sparse_step",
          "mlp_only_layers"},
      nullptr, hf_plan::join({hf_plan::attention(), hf_plan::qk_norms(), hf_plan::swiglu(), hf_plan::routed_experts()}),
      hf_plan::experts_ep(), /*has_forward=*/true};
  return f;
}

}  // namespace sc
