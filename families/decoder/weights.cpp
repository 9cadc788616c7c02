// Weight loading (safetensors slices) and deterministic random weights for one rank.
//
// Both paths walk the same list: checks/tensors.h says which tensors exist and their full shapes,
// checks/sharding.h's slice_for() says which part of each this rank holds. Nothing here decides
// any sharding itself.
#include "families/decoder/weights.h"

#include "checks/checker.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <functional>
#include <stdexcept>

#include <ATen/Parallel.h>
#include <ATen/core/grad_mode.h>

#include "checks/tensors.h"
#include "families/family.h"
#include "models/errors.h"
#include "models/fault_hooks.h"
#include "models/safetensors.h"
#include "ops/fused_ops.h"

namespace sc {

namespace {

bool is_mlp_role(Role r) {
  switch (r) {
    case Role::Router: case Role::ExpertGate: case Role::ExpertUp: case Role::ExpertDown:
    case Role::DenseGate: case Role::DenseUp: case Role::DenseDown:
    case Role::SharedGate: case Role::SharedUp: case Role::SharedDown: case Role::SharedExpertGate: return true;
    default: return false;
  }
}

// Source of a rank's tensor: (full spec, the rank's slice) -> local tensor in compute dtype/device.
using Fetch = std::function<at::Tensor(const TensorSpec&, const SliceSpec&)>;
// Called for a tensor the rank does not own (an expert of another EP group): HF-style loading
// (full_tensor_reads) still reads it; shard-only loading ignores it.
using Touch = std::function<void(const TensorSpec&)>;

// Test-only loader faults (models/fault_hooks.h): the wrong part of a tensor, in the shape the
// right part has. Returns an undefined tensor when no fault applies to this tensor and rank.
at::Tensor faulty_fetch(const ModelConfig& c, const ParallelPlan& p, int64_t rank, const TensorSpec& s,
                        const SliceSpec& sl, const Fetch& fetch) {
  using faults::Kind;
  const int64_t l = s.layer;
  const int64_t len = sl.end - sl.begin;
  auto shifted = [&](int64_t step, int64_t extent) {  // the same-size slice `step` further on, wrapped
    SliceSpec w = sl;
    w.begin = (sl.begin + step) % extent;
    w.end = w.begin + len;
    return w.end <= extent ? fetch(s, w) : at::Tensor();
  };
  // A replicated 1-d weight cut like a colwise one over tp and tiled back to its length.
  auto sliced_replicated = [&]() {
    const int64_t n = s.shape[0], tp = std::max<int64_t>(p.tp, 2);
    auto [b, e] = chunk_range(n, tp, rank_coord(p, rank).tp_rank % tp);
    if (e <= b || n % (e - b) != 0) return at::Tensor();
    return fetch(s, SliceSpec{true, 0, b, e}).repeat({n / (e - b)});
  };
  if (s.role == Role::QProj && sl.dim == 0 && faults::hit(Kind::QShardOffset, rank, l))
    return shifted(len, s.shape[0]);
  if ((s.role == Role::KProj || s.role == Role::VProj) && sl.dim == 0 && faults::hit(Kind::KvReplica, rank, l))
    return shifted(c.head_dim, s.shape[0]);
  if (s.role == Role::OProj && sl.dim == 1 && faults::hit(Kind::OShardAxis, rank, l)) {
    // Rows [H / tp) of the tensor instead of its columns, reshaped to the column shard's shape.
    const int64_t H = s.shape[0], tp = p.tp, r = rank_coord(p, rank).tp_rank;
    if (H % tp != 0 || (H / tp) * s.shape[1] != H * len) return at::Tensor();
    return fetch(s, SliceSpec{true, 0, r * (H / tp), (r + 1) * (H / tp)}).reshape({H, len});
  }
  if (s.role == Role::KNorm && faults::hit(Kind::KNormSliced, rank, l)) return sliced_replicated();
  if (s.role == Role::FinalNorm && faults::hit(Kind::FinalNormSliced, rank)) return sliced_replicated();
  return at::Tensor();
}

// Stacks a layer's local experts; false when their ids are not contiguous.
bool stack_experts(MoeWeights& m) {
  if (m.experts.empty() || m.stacked()) return m.stacked();
  const int64_t first = m.experts.begin()->first;
  int64_t expect = first;
  std::vector<at::Tensor> gu, dn;
  for (const auto& kv : m.experts) {
    if (kv.first != expect++) return false;
    gu.push_back(at::cat({kv.second.gate, kv.second.up}, 0));
    dn.push_back(kv.second.down);
  }
  m.gate_up = at::stack(gu, 0).contiguous();
  m.down_stacked = at::stack(dn, 0).contiguous();
  m.first_expert = first;
  const int64_t I = m.experts.begin()->second.gate.size(0);
  int64_t i = 0;
  for (auto& kv : m.experts) {  // views: the stacks hold the only copy
    kv.second.gate = m.gate_up[i].narrow(0, 0, I);
    kv.second.up = m.gate_up[i].narrow(0, I, I);
    kv.second.down = m.down_stacked[i];
    ++i;
  }
  return true;
}

ModelWeights build_weights(const ModelConfig& c, const ParallelPlan& p, int64_t rank, const LoadOptions& o,
                           const Fetch& plain_fetch, const Touch& touch = {}) {
  // The fault hooks cost one null test per tensor when no fault is injected.
  const Fetch hooked = !faults::active() || p.world_size() == 1 ? plain_fetch : Fetch([&](const TensorSpec& s, const SliceSpec& sl) {
    at::Tensor t = faulty_fetch(c, p, rank, s, sl, plain_fetch);
    return t.defined() ? t : plain_fetch(s, sl);
  });
  const Fetch fetch = !o.on_tensor ? hooked : Fetch([&](const TensorSpec& s, const SliceSpec& sl) {
    at::Tensor t = hooked(s, sl);
    o.on_tensor(uint64_t(t.numel()) * t.element_size());
    return t;
  });
  require_forward_support(c);
  // HF validates the plan while loading (checks/checker.h, predict_hf_load): a module it gathers
  // colwise (lm_head) with an output size tp does not divide is refused before any forward, with
  // HF's own text, here as there.
  if (const LoadOutcome lo = predict_hf_load(c, p); !lo.ok) throw std::runtime_error(lo.error_text);
  ModelWeights w;
  w.plan = p;
  w.rank = rank;
  const RankParts parts = rank_parts(c, p, rank, o);
  const RankCoord rc = rank_coord(p, rank);
  w.attn_layout = attention_layout(c, p, rc.tp_rank);
  w.first_layer = parts.first_layer;
  w.last_layer = parts.last_layer;
  const std::vector<int64_t> vh = {c.vocab_size, c.hidden_size};
  const TensorSpec embed_spec{tensor_name(Role::Embed), vh, Role::Embed, -1, -1};

  if (parts.embed) w.embed = fetch(embed_spec, slice_for(c, p, embed_spec, rank));

  for (int64_t l = parts.first_layer; l < parts.last_layer; ++l) {
    LayerWeights L;
    L.index = l;
    L.sparse = c.layer_is_sparse(l);
    L.has_mlp = !o.attention_only;
    for (const TensorSpec& s : layer_tensors(c, l)) {
      if (o.attention_only && is_mlp_role(s.role)) continue;
      const SliceSpec sl = slice_for(c, p, s, rank);
      if (!sl.owned) {
        if (touch) touch(s);
        continue;
      }
      switch (s.role) {
        case Role::InputNorm: L.input_norm = fetch(s, sl); break;
        case Role::PostNorm: L.post_norm = fetch(s, sl); break;
        case Role::QProj: (s.bias ? L.attn.q_bias : L.attn.q) = fetch(s, sl); break;
        case Role::KProj: (s.bias ? L.attn.k_bias : L.attn.k) = fetch(s, sl); break;
        case Role::VProj: (s.bias ? L.attn.v_bias : L.attn.v) = fetch(s, sl); break;
        case Role::OProj: L.attn.o = fetch(s, sl); break;
        case Role::QNorm: L.attn.q_norm = fetch(s, sl); break;
        case Role::KNorm: L.attn.k_norm = fetch(s, sl); break;
        case Role::Router: L.moe.router = fetch(s, sl); break;
        case Role::ExpertGate: L.moe.experts[s.expert].gate = fetch(s, sl); break;
        case Role::ExpertUp: L.moe.experts[s.expert].up = fetch(s, sl); break;
        case Role::ExpertDown: L.moe.experts[s.expert].down = fetch(s, sl); break;
        case Role::DenseGate: L.dense.gate = fetch(s, sl); break;
        case Role::DenseUp: L.dense.up = fetch(s, sl); break;
        case Role::DenseDown: L.dense.down = fetch(s, sl); break;
        case Role::SharedGate: L.moe.shared_gate = fetch(s, sl); break;
        case Role::SharedUp: L.moe.shared_up = fetch(s, sl); break;
        case Role::SharedDown:
          L.moe.shared_down = fetch(s, sl);
          L.moe.shared_partial = sl.dim >= 0;  // rowwise: the TP ranks' outputs are partial sums
          break;
        case Role::SharedExpertGate: L.moe.shared_expert_gate = fetch(s, sl); break;
        default: break;
      }
    }
    if (L.sparse) {
      // Partial unless every expert of the layer is held whole (experts replicated over the stage).
      const TensorSpec e0{"", {c.moe_intermediate_size, c.hidden_size}, Role::ExpertGate, l, 0};
      L.moe.partial = p.stage_size() > 1 && (p.ep > 1 || slice_for(c, p, e0, rank).dim >= 0);
    }
    // Stacked now, while only this layer's per-expert tensors are live: on a GPU the caching
    // allocator then reuses their freed blocks for the next layer instead of holding every
    // layer's per-expert copies beside the stacks (prepare_kernels finds them stacked).
    if (o.stack_experts && L.sparse && L.has_mlp) stack_experts(L.moe);
    w.layers.push_back(std::move(L));
  }

  if (parts.head) {
    const TensorSpec norm_spec{tensor_name(Role::FinalNorm), {c.hidden_size}, Role::FinalNorm, -1, -1};
    w.final_norm = fetch(norm_spec, slice_for(c, p, norm_spec, rank));
    const TensorSpec head_spec{tensor_name(Role::LmHead), vh, Role::LmHead, -1, -1};
    const SliceSpec hs = slice_for(c, p, head_spec, rank);  // the lm_head rule, also when tied
    w.vocab_parallel = hs.dim >= 0;
    w.vocab_begin = hs.dim >= 0 ? hs.begin : 0;
    if (!c.tie_word_embeddings) {
      w.lm_head = fetch(head_spec, hs);
    } else if (w.has_embed() && slice_for(c, p, embed_spec, rank).dim < 0) {
      // Tied: the rows of the (whole, replicated) embedding this rank's lm_head shard covers.
      w.lm_head = hs.dim < 0 ? w.embed : w.embed.narrow(0, hs.begin, hs.end - hs.begin);
    } else {
      w.lm_head = fetch(embed_spec, hs);  // last stage without the embedding: read those rows
    }
  }
  return w;
}

// ---- deterministic random values ------------------------------------------------------------

uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

uint64_t fnv1a(const std::string& s) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (unsigned char ch : s) {
    h ^= ch;
    h *= 0x100000001b3ULL;
  }
  return h;
}

// Element `i` of tensor `name`: uniform on [-1, 1) with 24 random bits (exact in float).
inline float unit_value(uint64_t key, uint64_t i) {
  const uint64_t h = splitmix64(key + i * 0x9e3779b97f4a7c15ULL);
  return float(int64_t(h >> 40) - (int64_t(1) << 23)) * (1.0f / float(1 << 23));
}

// The uniform distribution of a tensor's random values: offset + scale * U[-1, 1).
void random_scale(const TensorSpec& spec, float* scale, float* offset) {
  *offset = 0;
  switch (spec.role) {
    case Role::Embed: *scale = std::sqrt(3.0f); break;  // std 1
    case Role::InputNorm: case Role::PostNorm: case Role::QNorm: case Role::KNorm: case Role::FinalNorm:
      *scale = 0.1f;
      *offset = 1.0f;
      break;
    default:  // Linear biases: std 0.1; Linear weights [out, in]: std 1/sqrt(in)
      *scale = spec.bias ? float(0.1 * std::sqrt(3.0))
                         : float(std::sqrt(3.0 / double(spec.shape.size() > 1 ? spec.shape[1] : 1)));
      break;
  }
}

// A slice of a random tensor: its values' distribution and key, and where its rows lie in the full
// tensor. Row r of the slice (r in [0, outer * mid)) is row (r / mid) * extent + begin + r % mid of
// the full tensor viewed as [outer * extent, inner]; element i of it has index row * inner + i.
struct RandomSlice {
  std::vector<int64_t> local;  // the slice's shape
  float scale = 0, offset = 0;
  uint64_t key = 0;
  int64_t outer = 1, mid = 1, inner = 1, extent = 1, begin = 0;
  RandomSlice(const TensorSpec& spec, const SliceSpec& sl, uint64_t seed) : local(sl.shape(spec.shape)) {
    const std::vector<int64_t>& full = spec.shape;
    random_scale(spec, &scale, &offset);
    key = splitmix64(seed ^ fnv1a(spec.name));
    const int dim = sl.dim < 0 ? 0 : sl.dim;
    begin = sl.dim < 0 ? 0 : sl.begin;
    for (int d = 0; d < dim; ++d) outer *= full[size_t(d)];
    for (size_t d = size_t(dim) + 1; d < full.size(); ++d) inner *= full[d];
    extent = full.empty() ? 1 : full[size_t(dim)];
    mid = full.empty() ? 1 : local[size_t(dim)];
  }
};

// Generates elements [begin, end) along `dim` of the full tensor `spec` (float32).
at::Tensor random_slice(const TensorSpec& spec, const SliceSpec& sl, uint64_t seed) {
  const RandomSlice g(spec, sl, seed);
  at::Tensor t = at::empty(g.local, at::kFloat);
  float* out = t.data_ptr<float>();
  const int64_t rows = g.outer * g.mid, inner = g.inner;
  at::parallel_for(0, rows, std::max<int64_t>(1, 65536 / std::max<int64_t>(inner, 1)), [&](int64_t rb, int64_t re) {
    for (int64_t r = rb; r < re; ++r) {
      const uint64_t base = uint64_t(((r / g.mid) * g.extent + g.begin + r % g.mid) * inner);
      float* dst = out + r * inner;
      for (int64_t i = 0; i < inner; ++i) dst[i] = g.offset + g.scale * unit_value(g.key, base + uint64_t(i));
    }
  });
  return t;
}

// The same values as random_slice, computed on `device` (the GPU: random weights generated where
// they are used, never on the host): one CUDA kernel per tensor where our kernels are built, else
// tensor operations, where 64-bit integer tensors wrap like uint64_t and a logical shift is an
// arithmetic one masked to the remaining bits (rows in chunks of at most 2^24 elements, so the
// int64 temporaries stay small).
at::Tensor random_slice_on(const TensorSpec& spec, const SliceSpec& sl, uint64_t seed, at::Device device) {
  const RandomSlice g(spec, sl, seed);
  if (device.is_cuda() && fused::compiled())  // one kernel per tensor instead of ~20 integer tensor ops
    return fused::random_fill(g.local, g.outer, g.mid, g.inner, g.extent, g.begin, g.key, g.scale, g.offset, device);
  const auto lopt = at::TensorOptions().dtype(at::kLong).device(device);
  auto u64 = [](uint64_t v) { return at::Scalar(static_cast<int64_t>(v)); };
  auto lsr = [](const at::Tensor& x, int k) {  // logical shift right of a 64-bit pattern
    return at::__rshift__(x, k).bitwise_and(at::Scalar(static_cast<int64_t>((uint64_t(1) << (64 - k)) - 1)));
  };
  const int64_t rows = g.outer * g.mid;
  const int64_t chunk = std::max<int64_t>(1, (int64_t(1) << 24) / std::max<int64_t>(g.inner, 1));
  std::vector<at::Tensor> parts;
  for (int64_t r0 = 0; r0 < rows; r0 += chunk) {
    const int64_t n = std::min(chunk, rows - r0);
    const at::Tensor r = at::arange(r0, r0 + n, lopt);
    const at::Tensor base = ((r.div(g.mid, "floor") * g.extent + g.begin + r.remainder(g.mid)) * g.inner).unsqueeze(1);
    const at::Tensor idx = base + at::arange(g.inner, lopt).unsqueeze(0);  // element index in the full tensor
    // splitmix64(key + idx * golden), as unit_value
    at::Tensor x = idx.mul(u64(0x9e3779b97f4a7c15ULL)).add(u64(g.key)).add(u64(0x9e3779b97f4a7c15ULL));
    x = x.bitwise_xor(lsr(x, 30)).mul(u64(0xbf58476d1ce4e5b9ULL));
    x = x.bitwise_xor(lsr(x, 27)).mul(u64(0x94d049bb133111ebULL));
    x = x.bitwise_xor(lsr(x, 31));
    at::Tensor v = lsr(x, 40).sub(int64_t(1) << 23).to(at::kFloat).mul(1.0f / float(1 << 23));
    parts.push_back(v.mul_(g.scale).add_(g.offset));  // two roundings, as offset + scale * u on the host
  }
  at::Tensor t = parts.size() == 1 ? parts[0] : at::cat(parts, 0);
  return t.reshape(g.local);
}

// ---- checkpoint reading ---------------------------------------------------------------------

struct CheckpointSource {
  const Checkpoint& ckpt;
  const ModelConfig& c;
  const LoadOptions& o;
  LoadStats st;
  // Packed-expert block cache: one expert's [2I, H] (or [H, 2I]) gate_up rows, shared by gate and up.
  std::string cache_key;
  at::Tensor cache;
  // full_tensor_reads: HF stacks all experts of a layer (gate_up_proj [E, 2I, H], down_proj) before
  // sharding them, so the whole layer's expert bytes count as held until the layer is done.
  int64_t expert_layer = -1;
  uint64_t expert_staging = 0;

