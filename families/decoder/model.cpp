// Qwen3 / Qwen3-MoE forward (see model.h for the numerics contract).
#include "families/decoder/model.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>

#include <ATen/core/grad_mode.h>
#include <nlohmann/json.hpp>

#include "models/errors.h"
#include "ops/fused_ops.h"
#if __has_include(<ATen/ops/scaled_dot_product_attention.h>)
#include <ATen/ops/scaled_dot_product_attention.h>
#define SC_HAVE_SDPA 1
#endif
#if __has_include(<ATen/ops/_grouped_mm.h>)
#include <ATen/ops/_grouped_mm.h>
#define SC_HAVE_GROUPED_MM 1
#endif
#if __has_include(<ATen/ops/rms_norm.h>)
#include <ATen/ops/rms_norm.h>
#define SC_HAVE_RMS_NORM 1
#endif

namespace sc {

namespace {

// Value HF's eager_mask puts at masked positions (finfo(dtype).min), except fp64 (see model.h).
double mask_value(at::ScalarType dtype) {
  switch (dtype) {
    case at::kHalf: return -65504.0;
    case at::kBFloat16: return double(std::numeric_limits<c10::BFloat16>::lowest());
    default: return double(std::numeric_limits<float>::lowest());  // fp32, and fp64 (no NaN rows)
  }
}

at::Tensor capture(const at::Tensor& x, const at::Tensor& positions) {
  return positions.defined() ? select_positions(x, positions) : x;
}


}  // namespace

at::Tensor swiglu(const at::Tensor& x, const at::Tensor& gate, const at::Tensor& up, const at::Tensor& down) {
  return at::linear(at::silu(at::linear(x, gate)) * at::linear(x, up), down);
}

bool CaptureSpec::wants_layer(int64_t l) const {
  return all_layers || std::find(layers.begin(), layers.end(), l) != layers.end();
}

at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps) {
  const auto dtype = x.scalar_type();
  at::Tensor h = x.to(at::kFloat);
  const at::Tensor var = h.pow(2).mean(-1, /*keepdim=*/true);
  h = h * at::rsqrt(var + eps);
  return weight * h.to(dtype);
}

at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps, const Kernels& k) {
#ifdef SC_HAVE_RMS_NORM
  if (k.fused_norm) return at::rms_norm(x, {x.size(-1)}, weight, eps);
#else
  (void)k;
#endif
  return rms_norm(x, weight, eps);
}

at::Tensor rope_inv_freq(const ModelConfig& c, at::Device device) {
  const int64_t D = c.head_dim;
  // HF: 1.0 / (base ** (arange(0, dim, 2, int64).float() / dim)); Python's 1.0 / t is t.reciprocal().
  at::Tensor e = at::arange(0, D, 2, at::TensorOptions().dtype(at::kLong).device(device)).to(at::kFloat) / D;
  at::Tensor inv = at::pow(at::Scalar(c.rope_theta), e).reciprocal();
  if (c.rope_scaling_type.empty()) return inv;
  const nlohmann::json h = nlohmann::json::parse(c.rope_scaling);
  auto num = [&](const char* key) {
    if (!h.contains(key) || !h.at(key).is_number())
      throw ConfigError(c.source, std::string("rope_scaling.") + key, h.contains(key) ? h.at(key).dump() : "(missing)",
                        "a number is required for the " + c.rope_scaling_type + " rope");
    return h.at(key).get<double>();
  };
  if (c.rope_scaling_type == "linear") return inv / num("factor");  // HF: inv_freq /= factor
  if (c.rope_scaling_type == "llama3") {
    // HF's _compute_llama3_parameters, operation by operation in fp32 (scalar / t = t.reciprocal() * scalar).
    const double factor = num("factor"), low = num("low_freq_factor"), high = num("high_freq_factor");
    const double old_len = num("original_max_position_embeddings");
    const double low_wavelen = old_len / low, high_wavelen = old_len / high;
    const at::Tensor wavelen = inv.reciprocal() * (2 * M_PI);
    at::Tensor llama = at::where(wavelen > low_wavelen, inv / factor, inv);
    const at::Tensor smooth = (wavelen.reciprocal() * old_len - low) / (high - low);
    const at::Tensor smoothed = at::rsub(smooth, 1) * llama / factor + smooth * llama;
    const at::Tensor medium = (wavelen < high_wavelen).logical_not().logical_and((wavelen > low_wavelen).logical_not());
    return at::where(medium, smoothed, llama);
  }
  throw ConfigError(c.source, "rope_scaling", c.rope_scaling_type, "rope scaling not computed by the forward");
}

