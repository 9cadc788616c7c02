// The decoder forward of the GQA families (Qwen3 / Qwen3-MoE, Llama, Mistral, Mixtral, Qwen2,
// Qwen2-MoE) with HF transformers 5.x eager numerics, for one rank of any plan. The family's
// differences are ModelConfig fields: q/k norm or none, q/k/v biases, the rope (default, linear,
// llama3), sliding-window layers, the MoE's top-k renormalisation and a gated shared expert.
//
// The same code is the single-device reference (world size 1, sc::local_comm()) and every rank of
// every plan: the plan only changes which slices the weights hold (weights.h) and the collectives
// called through Comm (comm.h). Numerics follow HF modeling_qwen3(_moe).py (eager attention):
//   RMSNorm      in fp32: x * rsqrt(mean(x^2) + eps), cast back, then weight * x
//   RoPE         inv_freq = 1 / theta^(arange(0, D, 2) / D) in fp32 (then HF's linear / llama3
//                scaling when configured); cos/sin in fp32, cast to x dtype
//   attention    view(B, S, -1, D) on the local projections (q, then k, then v), q/k norm, RoPE,
//                repeat_kv(n_rep of AttentionLayout), (q k^T) * D^-0.5 + mask, softmax in fp32,
//                cast, @ v, o_proj, all_reduce_tp
//   MoE          logits = x router^T; softmax in fp32; top-k; renormalise (norm_topk_prob); cast
//                the weights to x's dtype; local experts in ascending id:
//                index_add(down(silu(gate x_e) * up x_e) * w); all_reduce_experts (when the
//                experts are split); + sigmoid(shared_expert_gate x) * shared_expert(x)
//   dense MLP    down(silu(gate x) * up x), all_reduce_tp
// Mask: additive, finfo(dtype).min where masked (causal and attention_mask == 0), as HF's
// eager_mask. Rows with no visible key (query rows of left padding) then attend uniformly to every
// key, as HF does in fp32/bf16. For fp64 HF's min(float64) becomes -inf in the fp32 softmax and
// such rows turn NaN (and spread NaN through later layers); we add min(float32) instead for fp64,
// which gives HF's result on every row that has a visible key and no NaN anywhere (the goldens'
// f64.padded tensors were made with the same clamp: tools/README.md).
// Exceptions (e.g. the hf-auto view error) propagate as LibTorch throws them: std::runtime_error in
// 1.13, c10::Error in 2.x; catch std::exception.
#pragma once
#include <cstdint>
#include <map>
#include <vector>

#include <ATen/ATen.h>

#include "checks/sharding.h"
#include "models/config.h"
#include "families/decoder/comm.h"
#include "ops/kernels.h"
#include "families/decoder/weights.h"

namespace sc {

struct ForwardInputs {
  at::Tensor input_ids;       // [B, S] int64 (stages holding the embedding)
  at::Tensor hidden_states;   // [B, S, H] input of a stage without the embedding (used when defined)
  at::Tensor attention_mask;  // [B, S], nonzero = token, 0 = padding (optional)
  at::Tensor position_ids;    // [B, S] or [1, S] int64 (optional)
  // Without position_ids: false -> arange(S) for every row (HF forward); true -> derived from the
  // mask as HF generate does: cumsum(mask) - 1, and 1 where mask == 0.
  bool positions_from_mask = false;
};

struct CaptureSpec {
  std::vector<int64_t> layers;  // global layer indices whose output (residual stream) to keep
  bool all_layers = false;      // keep every layer this rank runs
  bool router = false;          // keep router logits, top-k ids and weights of sparse layers
  // Optional read positions: [B] or [B, P] int64 sequence positions. When defined, captures hold
  // only those positions (index_select; full [B, S, H] tensors are never cloned).
  at::Tensor positions;
  bool wants_layer(int64_t l) const;
};

struct ForwardOutput {
  at::Tensor hidden_states;  // [B, S, H] output of the last layer run (before the final norm)
  at::Tensor logits;         // [B, S, V] (full vocab) when the rank holds the head
  std::map<int64_t, at::Tensor> layer_out;      // [B, S, H] or [B, P, H]
  std::map<int64_t, at::Tensor> router_logits;  // [B, S, E] or [B, P, E] (x @ router^T, x dtype)
  std::map<int64_t, at::Tensor> topk_ids;       // [B, S, k] or [B, P, k] int64
  std::map<int64_t, at::Tensor> topk_weights;   // [B, S, k] or [B, P, k] x dtype (as applied)
};

// Per-forward attention inputs shared by all layers: rotary tables and additive mask.
// With a KV cache (past_len > 0) the S query positions are the sequence's columns
// [past_len, past_len + S) and attend to the past_len cached keys plus their own.
struct AttentionContext {
  at::Tensor cos, sin;  // [B or 1, S, D] in the compute dtype (positions of the S new columns)
  at::Tensor mask;      // [B or 1, 1, S, past_len + S] additive, compute dtype
  // The same with the sliding window (ModelConfig::sliding_window) for LayerKind::Sliding layers;
  // undefined when no layer slides.
  at::Tensor sliding_mask;
  bool padded = false;  // an attention_mask was given (else the mask is purely causal)
  int64_t past_len = 0;  // cached columns before the S new ones (0: no KV cache)
  Kernels kernels;      // from the weights (forward sets it; kernels.h)
};

// One attention layer's keys and values over a span of columns, as a KV cache holds them:
// [B, local KV heads, P, D], after k_norm and RoPE, before repeat_kv, in the compute dtype.
struct LayerKv {
  at::Tensor k, v;
  int64_t length() const { return k.defined() ? k.size(2) : 0; }
};

// ---- building blocks (device- and dtype-agnostic) ----
at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps);
at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps, const Kernels& k);
at::Tensor rope_inv_freq(const ModelConfig& c, at::Device device = at::kCPU);  // [D/2] fp32
// cos, sin [P, S, D] in `dtype` for position_ids [P, S].
std::pair<at::Tensor, at::Tensor> rope_cos_sin(const ModelConfig& c, const at::Tensor& position_ids,
                                              at::ScalarType dtype);
