// families/qwen3_next: the spec (docs/adding-a-family.md; fixtures/hf_tp/qwen3_next.json holds what HF 5.17 does).
#include "families/family.h"

namespace sc {

const FamilySpec& family_qwen3_next() {
  static const FamilySpec f{"qwen3_next", {"qwen3_next"},
      "hybrid: gated-delta-net linear attention, every full_attention_interval-th layer gated GQA (q_proj doubled for "
      "the output gate) with q/k norm; 512 experts top-10 plus a gated shared expert",
      {"full_attention_interval", "layer_types", "linear_num_key_heads", "linear_num_value_heads",
          "linear_key_head_dim", "linear_value_head_dim", "linear_conv_kernel_dim", "shared_expert_intermediate_size"},
      [](const ConfigReader& r, const ConfigReader&, ModelConfig& c) { family_read::qwen3_hybrid(r, c); },
      hf_plan::join({hf_plan::attention(), hf_plan::qk_norms(), hf_plan::swiglu(), hf_plan::routed_experts(),
          hf_plan::swiglu("mlp.shared_expert"),
          hf_plan::gathered({"linear_attn.in_proj_qkvz", "linear_attn.in_proj_ba", "linear_attn.out_proj"})}),
      hf_plan::experts_ep()};
  return f;
}

}  // namespace sc
