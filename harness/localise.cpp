#include "harness/localise.h"

#include <algorithm>
#include <set>

#include "checks/sharding.h"
#include "checks/tensors.h"
#include "families/decoder/model.h"
#include "models/errors.h"

namespace sc {

namespace {

const at::Tensor* find(const TapMap& m, int64_t layer, Tap t) {
  auto it = m.find({layer, int(t)});
  return it == m.end() ? nullptr : &it->second;
}

// The rank's expected MLP partial: SwiGLU with the full weights (CPU) cut to this rank's slice of
// the intermediate columns (gate / up rows, down columns) when the plan shards them.
at::Tensor sliced_swiglu(const at::Tensor& x, const at::Tensor& gate, const at::Tensor& up, const at::Tensor& down,
                         const SliceSpec& sl) {
  if (sl.dim != 0) return swiglu(x, gate.cpu(), up.cpu(), down.cpu());
  const int64_t n = sl.end - sl.begin;
  return swiglu(x, gate.cpu().narrow(0, sl.begin, n), up.cpu().narrow(0, sl.begin, n), down.cpu().narrow(1, sl.begin, n));
}

// [b, S, rest] in fp64.
at::Tensor flat3(const at::Tensor& t) { return t.reshape({t.size(0), t.size(1), -1}).to(at::kDouble); }

bool is_collective_output(Tap t) {
  return t == Tap::AttnOut || t == Tap::ExpertsOut || t == Tap::MlpOut || t == Tap::Logits;
}

// Points after the router's top-k in a layer: a token whose top-k flipped differs there.
bool after_router(Tap t) {
  return t == Tap::TopKWeights || t == Tap::ExpertsPartial || t == Tap::ExpertsOut || t == Tap::LayerOut;  // SharedExpert: no routing
}

std::string module_of(Tap t, int64_t layer, int64_t stage, bool stage_first_layer) {
  switch (t) {
    case Tap::Positions: return "rotary positions";
    case Tap::AttnMask: return "attention mask";
    case Tap::LayerIn:
      if (layer == 0) return "model.embed_tokens";
      if (stage_first_layer && stage > 0)
        return "pipeline stage " + std::to_string(stage) + " input (activations from stage " +
               std::to_string(stage - 1) + ")";
      return "layer input";
    case Tap::AttnIn: return "input_layernorm";
    case Tap::QProj: return "self_attn.q_proj";
    case Tap::KProj: return "self_attn.k_proj";
    case Tap::VProj: return "self_attn.v_proj";
    case Tap::QNorm: return "self_attn.q_norm";
    case Tap::KNorm: return "self_attn.k_norm";
    case Tap::QRope: case Tap::KRope: return "rotary embedding (RoPE positions)";
    case Tap::AttnHeads: return "self_attn (scores, mask, softmax, repeat_kv)";
    case Tap::OPartial: return "self_attn.o_proj";
    case Tap::AttnOut: return "self_attn.o_proj all_reduce (tp group)";
    case Tap::MlpIn: return "post_attention_layernorm";
    case Tap::RouterLogits: return "mlp.gate (router logits)";
    case Tap::TopK: return "mlp.gate (router top-k)";
    case Tap::TopKWeights: return "mlp.gate (routing weights)";
    case Tap::ExpertsPartial: return "mlp.experts";
    case Tap::ExpertsOut: return "mlp.experts all_reduce (stage group)";
    case Tap::SharedExpert: return "mlp.shared_expert (gated by mlp.shared_expert_gate)";
    case Tap::MlpPartial: return "mlp (dense gate_proj / up_proj / down_proj)";
    case Tap::MlpOut: return "mlp.down_proj all_reduce (tp group)";
    case Tap::LayerOut: return "residual add (layer output)";
    case Tap::FinalNorm: return "model.norm";
    case Tap::LmHeadShard: return "lm_head";
    case Tap::Logits: return "lm_head vocab all_gather (tp group)";
    case Tap::Count: break;
  }
  return "?";
}

// What `rank` should hold at (layer, t) under the plan, derived from the reference's full
// tensors and weights; undefined when the reference has nothing to compare with.
struct Expected {
  at::Tensor value;
  at::Tensor scale;  // per-token denominators ([b, S, ...]); undefined: the value itself
};

Expected expected(const ModelConfig& c, const ParallelPlan& p, const ModelWeights& W, const TapMap& R,
                  int64_t ref_first_layer, int64_t rank, int64_t l, Tap t) {
  const RankCoord rc = rank_coord(p, rank);
  const AttentionLayout a = attention_layout(c, p, rc.tp_rank);
  const int64_t D = c.head_dim;
  auto ref = [&](Tap x, int64_t layer) {
    const at::Tensor* r = find(R, layer, x);
    return r ? *r : at::Tensor();
  };
  auto heads = [&](const at::Tensor& full, int64_t row_begin, int64_t rows) {
    if (!full.defined() || row_begin % D != 0 || rows % D != 0) return at::Tensor();
    return full.narrow(2, row_begin / D, rows / D);
  };
  Expected e;
  switch (t) {
    case Tap::Positions: case Tap::AttnMask:
      e.value = ref(t, ref_first_layer);  // the reference's one stage starts at layer 0
      if (t == Tap::Positions && e.value.defined()) e.scale = at::ones_like(e.value);  // absolute: positions differ by >= 1
      break;
    case Tap::QProj: case Tap::QNorm: case Tap::QRope:
      e.value = heads(ref(t, l), a.q_row_begin, a.q_rows);
      break;
    case Tap::KProj: case Tap::VProj: case Tap::KNorm: case Tap::KRope:
      e.value = heads(ref(t, l), a.kv_row_begin, a.kv_rows);
      break;
    case Tap::AttnHeads: {
      const at::Tensor h = ref(t, l);
      if (h.defined()) e.value = h.narrow(2, a.q_row_begin, a.q_rows);
      break;
    }
    case Tap::OPartial: {
      const at::Tensor h = ref(Tap::AttnHeads, l);
      if (!h.defined()) break;
      const at::Tensor o = W.layer(l).attn.o.cpu();
      e.value = at::linear(h.narrow(2, a.q_row_begin, a.q_rows), o.narrow(1, a.q_row_begin, a.q_rows));
      e.scale = ref(Tap::AttnOut, l);
      break;
    }
    case Tap::ExpertsPartial: {
      const at::Tensor x = ref(Tap::MlpIn, l), ids = ref(Tap::TopK, l), wts = ref(Tap::TopKWeights, l);
      if (!x.defined() || !ids.defined() || !wts.defined()) break;
      const LayerWeights& L = W.layer(l);
      const int64_t H = x.size(-1), K = ids.size(-1);
      const at::Tensor x2 = x.reshape({-1, H}), ids2 = ids.reshape({-1, K}), w_flat = wts.reshape({-1});
      at::Tensor out = at::zeros_like(x2);
      auto [eb, ee] = expert_range(c, p, rc.ep_rank);
      for (int64_t ex = eb; ex < ee; ++ex) {
        const at::Tensor pairs = ids2.eq(ex).nonzero();  // [n, 2]: (token, slot)
        if (pairs.size(0) == 0) continue;
        const at::Tensor tok = pairs.select(1, 0), slot = pairs.select(1, 1);
        const TensorSpec gate_spec{"", {c.moe_intermediate_size, H}, Role::ExpertGate, l, ex};
        const SliceSpec sl = slice_for(c, p, gate_spec, rank);  // the expert's intermediate columns
        const ExpertWeights& ew = L.moe.experts.at(ex);
        const at::Tensor y = sliced_swiglu(x2.index_select(0, tok), ew.gate, ew.up, ew.down, sl) *
                             w_flat.index_select(0, tok * K + slot).unsqueeze(1);
        out.index_add_(0, tok, y);
      }
      e.value = out.view(x.sizes());
      e.scale = ref(Tap::ExpertsOut, l);
      break;
    }
    case Tap::MlpPartial: {
      const at::Tensor x = ref(Tap::MlpIn, l);
      if (!x.defined()) break;
      const DenseMlpWeights& m = W.layer(l).dense;
      const TensorSpec gate_spec{"", {c.intermediate_size, c.hidden_size}, Role::DenseGate, l, -1};
      const SliceSpec sl = slice_for(c, p, gate_spec, rank);
      e.value = sliced_swiglu(x, m.gate, m.up, m.down, sl);
      e.scale = ref(Tap::MlpOut, l);
      break;
    }
    case Tap::LmHeadShard: {
      const at::Tensor fn = ref(Tap::FinalNorm, -1);
      if (!fn.defined() || !W.has_head()) break;
      const TensorSpec head_spec{"", {c.vocab_size, c.hidden_size}, Role::LmHead, -1, -1};
      const SliceSpec sl = slice_for(c, p, head_spec, rank);
      at::Tensor lm = W.lm_head.cpu();
      if (sl.dim == 0) lm = lm.narrow(0, sl.begin, sl.end - sl.begin);
      e.value = at::linear(fn, lm);
      e.scale = ref(Tap::Logits, -1);
      break;
    }
    default:
      e.value = ref(t, l);
      break;
  }
  return e;
}

struct PointCheck {
  bool bad = false;
  at::Tensor diverged;  // [b, S] bool: compared tokens beyond the tolerance
  int64_t tokens = 0, compared = 0;
  double worst = 0;
  std::string detail;
};

// got vs expected at the tokens `use` ([B, S] bool).
PointCheck check_point(const at::Tensor& got, const Expected& exp, const at::Tensor& use, double tol) {
  PointCheck r;
  if (got.sizes() != exp.value.sizes()) {
    r.bad = true;
    r.detail = "the rank holds " + shape_str(got.sizes().vec()) + " where its slice of the reference is " +
               shape_str(exp.value.sizes().vec());
    return r;
  }
  const at::Tensor a = flat3(got), b = flat3(exp.value);
  const at::Tensor num = (a - b).pow(2).sum(-1).sqrt();
  const at::Tensor den = (exp.scale.defined() ? flat3(exp.scale) : b).pow(2).sum(-1).sqrt().clamp_min(1e-300);
  const at::Tensor rel = num / den;
  r.diverged = (rel.gt(tol) | rel.isnan()) & use;
  r.tokens = r.diverged.sum().item<int64_t>();
  r.compared = use.sum().item<int64_t>();
  r.bad = r.tokens > 0;
  const at::Tensor shown = at::where(use, rel.nan_to_num(1e300), at::zeros_like(rel));
  r.worst = shown.numel() ? shown.max().item<double>() : 0.0;
  return r;
}

std::vector<int64_t> sorted(const std::set<int64_t>& s) { return {s.begin(), s.end()}; }

}  // namespace

Localisation localise(const ModelConfig& c, const ParallelPlan& p, const Captures& ref, const Captures& got,
                      const at::Tensor& valid_in, const Tolerance& tol, int64_t* points) {
  Localisation found;
  if (points) *points = 0;
  if (ref.ranks.size() != 1 || !ref.weights || got.ranks.empty()) return found;
  const TapMap& R = ref.ranks[0].taps;
  const ModelWeights& W = *ref.weights;
  const at::Tensor valid = valid_in.to(at::kBool);
  const int64_t B = valid.size(0), S = valid.size(1);

  std::set<int64_t> layers;
  for (const auto& [key, t] : R) layers.insert(key.first);
  layers.erase(-1);
  const int64_t ref_first_layer = layers.empty() ? 0 : *layers.begin();

  at::Tensor tainted = at::zeros({B, S}, at::kBool);  // downstream of a benign router flip
  std::vector<int64_t> taint_from(size_t(B), S);
  auto spread_taint = [&]() {
    for (int64_t b = 0; b < B; ++b)
      if (taint_from[size_t(b)] < S) tainted[b].slice(0, taint_from[size_t(b)], S).fill_(true);
  };

  // One point (layer, tap) over every rank that holds it; fills `found` on the first difference.
  auto check_tap = [&](int64_t l, Tap t, const at::Tensor& flipped_here) -> bool {
    std::set<int64_t> bad_ranks, experts, stages;
    Localisation first;
    for (const RankObservation& ro : got.ranks) {
      const at::Tensor* g = find(ro.taps, l, t);
      if (!g) continue;
      const Expected exp = expected(c, p, W, R, ref_first_layer, ro.rank, l, t);
      if (!exp.value.defined()) continue;
      if (points) ++*points;
      at::Tensor use = valid & tainted.logical_not();
      if (after_router(t) && flipped_here.defined()) use = use & flipped_here.logical_not();
      const PointCheck pc = check_point(*g, exp, use, tol.token_rel);
      if (!pc.bad) continue;
      const RankCoord rc = rank_coord(p, ro.rank);
      bad_ranks.insert(ro.rank);
      stages.insert(rc.stage);
      if (!first.found()) {
        const int64_t stage_first = stage_layers(c.num_hidden_layers, p.pp, rc.stage).first;
        first.layer = l;
        first.module = module_of(t, l, rc.stage, l == stage_first);
        first.point = tap_name(t);
        first.tokens = pc.tokens;
        first.tokens_compared = pc.compared;
        first.worst_rel = pc.worst;
        first.detail = pc.detail;
        if (is_collective_output(t))
          first.detail = "every rank's partial before the collective matches the reference; the reduced result "
                         "differs (a collective skipped, repeated or over the wrong group, or shards gathered in "
                         "the wrong order)";
      }
      if (t == Tap::ExpertsPartial && pc.diverged.defined()) {
        // The rank's experts whose tokens differ, less those whose tokens all match.
        const at::Tensor ids = ref.ranks[0].taps.at({l, int(Tap::TopK)});
        auto [eb, ee] = expert_range(c, p, rc.ep_rank);
        std::set<int64_t> used_bad, used_good;
        const at::Tensor good = valid & tainted.logical_not() & pc.diverged.logical_not();
        auto ia = ids.accessor<int64_t, 3>();
        auto da = pc.diverged.accessor<bool, 2>();
        auto ga = good.accessor<bool, 2>();
        for (int64_t b = 0; b < B; ++b)
          for (int64_t s = 0; s < S; ++s)
            for (int64_t j = 0; j < ids.size(2); ++j) {
              const int64_t ex = ia[b][s][j];
              if (ex < eb || ex >= ee) continue;
              if (da[b][s]) used_bad.insert(ex);
              if (ga[b][s]) used_good.insert(ex);
            }
        std::set<int64_t> named;
        for (int64_t ex : used_bad)
          if (!used_good.count(ex)) named.insert(ex);
        experts.insert(named.empty() ? used_bad.begin() : named.begin(), named.empty() ? used_bad.end() : named.end());
      }
    }
    if (bad_ranks.empty()) return false;
    found = first;
    found.ranks = sorted(bad_ranks);
    found.experts = sorted(experts);
    found.stage = stages.size() == 1 ? *stages.begin() : -1;
    return true;
  };

  // Router top-k on every rank: a flip at a near-tie (or of a token already downstream of one) is
  // benign and excludes the token from the points after the router; any other flip is the finding.
  auto check_topk = [&](int64_t l, at::Tensor& flipped_here) -> bool {
    const at::Tensor* rid = find(R, l, Tap::TopK);
    const at::Tensor* rlog = find(R, l, Tap::RouterLogits);
    if (!rid || !rlog) return false;
    const int64_t k = rid->size(-1), E = rlog->size(-1);
    const at::Tensor ref_sorted = std::get<0>(rid->sort(-1));
    const at::Tensor lsorted = std::get<0>(rlog->to(at::kDouble).sort(-1, /*descending=*/true));
    const at::Tensor margin = k < E ? lsorted.select(-1, k - 1) - lsorted.select(-1, k)
                                    : at::full({B, S}, 1e300, at::kDouble);
    const at::Tensor near_tie = margin.lt(tol.margin) | tainted;
    flipped_here = at::zeros({B, S}, at::kBool);
    std::set<int64_t> bad_ranks, stages;
    int64_t bad_tokens = 0, compared = 0;
    for (const RankObservation& ro : got.ranks) {
      const at::Tensor* g = find(ro.taps, l, Tap::TopK);
      if (!g) continue;
      if (points) ++*points;
      if (g->sizes() != rid->sizes()) {
        bad_ranks.insert(ro.rank);
        continue;
      }
      const at::Tensor differ = std::get<0>(g->sort(-1)).ne(ref_sorted).any(-1) & valid;
      flipped_here |= differ & near_tie;
      const at::Tensor real = differ & near_tie.logical_not();
      if (real.any().item<bool>()) {
        if (bad_ranks.empty()) {
          bad_tokens = real.sum().item<int64_t>();
          compared = valid.sum().item<int64_t>();
        }
        bad_ranks.insert(ro.rank);
        stages.insert(rank_coord(p, ro.rank).stage);
      }
    }
    if (bad_ranks.empty()) return false;
    found.layer = l;
    found.module = module_of(Tap::TopK, l, 0, false);
    found.point = tap_name(Tap::TopK);
    found.ranks = sorted(bad_ranks);
    found.stage = stages.size() == 1 ? *stages.begin() : -1;
    found.tokens = bad_tokens;
    found.tokens_compared = compared;
    found.detail = "top-k differs with a clear margin between the k-th and (k+1)-th router logit";
    return true;
  };

  for (int64_t l : layers) {
    spread_taint();
    at::Tensor flipped_here;
    for (int t = 0; t < int(Tap::Count); ++t) {
      const Tap tap = Tap(t);
      if (tap == Tap::FinalNorm || tap == Tap::LmHeadShard || tap == Tap::Logits) continue;
      if (tap == Tap::TopK) {
        if (check_topk(l, flipped_here)) return found;
        continue;
      }
      if (check_tap(l, tap, flipped_here)) return found;
    }
    if (flipped_here.defined()) {
      tainted |= flipped_here;
      for (int64_t b = 0; b < B; ++b) {
        const at::Tensor idx = flipped_here[b].nonzero();
        if (idx.size(0) > 0) taint_from[size_t(b)] = std::min(taint_from[size_t(b)], idx[0][0].item<int64_t>());
      }
    }
  }
  spread_taint();
  for (Tap tap : {Tap::FinalNorm, Tap::LmHeadShard, Tap::Logits})
    if (check_tap(-1, tap, at::Tensor())) return found;

  // Every point matched on every rank: what the stages assembled from their micro-batches.
  const at::Tensor use = valid & tainted.logical_not();
  std::set<int64_t> bad_ranks, stages;
  for (const RankObservation& ro : got.ranks) {
    std::vector<std::pair<int64_t, const at::Tensor*>> outs;
    for (const auto& [l, t] : ro.layer_out) outs.push_back({l, &t});
    if (ro.logits.defined()) outs.push_back({-1, &ro.logits});
    for (const auto& [l, t] : outs) {
      const at::Tensor* r = l >= 0 ? find(R, l, Tap::LayerOut) : find(R, -1, Tap::Logits);
      if (!r) continue;
      if (points) ++*points;
      const PointCheck pc = check_point(*t, Expected{*r, {}}, use, tol.token_rel);
      if (!pc.bad) continue;
      if (bad_ranks.empty()) {
        found.layer = l;
        found.point = l >= 0 ? "layer output as the stage assembled it" : "logits as the stage assembled them";
        found.tokens = pc.tokens;
        found.tokens_compared = pc.compared;
        found.worst_rel = pc.worst;
        found.detail = "every micro-batch matches the reference as computed; their concatenation does not";
      }
      bad_ranks.insert(ro.rank);
      stages.insert(rank_coord(p, ro.rank).stage);
      break;
    }
  }
  if (!bad_ranks.empty()) {
    found.module = "micro-batch assembly";
    found.ranks = sorted(bad_ranks);
    found.stage = stages.size() == 1 ? *stages.begin() : -1;
  }
  return found;
}

}  // namespace sc
