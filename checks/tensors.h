// The tensor inventory of a model, derived from ModelConfig (its family's fields): every tensor's
// HF name and full shape, in the order HF registers the modules (named_modules order, which is
// also the order of HF's load-time tensor-parallel validation). Qwen3 / Qwen3-MoE names are the
// checkpoint's (transformers 5.17 save_pretrained, per-expert layout); other families use HF's
// module names with the same per-expert spelling (mlp.experts.E.gate_proj), since only the
// shapes are read for them. The loader checks checkpoints against it (like llama.cpp's
// create_tensor), the memory estimates sum it, and the sharding table slices it. Torch-free.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "models/config.h"

namespace sc {

enum class Role {
  Embed, InputNorm, QProj, KProj, VProj, OProj, QNorm, KNorm, PostNorm,
  Router, ExpertGate, ExpertUp, ExpertDown, DenseGate, DenseUp, DenseDown,
  FinalNorm, LmHead,
  // Other families.
  QkvProj, DenseGateUp,                         // phi3's fused projections
  Sinks,                                        // gpt_oss: one sink logit per head
  PreFfnNorm, PostFfnNorm,                      // gemma3: feed-forward norms
  SharedGate, SharedUp, SharedDown, SharedExpertGate,  // shared expert(s)
  QAProj, QANorm, QBProj, KvAProj, KvANorm, KvBProj,   // MLA
  LinInQkvz, LinInBa, LinInQkv, LinInZ, LinInB, LinInA, LinConv, LinDtBias, LinALog, LinNorm, LinOut,  // gated delta net
};
constexpr int kNumRoles = int(Role::LinOut) + 1;
const char* role_module(Role r);  // Qwen3 module path inside a layer, e.g. "self_attn.k_proj", "mlp.experts.*.up_proj"
// The module path inside a layer for a family (gpt_oss's router is mlp.router; gated shared
// experts are mlp.shared_expert, ungated ones mlp.shared_experts).
std::string role_module(const ModelConfig& c, Role r);

struct TensorSpec {
  std::string name;            // e.g. "model.layers.3.mlp.experts.17.up_proj.weight"
  std::vector<int64_t> shape;  // full (unsharded) shape; Linear weights are [out, in]
  Role role = Role::Embed;
  int64_t layer = -1;          // -1 outside the decoder layers
  int64_t expert = -1;         // -1 unless a routed expert
  bool bias = false;           // a Linear bias (or another 1-D parameter of a Linear's module)
  int64_t numel() const;
  // The module holding it, as named_modules names it ("model.layers.3.self_attn.k_proj").
  std::string module() const;
};

std::string tensor_name(Role role, int64_t layer = -1, int64_t expert = -1);  // Qwen3 names
std::string tensor_name(const ModelConfig& c, Role role, int64_t layer = -1, int64_t expert = -1);
// All tensors of the model, in registration order (embed, layers..., norm, lm_head unless tied).
std::vector<TensorSpec> model_tensors(const ModelConfig& c);
// Tensors of one decoder layer.
std::vector<TensorSpec> layer_tensors(const ModelConfig& c, int64_t layer);
// Layers come in few kinds (attention kind x sparse); the first layer of each stands for the rest.
struct LayerKindIndex {
  std::vector<int64_t> first;    // the first layer of each kind, in layer order
  std::vector<size_t> of_layer;  // the kind of every layer (an index into first)
};
LayerKindIndex layer_kind_index(const ModelConfig& c);
// A layer's tensors with one representative routed expert (index 0) instead of all of them; the
// router keeps its full [num_experts, hidden] shape. What sharding rules, memory sums and HF's
// load-time checks need per kind of layer, without building num_experts x 3 tensors.
std::vector<TensorSpec> representative_layer_tensors(const ModelConfig& c, int64_t layer);
// The spec for one name: false if the inventory has no such tensor.
bool find_tensor(const ModelConfig& c, const std::string& name, TensorSpec* out);

}  // namespace sc