std::pair<at::Tensor, at::Tensor> rope_cos_sin(const ModelConfig& c, const at::Tensor& position_ids,
                                              at::ScalarType dtype) {
  const at::Tensor inv = rope_inv_freq(c, position_ids.device());
  // HF: (inv_freq[None, :, None] @ pos[:, None, :]).transpose(1, 2): a K = 1 matmul, i.e. the
  // outer product pos * inv (one rounding per element), in fp32.
  const at::Tensor freqs = position_ids.to(at::kFloat).unsqueeze(-1) * inv.view({1, 1, -1});
  const at::Tensor emb = at::cat({freqs, freqs}, -1);
  return {emb.cos().to(dtype), emb.sin().to(dtype)};
}

at::Tensor rotate_half(const at::Tensor& x) {
  const int64_t half = x.size(-1) / 2;
  return at::cat({-x.narrow(-1, half, x.size(-1) - half), x.narrow(-1, 0, half)}, -1);
}

at::Tensor repeat_kv(const at::Tensor& x, int64_t n_rep) {
  if (n_rep == 1) return x;
  const int64_t B = x.size(0), h = x.size(1), S = x.size(2), D = x.size(3);
  return x.unsqueeze(2).expand({B, h, n_rep, S, D}).reshape({B, h * n_rep, S, D});
}

at::Tensor default_position_ids(const ForwardInputs& in, int64_t B, int64_t S, at::Device device) {
  if (in.position_ids.defined()) return in.position_ids.to(device, at::kLong);
  if (in.positions_from_mask && in.attention_mask.defined()) {
    const at::Tensor m = in.attention_mask.to(device, at::kLong);
    at::Tensor p = m.cumsum(-1) - 1;
    return p.masked_fill(m == 0, 1);
  }
  (void)B;
  return at::arange(S, at::TensorOptions().dtype(at::kLong).device(device)).unsqueeze(0);
}

at::Tensor causal_mask(const at::Tensor& attention_mask, int64_t B, int64_t S, at::ScalarType dtype,
                       at::Device device, int64_t past_len, int64_t window) {
  const int64_t K = past_len + S;  // key columns
  const auto lopt = at::TensorOptions().dtype(at::kLong).device(device);
  const at::Tensor qcol = at::arange(past_len, K, lopt), kcol = at::arange(K, lopt);
  at::Tensor visible = kcol.unsqueeze(0) <= qcol.unsqueeze(1);  // key <= query
  // HF's sliding_window_overlay: key > query - window (the window holds the query and window - 1 keys before it).
  if (window > 0) visible = visible.logical_and(kcol.unsqueeze(0) > qcol.unsqueeze(1) - window);
  visible = visible.view({1, 1, S, K});
  if (attention_mask.defined()) {
    if (attention_mask.dim() != 2 || attention_mask.size(0) != B || attention_mask.size(1) != K)
      throw std::invalid_argument("attention_mask must be [B, past + S] = [" + std::to_string(B) + ", " +
                                  std::to_string(K) + "]");
    visible = visible.logical_and(attention_mask.to(device).ne(0).view({B, 1, 1, K}));
  }
  return at::zeros(visible.sizes(), at::TensorOptions().dtype(dtype).device(device))
      .masked_fill(visible.logical_not(), mask_value(dtype));
}

