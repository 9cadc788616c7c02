#include "harness/fuzz/thread_runs.h"

#include <algorithm>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <sstream>
#include <thread>

#include <torch/torch.h>

#include "checks/sharding.h"
#include "models/errors.h"
#include "models/qwen3/model.h"
#include "models/qwen3/weights.h"

namespace sc {

namespace {

std::string group_text(const std::vector<int64_t>& ranks) {
  std::string s = "[";
  for (size_t i = 0; i < ranks.size(); ++i) s += (i ? "," : "") + std::to_string(ranks[i]);
  return s + "]";
}

// The in-memory world: one slot per member of each group (keyed by its sorted rank list), a
// generation counter per group as the barrier, and two ways out of a wait: abort (a member
// failed) and a member that has finished while the others still wait for it.
class MemWorld {
 public:
  explicit MemWorld(int64_t world) : finished_(static_cast<size_t>(world), false) {}

  at::Tensor exchange(int64_t rank, const at::Tensor& t, const std::vector<int64_t>& ranks, bool gather,
                      const char* op, const char* group) {
    if (ranks.size() <= 1) return t;
    const size_t me = size_t(std::find(ranks.begin(), ranks.end(), rank) - ranks.begin());
    if (me >= ranks.size()) throw std::logic_error("rank " + std::to_string(rank) + " not in its group");
    std::unique_lock<std::mutex> lk(mu_);
    Group& g = groups_[ranks];
    if (g.slots.empty()) g.slots.resize(ranks.size());
    g.slots[me] = t;
    wait(g, ranks, lk, op, group);
    std::vector<at::Tensor> parts = g.slots;
    lk.unlock();
    // Every member sees the same slots, so every member throws the same mismatch (as the c10d
    // harness's signature exchange does), before any data is combined.
    bool same = true;
    for (const auto& x : parts)
      same &= x.sizes() == parts[0].sizes() && x.scalar_type() == parts[0].scalar_type();
    if (!same) {
      std::ostringstream os;
      os << op << " over " << group << group_text(ranks) << ": ranks passed different tensors:";
      for (size_t i = 0; i < parts.size(); ++i) os << (i ? "," : "") << " rank " << ranks[i] << " " << tensor_signature(parts[i]);
      lk.lock();
      wait(g, ranks, lk, op, group);  // nobody reuses the slots before every member has read them
      throw CollectiveMismatch(os.str());
    }
    at::Tensor r;
    if (gather) {
      r = at::cat(parts, -1);
    } else {
      r = parts[0].clone();
      for (size_t i = 1; i < parts.size(); ++i) r.add_(parts[i]);
    }
    lk.lock();
    wait(g, ranks, lk, op, group);
    return r;
  }

  void fail() {
    std::lock_guard<std::mutex> lk(mu_);
    aborted_ = true;
    cv_.notify_all();
  }
  void finish(int64_t rank) {
    std::lock_guard<std::mutex> lk(mu_);
    finished_[size_t(rank)] = true;
    cv_.notify_all();
  }

 private:
  struct Group {
    std::vector<at::Tensor> slots;
    int64_t arrived = 0, generation = 0;
  };

  void wait(Group& g, const std::vector<int64_t>& ranks, std::unique_lock<std::mutex>& lk, const char* op,
            const char* group) {
    const int64_t gen = g.generation;
    if (++g.arrived == int64_t(ranks.size())) {
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
    if (aborted_) throw PeerFailed(-1, std::string(op) + " over " + group + group_text(ranks) + ": another rank failed");
    throw CollectiveError(std::string(op) + " over " + group + group_text(ranks) + ": rank " + std::to_string(gone) +
                          " returned without joining");
  }

  std::mutex mu_;
  std::condition_variable cv_;
  bool aborted_ = false;
  std::vector<bool> finished_;
  std::map<std::vector<int64_t>, Group> groups_;
};

struct MemComm : Comm {
  MemWorld& world;
  int64_t rank;
  std::vector<int64_t> tp, stage;
  MemComm(MemWorld& w, const ParallelPlan& p, int64_t r)
      : world(w), rank(r), tp(tp_group_ranks(p, r)), stage(stage_group_ranks(p, r)) {}
  void all_reduce_tp(at::Tensor& t) override { t = world.exchange(rank, t, tp, false, "all_reduce", "tp"); }
  void all_reduce_experts(at::Tensor& t) override { t = world.exchange(rank, t, stage, false, "all_reduce", "stage"); }
  at::Tensor all_gather_tp_last_dim(const at::Tensor& t) override {
    return world.exchange(rank, t.contiguous(), tp, true, "all_gather", "tp");
  }
};

// ATen intra-op threads off while the ranks run (tiny tensors; the ranks are the parallelism).
class OneAtenThread {
 public:
  OneAtenThread() : saved_(at::get_num_threads()) {
    if (saved_ != 1) at::set_num_threads(1);
  }
  ~OneAtenThread() {
    if (saved_ != 1) at::set_num_threads(saved_);
  }

