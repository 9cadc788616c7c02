#include "models/fault_hooks.h"

#include <cstdlib>

#include "models/errors.h"

namespace sc::faults {

namespace detail {
const Injection* g_active = nullptr;
}

const std::vector<KindInfo>& kinds() {
  static const std::vector<KindInfo> k = {
      {Kind::SkipTpAllReduce, "skip-tp-allreduce", "collective skipped: the o_proj partial is not all-reduced"},
      {Kind::DoubleExpertAllReduce, "double-expert-allreduce", "collective done twice: routed experts all-reduced twice"},
      {Kind::TpAllReduceOverStage, "tp-allreduce-over-stage", "collective over the wrong group: o_proj summed over the stage"},
      {Kind::QShardOffset, "q-shard-offset", "wrong shard offset: q_proj rows of the next TP rank"},
      {Kind::OShardAxis, "o-shard-axis", "wrong shard axis: o_proj sliced by rows instead of columns"},
      {Kind::KNormSliced, "k-norm-sliced", "sliced replicated weight: k_norm cut like a colwise weight"},
      {Kind::KvReplica, "kv-replica", "wrong KV replica: k_proj / v_proj rows of the next KV head"},
      {Kind::ExpertLocalId, "expert-local-id", "local vs global expert id: tokens selected by the local id"},
      {Kind::RoutingWeightsTwice, "routing-weights-twice", "routing weights applied twice to the expert outputs"},
      {Kind::ExpertUnowned, "expert-unowned", "expert owned by no rank: an EP rank skips its last expert"},
      {Kind::StagePositions, "stage-positions", "later-stage positions: arange instead of the padded positions"},
      {Kind::MicroBatchMask, "microbatch-mask", "micro-batch mask rows: later micro-batches use the first one's"},
      {Kind::MicroBatchOrder, "microbatch-order", "micro-batch order: the last stage assembles outputs in reverse"},
      {Kind::VocabGatherRotated, "vocab-gather-rotated", "rotated vocab gather: logits shards concatenated rotated"},
      {Kind::FinalNormSliced, "final-norm-sliced", "sliced replicated weight: model.norm cut like a colwise weight"},
  };
  return k;
}

const char* kind_name(Kind k) {
  for (const auto& i : kinds())
    if (i.kind == k) return i.name;
  return "?";
}

namespace {

int64_t parse_index(const std::string& text, const std::string& value) {
  if (value.empty() || value.size() > 6 || value.find_first_not_of("0123456789") != std::string::npos)
    throw PlanError("--inject-fault", text, "'" + value + "' is not a non-negative integer");
  return std::strtoll(value.c_str(), nullptr, 10);
}

}  // namespace

Injection parse(const std::string& text) {
  const std::string shown = text.size() > 80 ? text.substr(0, 77) + "..." : text;
  const size_t comma = text.find(',');
  const std::string name = text.substr(0, comma);
  Injection f{Kind::SkipTpAllReduce};
  bool found = false;
  for (const auto& i : kinds())
    if (name == i.name) {
      f.kind = i.kind;
      found = true;
    }
  if (!found) {
    std::string names;
    for (const auto& i : kinds()) names += std::string(names.empty() ? "" : ", ") + i.name;
    throw PlanError("--inject-fault", shown, "unknown fault (one of: " + names + ")");
  }
  size_t i = comma;
  while (i != std::string::npos) {
    const size_t j = text.find(',', i + 1);
    const std::string item = text.substr(i + 1, j == std::string::npos ? std::string::npos : j - i - 1);
    if (item.rfind("rank=", 0) == 0) {
      f.rank = parse_index(shown, item.substr(5));
    } else if (item.rfind("layer=", 0) == 0) {
      f.layer = parse_index(shown, item.substr(6));
    } else {
      throw PlanError("--inject-fault", shown, "'" + item + "' is not rank=R or layer=L");
    }
    i = j;
  }
  return f;
}

std::string describe(const Injection& f) {
  std::string s = kind_name(f.kind);
  if (f.rank >= 0) s += ",rank=" + std::to_string(f.rank);
  if (f.layer >= 0) s += ",layer=" + std::to_string(f.layer);
  return s;
}

Scoped::Scoped(const Injection& f) : f_(f), saved_(detail::g_active) { detail::g_active = &f_; }
Scoped::~Scoped() { detail::g_active = saved_; }

}  // namespace sc::faults
