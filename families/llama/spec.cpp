// The llama family (docs/adding-a-family.md): config keys, attention and MoE kinds, and HF
// transformers 5.17's own tensor-parallel plan as recorded in fixtures/hf_tp/ (tests hold the two
// together).
#include "families/family.h"

namespace sc {
namespace {

void read(const ConfigReader& r, const ConfigReader& top, ModelConfig& c) {
  (void)top;
  c.qk_norm = false;
  if (r.boolean("mlp_bias", false)) r.fail("mlp_bias", r.j.at("mlp_bias"), "MLP biases are not modelled");
}
}  // namespace

const FamilySpec& family_llama() {
  static const FamilySpec f = [] {
    FamilySpec s;
    s.name = "llama";
    s.model_types = {"llama"};
    s.wrappers = {};
    s.summary = "GQA without q/k norm; dense SwiGLU MLP";
    s.keys = {"mlp_bias"};
    s.read = read;
    s.has_forward = true;
    s.hf_tp_plan = hf_plan::join({hf_plan::attention(), hf_plan::swiglu()});
    s.hf_ep_plan = {};

    return s;
  }();
  return f;
}

}  // namespace sc
