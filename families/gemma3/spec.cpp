// families/gemma3: the spec (docs/adding-a-family.md; fixtures/hf_tp/gemma3.json holds what HF 5.17 does).
#include "families/family.h"

namespace sc {

static void read_gemma3(const ConfigReader& r, const ConfigReader& top, ModelConfig& c) {
  family_read::sliding_window(r, c);
  family_read::layer_pattern(r, c, LayerKind::Sliding);
  if (c.layer_kinds.empty())  // Gemma3TextConfig: sliding_window_pattern 6 when the file names none
    for (int64_t l = 0; l < c.num_hidden_layers; ++l)
      c.layer_kinds.push_back((l + 1) % 6 == 0 ? LayerKind::Full : LayerKind::Sliding);
  // Gemma3 configs tie the embeddings unless they say otherwise (the shared reader defaults to false).
  if (!r.has("tie_word_embeddings") && !top.has("tie_word_embeddings")) c.tie_word_embeddings = true;
}

const FamilySpec& family_gemma3() {
  static const FamilySpec f{"gemma3", {"gemma3_text"},
      "GQA with q/k norm, five sliding-window layers to one full; GeGLU MLP; embeddings tied by default",
      {"layer_types", "sliding_window_pattern", "sliding_window", "query_pre_attn_scalar"}, read_gemma3,
      hf_plan::join({hf_plan::embedding_rowwise(), hf_plan::attention(), hf_plan::qk_norms(), hf_plan::swiglu()}), {},
      /*has_forward=*/false, {},
      {
          WrapperSpec{"gemma3", "model.language_model", ""},
      },
      "colwise_gather_output",
      R"({"vocab_size": 262208, "num_hidden_layers": 26, "num_attention_heads": 8, "num_key_value_heads": 4, "head_dim": 256, "hidden_size": 2304, "intermediate_size": 9216, "hidden_activation": "gelu_pytorch_tanh"})"};
  return f;
}

}  // namespace sc
