// families/deepseek_v3: the spec (docs/adding-a-family.md; fixtures/hf_tp/deepseek_v3.json holds what HF 5.17 does).
#include "families/family.h"

namespace sc {

static void read_deepseek_v3(const ConfigReader& r, const ConfigReader&, ModelConfig& c) {
  c.qk_norm = false;
  c.attention_kind = AttentionKind::Mla;
  c.q_lora_rank = r.optional_int("q_lora_rank", 0, 0, kMaxWidth);  // null: a direct q_proj
  c.kv_lora_rank = r.required_int("kv_lora_rank", 1, kMaxWidth);
  c.qk_nope_head_dim = r.required_int("qk_nope_head_dim", 1, kMaxWidth / 2);  // their sum is a head
  c.qk_rope_head_dim = r.required_int("qk_rope_head_dim", 1, kMaxWidth / 2);
  c.v_head_dim = r.required_int("v_head_dim", 1, kMaxWidth);
  c.head_dim = c.q_head_dim();  // a query / key head: nope + rope parts (hidden / heads means nothing here)
  c.router_bias_correction = true;
  family_read::shared_experts(r, c);
}

const FamilySpec& family_deepseek_v3() {
  static const FamilySpec f{"deepseek_v3", {"deepseek_v3"},
      "multi-head latent attention (q_lora / kv_lora ranks); first_k_dense_replace dense layers, then sigmoid "
      "group-limited routing with bias correction and shared experts; HF 5.17 plans no attention sharding",
      {"q_lora_rank", "kv_lora_rank", "qk_nope_head_dim", "qk_rope_head_dim", "v_head_dim", "first_k_dense_replace",
          "n_routed_experts", "n_shared_experts", "n_group", "topk_group"},
      read_deepseek_v3,
      hf_plan::join({hf_plan::swiglu(), hf_plan::routed_experts(), hf_plan::swiglu("mlp.shared_experts")}),
      hf_plan::experts_ep()};
  return f;
}

}  // namespace sc
