#include "layout/plan.h"

#include <nlohmann/json.hpp>

#include "models/errors.h"

namespace sc {

const char* plan_style_name(PlanStyle s) {
  switch (s) {
    case PlanStyle::HfAuto: return "hf-auto";
    case PlanStyle::ReplicateKv: return "replicate-kv";
  }
  return "?";
}

PlanStyle plan_style_from_name(const std::string& s) {
  if (s == "hf-auto" || s == "auto") return PlanStyle::HfAuto;
  if (s == "replicate-kv") return PlanStyle::ReplicateKv;
  throw PlanError("--plan", s, "unknown plan style (expected hf-auto or replicate-kv)");
}

void ParallelPlan::validate() const {
  auto need = [](const char* flag, int64_t v, int64_t lo, int64_t hi) {
    if (v < lo || v > hi)
      throw PlanError(flag, std::to_string(v),
                      "must be between " + std::to_string(lo) + " and " + std::to_string(hi));
  };
  need("--tp", tp, 1, 4096);
  need("--ep", ep, 1, 4096);
  need("--pp", pp, 1, 4096);
  need("--dp", dp, 1, 4096);
  need("--batch", batch, 1, int64_t(1) << 24);
  need("--seq", seq, 1, int64_t(1) << 24);
  need("--micro-batches", micro_batches, 1, int64_t(1) << 20);
  const int64_t lo = tp < ep ? tp : ep, hi = tp < ep ? ep : tp;
  if (hi % lo != 0)
    throw PlanError("--ep", std::to_string(ep),
                    "tp = " + std::to_string(tp) + " and ep = " + std::to_string(ep) +
                        ": the smaller must divide the larger (a stage has max(tp, ep) ranks)");
  if (world_size() > 65536) throw PlanError("--tp", std::to_string(tp), "world size above 65536 ranks");
}

std::string ParallelPlan::describe() const {
  std::string s = "tp=" + std::to_string(tp) + " ep=" + std::to_string(ep) + " pp=" + std::to_string(pp);
  if (dp > 1) s += " dp=" + std::to_string(dp);
  s += std::string(" plan=") + plan_style_name(style);
  return s;
}

RankCoord rank_coord(const ParallelPlan& p, int64_t rank) {
  RankCoord c;
  const int64_t S = p.stage_size();
  c.rank = rank;
  c.stage_rank = rank % S;
  c.stage = (rank / S) % p.pp;
  c.dp_index = rank / (S * p.pp);
  c.tp_rank = c.stage_rank % p.tp;
  c.tp_replica = c.stage_rank / p.tp;
  c.ep_rank = c.stage_rank / p.etp();
  c.etp_rank = c.stage_rank % p.etp();
  return c;
}

std::vector<int64_t> tp_group_ranks(const ParallelPlan& p, int64_t rank) {
  const RankCoord c = rank_coord(p, rank);
  const int64_t base = rank - c.stage_rank + c.tp_replica * p.tp;
  std::vector<int64_t> v;
  for (int64_t i = 0; i < p.tp; ++i) v.push_back(base + i);
  return v;
}

std::vector<int64_t> stage_group_ranks(const ParallelPlan& p, int64_t rank) {
  const RankCoord c = rank_coord(p, rank);
  const int64_t base = rank - c.stage_rank;
  std::vector<int64_t> v;
  for (int64_t i = 0; i < p.stage_size(); ++i) v.push_back(base + i);
  return v;
}

std::pair<int64_t, int64_t> stage_layers(int64_t num_layers, int64_t pp, int64_t stage) {
  const int64_t base = num_layers / pp, extra = num_layers % pp;
  const int64_t begin = stage * base + (stage < extra ? stage : extra);
  const int64_t size = base + (stage < extra ? 1 : 0);
  return {begin, begin + size};
}

void to_json(nlohmann::json& j, const ParallelPlan& p) {
  j = nlohmann::json{{"tp", p.tp}, {"ep", p.ep}, {"pp", p.pp}, {"dp", p.dp},
                     {"plan", plan_style_name(p.style)}, {"batch", p.batch}, {"seq", p.seq},
                     {"dtype", dtype_torch_name(p.dtype)}, {"shard_only_loading", p.shard_only_loading},
                     {"micro_batches", p.micro_batches}, {"world_size", p.world_size()}};
}

void from_json(const nlohmann::json& j, ParallelPlan& p) {
  p.tp = j.value("tp", int64_t(1));
  p.ep = j.value("ep", int64_t(1));
  p.pp = j.value("pp", int64_t(1));
  p.dp = j.value("dp", int64_t(1));
  p.style = plan_style_from_name(j.value("plan", std::string("hf-auto")));
  p.batch = j.value("batch", int64_t(1));
  p.seq = j.value("seq", int64_t(1));
  auto d = dtype_from_torch_name(j.value("dtype", std::string("bfloat16")));
  if (!d) throw PlanError("dtype", j.value("dtype", std::string()), "unknown dtype");
  p.dtype = *d;
  p.shard_only_loading = j.value("shard_only_loading", true);
  p.micro_batches = j.value("micro_batches", int64_t(1));
}

}  // namespace sc
