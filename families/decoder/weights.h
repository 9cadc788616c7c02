// Qwen3 / Qwen3-MoE weights of one rank, and how they get there: sliced from a safetensors
// checkpoint (load_weights) or generated deterministically (random_weights).
//
// Every tensor is stored as the rank holds it: the slice that checks/sharding.h's slice_for()
// assigns to this rank, in the compute dtype and on the compute device. Shape comments give
// the local shape; `_local` sizes come from the slice (under world size 1 they are the full sizes).
//   H = hidden_size, D = head_dim, E = num_experts, V = vocab_size,
//   q_rows / kv_rows = AttentionLayout::q_rows / kv_rows (checks/sharding.h).
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include <ATen/ATen.h>

#include "layout/plan.h"
#include "checks/sharding.h"
#include "models/config.h"
#include "models/dtype.h"
#include "ops/kernels.h"

namespace sc {

class Checkpoint;

struct AttentionWeights {
  at::Tensor q;       // [q_rows, H]   self_attn.q_proj (colwise slice)
  at::Tensor k;       // [kv_rows, H]  self_attn.k_proj
  at::Tensor v;       // [kv_rows, H]  self_attn.v_proj
  at::Tensor o;       // [H, q_rows]   self_attn.o_proj (rowwise slice; output all-reduced)
  at::Tensor q_norm;  // [D]           replicated (undefined without q/k norm: Llama, Mistral, Qwen2)
  at::Tensor k_norm;  // [D]           replicated
  at::Tensor q_bias;  // [q_rows]      q_proj.bias, sliced as q (attention_bias: Qwen2, Qwen2-MoE)
  at::Tensor k_bias;  // [kv_rows]
  at::Tensor v_bias;  // [kv_rows]
};

struct ExpertWeights {
  at::Tensor gate;  // [I_local, H]  mlp.experts.{e}.gate_proj (I = moe_intermediate_size)
  at::Tensor up;    // [I_local, H]  mlp.experts.{e}.up_proj
  at::Tensor down;  // [H, I_local]  mlp.experts.{e}.down_proj
};

struct MoeWeights {
  at::Tensor router;                          // [E, H] mlp.gate, replicated on every rank
  std::map<int64_t, ExpertWeights> experts;   // the experts this rank holds (global id -> slices)
  // Stacked copies for Kernels::grouped_experts (prepare_kernels); the per-expert tensors above
  // then become views into them, so the memory is held once. Local experts are the contiguous
  // global ids [first_expert, first_expert + E_local).
  at::Tensor gate_up;        // [E_local, 2 I_local, H]  gate rows, then up rows
  at::Tensor down_stacked;   // [E_local, H, I_local]
  int64_t first_expert = 0;
  // The routed experts' output is a partial sum over the stage group (experts split by EP or by
  // expert TP). False when every rank holds every expert whole (a TP plan that shards no experts,
  // as HF's Qwen2-MoE plan): then each rank computes the full sum and nothing is reduced.
  bool partial = true;
  // Shared expert (Qwen2-MoE: mlp.shared_expert, SwiGLU of shared_expert_intermediate_size) and
  // its sigmoid gate (mlp.shared_expert_gate [1, H]); undefined when the model has none.
  at::Tensor shared_gate;   // [S_local, H]
  at::Tensor shared_up;     // [S_local, H]
  at::Tensor shared_down;   // [H, S_local]
  at::Tensor shared_expert_gate;  // [1, H] replicated
  bool shared_partial = false;    // the shared expert is split over TP: its output is all-reduced
  bool has_shared() const { return shared_gate.defined(); }
  bool stacked() const { return gate_up.defined(); }
};

struct DenseMlpWeights {
  at::Tensor gate;  // [I_local, H]  mlp.gate_proj (I = intermediate_size)
  at::Tensor up;    // [I_local, H]  mlp.up_proj
  at::Tensor down;  // [H, I_local]  mlp.down_proj
};

struct LayerWeights {
  int64_t index = 0;        // global layer index
  bool sparse = false;      // MoE block (true) or dense MLP (false)
  bool has_mlp = true;      // false when loaded with attention_only
  at::Tensor input_norm;    // [H]
  at::Tensor post_norm;     // [H]
  AttentionWeights attn;
  MoeWeights moe;           // when sparse
  DenseMlpWeights dense;    // when !sparse
};

struct ModelWeights {
  ParallelPlan plan;
  int64_t rank = 0;
  AttentionLayout attn_layout;  // the attention this rank runs (same for every layer)
  int64_t first_layer = 0, last_layer = 0;  // layers [first_layer, last_layer)
  at::Tensor embed;             // [V, H] model.embed_tokens (absent unless the first stage)
  std::vector<LayerWeights> layers;  // layers[i] is global layer first_layer + i
  at::Tensor final_norm;        // [H] model.norm (absent unless the last stage)
  at::Tensor lm_head;           // [V_local, H] lm_head rows [vocab_begin, vocab_begin + V_local);
                                // with tied embeddings the same rows of embed_tokens
  int64_t vocab_begin = 0;
  bool vocab_parallel = false;  // lm_head is a vocab shard: logits are all-gathered over TP
  Kernels kernels;              // implementation the forward uses (kernels.h); set by prepare_kernels

