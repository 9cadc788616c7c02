// families/qwen3_vl_moe: the spec (docs/adding-a-family.md; fixtures/hf_tp/qwen3_vl_moe.json holds what HF 5.17 does).
#include "families/family.h"

namespace sc {

const FamilySpec& family_qwen3_vl_moe() {
  static const FamilySpec f{"qwen3_vl_moe", {"qwen3_vl_moe_text"},
      "Qwen3-MoE text model (GQA with q/k norm, softmax top-k experts) in a vision-language wrapper; HF 5.17 plans no "
      "expert sharding for it",
      {"num_experts", "num_experts_per_tok", "moe_intermediate_size", "norm_topk_prob", "decoder_sparse_step",
          "mlp_only_layers"},
      nullptr, hf_plan::join({hf_plan::embedding_rowwise(), hf_plan::attention(), hf_plan::swiglu()}),
      hf_plan::experts_ep(), /*has_forward=*/false, {},
      {
          WrapperSpec{"qwen3_vl_moe", "model.language_model", ""},
      }};
  return f;
}

}  // namespace sc
