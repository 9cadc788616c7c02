// The mixtral family (docs/adding-a-family.md): config keys, attention and MoE kinds, and HF
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
  family_read::experts_of_intermediate_width(r, c);
  c.norm_topk_prob = true;  // MixtralSparseMoeBlock divides the top-k weights by their sum
}
}  // namespace

const FamilySpec& family_mixtral() {
  static const FamilySpec f = [] {
    FamilySpec s;
    s.name = "mixtral";
    s.model_types = {"mixtral"};
    s.wrappers = {};
    s.summary =
        "GQA without q/k norm; softmax top-k experts renormalised over the chosen k (experts of intermediate_size "
        "width)";
    s.keys = {"num_local_experts", "num_experts_per_tok", "sliding_window"};
    s.read = read;
    s.has_forward = true;
    s.hf_tp_plan = hf_plan::join({hf_plan::attention(), hf_plan::routed_experts()});
    s.hf_ep_plan = hf_plan::experts_ep();
    s.legacy_renames = {{".mlp.experts.", ".block_sparse_moe.experts."}, {".mlp.gate.", ".block_sparse_moe.gate."},
                        {".gate_proj.", ".w1."}, {".up_proj.", ".w3."}, {".down_proj.", ".w2."}};

    return s;
  }();
  return f;
}

}  // namespace sc