  bool has_embed() const { return embed.defined(); }
  bool has_head() const { return lm_head.defined(); }
  const LayerWeights& layer(int64_t global_index) const;  // throws std::out_of_range
  // Bytes of all tensors held (views of another held tensor, as tied lm_head, count once).
  uint64_t nbytes() const;
};

// Which parts a rank loads, and how.
struct LoadOptions {
  at::ScalarType dtype = at::kFloat;  // compute dtype (weights are converted to it)
  at::Device device = at::kCPU;
  // Layers [first_layer, last_layer); -1 (both): the plan's pipeline stage of `rank`
  // (stage_layers()). Embedding on the stage holding layer 0 / or whenever with_embed says so;
  // final norm and lm_head on the stage holding the last layer.
  int64_t first_layer = -1, last_layer = -1;
  int with_embed = -1;       // -1: derive from the layer range; 0 / 1 force
  int with_head = -1;        // -1: derive from the layer range; 0 / 1 force
  bool attention_only = false;  // skip MLP / MoE weights (running the attention alone)
  // Emulate HF's EP loading: read each needed tensor whole, then slice (memory measurements).
  bool full_tensor_reads = false;
  // Stack each sparse layer's local experts as soon as the layer is loaded (what prepare_kernels
  // does for Kernels::grouped_experts), so that at most one layer's per-expert copies are live.
  bool stack_experts = false;
  // Called after each tensor the rank keeps, with its bytes (progress of a long load).
  std::function<void(uint64_t bytes)> on_tensor;
};

struct LoadStats {
  uint64_t bytes_read = 0;        // bytes copied out of the checkpoint
  uint64_t peak_bytes_held = 0;   // max over the load of (weights kept so far + staging buffers)
  uint64_t bytes_kept = 0;        // final weights (compute dtype)
  int64_t tensors_read = 0;       // checkpoint tensors touched
  double seconds = 0;             // loading (or generating) and preparing the kernels, synchronized
};

// Throws ConfigError (file, key, value) for a config the forward does not compute as HF does: a
// family without a forward (FamilySpec::has_forward), a rope scaling other than the default,
// linear or llama3. Called before any rank starts, and by every weight builder.
void require_forward_support(const ModelConfig& c);

// sc::DType <-> at::ScalarType (floating types; others throw std::invalid_argument).
at::ScalarType to_scalar_type(DType d);
DType from_scalar_type(at::ScalarType t);

// Resolved layer range / stage parts of a rank under the options.
struct RankParts {
  int64_t first_layer = 0, last_layer = 0;
  bool embed = false, head = false;
};
RankParts rank_parts(const ModelConfig& c, const ParallelPlan& p, int64_t rank, const LoadOptions& o);

// Reads this rank's slices from the checkpoint. Every tensor's shape is checked against
// checks/tensors.h (CheckpointError naming the tensor, the expected and the actual shape; a
// missing tensor is a CheckpointError naming it). Only the rank's bytes are read (Checkpoint::
// read_slice) unless full_tensor_reads. Per-expert names are preferred; the packed layout
// (mlp.experts.gate_up_proj [E, 2I, H] or [E, H, 2I], mlp.experts.down_proj [E, H, I] or
// [E, I, H]) is used when the per-expert tensors are absent.
ModelWeights load_weights(const Checkpoint& ckpt, const ModelConfig& c, const ParallelPlan& p, int64_t rank,
                          const LoadOptions& o = {}, LoadStats* stats = nullptr);

// Selects the kernels for these weights (require_kernels first) and prepares what they need:
// grouped_experts stacks each sparse layer's local experts (MoeWeights::gate_up / down_stacked)
// and turns the per-expert tensors into views of the stacks. Layers whose local experts are not
// contiguous ids keep the per-expert loop.
void prepare_kernels(ModelWeights& w, const Kernels& k);

// Deterministic random weights: element i of tensor `name` is a pure function of
// (seed, name, i) (counter-based hash, no sequential generator), so every rank generates exactly
// its slice of the same global tensors as the world-size-1 reference, without ever building a
// full tensor: a TP=8 rank of a 235B layer costs only its own shard. Values are float32-
// representable (then converted to o.dtype), so fp32 and fp64 runs share the same weights.
// Distribution: uniform with std 1/sqrt(in_features) for Linear weights (router included),
// std 1 for the embedding, 1 + U(-0.1, 0.1) for RMSNorm weights.
ModelWeights random_weights(const ModelConfig& c, const ParallelPlan& p, int64_t rank, uint64_t seed,
                            const LoadOptions& o = {});
ModelWeights random_weights(const ModelConfig& c, const ParallelPlan& p, int64_t rank, uint64_t seed,
                            at::ScalarType dtype);
// The full (unsliced) random tensor of a spec, as random_weights would generate it (float32);
// used to write test checkpoints. `name` must be a checks/tensors.h name.
at::Tensor random_tensor(const ModelConfig& c, const std::string& name, uint64_t seed);
// The same tensor's `slice` (float32) made by the tensor-operation generator random_weights uses off
// the CPU (the GPU makes its own weights), on `device`: equal to random_tensor's, bit for bit.
at::Tensor random_tensor(const ModelConfig& c, const std::string& name, uint64_t seed, at::Device device,
                         const SliceSpec& slice = {});

}  // namespace sc