AttentionContext make_attention_context(const ModelConfig& c, const ForwardInputs& in, int64_t B, int64_t S,
                                        at::ScalarType dtype, at::Device device, int64_t past_len) {
  if (past_len < 0) throw std::invalid_argument("make_attention_context: negative past_len");
  AttentionContext ctx;
  at::Tensor pos;
  if (past_len == 0 || in.position_ids.defined()) {
    pos = default_position_ids(in, B, past_len + S, device);
  } else if (in.positions_from_mask && in.attention_mask.defined()) {
    pos = default_position_ids(in, B, past_len + S, device).narrow(1, past_len, S);
  } else {
    pos = at::arange(past_len, past_len + S, at::TensorOptions().dtype(at::kLong).device(device)).unsqueeze(0);
  }
  if (pos.size(-1) != S)
    throw std::invalid_argument("position_ids must have " + std::to_string(S) + " columns, got " +
                                std::to_string(pos.size(-1)));
  auto cs = rope_cos_sin(c, pos, dtype);
  ctx.cos = cs.first;
  ctx.sin = cs.second;
  ctx.mask = causal_mask(in.attention_mask, B, S, dtype, device, past_len);
  if (c.sliding_window > 0 && std::find(c.layer_kinds.begin(), c.layer_kinds.end(), LayerKind::Sliding) != c.layer_kinds.end())
    ctx.sliding_mask = causal_mask(in.attention_mask, B, S, dtype, device, past_len, c.sliding_window);
  ctx.padded = in.attention_mask.defined();
  ctx.past_len = past_len;
  return ctx;
}

namespace {

// Heads [B, heads, S, D] -> o_proj, all-reduced over TP (the end of every attention path).
at::Tensor finish_attention(const AttentionWeights& w, Comm& comm, at::Tensor out, int64_t B, int64_t S) {
  out = out.transpose(1, 2).contiguous().reshape({B, S, -1});
  tap(comm, Tap::AttnHeads, out);
  out = at::linear(out, w.o);
  tap(comm, Tap::OPartial, out);
  if (fault(comm, faults::Kind::TpAllReduceOverStage)) {
    comm.all_reduce_experts(out);
  } else if (!fault(comm, faults::Kind::SkipTpAllReduce)) {
    comm.all_reduce_tp(out);
  }
  tap(comm, Tap::AttnOut, out);
  return out;
}

// Eager attention of B = C * Bp rows (copy-major: row = c * Bp + i) whose past columns are one
// cache of Bp rows shared by every copy (steering sweeps: many edited copies of one prefix). The
// scores against the cached keys are one GEMM per example and KV head over all copies' and query
// heads' rows, against the row's own new keys one GEMM per row; the softmax runs over both in fp32
// as eager attention's does over the concatenated keys, then probabilities times values likewise
// in two parts. q [B, KVh * n_rep, S, D]; k, v [B, KVh, S, D]; past [Bp, KVh, P, D].
at::Tensor shared_prefix_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const LayerKv& past,
                                   const AttentionContext& ctx, int64_t n_rep, double scaling) {
  const int64_t B = q.size(0), Hq = q.size(1), S = q.size(2);
  const int64_t Bp = past.k.size(0), KVh = past.k.size(1), P = past.k.size(2);
  if (Bp < 1 || B % Bp != 0 || KVh * n_rep != Hq)
    throw std::invalid_argument("attention_forward: a KV cache of " + std::to_string(Bp) + " rows and " +
                                std::to_string(KVh) + " heads cannot serve " + std::to_string(B) + " rows of " +
                                std::to_string(Hq) + " query heads");
  const int64_t C = B / Bp;
  // [C, Bp, KVh, n_rep, S, X] <-> [Bp, KVh, C * n_rep * S, X]: every row of one example and KV head.
  auto by_example = [&](const at::Tensor& t) {
    const int64_t X = t.size(-1);
    return t.reshape({C, Bp, KVh, n_rep, S, X}).permute({1, 2, 0, 3, 4, 5}).reshape({Bp, KVh, C * n_rep * S, X});
  };
  auto by_row = [&](const at::Tensor& t) {
    const int64_t X = t.size(-1);
    return t.reshape({Bp, KVh, C, n_rep, S, X}).permute({2, 0, 1, 3, 4, 5}).reshape({B, Hq, S, X});
  };
  const at::Tensor s_past = by_row(at::matmul(by_example(q), past.k.transpose(2, 3)) * scaling);  // [B, Hq, S, P]
  const at::Tensor s_own = at::matmul(q, repeat_kv(k, n_rep).transpose(2, 3)) * scaling;          // [B, Hq, S, S]
  at::Tensor scores = at::cat({s_past, s_own}, -1);
  if (ctx.mask.defined()) scores = scores + ctx.mask;
  const at::Tensor probs = at::softmax(scores, -1, at::kFloat).to(q.scalar_type());
  return by_row(at::matmul(by_example(probs.narrow(-1, 0, P)), past.v)) +
         at::matmul(probs.narrow(-1, P, S), repeat_kv(v, n_rep));
}

}  // namespace

