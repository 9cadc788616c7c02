// The phi3 family (docs/adding-a-family.md): config keys, attention and MoE kinds, and HF
// transformers 5.17's own tensor-parallel plan as recorded in fixtures/hf_tp/ (tests hold the two
// together).
#include "families/family.h"

namespace sc {
namespace {

void read(const ConfigReader& r, const ConfigReader& top, ModelConfig& c) {
  (void)top;
  c.qk_norm = false;
  c.attention_kind = AttentionKind::FusedQkv;
  c.fused_gate_up = true;
  family_read::sliding_window(r, c);
}
}  // namespace

const FamilySpec& family_phi3() {
  static const FamilySpec f = [] {
    FamilySpec s;
    s.name = "phi3";
    s.model_types = {"phi3"};
    s.wrappers = {};
    s.summary = "one fused qkv_proj and one fused gate_up_proj; HF shards them colwise and gathers their outputs";
    s.keys = {"sliding_window"};
    s.read = read;
    s.hf_tp_plan = {{"layers.*.mlp.down_proj", "rowwise_split_input"},
                    {"layers.*.mlp.gate_up_proj", "colwise_gather_output"},
                    {"layers.*.self_attn.o_proj", "rowwise_split_input"},
                    {"layers.*.self_attn.qkv_proj", "colwise_gather_output"}};
    s.hf_ep_plan = {};

    return s;
  }();
  return f;
}

}  // namespace sc
