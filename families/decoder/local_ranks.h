// Ranks as threads of one process, without c10d: an in-process Comm for tests, quick checks and
// the numerical fuzzer's threads backend (harness/fuzz/thread_runs.h; the harness's real runs use
// c10d process groups). Each group (the TP group, the stage group) has its own barrier; sums and
// gathers combine the members' tensors in rank order, so every member gets bitwise the same
// result. Collectives are checked as the c10d harness checks them: members that pass different
// shapes or dtypes all throw the same error naming every rank's shape ("all_gather over
// tp[0,1,2]: ranks passed different tensors: rank 0 [2, 3, 22] double, rank 1 [2, 3, 21] double,
// ..."), before any data is combined. A rank that throws aborts the world, and a rank that has
// finished releases members still waiting for it: the others leave their collectives with an
// error instead of waiting forever.
#pragma once
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <ATen/ATen.h>

#include "layout/plan.h"
#include "models/config.h"
#include "families/decoder/comm.h"
#include "families/decoder/model.h"
#include "families/decoder/stage.h"
#include "families/decoder/weights.h"

namespace sc {

class ThreadWorld {
 public:
  explicit ThreadWorld(const ParallelPlan& p) : plan_(p), finished_(size_t(p.world_size()), false) {}
  const ParallelPlan& plan() const { return plan_; }
  // Sum (gather = false) or last-dim concatenation (gather = true) over `ranks` (sorted). `op` and
  // `group` name the collective in errors ("all_reduce over tp[0,1]: ..."; default: "all_reduce" /
  // "all_gather" over "group"). Throws std::runtime_error when the members' shapes or dtypes
  // differ (on every member), when another rank aborted, or when a member has finished.
  at::Tensor exchange(int64_t rank, const at::Tensor& t, const std::vector<int64_t>& ranks, bool gather,
                      const char* op = nullptr, const char* group = nullptr);
  void abort();
  // `rank` has returned: members of its groups that wait for it stop with an error.
  void finish(int64_t rank);

 private:
  struct Group {
    std::vector<at::Tensor> slots;
    int64_t arrived = 0, generation = 0;
  };
  Group& group(const std::vector<int64_t>& ranks);
  void barrier(Group& g, const std::vector<int64_t>& ranks, std::unique_lock<std::mutex>& lk,
               const std::string& what);

  ParallelPlan plan_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool aborted_ = false;
  std::vector<bool> finished_;
  std::map<std::vector<int64_t>, std::unique_ptr<Group>> groups_;
};

// Collectives of one rank over a ThreadWorld: the TP group ("tp") and the stage group ("stage").
struct ThreadComm : Comm {
  ThreadComm(ThreadWorld& w, int64_t rank) : world(w), rank(rank) {}
  void all_reduce_tp(at::Tensor& t) override;
  void all_reduce_experts(at::Tensor& t) override;
  at::Tensor all_gather_tp_last_dim(const at::Tensor& t) override;
  ThreadWorld& world;
  int64_t rank;
};

struct RankResult {
  StageOutput out;
  Probe probe;        // what the rank recorded at every tap (when run with observe = true)
  std::string error;  // what() of the exception the rank threw ("" = ran)
  // What the rank was doing when it stopped: "receiving stage 0 activations", "loading weights",
  // "forward" or "done".
  std::string where;
};

// Runs every rank of `p` as a thread: pipeline stages one after another (stage.h's run_stage,
// p.micro_batches micro-batches), each rank of stage s > 0 fed the output of the same stage rank
// of stage s - 1. `weights(rank)` builds a rank's weights (random_weights or load_weights). Each
// rank thread runs without autograd. observe: every rank records its taps (probe.h) into
// RankResult::probe. Results are indexed by global rank.
std::vector<RankResult> run_ranks_in_threads(const ModelConfig& c, const ParallelPlan& p,
                                             const std::function<ModelWeights(int64_t rank)>& weights,
                                             const ForwardInputs& in, const CaptureSpec& cap = {},
                                             bool observe = false);

}  // namespace sc
