#include "harness/compare.h"

#include <algorithm>
#include <set>
#include <sstream>

#include "checks/sharding.h"
#include "harness/localise.h"

namespace sc {

Tolerance tolerance_for(at::ScalarType dtype) {
  Tolerance t;
  switch (dtype) {
    case at::kDouble: t = {1e-9, 1e-18, 1e-9}; break;
    case at::kFloat: t = {1e-4, 1e-8, 1e-4}; break;
    case at::kBFloat16: t = {5e-2, 1e-3, 5e-2}; break;
    case at::kHalf: t = {1e-2, 1e-4, 1e-2}; break;
    default: break;
  }
  return t;
}

namespace {

// Per-token relative error [B, S] (in fp64).
at::Tensor token_rel_error(const at::Tensor& got, const at::Tensor& ref) {
  auto a = got.to(at::kDouble).cpu(), b = ref.to(at::kDouble).cpu();
  auto num = (a - b).pow(2).sum(-1).sqrt();
  auto den = b.pow(2).sum(-1).sqrt().clamp_min(1e-300);
  return num / den;
}

double nmse(const at::Tensor& got, const at::Tensor& ref, const at::Tensor& valid) {
  auto a = got.to(at::kDouble).cpu(), b = ref.to(at::kDouble).cpu();
  auto w = valid.to(at::kDouble).unsqueeze(-1);
  double num = ((a - b).pow(2) * w).sum().item<double>();
  double den = (b.pow(2) * w).sum().item<double>();
  return den > 0 ? num / den : num;
}

double max_abs(const at::Tensor& got, const at::Tensor& ref, const at::Tensor& valid) {
  auto d = (got.to(at::kDouble).cpu() - ref.to(at::kDouble).cpu()).abs() * valid.to(at::kDouble).unsqueeze(-1);
  return d.numel() ? d.max().item<double>() : 0.0;
}

std::string join(const std::set<int64_t>& s) {
  std::string out;
  for (int64_t v : s) out += (out.empty() ? "" : ",") + std::to_string(v);
  return out;
}

}  // namespace

RankObservation observation_of(int64_t rank, const Probe& probe, const StageOutput& out) {
  RankObservation r;
  r.rank = rank;
  r.taps = probe.stitched();
  for (const auto& [l, t] : out.layer_out) r.layer_out[l] = t.cpu();
  if (out.logits.defined()) r.logits = out.logits.cpu();
  return r;
}

void compare_captures(const ModelConfig& c, const ParallelPlan& p, const Captures& ref, const Captures& got,
                      const at::Tensor& attention_mask, const Tolerance& tol, RunResult& out) {
  out.comparisons.clear();
  out.tolerance_nmse = tol.nmse;
  if (ref.layer_out.empty()) return;
  const at::Tensor first = ref.layer_out.begin()->second;
  const int64_t B = first.size(0), S = first.size(1);
  at::Tensor valid = attention_mask.defined() ? (attention_mask.cpu() != 0) : at::ones({B, S}, at::kBool);
  auto valid_acc = valid.accessor<bool, 2>();
  const int64_t n_valid = valid.sum().item<int64_t>();

  // tainted[b][t]: the token's input already differs because of a benign flip earlier
  // (at this token, or at an earlier position of its sequence, via causal attention).
  std::vector<std::vector<bool>> tainted(B, std::vector<bool>(S, false));
  std::vector<int64_t> taint_from(B, S);  // earliest flipped position per row (spreads next layer)
  int64_t total_flips = 0, total_benign = 0, unexplained_tokens = 0;
  std::string first_div;

  for (const auto& [l, ref_out] : ref.layer_out) {
    auto it = got.layer_out.find(l);
    if (it == got.layer_out.end()) continue;
    // Taint spreads through this layer's attention to later positions of a row.
    for (int64_t b = 0; b < B; ++b)
      for (int64_t t = taint_from[b]; t < S; ++t) tainted[b][t] = true;

    TensorComparison cmp;
    cmp.name = "layer " + std::to_string(l);
    cmp.layer = l;
    cmp.tokens = n_valid;
    cmp.nmse = nmse(it->second, ref_out, valid);
    cmp.max_abs = max_abs(it->second, ref_out, valid);
    auto rel = token_rel_error(it->second, ref_out);
    auto rel_acc = rel.accessor<double, 2>();

    // Router flips of this layer.
    std::vector<std::vector<int>> flip(B, std::vector<int>(S, 0));  // 0 none, 1 benign, 2 real
    std::set<int64_t> real_flip_experts;
    auto rit = ref.topk_ids.find(l), git = got.topk_ids.find(l), lit = ref.router_logits.find(l);
    if (rit != ref.topk_ids.end() && git != got.topk_ids.end() && lit != ref.router_logits.end()) {
      const int64_t k = rit->second.size(-1);
      auto rid = std::get<0>(rit->second.cpu().sort(-1)), gid = std::get<0>(git->second.cpu().sort(-1));
      auto sorted_logits = std::get<0>(lit->second.to(at::kDouble).cpu().sort(-1, /*descending=*/true));
      auto ra = rid.accessor<int64_t, 3>(), ga = gid.accessor<int64_t, 3>();
      auto la = sorted_logits.accessor<double, 3>();
      const int64_t E = sorted_logits.size(-1);
      for (int64_t b = 0; b < B; ++b)
        for (int64_t t = 0; t < S; ++t) {
          if (!valid_acc[b][t]) continue;
          bool same = true;
          for (int64_t j = 0; j < k; ++j) same &= ra[b][t][j] == ga[b][t][j];
          if (same) continue;
          ++cmp.router_flips;
          const double margin = k < E ? la[b][t][k - 1] - la[b][t][k] : 1e300;
          if (margin < tol.margin || tainted[b][t]) {
            flip[b][t] = 1;
            ++cmp.router_flips_benign;
          } else {
            flip[b][t] = 2;
            for (int64_t j = 0; j < k; ++j) {
              real_flip_experts.insert(ra[b][t][j]);
              real_flip_experts.insert(ga[b][t][j]);
            }
          }
        }
    }
    // Diverged tokens and their explanation.
    int64_t unexplained = 0;
    std::set<int64_t> bad_rows;
    for (int64_t b = 0; b < B; ++b)
      for (int64_t t = 0; t < S; ++t) {
        if (!valid_acc[b][t]) continue;
        const bool diverged = rel_acc[b][t] > tol.token_rel;
        cmp.tokens_diverged += diverged;
        const bool explained = tainted[b][t] || flip[b][t] == 1;
        if ((diverged && !explained) || flip[b][t] == 2) {
          ++unexplained;
          bad_rows.insert(b);
        }
      }
    // Benign flips taint their token from the next layer on.
    for (int64_t b = 0; b < B; ++b)
      for (int64_t t = 0; t < S; ++t)
        if (flip[b][t] == 1) {
          tainted[b][t] = true;
          taint_from[b] = std::min(taint_from[b], t);
        }
    total_flips += cmp.router_flips;
    total_benign += cmp.router_flips_benign;
    if (unexplained > 0 && first_div.empty()) {
      // Attribute to a module: the attention output differs already, or only the MLP's.
      std::string module = "mlp";
      auto ait = got.attn_out.find(l), rait = ref.attn_out.find(l);
      bool attn_bad = false;
      if (ait != got.attn_out.end() && rait != ref.attn_out.end()) {
        auto arel = token_rel_error(ait->second, rait->second);
        auto aa = arel.accessor<double, 2>();
        for (int64_t b = 0; b < B && !attn_bad; ++b)
          for (int64_t t = 0; t < S; ++t)
            if (valid_acc[b][t] && !tainted[b][t] && aa[b][t] > tol.token_rel) {
              attn_bad = true;
              break;
            }
      }
      std::ostringstream os;
      os << "layer " << l << " ";
      if (attn_bad) {
        os << "self_attn (tensor-parallel ranks of tp=" << p.tp << ")";
      } else if (c.layer_is_sparse(l)) {
        if (!real_flip_experts.empty()) {
          os << "mlp.gate (router: top-k differs with a clear margin; experts " << join(real_flip_experts) << ")";
        } else {
          os << "mlp.experts";
          if (p.ep > 1) {
            // Name the EP ranks whose experts the diverged tokens used.
            std::set<int64_t> ranks;
            auto rid = ref.topk_ids.at(l).cpu();
            auto ra = rid.accessor<int64_t, 3>();
            for (int64_t b : bad_rows)
              for (int64_t t = 0; t < S; ++t)
                for (int64_t j = 0; j < rid.size(-1); ++j)
                  for (int64_t er = 0; er < p.ep; ++er) {
                    auto [eb, ee] = expert_range(c, p, er);
                    if (ra[b][t][j] >= eb && ra[b][t][j] < ee) ranks.insert(er * p.etp());
                  }
            os << " on expert-parallel rank(s) " << join(ranks);
          }
        }
      } else {
        os << "mlp (dense, tensor-parallel over tp=" << p.tp << ")";
      }
      os << ": " << unexplained << " token(s) differ beyond the " << tol.token_rel << " relative tolerance";
      first_div = os.str();
    }
    unexplained_tokens += unexplained;
    out.comparisons.push_back(cmp);
  }
  if (ref.logits.defined() && got.logits.defined()) {
    TensorComparison cmp;
    cmp.name = "logits";
    cmp.tokens = n_valid;
    cmp.nmse = nmse(got.logits, ref.logits, valid);
    cmp.max_abs = max_abs(got.logits, ref.logits, valid);
    auto rel = token_rel_error(got.logits, ref.logits);
    cmp.tokens_diverged = ((rel > tol.token_rel) & valid).sum().item<int64_t>();
    out.comparisons.push_back(cmp);
    // The logits decide the verdict too: a divergence no benign flip explains is a mismatch in
    // the head (every layer before it matched, or the first divergence is named already).
    at::Tensor explained = at::zeros({B, S}, at::kBool);
    for (int64_t b = 0; b < B; ++b)
      if (taint_from[size_t(b)] < S) explained[b].slice(0, taint_from[size_t(b)], S).fill_(true);
    const int64_t n = ((rel > tol.token_rel) & valid & explained.logical_not()).sum().item<int64_t>();
    if (n > 0 && first_div.empty()) {
      std::ostringstream os;
      os << "head (model.norm, lm_head or the vocab all_gather over tp=" << p.tp << "): " << n
         << " token(s) of the logits differ beyond the " << tol.token_rel << " relative tolerance";
      first_div = os.str();
    }
    unexplained_tokens += n;
  }
  // Localisation by partial results, when both runs were observed per rank.
  const Localisation loc = localise(c, p, ref, got, valid, tol, &out.points_compared);
  out.localisation = loc;
  if (loc.found()) {
    first_div = loc.describe();
    unexplained_tokens = std::max<int64_t>(unexplained_tokens, 1);
  }
  out.first_divergence = first_div;
  std::ostringstream os;
  if (unexplained_tokens > 0) {
    out.verdict = Verdict::Mismatch;
    os << "mismatch: first at " << first_div;
  } else if (total_flips > 0) {
    out.verdict = Verdict::BenignRouterFlip;
    int64_t diverged = out.comparisons.empty() ? 0 : out.comparisons.back().tokens_diverged;
    os << "benign router flip: " << total_flips << " top-k choice(s) differ, all at near-ties (margin < " << tol.margin
       << ") or downstream of one; " << diverged << " of " << n_valid << " tokens differ in the logits";
  } else {
    out.verdict = Verdict::Match;
    double worst = 0;
    for (const auto& cmp : out.comparisons) worst = std::max(worst, cmp.nmse);
    os << "match: every layer and the logits within tolerance (worst NMSE " << worst << " <= " << tol.nmse << ")";
  }
  out.summary = os.str();
}

}  // namespace sc
