// Test-only fault hooks: the detection self-test (tests/torch/test_detection.cpp, CTest label
// `detection`) and `shardcheck run|fuzz --inject-fault` seed realistic sharding bugs into the
// loader, the collectives, the MoE block and the pipeline, each visible only at world size > 1,
// and require the comparison to catch and locate them (docs/detection.md). Nothing is patched:
// each hook is one test of a global pointer that is null unless a fault is injected, so the hooks
// cost one predictable branch when off. Torch-free.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace sc::faults {

enum class Kind {
  SkipTpAllReduce,       // collective skipped: a rank's o_proj partial is never all-reduced
  DoubleExpertAllReduce, // collective done twice: the routed-expert sum is all-reduced twice
  TpAllReduceOverStage,  // collective over the wrong group: o_proj summed over the stage group
  QShardOffset,          // wrong shard offset: a rank loads the next rank's q_proj rows
  OShardAxis,            // wrong shard axis: o_proj sliced by rows, reshaped to the column shard
  KNormSliced,           // sliced replicated weight: k_norm cut like a colwise weight, tiled back
  KvReplica,             // wrong KV replica (replicate-kv): a rank loads the next KV head
  ExpertLocalId,         // local vs global expert id: a rank routes tokens of local id to its expert
  RoutingWeightsTwice,   // routing weights applied twice on a rank's experts
  ExpertUnowned,         // expert owned by no rank: an EP rank skips its last expert
  StagePositions,        // later-stage positions: stages > 0 use arange positions despite padding
  MicroBatchMask,        // micro-batch mask rows: micro-batches > 0 use micro-batch 0's mask rows
  MicroBatchOrder,       // micro-batch order: the last stage assembles its outputs in reverse
  VocabGatherRotated,    // rotated vocab gather: the logits shards concatenated from rank 1 on
  FinalNormSliced,       // sliced replicated weight in the head: model.norm cut and tiled back
};

struct Injection {
  Kind kind;
  int64_t rank = -1;   // the rank that misbehaves; -1: every rank the hook reaches
  int64_t layer = -1;  // the layer it misbehaves in; -1: every layer
  bool hits(int64_t r, int64_t l = -1) const { return (rank < 0 || rank == r) && (layer < 0 || l < 0 || layer == l); }
};

// Every kind with its name and one line on what it seeds (the self-test's table).
struct KindInfo {
  Kind kind;
  const char* name;
  const char* what;
};
const std::vector<KindInfo>& kinds();
const char* kind_name(Kind k);
// "q-shard-offset", "q-shard-offset,rank=1", "expert-unowned,rank=1,layer=0".
// Throws PlanError naming --inject-fault and the value.
Injection parse(const std::string& text);
std::string describe(const Injection& f);

namespace detail {
extern const Injection* g_active;
}
// The injected fault, or nullptr (the normal case).
inline const Injection* active() { return detail::g_active; }
// The active fault if it is `k` and hits rank r (at layer l), else nullptr.
inline const Injection* hit(Kind k, int64_t r, int64_t l = -1) {
  const Injection* f = detail::g_active;
  return f && f->kind == k && f->hits(r, l) ? f : nullptr;
}

// Injects `f` for the lifetime of the object (one at a time; not to be used while ranks run).
class Scoped {
 public:
  explicit Scoped(const Injection& f);
  ~Scoped();
  Scoped(const Scoped&) = delete;
  Scoped& operator=(const Scoped&) = delete;

 private:
  Injection f_;
  const Injection* saved_;
};

}  // namespace sc::faults
