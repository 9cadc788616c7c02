// The qwen2_moe family (docs/adding-a-family.md): config keys, attention and MoE kinds, and HF
// transformers 5.17's own tensor-parallel plan as recorded in fixtures/hf_tp/ (tests hold the two
// together).
#include "families/family.h"

namespace sc {
namespace {

void read(const ConfigReader& r, const ConfigReader& top, ModelConfig& c) {
  (void)top;
  c.qk_norm = false;
  c.attention_bias = r.boolean("qkv_bias", true);  // Qwen2MoeAttention: q, k and v biases (HF 5.17 default true)
  family_read::gated_shared_expert(r, c);
}
}  // namespace

const FamilySpec& family_qwen2_moe() {
  static const FamilySpec f = [] {
    FamilySpec s;
    s.name = "qwen2_moe";
    s.model_types = {"qwen2_moe"};
    s.wrappers = {};
    s.summary = "GQA with q/k/v biases; softmax top-k experts plus one shared expert behind a sigmoid gate";
    s.keys = {"qkv_bias", "shared_expert_intermediate_size", "norm_topk_prob", "decoder_sparse_step", "mlp_only_layers"};
    s.read = read;
    s.has_forward = true;
    s.hf_tp_plan = hf_plan::join({hf_plan::attention(), hf_plan::swiglu()});  // HF 5.17 plans no expert sharding for it
    s.hf_ep_plan = hf_plan::experts_ep();

    return s;
  }();
  return f;
}

}  // namespace sc