 private:
  int saved_;
};

ForwardInputs forward_inputs(const RunInputs& in) {
  ForwardInputs f;
  f.input_ids = in.input_ids;
  f.attention_mask = in.attention_mask;
  f.positions_from_mask = in.positions_from_mask;
  return f;
}

CaptureSpec capture_all(const RunSpec& spec) {
  CaptureSpec all;
  all.all_layers = true;
  all.router = spec.capture_router;
  return all;
}

void keep(Captures& dst, ForwardOutput& o) {
  for (auto& [k, v] : o.layer_out) dst.layer_out[k] = v;
  for (auto& [k, v] : o.router_logits) dst.router_logits[k] = v;
  for (auto& [k, v] : o.topk_ids) dst.topk_ids[k] = v;
  if (o.logits.defined()) dst.logits = o.logits;
}

}  // namespace

Captures reference_in_process(const ModelConfig& c, const RunSpec& spec, const RunInputs& in) {
  if (!spec.checkpoint.empty()) throw PlanError("checkpoint", spec.checkpoint, "in-process runs use random weights only");
  torch::NoGradGuard ng;
  ParallelPlan one;
  one.dtype = from_scalar_type(spec.dtype);
  LoadOptions o;
  o.dtype = spec.dtype;
  ModelWeights w = random_weights(c, one, 0, spec.seed, o);
  ForwardOutput out = forward(w, c, forward_inputs(in), local_comm(), capture_all(spec));
  Captures cap;
  keep(cap, out);
  return cap;
}

PlanRun run_plan_in_threads(const ModelConfig& c, const ParallelPlan& p, const RunSpec& spec, const RunInputs& in,
                            const Captures* reference) {
  p.validate();
  if (!spec.checkpoint.empty()) throw PlanError("checkpoint", spec.checkpoint, "in-process runs use random weights only");
  if (p.dp > 1) throw PlanError("--dp", std::to_string(p.dp), "data-parallel replicas are independent; run with dp=1");
  if (p.ep > 1 && !c.is_moe()) throw PlanError("--ep", std::to_string(p.ep), "expert parallelism needs a MoE model");
  if (p.micro_batches != 1)
    throw PlanError("--micro-batches", std::to_string(p.micro_batches), "in-process runs take one micro-batch");
  PlanRun run;
  RunResult& r = run.result;
  r.model = c.name + " (random weights, seed " + std::to_string(spec.seed) + ")";
  r.plan = p;
  r.backend = "threads";
  r.device = "cpu";

  const int64_t world = p.world_size(), S = p.stage_size();
  OneAtenThread one_thread;
  MemWorld mw(world);
  const size_t n = static_cast<size_t>(world);
  std::vector<ForwardOutput> outs(n);
  std::vector<std::string> errors(n), where(n, "starting");
  const ForwardInputs fin = forward_inputs(in);
  const CaptureSpec all = capture_all(spec);
  // Stage by stage (stage s + 1 starts from stage s's hidden states, as pipeline recv would).
  for (int64_t stage = 0; stage < p.pp; ++stage) {
    std::vector<std::thread> threads;
    for (int64_t rank = stage * S; rank < (stage + 1) * S; ++rank) {
      threads.emplace_back([&, rank, stage] {
        torch::NoGradGuard ng;
        try {
          ForwardInputs fi = fin;
          if (stage > 0) {
            where[size_t(rank)] = "receiving stage " + std::to_string(stage - 1) + " activations";
            const int64_t src = rank - S;
            if (!errors[size_t(src)].empty())
              throw PeerFailed(int(src), "stage " + std::to_string(stage - 1) + " rank " + std::to_string(src) + " failed");
            fi.hidden_states = outs[size_t(src)].hidden_states;
          }
          where[size_t(rank)] = "loading weights";
          LoadOptions o;
          o.dtype = spec.dtype;
          ModelWeights w = random_weights(c, p, rank, spec.seed, o);
          where[size_t(rank)] = "forward";
          MemComm comm(mw, p, rank);
          outs[size_t(rank)] = forward(w, c, fi, comm, all);
          where[size_t(rank)] = "done";
          mw.finish(rank);
        } catch (const std::exception& e) {
          errors[size_t(rank)] = clean_exception_text(e.what());
          mw.fail();
        }
      });
    }
    for (auto& t : threads) t.join();
  }

  bool failed = false;
  for (int64_t rank = 0; rank < world; ++rank) {
    if (errors[size_t(rank)].empty()) continue;
    failed = true;
    RankError e;
    e.rank = rank;
    e.where = where[size_t(rank)];
    e.what = errors[size_t(rank)];
    r.errors.push_back(e);
  }
  if (failed) {
    r.verdict = Verdict::Error;
    r.summary = "error: rank " + std::to_string(r.errors[0].rank) + " failed: " + r.errors[0].what;
    return run;
  }
  Captures got;
  for (int64_t rank = 0; rank < world; ++rank)
    if (rank % S == 0) keep(got, outs[size_t(rank)]);
  Captures ref_local;
  if (!reference) {
    ref_local = reference_in_process(c, spec, in);
    reference = &ref_local;
  }
  compare_captures(c, p, *reference, got, in.attention_mask, tolerance_for(spec.dtype), r);
  run.captures = std::move(got);
  return run;
}

}  // namespace sc
