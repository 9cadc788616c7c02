// families/qwen3_5_moe: the spec (docs/adding-a-family.md; fixtures/hf_tp/qwen3_5_moe.json holds what HF 5.17 does).
#include "families/family.h"

namespace sc {

const FamilySpec& family_qwen3_5_moe() {
  static const FamilySpec f{"qwen3_5_moe", {"qwen3_5_moe_text"},
      "hybrid as qwen3_next (layer_types; separate in_proj_qkv / z / b / a), in a vision-language wrapper; experts "
      "plus a gated shared expert",
      {"layer_types", "full_attention_interval", "attn_output_gate", "linear_num_key_heads", "linear_num_value_heads",
          "linear_key_head_dim", "linear_value_head_dim", "linear_conv_kernel_dim", "shared_expert_intermediate_size"},
      [](const ConfigReader& r, const ConfigReader&, ModelConfig& c) { family_read::qwen3_hybrid(r, c); },
      hf_plan::join(
          {hf_plan::attention(), hf_plan::qk_norms(), hf_plan::routed_experts(), hf_plan::swiglu("mlp.shared_expert"),
              hf_plan::gathered({"linear_attn.in_proj_qkv", "linear_attn.in_proj_z", "linear_attn.in_proj_b",
                  "linear_attn.in_proj_a", "linear_attn.out_proj"})}),
      hf_plan::experts_ep(), /*has_forward=*/false, {},
      {
          WrapperSpec{"qwen3_5_moe", "model", "colwise_gather_output"},
      }};
  return f;
}

}  // namespace sc
