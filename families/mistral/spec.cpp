// The mistral family (docs/adding-a-family.md): config keys, attention and MoE kinds, and HF
// transformers 5.17's own tensor-parallel plan as recorded in fixtures/hf_tp/ (tests hold the two
// together).
#include "families/family.h"

namespace sc {
namespace {

void read(const ConfigReader& r, const ConfigReader& top, ModelConfig& c) {
  (void)top;
  c.qk_norm = false;
  family_read::sliding_window(r, c);
  family_read::every_layer_slides(c);  // MistralModel: the sliding-window mask on every layer when set
}
}  // namespace

const FamilySpec& family_mistral() {
  static const FamilySpec f = [] {
    FamilySpec s;
    s.name = "mistral";
    s.model_types = {"mistral"};
    s.wrappers = {};
    s.summary = "GQA without q/k norm, optional sliding window; dense SwiGLU MLP";
    s.keys = {"sliding_window"};
    s.read = read;
    s.has_forward = true;
    s.hf_tp_plan = hf_plan::join({hf_plan::attention(), hf_plan::swiglu()});
    s.hf_ep_plan = {};

    return s;
  }();
  return f;
}

}  // namespace sc