at::Tensor rotate_half(const at::Tensor& x);
// down(silu(gate x) * up x): the dense MLP, a routed expert (before its routing weight) and the
// shared expert; also the localiser's expected partial sums.
at::Tensor swiglu(const at::Tensor& x, const at::Tensor& gate, const at::Tensor& up, const at::Tensor& down);
at::Tensor repeat_kv(const at::Tensor& x, int64_t n_rep);  // [B, h, S, D] -> [B, h*n_rep, S, D]
// Position ids [B or 1, S] as HF would use them for these inputs.
at::Tensor default_position_ids(const ForwardInputs& in, int64_t B, int64_t S, at::Device device);
// Additive mask [B or 1, 1, S, past_len + S]: 0 where visible, the masking value elsewhere (see
// above). Query i is column past_len + i; it sees key j when j <= past_len + i and the
// attention_mask ([B, past_len + S], optional) is nonzero at j.
// window > 0: also key > query - window (HF's sliding window).
at::Tensor causal_mask(const at::Tensor& attention_mask, int64_t B, int64_t S, at::ScalarType dtype,
                       at::Device device, int64_t past_len = 0, int64_t window = 0);
// For S new columns after past_len cached ones: in.attention_mask (if any) covers all
// past_len + S columns; in.position_ids (if any) the S new ones; positions_from_mask derives them
// from the whole mask; otherwise arange(past_len, past_len + S).
AttentionContext make_attention_context(const ModelConfig& c, const ForwardInputs& in, int64_t B, int64_t S,
                                        at::ScalarType dtype, at::Device device, int64_t past_len = 0);

// x [B, S, H] (already input-normed) -> attention output [B, S, H] (all-reduced over TP).
// KV cache: `past` (when given) holds the keys/values of the ctx.past_len columns before x's, which
// x's queries attend to besides their own; `present` (when given) receives the keys/values of all
// past_len + S columns (LayerKv layout). One implementation: without `past` this is the plain
// forward. The SDPA kernel takes the explicit mask whenever a cache is used. A cache of fewer rows
// than x (Bp rows for B = C * Bp) is shared by C copies (rows copy-major: row = c * Bp + i attends
// to cache row i): eager attention without copying the cache; `present` is then refused.
at::Tensor attention_forward(const AttentionWeights& w, const ModelConfig& c, const AttentionLayout& layout,
                             const at::Tensor& x, const AttentionContext& ctx, Comm& comm,
                             const LayerKv* past = nullptr, LayerKv* present = nullptr);

struct Routing {
  at::Tensor logits;   // [T, E] x dtype
  at::Tensor ids;      // [T, k] int64
  at::Tensor weights;  // [T, k] x dtype (fp32 softmax, renormalised when norm_topk_prob, cast)
};
// With Kernels::fused the softmax + top-k run in one CUDA kernel (same ids; weights within one
// rounding of the element type).
Routing route(const at::Tensor& x2d, const at::Tensor& router, const ModelConfig& c, const Kernels& kernels = {});

struct MoeOutput {
  at::Tensor out;  // [B, S, H] (all-reduced over the stage group)
  Routing routing;
};
MoeOutput moe_forward(const MoeWeights& w, const ModelConfig& c, const at::Tensor& x, Comm& comm,
                      const Kernels& k = {});
at::Tensor dense_mlp_forward(const DenseMlpWeights& w, const at::Tensor& x, Comm& comm);

struct LayerOutput {
  at::Tensor hidden;         // [B, S, H] layer output (residual stream after the MLP)
  at::Tensor attn_residual;  // [B, S, H] h = x + attn(input_norm(x)), the stream between the blocks
  Routing routing;           // defined for sparse layers
};
// h = x + attn(input_norm(x)); out = h + mlp(post_norm(h)). past / present: attention_forward's KV cache.
LayerOutput decoder_layer_forward(const LayerWeights& w, const ModelConfig& c, const AttentionLayout& layout,
                                  const at::Tensor& x, const AttentionContext& ctx, Comm& comm,
                                  const LayerKv* past = nullptr, LayerKv* present = nullptr);

at::Tensor embed_tokens(const ModelWeights& w, const at::Tensor& input_ids);  // [B, S, H]
// final norm + lm_head (+ all_gather_tp_last_dim when vocab-parallel): [B, S, V]
at::Tensor final_logits(const ModelWeights& w, const ModelConfig& c, const at::Tensor& hidden, Comm& comm);

// The whole rank: embedding (if held), layers [first_layer, last_layer), head (if held).
ForwardOutput forward(const ModelWeights& w, const ModelConfig& c, const ForwardInputs& in, Comm& comm,
                      const CaptureSpec& capture = {});

// Selects capture positions: x [B, S, ...] -> [B, P, ...] (positions [B] or [B, P]).
at::Tensor select_positions(const at::Tensor& x, const at::Tensor& positions);

}  // namespace sc