  uint64_t expert_bytes(const TensorSpec& s, uint64_t bytes) {
    if (s.layer != expert_layer) {
      expert_layer = s.layer;
      expert_staging = 0;
    }
    expert_staging += bytes;
    return expert_staging;
  }

  // An expert of another EP group: read (and dropped) only when emulating HF's loading.
  void touch(const TensorSpec& s) {
    if (!o.full_tensor_reads || !ckpt.has(s.name)) return;
    const TensorInfo& ti = ckpt.info(s.name);
    if (ti.shape != s.shape) return;  // the owning rank reports it
    uint64_t staging = 0;
    read(ti, -1, 0, 0, &staging);
    note(expert_bytes(s, staging), 0);
  }

  void note(uint64_t staging, uint64_t kept_new) {
    st.peak_bytes_held = std::max(st.peak_bytes_held, st.bytes_kept + staging + kept_new);
    st.bytes_kept += kept_new;
  }

  at::ScalarType checkpoint_type(const TensorInfo& ti) const {
    switch (ti.dtype) {
      case DType::F64: case DType::F32: case DType::F16: case DType::BF16: return to_scalar_type(ti.dtype);
      default:
        throw CheckpointError(ti.file, ti.name, dtype_st_name(ti.dtype),
                              "unsupported weight dtype (expected F64, F32, F16 or BF16)");
    }
  }

