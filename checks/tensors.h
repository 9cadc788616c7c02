// The tensor inventory of a Qwen3 / Qwen3-MoE checkpoint, derived from ModelConfig: every tensor's
// HF name and full shape (as transformers 5.17 save_pretrained writes it, per-expert layout).
// The loader checks checkpoints against it (like llama.cpp's create_tensor), the memory estimates
// sum it, and the sharding table slices it. Torch-free.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "models/config.h"

namespace sc {

enum class Role {
  Embed, InputNorm, QProj, KProj, VProj, OProj, QNorm, KNorm, PostNorm,
  Router, ExpertGate, ExpertUp, ExpertDown, DenseGate, DenseUp, DenseDown,
  FinalNorm, LmHead
};
const char* role_module(Role r);  // module path inside a layer, e.g. "self_attn.k_proj", "mlp.experts.*.up_proj"

struct TensorSpec {
  std::string name;            // e.g. "model.layers.3.mlp.experts.17.up_proj.weight"
  std::vector<int64_t> shape;  // full (unsharded) shape; Linear weights are [out, in]
  Role role = Role::Embed;
  int64_t layer = -1;          // -1 outside the decoder layers
  int64_t expert = -1;         // -1 unless a routed expert
  int64_t numel() const;
};

std::string tensor_name(Role role, int64_t layer = -1, int64_t expert = -1);
// All tensors of the model, in checkpoint order (embed, layers..., norm, lm_head unless tied).
std::vector<TensorSpec> model_tensors(const ModelConfig& c);
// Tensors of one decoder layer.
std::vector<TensorSpec> layer_tensors(const ModelConfig& c, int64_t layer);
// The spec for one name (throws ConfigError-free std::out_of_range-free: returns false if unknown).
bool find_tensor(const ModelConfig& c, const std::string& name, TensorSpec* out);

}  // namespace sc
