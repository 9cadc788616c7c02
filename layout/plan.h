// ParallelPlan: the one description of how a model is laid out over ranks, parsed once from the
// CLI flags and passed by const reference to the checker, the harness and the reports.
//
// Rank layout. A pipeline stage holds S = max(tp, ep) ranks (the smaller must divide the larger):
//   - attention and dense MLPs are tensor-parallel over `tp` ranks, replicated S / tp times;
//   - routed experts are split over `ep` expert groups, each expert tensor-parallel over
//     etp = S / ep ranks (etp = tp when ep = 1: HF's TP of experts; etp = 1 when ep = tp: TP x EP).
// world = S * pp * dp; rank = ((dp_index * pp) + stage) * S + stage_rank.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "models/dtype.h"

namespace sc {

enum class PlanStyle {
  HfAuto,       // HF transformers 5.x tp_plan="auto": k/v colwise on raw columns, local view(B, S, -1, D)
  ReplicateKv,  // vLLM-style: when tp > kv heads each KV head is replicated on tp / kv ranks
};
const char* plan_style_name(PlanStyle s);
PlanStyle plan_style_from_name(const std::string& s);  // throws PlanError

struct ParallelPlan {
  int64_t tp = 1, ep = 1, pp = 1, dp = 1;
  PlanStyle style = PlanStyle::HfAuto;
  int64_t batch = 1, seq = 1;       // activation shape for memory estimates and runs
  DType dtype = DType::BF16;        // compute / weight dtype
  bool shard_only_loading = true;   // false: every rank reads full tensors, then slices (HF EP)
  int64_t micro_batches = 1;        // pipeline micro-batches

  int64_t stage_size() const { return tp > ep ? tp : ep; }
  int64_t etp() const { return stage_size() / ep; }
  int64_t tp_replicas() const { return stage_size() / tp; }
  int64_t world_size() const { return stage_size() * pp * dp; }
  // Rows of the first (largest) micro-batch: the batch dimension the forward's views see
  // (micro-batches split the batch as chunk_range does: ceil(batch / micro-batches) first).
  int64_t micro_batch_rows() const {
    const int64_t m = micro_batches < 1 ? 1 : (micro_batches > batch ? batch : micro_batches);
    return m > 0 ? (batch + m - 1) / m : batch;
  }

  // Throws PlanError naming the flag and value (sizes < 1, tp/ep not dividing, > 4096 ranks, ...).
  void validate() const;
  std::string describe() const;  // "tp=8 ep=1 pp=1 plan=hf-auto"
};

// Where one global rank sits.
struct RankCoord {
  int64_t rank = 0;
  int64_t dp_index = 0, stage = 0, stage_rank = 0;
  int64_t tp_rank = 0, tp_replica = 0;  // attention / dense: tp_rank in [0, tp)
  int64_t ep_rank = 0, etp_rank = 0;    // experts: ep_rank in [0, ep), etp_rank in [0, etp)
};
RankCoord rank_coord(const ParallelPlan& p, int64_t rank);
// Global ranks of the groups a rank belongs to (in rank order).
std::vector<int64_t> tp_group_ranks(const ParallelPlan& p, int64_t rank);
std::vector<int64_t> stage_group_ranks(const ParallelPlan& p, int64_t rank);
// Layers [begin, end) of a pipeline stage: contiguous, sizes differ by at most one, earlier
// stages take the remainder (as device_map-style balanced placement).
std::pair<int64_t, int64_t> stage_layers(int64_t num_layers, int64_t pp, int64_t stage);

void to_json(nlohmann::json& j, const ParallelPlan& p);
void from_json(const nlohmann::json& j, ParallelPlan& p);

}  // namespace sc