  // Converted, owning copy of `src` (a view into a staging buffer, or the buffer itself).
  at::Tensor finish(const at::Tensor& src, uint64_t staging_bytes, bool may_alias) {
    at::Tensor out = may_alias ? src.to(o.device, o.dtype) : src.to(o.device, o.dtype, false, /*copy=*/true);
    out = out.contiguous();
    const bool aliased = out.is_alias_of(src);
    note(staging_bytes, aliased ? 0 : uint64_t(out.numel()) * out.element_size());
    if (aliased) st.bytes_kept += uint64_t(out.numel()) * out.element_size();
    return out;
  }

  // Whole tensor, or one slice of it, in the checkpoint dtype (staging buffer).
  at::Tensor read(const TensorInfo& ti, int dim, int64_t begin, int64_t end, uint64_t* staging) {
    const at::ScalarType stype = checkpoint_type(ti);
    ++st.tensors_read;
    if (dim < 0 || o.full_tensor_reads) {
      at::Tensor buf = at::empty(ti.shape, stype);
      ckpt.read(ti.name, buf.data_ptr(), ti.nbytes());
      *staging = ti.nbytes();
      return dim < 0 ? buf : buf.narrow(dim, begin, end - begin);
    }
    std::vector<int64_t> shape = ti.shape;
    shape[size_t(dim)] = end - begin;
    at::Tensor buf = at::empty(shape, stype);
    const uint64_t bytes = uint64_t(buf.numel()) * buf.element_size();
    ckpt.read_slice(ti.name, dim, begin, end, buf.data_ptr(), bytes);
    *staging = bytes;
    return buf;
  }

