// The qwen3_5_moe family (docs/adding-a-family.md): config keys, attention and MoE kinds, and HF
// transformers 5.17's own tensor-parallel plan as recorded in fixtures/hf_tp/ (tests hold the two
// together).
#include "families/family.h"

namespace sc {
namespace {

void read(const ConfigReader& r, const ConfigReader& top, ModelConfig& c) {
  (void)top;
  family_read::qwen3_hybrid(r, c);
}
}  // namespace

const FamilySpec& family_qwen3_5_moe() {
  static const FamilySpec f = [] {
    FamilySpec s;
    s.name = "qwen3_5_moe";
    s.model_types = {"qwen3_5_moe_text"};
    s.wrappers = {
        WrapperSpec{"qwen3_5_moe", "model", "colwise_gather_output"},
    };
    s.summary =
        "hybrid as qwen3_next (layer_types; separate in_proj_qkv / z / b / a), in a vision-language wrapper; experts "
        "plus a gated shared expert";
    s.keys = {"layer_types",           "full_attention_interval", "attn_output_gate",
              "linear_num_key_heads",  "linear_num_value_heads",  "linear_key_head_dim",
              "linear_value_head_dim", "linear_conv_kernel_dim",  "shared_expert_intermediate_size"};
    s.read = read;
    s.hf_tp_plan = hf_plan::join(
        {hf_plan::attention(), hf_plan::qk_norms(), hf_plan::routed_experts(), hf_plan::swiglu("mlp.shared_expert"),
         hf_plan::gathered({"linear_attn.in_proj_qkv", "linear_attn.in_proj_z", "linear_attn.in_proj_b",
                            "linear_attn.in_proj_a", "linear_attn.out_proj"})});
    s.hf_ep_plan = hf_plan::experts_ep();

    return s;
  }();
  return f;
}

}  // namespace sc