at::Tensor attention_forward(const AttentionWeights& w, const ModelConfig& c, const AttentionLayout& layout,
                             const at::Tensor& x, const AttentionContext& ctx, Comm& comm, const LayerKv* past,
                             LayerKv* present) {
  const int64_t B = x.size(0), S = x.size(1), D = layout.head_dim;
  const double eps = c.rms_norm_eps;
  const Kernels& kn = ctx.kernels;
  // HF order: q view first, then k, then v, each on the LOCAL projection: view(B, S, -1, D).
  // Biases (undefined tensors when the model has none) are added by the same linear.
  at::Tensor q = at::linear(x, w.q, w.q_bias).view({B, S, -1, D});
  tap(comm, Tap::QProj, q);
  at::Tensor k = at::linear(x, w.k, w.k_bias).view({B, S, -1, D});
  tap(comm, Tap::KProj, k);
  at::Tensor v = at::linear(x, w.v, w.v_bias).view({B, S, -1, D});
  tap(comm, Tap::VProj, v);
  v = v.transpose(1, 2);
  const bool qk_norm = w.q_norm.defined();
  if (kn.fused && qk_norm) {  // norm + RoPE in place on the [B, S, heads, D] projection outputs
    fused::head_norm_rope_(q, w.q_norm, ctx.cos, ctx.sin, eps);
    fused::head_norm_rope_(k, w.k_norm, ctx.cos, ctx.sin, eps);
    q = q.transpose(1, 2);
    k = k.transpose(1, 2);
  } else {
    if (qk_norm) {
      q = rms_norm(q, w.q_norm, eps, kn);
      k = rms_norm(k, w.k_norm, eps, kn);
      tap(comm, Tap::QNorm, q);
      tap(comm, Tap::KNorm, k);
    }
    q = q.transpose(1, 2);
    k = k.transpose(1, 2);
    const at::Tensor cos = ctx.cos.unsqueeze(1), sin = ctx.sin.unsqueeze(1);
    q = q * cos + rotate_half(q) * sin;
    k = k * cos + rotate_half(k) * sin;
  }
  if (comm.probe) {
    tap(comm, Tap::QRope, q.transpose(1, 2));
    tap(comm, Tap::KRope, k.transpose(1, 2));
  }
  const int64_t past_len = past ? past->length() : 0;
  if (past_len != ctx.past_len)
    throw std::invalid_argument("attention_forward: the KV cache holds " + std::to_string(past_len) +
                                " columns, the attention context expects " + std::to_string(ctx.past_len));
  const double scaling = std::pow(double(D), -0.5);
  if (past_len > 0 && past->k.size(0) != B) {
    if (present) throw std::invalid_argument("attention_forward: a shared KV cache has no present keys / values");
    at::Tensor out = shared_prefix_attention(q, k, v, *past, ctx, layout.n_rep, scaling);
    return finish_attention(w, comm, out, B, S);
  }
  if (past_len > 0) {
    k = at::cat({past->k, k}, 2);
    v = at::cat({past->v, v}, 2);
  }
  if (present) *present = LayerKv{k, v};

  at::Tensor out;
#ifdef SC_HAVE_SDPA
  if (kn.sdpa) {
    if (!ctx.padded && past_len == 0) {
      // Purely causal: flash attention, GQA without copying the KV heads.
      out = at::scaled_dot_product_attention(q, k, v, {}, 0.0, /*is_causal=*/true, scaling,
                                             /*enable_gqa=*/layout.n_rep > 1);
    } else {
      // (Also with a KV cache: is_causal would align the causal triangle top-left, not at past_len.)
      // The fused kernels scale the additive mask by log2(e) and would overflow finfo.min to -inf,
      // zeroing query rows with no visible key (left padding), where eager attends uniformly:
      // -1e30 masks every visible row the same way and keeps those rows uniform, as eager does.
      out = at::scaled_dot_product_attention(q, repeat_kv(k, layout.n_rep), repeat_kv(v, layout.n_rep),
                                             ctx.mask.clamp_min(-1e30), 0.0, /*is_causal=*/false, scaling);
    }
  }
#endif
  if (!out.defined()) {
    k = repeat_kv(k, layout.n_rep);
    v = repeat_kv(v, layout.n_rep);
    at::Tensor scores = at::matmul(q, k.transpose(2, 3)) * scaling;
    if (ctx.mask.defined()) scores = scores + ctx.mask;
    const at::Tensor probs = at::softmax(scores, -1, at::kFloat).to(q.scalar_type());
    out = at::matmul(probs, v);
  }
  return finish_attention(w, comm, out, B, S);
}