  at::Tensor operator()(const TensorSpec& s, const SliceSpec& sl) {
    std::string name = s.name;
    if (!ckpt.has(name)) {
      const std::string legacy = legacy_tensor_name(c, name);  // the family's older spelling
      if (!legacy.empty() && ckpt.has(legacy)) {
        name = legacy;
      } else if (s.expert >= 0) {
        return packed_expert(s, sl);
      } else {
        throw CheckpointError(ckpt.path(), s.name, "", "tensor missing from checkpoint (expected shape " +
                                                           shape_str(s.shape) + ")");
      }
    }
    const TensorInfo& ti = ckpt.info(name);
    if (ti.shape != s.shape)
      throw CheckpointError(ti.file, name, shape_str(ti.shape),
                            "wrong shape: expected " + shape_str(s.shape) + " from the config, checkpoint has " +
                                shape_str(ti.shape));
    uint64_t staging = 0;
    const bool whole = sl.dim < 0;
    at::Tensor t = read(ti, sl.dim, sl.begin, sl.end, &staging);
    if (o.full_tensor_reads && s.expert >= 0) staging = expert_bytes(s, staging);
    // A slice read into its own buffer may be kept as is; a view of a full read must be copied.
    return finish(t, staging, whole || !o.full_tensor_reads);
  }

