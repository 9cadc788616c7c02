// The qwen3_next family (docs/adding-a-family.md): config keys, attention and MoE kinds, and HF
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

const FamilySpec& family_qwen3_next() {
  static const FamilySpec f = [] {
    FamilySpec s;
    s.name = "qwen3_next";
    s.model_types = {"qwen3_next"};
    s.wrappers = {};
    s.summary =
        "hybrid: gated-delta-net linear attention, every full_attention_interval-th layer gated GQA (q_proj doubled "
        "for the output gate) with q/k norm; 512 experts top-10 plus a gated shared expert";
    s.keys = {"full_attention_interval", "layer_types",
              "linear_num_key_heads",    "linear_num_value_heads",
              "linear_key_head_dim",     "linear_value_head_dim",
              "linear_conv_kernel_dim",  "shared_expert_intermediate_size"};
    s.read = read;
    s.hf_tp_plan = hf_plan::join(
        {hf_plan::attention(), hf_plan::qk_norms(), hf_plan::swiglu(), hf_plan::routed_experts(),
         hf_plan::swiglu("mlp.shared_expert"),
         hf_plan::gathered({"linear_attn.in_proj_qkvz", "linear_attn.in_proj_ba", "linear_attn.out_proj"})});
    s.hf_ep_plan = hf_plan::experts_ep();

    return s;
  }();
  return f;
}

}  // namespace sc
