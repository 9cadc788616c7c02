// The gpt_oss family (docs/adding-a-family.md): config keys, attention and MoE kinds, and HF
// transformers 5.17's own tensor-parallel plan as recorded in fixtures/hf_tp/ (tests hold the two
// together).
#include "families/family.h"

namespace sc {
namespace {

void read(const ConfigReader& r, const ConfigReader& top, ModelConfig& c) {
  (void)top;
  c.qk_norm = false;
  c.attention_bias = r.boolean("attention_bias", true);  // GptOssConfig default
  c.attention_sinks = true;
  c.expert_bias = true;
  family_read::sliding_window(r, c);
  family_read::layer_pattern(r, c, LayerKind::Sliding);
  family_read::experts_of_intermediate_width(r, c);
}
}  // namespace

const FamilySpec& family_gpt_oss() {
  static const FamilySpec f = [] {
    FamilySpec s;
    s.name = "gpt_oss";
    s.model_types = {"gpt_oss"};
    s.wrappers = {};
    s.summary =
        "GQA with biases and a learned sink per head, alternating sliding / full layers; experts with biases and "
        "clamped SwiGLU (intermediate_size wide); HF 5.17 has no base_model_tp_plan";
    s.keys = {"layer_types", "sliding_window", "num_local_experts", "experts_per_token", "swiglu_limit"};
    s.read = read;
    s.hf_tp_plan = {};  // HF 5.17: no base_model_tp_plan
    s.hf_ep_plan = hf_plan::experts_ep("mlp.router", /*biases=*/true);

    return s;
  }();
  return f;
}

}  // namespace sc