  // Experts stored packed: mlp.experts.gate_up_proj [E, 2I, H] (or [E, H, 2I]) and
  // mlp.experts.down_proj [E, H, I] (or [E, I, H]). Reads one expert's block, then slices it.
  at::Tensor packed_expert(const TensorSpec& s, const SliceSpec& sl) {
    const std::string prefix = "model.layers." + std::to_string(s.layer) + ".mlp.experts.";
    const bool gate_up = s.role != Role::ExpertDown;
    const std::string base = prefix + (gate_up ? "gate_up_proj" : "down_proj");
    std::string name;
    for (const std::string& n : {base, base + ".weight"})
      if (ckpt.has(n)) name = n;
    if (name.empty())
      throw CheckpointError(ckpt.path(), s.name, "",
                            "tensor missing from checkpoint (expected shape " + shape_str(s.shape) +
                                "; no packed " + base + " either)");
    const TensorInfo& ti = ckpt.info(name);
    const int64_t E = c.num_experts, I = c.moe_intermediate_size, H = c.hidden_size;
    const std::vector<int64_t> normal = gate_up ? std::vector<int64_t>{E, 2 * I, H} : std::vector<int64_t>{E, H, I};
    const std::vector<int64_t> transposed = gate_up ? std::vector<int64_t>{E, H, 2 * I} : std::vector<int64_t>{E, I, H};
    bool trans = false;
    if (ti.shape == normal) {
      trans = false;
    } else if (ti.shape == transposed) {
      trans = true;
    } else {
      throw CheckpointError(ti.file, name, shape_str(ti.shape),
                            "wrong shape: expected " + shape_str(normal) + " (or " + shape_str(transposed) +
                                ") from the config, checkpoint has " + shape_str(ti.shape));
    }
    // One expert's block [2I, H] / [H, 2I] / [H, I] / [I, H], cached for gate then up.
    // With full_tensor_reads the whole packed tensor is read once and kept while its experts load.
    const std::string key = o.full_tensor_reads ? name : name + "#" + std::to_string(s.expert);
    uint64_t staging = 0;
    if (cache_key != key) {
      cache = at::Tensor();
      cache = o.full_tensor_reads ? read(ti, -1, 0, 0, &staging) : read(ti, 0, s.expert, s.expert + 1, &staging);
      cache_key = key;
    } else {
      staging = uint64_t(cache.numel()) * cache.element_size();
    }
    const at::Tensor block = o.full_tensor_reads ? cache.select(0, s.expert) : cache.select(0, 0);
    // Bring the block to the per-expert orientation: gate/up rows [2I, H], down [H, I].
    at::Tensor blk = trans ? block.t() : block;
    if (gate_up) blk = blk.narrow(0, s.role == Role::ExpertGate ? 0 : I, I);
    if (sl.dim >= 0) blk = blk.narrow(sl.dim, sl.begin, sl.end - sl.begin);
    return finish(blk, staging, false);
  }
};

}  // namespace

