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
    s.keys = {"num_experts", "num_experts_per_tok", "moe_intermediate_size", "norm_topk_prob", "decoder_sparse_step",
              "mlp_only_layers"};
    s.hf_tp_plan = {{"layers.*.mlp.down_proj", "rowwise"},
                    {"layers.*.mlp.experts", "moe_tp_experts"},
                    {"layers.*.mlp.experts.down_proj", "rowwise"},
                    {"layers.*.mlp.experts.gate_up_proj", "packed_colwise"},
                    {"layers.*.mlp.gate_proj", "colwise"},
                    {"layers.*.mlp.up_proj", "colwise"},
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
    s.has_forward = true;
    return s;
  }();
  return f;
}

}  // namespace sc
