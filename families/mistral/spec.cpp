// families/mistral: the spec (docs/adding-a-family.md; fixtures/hf_tp/mistral.json holds what HF 5.17 does).
#include "families/family.h"

namespace sc {

static void read_mistral(const ConfigReader& r, const ConfigReader&, ModelConfig& c) {
  c.qk_norm = false;
  family_read::sliding_window(r, c);
  family_read::every_layer_slides(c);  // MistralModel: the sliding-window mask on every layer when set
}

const FamilySpec& family_mistral() {
  static const FamilySpec f{"mistral", {"mistral"}, "GQA without q/k norm, optional sliding window; dense SwiGLU MLP",
      {"sliding_window"}, read_mistral, hf_plan::join({hf_plan::attention(), hf_plan::swiglu()}), {},
      /*has_forward=*/true};
  return f;
}

}  // namespace sc