Routing route(const at::Tensor& x2d, const at::Tensor& router, const ModelConfig& c, const Kernels& kn) {
  Routing r;
  r.logits = at::linear(x2d, router);
  if (kn.fused && c.num_experts <= fused::kMaxRouterExperts && c.num_experts_per_tok <= fused::kMaxTopK) {
    std::tie(r.ids, r.weights) = fused::route_topk(r.logits, c.num_experts_per_tok, c.norm_topk_prob);
    return r;
  }
  const at::Tensor probs = at::softmax(r.logits, -1, at::kFloat);
  auto tk = at::topk(probs, c.num_experts_per_tok, -1);
  r.weights = std::get<0>(tk);
  r.ids = std::get<1>(tk);
  if (c.norm_topk_prob) r.weights = r.weights / r.weights.sum(-1, /*keepdim=*/true);
  r.weights = r.weights.to(x2d.scalar_type());  // HF 5.17: back to the model dtype
  return r;
}

namespace {

#ifdef SC_HAVE_GROUPED_MM
// Kernels::grouped_experts: every (token, slot) pair whose expert is local, sorted by expert on the
// device, through two grouped GEMMs over the stacked experts; no host synchronisation.
at::Tensor grouped_experts(const MoeWeights& w, const at::Tensor& x2, const Routing& r, int64_t E) {
  const int64_t T = x2.size(0), K = r.ids.size(1), H = x2.size(1);
  const int64_t El = w.gate_up.size(0), I = w.down_stacked.size(2);
  const at::Tensor local = r.ids.reshape({-1}) - w.first_expert;  // [T K], pair p = t K + slot
  const at::Tensor valid = local.ge(0).logical_and(local.lt(El));
  const at::Tensor key = at::where(valid, local, at::full({}, El, local.options()));  // foreign experts last
  const at::Tensor order = std::get<1>(at::sort(key.to(at::kInt)));  // 32-bit keys: half the radix passes
  const at::Tensor counts = at::zeros({El + 1}, key.options()).scatter_add_(0, key, at::ones_like(key));
  const at::Tensor offs = counts.narrow(0, 0, El).cumsum(0).to(at::kInt);
  const at::Tensor token = order.div(K, "floor");
  const at::Tensor xs = x2.index_select(0, token);
  const at::Tensor gu = at::_grouped_mm(xs, w.gate_up.transpose(1, 2), offs);  // [T K, 2I]
  // The routing weight scales the down projection's input (I wide) rather than its output (H
  // wide): the same product up to bf16 rounding, one pass over [T K, I] instead of [T K, H].
  const at::Tensor wsorted = r.weights.reshape({-1}).index_select(0, order).unsqueeze(1);
  const at::Tensor h = at::silu(gu.narrow(1, 0, I)) * gu.narrow(1, I, I) * wsorted;
  at::Tensor y = at::_grouped_mm(h, w.down_stacked.transpose(1, 2), offs);  // [T K, H]
  if (El < E) {
    // Rows past the last offset (pairs of other ranks' experts) are not written by the GEMM.
    y = at::where(valid.index_select(0, order).unsqueeze(1), y, at::zeros({}, y.options()));
  }
  // Back to (token, slot) order by gathering through the inverse permutation, then each token's k
  // rows summed with fp32 accumulation: deterministic. On an H100 (235B widths) this gather + sum
  // takes 0.54 ms, an index_copy_ scatter + sum 0.96 ms, a bf16 atomic index_add_ 2.1 ms.
  const at::Tensor inv = at::empty_like(order).scatter_(0, order, at::arange(order.numel(), order.options()));
  const at::Tensor pairs = y.index_select(0, inv);
  return at::sum(pairs.view({T, K, H}), at::IntArrayRef{1}, false, at::kFloat).to(x2.scalar_type());
}
#endif

}  // namespace

