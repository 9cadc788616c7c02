// families/phi3: the spec (docs/adding-a-family.md; fixtures/hf_tp/phi3.json holds what HF 5.17 does).
#include "families/family.h"

namespace sc {

static void read_phi3(const ConfigReader& r, const ConfigReader&, ModelConfig& c) {
  c.qk_norm = false;
  c.attention_kind = AttentionKind::FusedQkv;
  c.fused_gate_up = true;
  family_read::sliding_window(r, c);
}

const FamilySpec& family_phi3() {
  static const FamilySpec f{"phi3", {"phi3"},
      "one fused qkv_proj and one fused gate_up_proj; HF shards them colwise and gathers their outputs",
      {"sliding_window"}, read_phi3,
      {{"layers.*.mlp.down_proj", "rowwise_split_input"}, {"layers.*.mlp.gate_up_proj", "colwise_gather_output"},
          {"layers.*.self_attn.o_proj", "rowwise_split_input"},
          {"layers.*.self_attn.qkv_proj", "colwise_gather_output"}}};
  return f;
}

}  // namespace sc
