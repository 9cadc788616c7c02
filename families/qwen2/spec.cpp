// families/qwen2: the spec (docs/adding-a-family.md; fixtures/hf_tp/qwen2.json holds what HF 5.17 does).
#include "families/family.h"

namespace sc {

static void read_qwen2(const ConfigReader& r, const ConfigReader&, ModelConfig& c) {
  c.qk_norm = false;
  c.attention_bias = true;  // Qwen2Attention: q, k and v always carry biases (o_proj none)
  family_read::sliding_window(r, c);
  family_read::layer_pattern(r, c, LayerKind::Sliding);
}

const FamilySpec& family_qwen2() {
  static const FamilySpec f{"qwen2", {"qwen2"},
      "GQA with q/k/v biases, no q/k norm; dense SwiGLU MLP; sliding-window layers from layer_types",
      {"layer_types", "sliding_window", "use_sliding_window", "max_window_layers"}, read_qwen2,
      hf_plan::join({hf_plan::attention(), hf_plan::swiglu()}), {}, /*has_forward=*/true};
  return f;
}

}  // namespace sc