MoeOutput moe_forward(const MoeWeights& w, const ModelConfig& c, const at::Tensor& x, Comm& comm,
                      const Kernels& kn) {
  const int64_t H = x.size(-1);
  const at::Tensor x2 = x.reshape({-1, H});
  MoeOutput o;
  o.routing = route(x2, w.router, c, kn);
  const int64_t T = x2.size(0), E = c.num_experts;
  if (comm.probe) {
    const int64_t B = x.size(0), S = x.size(1);
    tap(comm, Tap::RouterLogits, o.routing.logits.view({B, S, -1}));
    tap(comm, Tap::TopK, o.routing.ids.view({B, S, -1}));
    tap(comm, Tap::TopKWeights, o.routing.weights.view({B, S, -1}));
  }
  // Both expert paths end here: the routed experts' partial sum, all-reduced over the stage when
  // the experts are split (with the fault hooks' variants), then the shared expert (HF:
  // sigmoid(shared_expert_gate(x)) * shared_expert(x), added to the routed sum), all-reduced over
  // TP when the plan splits it.
  auto finish = [&](at::Tensor& out) {
    tap(comm, Tap::ExpertsPartial, out.view(x.sizes()));
    if (w.partial) comm.all_reduce_experts(out);
    if (fault(comm, faults::Kind::DoubleExpertAllReduce)) comm.all_reduce_experts(out);
    tap(comm, Tap::ExpertsOut, out.view(x.sizes()));
    if (!w.has_shared()) return;
    at::Tensor sh = swiglu(x2, w.shared_gate, w.shared_up, w.shared_down);
    if (w.shared_partial) comm.all_reduce_tp(sh);
    if (w.shared_expert_gate.defined()) sh = at::sigmoid(at::linear(x2, w.shared_expert_gate)) * sh;
    tap(comm, Tap::SharedExpert, sh.view(x.sizes()));
    out = out + sh;
  };
#ifdef SC_HAVE_GROUPED_MM
  // More local experts than _grouped_mm's groups keep the per-expert loop below.
  if (kn.grouped_experts && w.stacked() && T > 0 && w.gate_up.size(0) <= fused::kMaxLocalExperts) {
    const bool fuse = kn.fused && c.num_experts_per_tok <= fused::kMaxTopK;
    at::Tensor out = fuse ? fused::experts(x2, o.routing.ids, o.routing.weights, w.gate_up, w.down_stacked,
                                           w.first_expert, kn.moe_gemm)
                          : grouped_experts(w, x2, o.routing, E);
    finish(out);
    o.out = out.view(x.sizes());
    return o;
  }
#else
  (void)kn;
#endif
  at::Tensor out = at::zeros_like(x2);
  if (!w.experts.empty() && T > 0) {
    // HF visits experts in ascending id and, inside one expert, (top-k slot, token) pairs in
    // slot-major order. One stable sort of the slot-major id list gives every expert's pairs as
    // one contiguous run in that order, with a single host sync for the counts.
    const at::Tensor flat = o.routing.ids.t().reshape({-1});
    const at::Tensor order = std::get<1>(at::sort(flat, /*stable=*/true, /*dim=*/0, /*descending=*/false));
    const at::Tensor token = order.remainder(T);
    const at::Tensor wsorted = o.routing.weights.t().reshape({-1}).index_select(0, order);
    const at::Tensor counts = at::bincount(flat, {}, E).to(at::kCPU);
    const auto cnt = counts.accessor<int64_t, 1>();
    std::vector<int64_t> start(size_t(E) + 1, 0);
    for (int64_t e = 0; e < E; ++e) start[size_t(e) + 1] = start[size_t(e)] + cnt[e];
    const int64_t first_local = w.experts.begin()->first, last_local = w.experts.rbegin()->first;
    const bool local_id = fault(comm, faults::Kind::ExpertLocalId) != nullptr;
    const bool weights_twice = fault(comm, faults::Kind::RoutingWeightsTwice) != nullptr;
    const bool drop_last = fault(comm, faults::Kind::ExpertUnowned) != nullptr;
    for (const auto& kv : w.experts) {
      if (drop_last && kv.first == last_local) continue;
      const int64_t e = local_id ? kv.first - first_local : kv.first, n = cnt[e];
      if (n == 0) continue;
      const ExpertWeights& ew = kv.second;
      const at::Tensor tok = token.narrow(0, start[size_t(e)], n);
      const at::Tensor xe = x2.index_select(0, tok);
      // Expert output times its routing weight (both in x's dtype), accumulated in ascending expert id.
      const at::Tensor we = wsorted.narrow(0, start[size_t(e)], n).unsqueeze(1);
      at::Tensor y = swiglu(xe, ew.gate, ew.up, ew.down) * we;
      if (weights_twice) y = y * we;
      out.index_add_(0, tok, y.to(out.scalar_type()));
    }
  }
  finish(out);
  o.out = out.view(x.sizes());
  return o;
}

