// The qwen3_5_moe family (docs/adding-a-family.md): config keys, attention and MoE kinds, and HF
// transformers 5.17's own tensor-parallel plan as recorded in fixtures/hf_tp/ (tests hold the two
// together).
#include "families/family.h"

namespace sc {
namespace {

void read(const ConfigReader& r, const ConfigReader& top, ModelConfig& c) {
  (void)top;
  c.attention_output_gate = r.boolean("attn_output_gate", true);
  family_read::layer_pattern(r, c, LayerKind::Linear);
  family_read::gated_delta_net(r, c);
  family_read::gated_shared_expert(r, c);
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
    s.hf_tp_plan = {{"layers.*.linear_attn.in_proj_a", "colwise_gather_output"},
                    {"layers.*.linear_attn.in_proj_b", "colwise_gather_output"},
                    {"layers.*.linear_attn.in_proj_qkv", "colwise_gather_output"},
                    {"layers.*.linear_attn.in_proj_z", "colwise_gather_output"},
                    {"layers.*.linear_attn.out_proj", "colwise_gather_output"},
                    {"layers.*.mlp.experts", "moe_tp_experts"},
                    {"layers.*.mlp.experts.down_proj", "rowwise"},
                    {"layers.*.mlp.experts.gate_up_proj", "packed_colwise"},
                    {"layers.*.mlp.shared_expert.down_proj", "rowwise"},
                    {"layers.*.mlp.shared_expert.gate_proj", "colwise"},
                    {"layers.*.mlp.shared_expert.up_proj", "colwise"},
                    {"layers.*.self_attn.k_norm", "replicated_with_grad_allreduce"},
                    {"layers.*.self_attn.k_proj", "colwise"},
                    {"layers.*.self_attn.o_proj", "rowwise"},
                    {"layers.*.self_attn.q_norm", "replicated_with_grad_allreduce"},
                    {"layers.*.self_attn.q_proj", "colwise"},
                    {"layers.*.self_attn.v_proj", "colwise"}};
    s.hf_ep_plan = {{"layers.*.mlp.experts", "moe_tp_experts"},
                    {"layers.*.mlp.experts.down_proj", "grouped_gemm"},
                    {"layers.*.mlp.experts.gate_up_proj", "grouped_gemm"},
                    {"layers.*.mlp.gate", "ep_router"}};

    return s;
  }();
  return f;
}

}  // namespace sc