void require_forward_support(const ModelConfig& c) {
  // The forward computes the GQA families (FamilySpec::has_forward); the others have a spec only:
  // check, matrix, gate and report read them.
  const FamilySpec* f = family_named(c.family);
  if (!f || !f->has_forward) {
    std::string with;
    for (const FamilySpec* s : families())
      if (s->has_forward)
        for (const std::string& t : s->model_types) with += (with.empty() ? "" : ", ") + t;
    throw ConfigError(c.source, "model_type", c.model_type,
                      "no forward for this family yet (run, steer, bench and repro compute " + with +
                          "; check, matrix, gate and report read every model type of families/)");
  }
  if (!c.forward_computes_rope())
    throw ConfigError(c.source, "rope_scaling", c.rope_scaling_type,
                      "the forward (run, steer, bench, repro) computes the default, linear and llama3 ropes only; "
                      "check, matrix, gate and report accept every rope scaling");
}

at::ScalarType to_scalar_type(DType d) {
  switch (d) {
    case DType::F64: return at::kDouble;
    case DType::F32: return at::kFloat;
    case DType::F16: return at::kHalf;
    case DType::BF16: return at::kBFloat16;
    default: throw std::invalid_argument(std::string("no floating torch type for dtype ") + dtype_st_name(d));
  }
}