at::Tensor dense_mlp_forward(const DenseMlpWeights& w, const at::Tensor& x, Comm& comm) {
  at::Tensor y = swiglu(x, w.gate, w.up, w.down);
  tap(comm, Tap::MlpPartial, y);
  comm.all_reduce_tp(y);
  tap(comm, Tap::MlpOut, y);
  return y;
}

LayerOutput decoder_layer_forward(const LayerWeights& w, const ModelConfig& c, const AttentionLayout& layout,
                                  const at::Tensor& x, const AttentionContext& ctx, Comm& comm, const LayerKv* past,
                                  LayerKv* present) {
  LayerOutput lo;
  const double eps = c.rms_norm_eps;
  if (comm.probe) comm.probe->layer = w.index;
  tap(comm, Tap::LayerIn, x);
  const at::Tensor xn = rms_norm(x, w.input_norm, eps, ctx.kernels);
  tap(comm, Tap::AttnIn, xn);
  at::Tensor attn;
  if (c.layer_kind(w.index) == LayerKind::Sliding && ctx.sliding_mask.defined()) {
    AttentionContext sliding = ctx;  // the same context with the window's mask (always explicit)
    sliding.mask = ctx.sliding_mask;
    sliding.padded = true;
    attn = attention_forward(w.attn, c, layout, xn, sliding, comm, past, present);
  } else {
    attn = attention_forward(w.attn, c, layout, xn, ctx, comm, past, present);
  }
  at::Tensor h, n;
  if (ctx.kernels.fused && w.has_mlp) {
    std::tie(h, n) = fused::add_rms_norm(x, attn, w.post_norm, eps);  // residual add + norm in one pass
  } else {
    h = x + attn;
    if (w.has_mlp) n = rms_norm(h, w.post_norm, eps, ctx.kernels);
  }
  lo.attn_residual = h;
  if (w.has_mlp) tap(comm, Tap::MlpIn, n);
  if (!w.has_mlp) {
    lo.hidden = h;
  } else if (w.sparse) {
    MoeOutput m = moe_forward(w.moe, c, n, comm, ctx.kernels);
    lo.hidden = h + m.out;
    lo.routing = std::move(m.routing);
  } else {
    lo.hidden = h + dense_mlp_forward(w.dense, n, comm);
  }
  tap(comm, Tap::LayerOut, lo.hidden);
  return lo;
}

