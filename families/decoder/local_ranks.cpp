#include "families/decoder/local_ranks.h"

#include <algorithm>
#include <sstream>
#include <stdexcept>
#include <thread>

#include <torch/torch.h>

namespace sc {

namespace {

// "[0,1,2]"
std::string group_text(const std::vector<int64_t>& ranks) {
  std::string s = "[";
  for (size_t i = 0; i < ranks.size(); ++i) s += (i ? "," : "") + std::to_string(ranks[i]);
  return s + "]";
}

}  // namespace

ThreadWorld::Group& ThreadWorld::group(const std::vector<int64_t>& ranks) {
  auto& g = groups_[ranks];
  if (!g) {
    g = std::make_unique<Group>();
    g->slots.resize(ranks.size());
  }
  return *g;
}

void ThreadWorld::barrier(Group& g, const std::vector<int64_t>& ranks, std::unique_lock<std::mutex>& lk,
                          const std::string& what) {
  const int64_t gen = g.generation;
  if (++g.arrived == int64_t(g.slots.size())) {
    g.arrived = 0;
    ++g.generation;
    cv_.notify_all();
    return;
  }
  int64_t gone = -1;
  cv_.wait(lk, [&] {
    if (g.generation != gen || aborted_) return true;
    for (int64_t r : ranks)
      if (finished_[size_t(r)]) gone = r;
    return gone >= 0;
  });
  if (g.generation != gen) return;
  if (aborted_) throw std::runtime_error(what + ": collective abandoned: another rank failed");
  throw std::runtime_error(what + ": rank " + std::to_string(gone) + " returned without joining");
}

void ThreadWorld::abort() {
  std::lock_guard<std::mutex> lk(mu_);
  aborted_ = true;
  cv_.notify_all();
}

void ThreadWorld::finish(int64_t rank) {
  std::lock_guard<std::mutex> lk(mu_);
  if (rank >= 0 && size_t(rank) < finished_.size()) finished_[size_t(rank)] = true;
  cv_.notify_all();
}

at::Tensor ThreadWorld::exchange(int64_t rank, const at::Tensor& t, const std::vector<int64_t>& ranks, bool gather,
                                 const char* op, const char* group_name) {
  if (ranks.size() <= 1) return t;
  const size_t me = size_t(std::find(ranks.begin(), ranks.end(), rank) - ranks.begin());
  if (me >= ranks.size()) throw std::logic_error("rank " + std::to_string(rank) + " not in its group");
  const std::string what = std::string(op ? op : (gather ? "all_gather" : "all_reduce")) + " over " +
                           (group_name ? group_name : "group") + group_text(ranks);
  std::unique_lock<std::mutex> lk(mu_);
  Group& g = group(ranks);
  g.slots[me] = t;
  barrier(g, ranks, lk, what);
  std::vector<at::Tensor> parts = g.slots;
  lk.unlock();
  // Every member sees the same slots, so every member throws the same mismatch (as the c10d
  // harness's signature exchange does), before any data is combined.
  bool same = true;
  for (const auto& x : parts) same = same && x.sizes() == parts[0].sizes() && x.scalar_type() == parts[0].scalar_type();
  if (!same) {
    std::ostringstream os;
    os << what << ": ranks passed different tensors:";
    for (size_t i = 0; i < parts.size(); ++i) os << (i ? "," : "") << " rank " << ranks[i] << " " << tensor_signature(parts[i]);
    lk.lock();
    barrier(g, ranks, lk, what);  // nobody reuses the slots before every member has read them
    throw std::runtime_error(os.str());
  }
  at::Tensor r;
  if (gather) {
    r = at::cat(parts, -1);
  } else {
    r = parts[0].clone();
    for (size_t i = 1; i < parts.size(); ++i) r.add_(parts[i]);
  }
  lk.lock();
  barrier(g, ranks, lk, what);  // nobody overwrites a slot before every member has read it
  return r;
}

void ThreadComm::all_reduce_tp(at::Tensor& t) {
  t = world.exchange(rank, t, tp_group_ranks(world.plan(), rank), false, "all_reduce", "tp");
}
void ThreadComm::all_reduce_experts(at::Tensor& t) {
  t = world.exchange(rank, t, stage_group_ranks(world.plan(), rank), false, "all_reduce", "stage");
}
at::Tensor ThreadComm::all_gather_tp_last_dim(const at::Tensor& t) {
  return world.exchange(rank, t.contiguous(), tp_group_ranks(world.plan(), rank), true, "all_gather", "tp");
}

std::vector<RankResult> run_ranks_in_threads(const ModelConfig& c, const ParallelPlan& p,
                                             const std::function<ModelWeights(int64_t rank)>& weights,
                                             const ForwardInputs& in, const CaptureSpec& cap, bool observe) {
  const int64_t world = p.world_size(), S = p.stage_size();
  std::vector<RankResult> res(static_cast<size_t>(world));
  for (auto& r : res) r.where = "starting";
  ThreadWorld tw(p);
  for (int64_t stage = 0; stage < p.pp; ++stage) {
    std::vector<std::thread> threads;
    for (int64_t r = 0; r < world; ++r) {
      if (rank_coord(p, r).stage != stage) continue;
      threads.emplace_back([&, r, stage] {
        torch::NoGradGuard ng;  // GradMode is thread local
        RankResult& me = res[size_t(r)];
        try {
          StageTransport io;
          io.keep_hidden = stage < p.pp - 1;
          if (stage > 0) {
            const RankResult& prev = res[size_t(r - S)];
            if (!prev.error.empty())
              throw std::runtime_error("previous pipeline stage failed: rank " + std::to_string(r - S) + ": " +
                                       prev.error);
            // Micro-batch m of the previous stage's output: the same chunk_range rows.
            io.recv = [&prev, &p](at::Tensor& x, int64_t m) {
              const int64_t B = prev.out.hidden.size(0);
              const int64_t b0 = chunk_range(B, std::max<int64_t>(1, std::min<int64_t>(p.micro_batches, B)), m).first;
              x.copy_(prev.out.hidden.slice(0, b0, b0 + x.size(0)));
            };
          }
          me.where = "loading weights";
          const ModelWeights w = weights(r);
          ThreadComm comm(tw, r);
          me.probe.rank = r;
          me.probe.sharded = world > 1;
          if (observe) comm.probe = &me.probe;
          me.out = run_stage(w, c, p, stage, in, comm, cap, io, nullptr, &me.where);
          tw.finish(r);
        } catch (const std::exception& e) {
          me.error = e.what();
          tw.abort();
        }
      });
    }
    for (auto& t : threads) t.join();
  }
  return res;
}

}  // namespace sc
