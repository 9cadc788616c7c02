// families/llama: the spec (docs/adding-a-family.md; fixtures/hf_tp/llama.json holds what HF 5.17 does).
#include "families/family.h"

namespace sc {

static void read_llama(const ConfigReader& r, const ConfigReader&, ModelConfig& c) {
  c.qk_norm = false;
  if (r.boolean("mlp_bias", false)) r.fail("mlp_bias", r.j.at("mlp_bias"), "MLP biases are not modelled");
}

const FamilySpec& family_llama() {
  static const FamilySpec f{"llama", {"llama"}, "GQA without q/k norm; dense SwiGLU MLP", {"mlp_bias"}, read_llama,
      hf_plan::join({hf_plan::attention(), hf_plan::swiglu()}), {}, /*has_forward=*/true};
  return f;
}

}  // namespace sc