DType from_scalar_type(at::ScalarType t) {
  switch (t) {
    case at::kDouble: return DType::F64;
    case at::kFloat: return DType::F32;
    case at::kHalf: return DType::F16;
    case at::kBFloat16: return DType::BF16;
    default: throw std::invalid_argument(std::string("unsupported torch dtype ") + c10::toString(t));
  }
}

const LayerWeights& ModelWeights::layer(int64_t global_index) const {
  const int64_t i = global_index - first_layer;
  if (i < 0 || i >= int64_t(layers.size()))
    throw std::out_of_range("layer " + std::to_string(global_index) + " not held (layers [" +
                            std::to_string(first_layer) + ", " + std::to_string(last_layer) + "))");
  return layers[size_t(i)];
}

uint64_t ModelWeights::nbytes() const {
  uint64_t n = 0;
  auto add = [&](const at::Tensor& t) {
    if (t.defined()) n += uint64_t(t.numel()) * t.element_size();
  };
  add(embed);
  add(final_norm);
  if (lm_head.defined() && !(embed.defined() && lm_head.is_alias_of(embed))) add(lm_head);
  for (const LayerWeights& L : layers) {
    for (const at::Tensor* t : {&L.input_norm, &L.post_norm, &L.attn.q, &L.attn.k, &L.attn.v, &L.attn.o,
                                &L.attn.q_norm, &L.attn.k_norm, &L.attn.q_bias, &L.attn.k_bias, &L.attn.v_bias,
                                &L.moe.router, &L.moe.shared_gate, &L.moe.shared_up, &L.moe.shared_down,
                                &L.moe.shared_expert_gate, &L.dense.gate, &L.dense.up, &L.dense.down})
      add(*t);
    for (const auto& kv : L.moe.experts) {
      add(kv.second.gate);
      add(kv.second.up);
      add(kv.second.down);
    }
  }
  return n;
}

