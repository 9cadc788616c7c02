// families/gpt_oss: the spec (docs/adding-a-family.md; fixtures/hf_tp/gpt_oss.json holds what HF 5.17 does).
#include "families/family.h"

namespace sc {

static void read_gpt_oss(const ConfigReader& r, const ConfigReader&, ModelConfig& c) {
  c.qk_norm = false;
  c.attention_bias = r.boolean("attention_bias", true);  // GptOssConfig default
  c.attention_sinks = true;
  c.expert_bias = true;
  family_read::sliding_window(r, c);
  family_read::layer_pattern(r, c, LayerKind::Sliding);
  family_read::experts_of_intermediate_width(r, c);
}

const FamilySpec& family_gpt_oss() {
  static const FamilySpec f{"gpt_oss", {"gpt_oss"},
      "GQA with biases and a learned sink per head, alternating sliding / full layers; experts with biases and clamped "
      "SwiGLU (intermediate_size wide); HF 5.17 has no base_model_tp_plan",
      {"layer_types", "sliding_window", "num_local_experts", "experts_per_token", "swiglu_limit"}, read_gpt_oss, {},
      hf_plan::experts_ep("mlp.router", /*biases=*/true)};
  return f;
}

}  // namespace sc
