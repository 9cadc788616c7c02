// The qwen2 family (docs/adding-a-family.md): config keys, attention and MoE kinds, and HF
// transformers 5.17's own tensor-parallel plan as recorded in fixtures/hf_tp/ (tests hold the two
// together).
#include "families/family.h"

namespace sc {
namespace {

void read(const ConfigReader& r, const ConfigReader& top, ModelConfig& c) {
  (void)top;
  c.qk_norm = false;
  c.attention_bias = true;  // Qwen2Attention: q, k and v always carry biases (o_proj none)
  family_read::sliding_window(r, c);
  family_read::layer_pattern(r, c, LayerKind::Sliding);
}
}  // namespace

const FamilySpec& family_qwen2() {
  static const FamilySpec f = [] {
    FamilySpec s;
    s.name = "qwen2";
    s.model_types = {"qwen2"};
    s.wrappers = {};
    s.summary = "GQA with q/k/v biases, no q/k norm; dense SwiGLU MLP; sliding-window layers from layer_types";
    s.keys = {"layer_types", "sliding_window", "use_sliding_window", "max_window_layers"};
    s.read = read;
    s.has_forward = true;
    s.hf_tp_plan = hf_plan::join({hf_plan::attention(), hf_plan::swiglu()});
    s.hf_ep_plan = {};

    return s;
  }();
  return f;
}

}  // namespace sc