RankParts rank_parts(const ModelConfig& c, const ParallelPlan& p, int64_t rank, const LoadOptions& o) {
  RankParts r;
  const RankCoord rc = rank_coord(p, rank);
  auto range = stage_layers(c.num_hidden_layers, p.pp, rc.stage);
  if (o.first_layer >= 0 || o.last_layer >= 0) {
    range.first = o.first_layer >= 0 ? o.first_layer : 0;
    range.second = o.last_layer >= 0 ? o.last_layer : c.num_hidden_layers;
  }
  if (range.first < 0 || range.second > c.num_hidden_layers || range.first > range.second)
    throw std::invalid_argument("layer range [" + std::to_string(range.first) + ", " + std::to_string(range.second) +
                                ") outside the model's " + std::to_string(c.num_hidden_layers) + " layers");
  r.first_layer = range.first;
  r.last_layer = range.second;
  r.embed = o.with_embed >= 0 ? o.with_embed != 0 : r.first_layer == 0;
  r.head = o.with_head >= 0 ? o.with_head != 0 : r.last_layer == c.num_hidden_layers;
  return r;
}

ModelWeights load_weights(const Checkpoint& ckpt, const ModelConfig& c, const ParallelPlan& p, int64_t rank,
                          const LoadOptions& o, LoadStats* stats) {
  at::NoGradGuard no_grad;
  const auto t0 = std::chrono::steady_clock::now();
  const uint64_t read0 = ckpt.bytes_read();
  CheckpointSource src{ckpt, c, o, {}, {}, {}};
  ModelWeights w = build_weights(
      c, p, rank, o, [&](const TensorSpec& s, const SliceSpec& sl) { return src(s, sl); },
      [&](const TensorSpec& s) { src.touch(s); });
  if (stats) {
    *stats = src.st;
    stats->bytes_read = ckpt.bytes_read() - read0;
    stats->bytes_kept = w.nbytes();
    stats->seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }
  return w;
}

ModelWeights random_weights(const ModelConfig& c, const ParallelPlan& p, int64_t rank, uint64_t seed,
                            const LoadOptions& o) {
  at::NoGradGuard no_grad;
  return build_weights(c, p, rank, o, [&](const TensorSpec& s, const SliceSpec& sl) {
    if (o.device.is_cpu()) return random_slice(s, sl, seed).to(o.dtype);
    return random_slice_on(s, sl, seed, o.device).to(o.dtype);  // made on the GPU, never on the host
  });
}

ModelWeights random_weights(const ModelConfig& c, const ParallelPlan& p, int64_t rank, uint64_t seed,
                            at::ScalarType dtype) {
  LoadOptions o;
  o.dtype = dtype;
  return random_weights(c, p, rank, seed, o);
}

at::Tensor random_tensor(const ModelConfig& c, const std::string& name, uint64_t seed) {
  TensorSpec s;
  if (!find_tensor(c, name, &s)) {
    if (name == tensor_name(Role::LmHead))  // tied models have none in the inventory
      s = TensorSpec{name, {c.vocab_size, c.hidden_size}, Role::LmHead, -1, -1};
    else
      throw std::invalid_argument("random_tensor: unknown tensor " + name);
  }
  return random_slice(s, SliceSpec{}, seed);
}

at::Tensor random_tensor(const ModelConfig& c, const std::string& name, uint64_t seed, at::Device device,
                         const SliceSpec& slice) {
  TensorSpec s;
  if (!find_tensor(c, name, &s)) throw std::invalid_argument("random_tensor: unknown tensor " + name);
  return random_slice_on(s, slice, seed, device);
}

// ---- kernels (ops/kernels.h) ----------------------------------------------------------------


void prepare_kernels(ModelWeights& w, const Kernels& k) {
  at::ScalarType dtype = at::kFloat;
  at::Device device = at::kCPU;
  for (const LayerWeights& L : w.layers)
    if (L.input_norm.defined()) {
      dtype = L.input_norm.scalar_type();
      device = L.input_norm.device();
      break;
    }
  require_kernels(k, device, dtype);
  w.kernels = k;
  if (!k.grouped_experts) return;
  for (LayerWeights& L : w.layers)
    if (L.sparse && L.has_mlp) stack_experts(L.moe);
}

}  // namespace sc