at::Tensor embed_tokens(const ModelWeights& w, const at::Tensor& input_ids) {
  if (!w.has_embed()) throw std::invalid_argument("this rank does not hold model.embed_tokens");
  return at::embedding(w.embed, input_ids.to(w.embed.device(), at::kLong));
}

at::Tensor final_logits(const ModelWeights& w, const ModelConfig& c, const at::Tensor& hidden, Comm& comm) {
  if (!w.has_head()) throw std::invalid_argument("this rank does not hold model.norm / lm_head");
  if (comm.probe) comm.probe->layer = -1;
  const at::Tensor normed = rms_norm(hidden, w.final_norm, c.rms_norm_eps);
  tap(comm, Tap::FinalNorm, normed);
  at::Tensor logits = at::linear(normed, w.lm_head);
  tap(comm, Tap::LmHeadShard, logits);
  if (w.vocab_parallel) {
    const int64_t width = logits.size(-1);
    logits = comm.all_gather_tp_last_dim(logits);
    if (fault(comm, faults::Kind::VocabGatherRotated) && width < logits.size(-1))
      logits = at::cat({logits.narrow(-1, width, logits.size(-1) - width), logits.narrow(-1, 0, width)}, -1);
  }
  tap(comm, Tap::Logits, logits);
  return logits;
}

at::Tensor select_positions(const at::Tensor& x, const at::Tensor& positions) {
  const int64_t B = x.size(0), S = x.size(1);
  at::Tensor pos = positions.to(x.device(), at::kLong);
  if (pos.dim() == 1) pos = pos.unsqueeze(1);
  if (pos.size(0) != B)
    throw std::invalid_argument("capture positions: expected " + std::to_string(B) + " rows, got " +
                                std::to_string(pos.size(0)));
  const int64_t P = pos.size(1);
  const at::Tensor rows = at::arange(B, pos.options()).unsqueeze(1) * S;
  std::vector<int64_t> flat_shape = {B * S};
  std::vector<int64_t> out_shape = {B, P};
  for (int64_t d = 2; d < x.dim(); ++d) {
    flat_shape.push_back(x.size(d));
    out_shape.push_back(x.size(d));
  }
  return x.reshape(flat_shape).index_select(0, (rows + pos).reshape({-1})).view(out_shape);
}

ForwardOutput forward(const ModelWeights& w, const ModelConfig& c, const ForwardInputs& in, Comm& comm,
                      const CaptureSpec& cap) {
  at::NoGradGuard no_grad;
  ForwardOutput out;
  at::Tensor h;
  if (in.hidden_states.defined()) {
    h = in.hidden_states;
  } else {
    if (!in.input_ids.defined()) throw std::invalid_argument("forward: neither input_ids nor hidden_states given");
    h = embed_tokens(w, in.input_ids);
  }
  const int64_t B = h.size(0), S = h.size(1);
  AttentionContext ctx = make_attention_context(c, in, B, S, h.scalar_type(), h.device());
  ctx.kernels = w.kernels;
  for (const LayerWeights& L : w.layers) {
    LayerOutput lo = decoder_layer_forward(L, c, w.attn_layout, h, ctx, comm);
    h = lo.hidden;
    if (cap.wants_layer(L.index)) out.layer_out[L.index] = capture(h, cap.positions);
    if (cap.router && lo.routing.logits.defined()) {
      auto bs = [&](const at::Tensor& t) { return capture(t.view({B, S, -1}), cap.positions); };
      out.router_logits[L.index] = bs(lo.routing.logits);
      out.topk_ids[L.index] = bs(lo.routing.ids);
      out.topk_weights[L.index] = bs(lo.routing.weights);
    }
  }
  out.hidden_states = h;
  if (w.has_head()) out.logits = final_logits(w, c, h, comm);
  return out;
}

}  // namespace sc
