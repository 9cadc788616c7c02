#include "models/qwen3/local_ranks.h"

#include <algorithm>
#include <stdexcept>
#include <thread>

namespace sc {

ThreadWorld::Group& ThreadWorld::group(const std::vector<int64_t>& ranks) {
  auto& g = groups_[ranks];
  if (!g) {
    g = std::make_unique<Group>();
    g->slots.resize(ranks.size());
  }
  return *g;
}

void ThreadWorld::barrier(Group& g, std::unique_lock<std::mutex>& lk) {
  const int64_t gen = g.generation;
  if (++g.arrived == int64_t(g.slots.size())) {
    g.arrived = 0;
    ++g.generation;
    cv_.notify_all();
    return;
  }
  cv_.wait(lk, [&] { return g.generation != gen || aborted_; });
  if (g.generation == gen) throw std::runtime_error("collective abandoned: another rank failed");
}

void ThreadWorld::abort() {
  std::lock_guard<std::mutex> lk(mu_);
  aborted_ = true;
  cv_.notify_all();
}

at::Tensor ThreadWorld::exchange(int64_t rank, const at::Tensor& t, const std::vector<int64_t>& ranks, bool gather) {
  if (ranks.size() <= 1) return t;
  const size_t me = size_t(std::find(ranks.begin(), ranks.end(), rank) - ranks.begin());
  if (me >= ranks.size()) throw std::logic_error("rank " + std::to_string(rank) + " not in its group");
  std::unique_lock<std::mutex> lk(mu_);
  Group& g = group(ranks);
  g.slots[me] = t;
  barrier(g, lk);
  std::vector<at::Tensor> parts = g.slots;
  lk.unlock();
  at::Tensor r;
  if (gather) {
    r = at::cat(parts, -1);
  } else {
    r = parts[0].clone();
    for (size_t i = 1; i < parts.size(); ++i) r.add_(parts[i]);
  }
  lk.lock();
  barrier(g, lk);  // nobody overwrites a slot before every member has read it
  return r;
}

void ThreadComm::all_reduce_tp(at::Tensor& t) { t = world.exchange(rank, t, tp_group_ranks(world.plan(), rank), false); }
void ThreadComm::all_reduce_experts(at::Tensor& t) {
  t = world.exchange(rank, t, stage_group_ranks(world.plan(), rank), false);
}
at::Tensor ThreadComm::all_gather_tp_last_dim(const at::Tensor& t) {
  return world.exchange(rank, t, tp_group_ranks(world.plan(), rank), true);
}

std::vector<RankResult> run_ranks_in_threads(const ModelConfig& c, const ParallelPlan& p,
                                             const std::function<ModelWeights(int64_t rank)>& weights,
                                             const ForwardInputs& in, const CaptureSpec& cap) {
  const int64_t world = p.world_size(), S = p.stage_size();
  std::vector<RankResult> res(static_cast<size_t>(world));
  ThreadWorld tw(p);
  for (int64_t stage = 0; stage < p.pp; ++stage) {
    std::vector<std::thread> threads;
    for (int64_t r = 0; r < world; ++r) {
      if (rank_coord(p, r).stage != stage) continue;
      threads.emplace_back([&, r, stage] {
        try {
          ForwardInputs fi = in;
          if (stage > 0) {
            const RankResult& prev = res[size_t(r - S)];
            if (!prev.error.empty()) throw std::runtime_error("previous pipeline stage failed: " + prev.error);
            fi.hidden_states = prev.out.hidden_states;
          }
          const ModelWeights w = weights(r);
          ThreadComm comm(tw, r);
          res[size_t(r)].out = forward(w, c, fi, comm, cap);
        } catch (const std::exception& e) {
          res[size_t(r)].error = e.what();
          tw.abort();
        }
      });
    }
    for (auto& t : threads) t.join();
  }
  return res;
}

}  // namespace sc
