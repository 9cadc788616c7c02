// Ranks as threads of one process, without c10d: an in-process Comm for tests and quick checks
// (the harness's real runs use c10d process groups). Each group (the TP group, the stage group)
// has its own barrier; sums and gathers combine the members' tensors in rank order, so every
// member gets bitwise the same result. A rank that throws aborts the world: the others leave
// their collectives with an error instead of waiting forever.
#pragma once
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <ATen/ATen.h>

#include "checks/plan.h"
#include "models/config.h"
#include "models/qwen3/comm.h"
#include "models/qwen3/model.h"
#include "models/qwen3/weights.h"

namespace sc {

class ThreadWorld {
 public:
  explicit ThreadWorld(const ParallelPlan& p) : plan_(p) {}
  const ParallelPlan& plan() const { return plan_; }
  // Sum (gather = false) or last-dim concatenation (gather = true) over `ranks` (sorted).
  at::Tensor exchange(int64_t rank, const at::Tensor& t, const std::vector<int64_t>& ranks, bool gather);
  void abort();

 private:
  struct Group {
    std::vector<at::Tensor> slots;
    int64_t arrived = 0, generation = 0;
  };
  Group& group(const std::vector<int64_t>& ranks);
  void barrier(Group& g, std::unique_lock<std::mutex>& lk);

  ParallelPlan plan_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool aborted_ = false;
  std::map<std::vector<int64_t>, std::unique_ptr<Group>> groups_;
};

struct ThreadComm : Comm {
  ThreadComm(ThreadWorld& w, int64_t rank) : world(w), rank(rank) {}
  void all_reduce_tp(at::Tensor& t) override;
  void all_reduce_experts(at::Tensor& t) override;
  at::Tensor all_gather_tp_last_dim(const at::Tensor& t) override;
  ThreadWorld& world;
  int64_t rank;
};

struct RankResult {
  ForwardOutput out;
  std::string error;  // what() of the exception the rank threw ("" = ran)
};

// Runs every rank of `p` as a thread: pipeline stages one after another, each rank of stage s > 0
// fed the hidden states of the same stage rank of stage s - 1. `weights(rank)` builds a rank's
// weights (random_weights or load_weights). Results are indexed by global rank.
std::vector<RankResult> run_ranks_in_threads(const ModelConfig& c, const ParallelPlan& p,
                                             const std::function<ModelWeights(int64_t rank)>& weights,
                                             const ForwardInputs& in, const CaptureSpec& cap = {});

}  // namespace sc
