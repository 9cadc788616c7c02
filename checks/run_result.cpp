#include "checks/run_result.h"

#include <cstdio>

#include "models/errors.h"

namespace sc {

const char* verdict_name(Verdict v) {
  switch (v) {
    case Verdict::Match: return "match";
    case Verdict::BenignRouterFlip: return "benign-router-flip";
    case Verdict::Mismatch: return "mismatch";
    case Verdict::Error: return "error";
  }
  return "?";
}

static Verdict verdict_from_name(const std::string& s) {
  for (Verdict v : {Verdict::Match, Verdict::BenignRouterFlip, Verdict::Mismatch, Verdict::Error})
    if (s == verdict_name(v)) return v;
  throw PlanError("verdict", s, "unknown verdict");
}

std::string Localisation::describe() const {
  if (!found()) return "";
  auto list = [](const std::vector<int64_t>& v) {
    std::string s;
    for (int64_t x : v) s += (s.empty() ? "" : ",") + std::to_string(x);
    return s;
  };
  std::string s = layer >= 0 ? "layer " + std::to_string(layer) + " " : "";
  s += module;
  if (!experts.empty()) s += " (expert" + std::string(experts.size() > 1 ? "s " : " ") + list(experts) + ")";
  s += " on rank" + std::string(ranks.size() > 1 ? "s " : " ") + list(ranks);
  if (stage >= 0) s += " (stage " + std::to_string(stage) + ")";
  s += ": " + point + " differs";
  if (tokens_compared > 0) {
    char rel[32];
    std::snprintf(rel, sizeof rel, "%.3g", worst_rel);
    s += " at " + std::to_string(tokens) + " of " + std::to_string(tokens_compared) + " tokens (worst relative error " +
         rel + ")";
  }
  if (!detail.empty()) s += "; " + detail;
  return s;
}

void to_json(nlohmann::json& j, const Localisation& l) {
  j = {{"layer", l.layer}, {"module", l.module}, {"point", l.point}, {"ranks", l.ranks}, {"experts", l.experts},
       {"stage", l.stage}, {"tokens", l.tokens}, {"tokens_compared", l.tokens_compared},
       {"worst_rel", l.worst_rel}, {"detail", l.detail}};
}
void from_json(const nlohmann::json& j, Localisation& l) {
  l.layer = j.value("layer", int64_t(-1));
  l.module = j.value("module", "");
  l.point = j.value("point", "");
  l.ranks = j.value("ranks", std::vector<int64_t>{});
  l.experts = j.value("experts", std::vector<int64_t>{});
  l.stage = j.value("stage", int64_t(-1));
  l.tokens = j.value("tokens", int64_t(0));
  l.tokens_compared = j.value("tokens_compared", int64_t(0));
  l.worst_rel = j.value("worst_rel", 0.0);
  l.detail = j.value("detail", "");
}

void to_json(nlohmann::json& j, const RankError& e) { j = {{"rank", e.rank}, {"where", e.where}, {"what", e.what}}; }
void from_json(const nlohmann::json& j, RankError& e) {
  e.rank = j.at("rank").get<int64_t>();
  e.where = j.value("where", "");
  e.what = j.value("what", "");
}

void to_json(nlohmann::json& j, const TensorComparison& c) {
  j = {{"name", c.name}, {"layer", c.layer}, {"nmse", c.nmse}, {"max_abs", c.max_abs}, {"tokens", c.tokens},
       {"tokens_diverged", c.tokens_diverged}, {"router_flips", c.router_flips},
       {"router_flips_benign", c.router_flips_benign}};
}
void from_json(const nlohmann::json& j, TensorComparison& c) {
  c.name = j.value("name", "");
  c.layer = j.value("layer", int64_t(-1));
  c.nmse = j.value("nmse", 0.0);
  c.max_abs = j.value("max_abs", 0.0);
  c.tokens = j.value("tokens", int64_t(0));
  c.tokens_diverged = j.value("tokens_diverged", int64_t(0));
  c.router_flips = j.value("router_flips", int64_t(0));
  c.router_flips_benign = j.value("router_flips_benign", int64_t(0));
}

void to_json(nlohmann::json& j, const RunResult& r) {
  j = {{"model", r.model},
       {"plan", r.plan},
       {"backend", r.backend},
       {"device", r.device},
       {"verdict", verdict_name(r.verdict)},
       {"ok", r.ok()},
       {"summary", r.summary},
       {"errors", r.errors},
       {"comparisons", r.comparisons},
       {"first_divergence", r.first_divergence},
       {"localisation", r.localisation},
       {"points_compared", r.points_compared},
       {"tolerance_nmse", r.tolerance_nmse},
       {"load_peak_bytes", r.load_peak_bytes},
       {"bytes_read", r.bytes_read},
       {"forward_ms", r.forward_ms},
       {"reference_ms", r.reference_ms},
       {"tokens_per_s", r.tokens_per_s},
       {"scale", r.scale}};
}

void from_json(const nlohmann::json& j, RunResult& r) {
  r.model = j.value("model", "");
  r.plan = j.at("plan").get<ParallelPlan>();
  r.backend = j.value("backend", "");
  r.device = j.value("device", "");
  r.verdict = verdict_from_name(j.value("verdict", "match"));
  r.summary = j.value("summary", "");
  r.errors = j.value("errors", std::vector<RankError>{});
  r.comparisons = j.value("comparisons", std::vector<TensorComparison>{});
  r.first_divergence = j.value("first_divergence", "");
  r.localisation = j.value("localisation", Localisation{});
  r.points_compared = j.value("points_compared", int64_t(0));
  r.tolerance_nmse = j.value("tolerance_nmse", 0.0);
  r.load_peak_bytes = j.value("load_peak_bytes", std::vector<int64_t>{});
  r.bytes_read = j.value("bytes_read", std::vector<int64_t>{});
  r.forward_ms = j.value("forward_ms", 0.0);
  r.reference_ms = j.value("reference_ms", 0.0);
  r.tokens_per_s = j.value("tokens_per_s", 0.0);
  r.scale = j.value("scale", "");
}

}  // namespace sc
