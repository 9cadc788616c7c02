#include "harness/executor.h"

#include <dlfcn.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <optional>
#include <sstream>
#include <thread>

#include <torch/torch.h>

#include "checks/checker.h"
#include "checks/sharding.h"
#include "checks/strategies.h"
#include "models/errors.h"
#include "families/decoder/model.h"
#include "families/decoder/stage.h"
#include "families/decoder/weights.h"
#include "models/safetensors.h"

namespace sc {

namespace {
// Weights kept by launches with RunSpec::keep_weights: one entry per (model, plan, weights, rank).
std::mutex kept_mu;
std::map<std::string, ModelWeights> kept_weights;

// The launch's model, plan and weights (not the rank): entries are this plus "|" + rank.
std::string kept_prefix(const ModelConfig& c, const ParallelPlan& p, const RunSpec& spec) {
  return c.source + "|" + c.name + "|" + p.describe() + "|" + spec.checkpoint + "|" + std::to_string(spec.seed) + "|" +
         c10::toString(spec.dtype) + "|" + spec.backend + "|" + std::to_string(spec.launch.first_gpu) + "|" +
         spec.kernels + "|";
}

bool weights_kept(const ModelConfig& c, const ParallelPlan& p, const RunSpec& spec) {
  if (!spec.keep_weights) return false;
  const std::string prefix = kept_prefix(c, p, spec);
  std::lock_guard<std::mutex> g(kept_mu);
  auto it = kept_weights.lower_bound(prefix);
  return it != kept_weights.end() && it->first.rfind(prefix, 0) == 0;
}
}  // namespace

void release_kept_weights() {
  std::lock_guard<std::mutex> g(kept_mu);
  kept_weights.clear();
}

RunInputs random_inputs(const ModelConfig& c, int64_t batch, int64_t seq, uint64_t seed, bool left_padding) {
  auto gen = at::detail::createCPUGenerator(seed);
  RunInputs in;
  in.input_ids = at::randint(c.vocab_size, {batch, seq}, gen, at::TensorOptions().dtype(at::kLong));
  if (!left_padding || batch < 2 || seq < 2) return in;
  // A batch as a tokenizer pads it for generation: row 0 is the longest, every other row has
  // 0 .. seq / 2 padding columns on the left; positions as HF generate derives them from the mask.
  const at::Tensor pads = at::randint(seq / 2 + 1, {batch}, gen, at::TensorOptions().dtype(at::kLong));
  in.attention_mask = at::ones({batch, seq}, at::kLong);
  auto pa = pads.accessor<int64_t, 1>();
  for (int64_t b = 1; b < batch; ++b)
    if (pa[b] > 0) in.attention_mask[b].slice(0, 0, pa[b]).fill_(0);
  in.positions_from_mask = true;
  return in;
}

namespace {

// CPU threads while N thread-ranks share the machine: each rank gets cores / N for ATen's
// intra-op pool and for OpenBLAS (looked up at run time; absent with other BLAS), restored after.
class CpuThreadShare {
 public:
  explicit CpuThreadShare(int ranks, bool cpu) {
    if (!cpu || ranks <= 1) return;
    const int cores = std::max(1u, std::thread::hardware_concurrency());
    saved_ = at::get_num_threads();
    at::set_num_threads(std::max(1, cores / ranks));
    blas_set_ = reinterpret_cast<void (*)(int)>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads"));
    auto get = reinterpret_cast<int (*)()>(dlsym(RTLD_DEFAULT, "openblas_get_num_threads"));
    if (blas_set_ && get) {
      blas_saved_ = get();
      blas_set_(std::max(1, cores / ranks));
    }
  }
  ~CpuThreadShare() {
    if (saved_ > 0) at::set_num_threads(saved_);
    if (blas_set_ && blas_saved_ > 0) blas_set_(blas_saved_);
  }

 private:
  int saved_ = 0, blas_saved_ = 0;
  void (*blas_set_)(int) = nullptr;
};

using Clock = std::chrono::steady_clock;
double ms_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

// Collectives of a sharded forward over this rank's groups.
struct GroupComm : Comm {
  Group* tp = nullptr;     // attention / dense MLP tensor-parallel group
  Group* stage = nullptr;  // experts: EP x expert-TP (the whole stage)
  void all_reduce_tp(at::Tensor& t) override {
    if (tp && tp->size() > 1) all_reduce_sum(*tp, t);
  }
  void all_reduce_experts(at::Tensor& t) override {
    if (stage && stage->size() > 1) all_reduce_sum(*stage, t);
  }
  at::Tensor all_gather_tp_last_dim(const at::Tensor& t) override {
    if (!tp || tp->size() == 1) return t;
    return at::cat(all_gather(*tp, t.contiguous()), -1);
  }
};

// One phase of a launch ("loading weights (8 ranks)"), its steps summed over the ranks, reported
// through RunSpec::progress (nothing when the spec has none). Thread-safe.
struct PhaseProgress {
  std::mutex mu;
  double done = 0, total = 0;
  std::string phase;
  const RunSpec* spec = nullptr;
  PhaseProgress(const RunSpec& s, const std::string& what, int64_t ranks, double steps)
      : total(steps),
        phase(what + " (" + std::to_string(ranks) + (ranks == 1 ? " rank)" : " ranks)")),
        spec(s.progress ? &s : nullptr) {}
  // n more steps; reported as at most `cap` of the total (the end is finish()'s, when it is known).
  void add(double n, double cap = 1.0) {
    if (!spec) return;
    std::lock_guard<std::mutex> g(mu);
    done += n;
    spec->progress(phase, std::min(done, total * cap), total);
  }
  void finish() {
    if (!spec) return;
    std::lock_guard<std::mutex> g(mu);
    spec->progress(phase, total, total);
  }
  // The intervention a session's forward calls after every layer: one step (it changes nothing).
  Intervention layer_steps() {
    if (!spec) return nullptr;
    return [this](int64_t, at::Tensor&, int64_t) { add(1); };
  }
};

// Forward steps of a launch: one per (rank, micro-batch, layer) computed.
double forward_steps(const ModelConfig& c, const ParallelPlan& p, int64_t batch) {
  const int64_t mb = std::max<int64_t>(1, std::min<int64_t>(p.micro_batches, batch));
  return double(p.stage_size() * c.num_hidden_layers * mb);
}

}  // namespace

// ---- torchrun: every rank's observation travels to rank 0 through the store ----

// One byte string: a JSON index of names, then the tensors as torch::save writes them.
std::string pack_tensors(const std::vector<std::pair<std::string, at::Tensor>>& named) {
  nlohmann::json names = nlohmann::json::array();
  std::vector<at::Tensor> tensors;
  for (const auto& [n, t] : named) {
    names.push_back(n);
    tensors.push_back(t.cpu().contiguous());
  }
  std::ostringstream body;
  torch::save(tensors, body);
  const std::string head = names.dump();
  return std::to_string(head.size()) + "\n" + head + body.str();
}

std::vector<std::pair<std::string, at::Tensor>> unpack_tensors(const std::string& bytes) {
  const size_t nl = bytes.find('\n');
  const size_t len = std::stoull(bytes.substr(0, nl));
  const nlohmann::json names = nlohmann::json::parse(bytes.substr(nl + 1, len));
  std::istringstream body(bytes.substr(nl + 1 + len));
  std::vector<at::Tensor> tensors;
  torch::load(tensors, body);
  std::vector<std::pair<std::string, at::Tensor>> out;
  for (size_t i = 0; i < names.size() && i < tensors.size(); ++i) out.emplace_back(names[i].get<std::string>(), tensors[i]);
  return out;
}

namespace {

// A rank's observation, and its stage's captures when it reports them, as named tensors.
std::string pack_observation(const RankObservation& ob, const StageOutput* cap) {
  std::vector<std::pair<std::string, at::Tensor>> v;
  for (const auto& [key, t] : ob.taps) v.emplace_back("tap/" + std::to_string(key.first) + "/" + std::to_string(key.second), t);
  for (const auto& [l, t] : ob.layer_out) v.emplace_back("out/" + std::to_string(l), t);
  if (ob.logits.defined()) v.emplace_back("logits", ob.logits);
  if (cap) {
    for (const auto& [l, t] : cap->attn_out) v.emplace_back("cap_attn/" + std::to_string(l), t);
    for (const auto& [l, t] : cap->router_logits) v.emplace_back("cap_router/" + std::to_string(l), t);
    for (const auto& [l, t] : cap->topk_ids) v.emplace_back("cap_topk/" + std::to_string(l), t);
  }
  return pack_tensors(v);
}

// Fills got.ranks[rank] and, when the rank reported its stage, got's captures.
void unpack_observation(const std::string& bytes, int64_t rank, bool reports, Captures& got) {
  RankObservation& ob = got.ranks[size_t(rank)];
  ob.rank = rank;
  for (auto& [name, t] : unpack_tensors(bytes)) {
    const size_t slash = name.find('/');
    const std::string kind = name.substr(0, slash);
    if (kind == "tap") {
      const size_t s2 = name.find('/', slash + 1);
      ob.taps[{std::stoll(name.substr(slash + 1, s2 - slash - 1)), std::stoi(name.substr(s2 + 1))}] = t;
    } else if (kind == "logits") {
      ob.logits = t;
      if (reports) got.logits = t;
    } else {
      const int64_t l = std::stoll(name.substr(slash + 1));
      if (kind == "out") {
        ob.layer_out[l] = t;
        if (reports) got.layer_out[l] = t;
      } else if (kind == "cap_attn") {
        got.attn_out[l] = t;
      } else if (kind == "cap_router") {
        got.router_logits[l] = t;
      } else if (kind == "cap_topk") {
        got.topk_ids[l] = t;
      }
    }
  }
}

}  // namespace

// Waits for `key` in the run's store (a failed peer or the timeout ends the wait) and reads it.
std::string wait_and_get(RankContext& ctx, const std::string& key, std::chrono::milliseconds timeout) {
  const auto t0 = Clock::now();
  while (!ctx.store->check({key})) {
    throw_if_peer_failed(ctx);
    if (Clock::now() - t0 > timeout)
      throw CollectiveTimeout("rank " + std::to_string(ctx.rank) + " waited " + std::to_string(timeout.count() / 1000) +
                              " s for '" + key + "' in the store");
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  const std::vector<uint8_t> v = ctx.store->get(key);
  return std::string(v.begin(), v.end());
}

void store_set(RankContext& ctx, const std::string& key, const std::string& value) {
  ctx.store->set(key, std::vector<uint8_t>(value.begin(), value.end()));
}

namespace {

Captures to_cpu(Captures c) {
  for (auto* m : {&c.attn_out, &c.layer_out, &c.router_logits, &c.topk_ids})
    for (auto& [k, v] : *m) v = v.cpu();
  if (c.logits.defined()) c.logits = c.logits.cpu();
  return c;
}

ForwardInputs forward_inputs(const RunInputs& in, at::Device device) {
  ForwardInputs f;
  f.input_ids = in.input_ids.to(device);
  if (in.attention_mask.defined()) f.attention_mask = in.attention_mask.to(device);
  f.positions_from_mask = in.positions_from_mask;
  return f;
}

}  // namespace

struct RankSessionImpl {
  Group tp, stage;
  GroupComm comm;
  ModelWeights w;
  RunSpec spec;
  Probe probe;
};

RankSession::RankSession(RankContext& ctx_, const ModelConfig& c, const ParallelPlan& p, const RunSpec& spec)
    : ctx(ctx_), config(c), plan(p), coord(rank_coord(p, ctx_.rank)), impl_(std::make_unique<RankSessionImpl>()) {}
RankSession::~RankSession() = default;
const ModelWeights& RankSession::weights() const { return impl_->w; }

RankSession::Output RankSession::forward(const RunInputs& in, const CaptureSpec& capture, const Intervention& intervene) {
  torch::NoGradGuard ng;
  const int64_t S_ranks = plan.stage_size();
  const int rank = ctx.rank;
  StageTransport io;
  io.recv = [&](at::Tensor& x, int64_t m) { recv(ctx, x, int(rank - S_ranks), int(m)); };
  io.send = [&](const at::Tensor& x, int64_t m) { send(ctx, x, int(rank + S_ranks), int(m)); };
  return run_stage(impl_->w, config, plan, coord.stage, forward_inputs(in, ctx.device), impl_->comm, capture, io,
                   intervene, &where);
}

void RankSession::observe(bool on) {
  impl_->probe.rank = ctx.rank;
  impl_->probe.sharded = plan.world_size() > 1;
  impl_->comm.probe = on ? &impl_->probe : nullptr;
}

RankObservation RankSession::observation(const Output& o) const { return observation_of(ctx.rank, impl_->probe, o); }

RankSession::PrefixCache RankSession::prefill(const RunInputs& in, int64_t split) {
  torch::NoGradGuard ng;
  const ModelWeights& w = impl_->w;
  const RunSpec& spec = impl_->spec;
  const ForwardInputs fin = forward_inputs(in, ctx.device);
  const int64_t B = fin.input_ids.size(0), S = fin.input_ids.size(1), H = config.hidden_size;
  if (split < 0 || split >= S)
    throw std::invalid_argument("prefill: split column " + std::to_string(split) + " outside [0, " +
                                std::to_string(S) + ")");
  PrefixCache cache;
  cache.split = split;
  cache.in = in;
  AttentionContext actx = make_attention_context(config, fin, B, S, spec.dtype, ctx.device);
  actx.kernels = w.kernels;
  at::Tensor x;
  if (coord.stage == 0) {
    where = "prefill: embedding";
    x = embed_tokens(w, fin.input_ids);
  } else {
    where = "prefill: receiving stage " + std::to_string(coord.stage - 1) + " activations";
    x = at::empty({B, S, H}, at::TensorOptions().dtype(spec.dtype).device(ctx.device));
    recv(ctx, x, int(ctx.rank - plan.stage_size()), 0);
  }
  for (const LayerWeights& lw : w.layers) {
    where = "prefill: layer " + std::to_string(lw.index);
    LayerKv kv;
    x = decoder_layer_forward(lw, config, w.attn_layout, x, actx, impl_->comm, nullptr, &kv).hidden;
    cache.kv[lw.index] = LayerKv{kv.k.narrow(2, 0, split).contiguous(), kv.v.narrow(2, 0, split).contiguous()};
    cache.suffix_out[lw.index] = x.narrow(1, split, S - split).contiguous();
  }
  if (!last_stage()) {
    where = "prefill: sending to stage " + std::to_string(coord.stage + 1);
    send(ctx, x.contiguous(), int(ctx.rank + plan.stage_size()), 0);
  }
  where = "done";
  return cache;
}

namespace {
// The context of the first `rows` rows (every row-wise tensor narrowed; [1, ...] ones broadcast).
AttentionContext first_rows(const AttentionContext& a, int64_t rows) {
  AttentionContext r = a;
  for (at::Tensor* t : {&r.cos, &r.sin, &r.mask, &r.sliding_mask})
    if (t->defined() && t->size(0) > 1) *t = t->narrow(0, 0, rows);
  return r;
}
}  // namespace

at::Tensor RankSession::resume(const PrefixCache& cache, const std::vector<int64_t>& layers, int64_t copies,
                               const SuffixEdit& edit, const at::Tensor& columns, int64_t head_rows) {
  torch::NoGradGuard ng;
  const ModelWeights& w = impl_->w;
  const RunSpec& spec = impl_->spec;
  if (layers.empty()) throw std::invalid_argument("resume: no layers");
  for (size_t g = 0; g < layers.size(); ++g) {
    if (layers[g] < 0 || layers[g] >= config.num_hidden_layers)
      throw std::invalid_argument("resume: layer " + std::to_string(layers[g]) + " outside [0, " +
                                  std::to_string(config.num_hidden_layers) + ")");
    if (g > 0 && layers[g] <= layers[g - 1])
      throw std::invalid_argument("resume: layers must ascend without repeats (" + std::to_string(layers[g - 1]) +
                                  " then " + std::to_string(layers[g]) + ")");
  }
  if (copies < 1) throw std::invalid_argument("resume: copies must be >= 1");
  if (head_rows < 1) throw std::invalid_argument("resume: head_rows must be >= 1");
  const int64_t B = cache.in.input_ids.size(0), S = cache.in.input_ids.size(1), H = config.hidden_size;
  const int64_t P = cache.split, Ss = S - P, R = copies * B, G = int64_t(layers.size());
  if (columns.defined() && (columns.dim() != 2 || columns.size(0) != G * R))
    throw std::invalid_argument("resume: columns must be [" + std::to_string(G * R) + ", K], got " +
                                std::to_string(columns.dim()) + "-d with " + std::to_string(columns.numel()) +
                                " elements");
  // This stage's layers [first, last]; groups whose layer is before `first` arrive from the
  // previous stage, those up to `last` join here, the others join on a later stage.
  const int64_t first = w.layers.empty() ? config.num_hidden_layers : w.layers.front().index;
  const int64_t last = w.layers.empty() ? first - 1 : w.layers.back().index;
  auto groups_before = [&](int64_t layer) {  // groups whose layer is < `layer`
    return int64_t(std::lower_bound(layers.begin(), layers.end(), layer) - layers.begin());
  };
  int64_t joined = groups_before(first);
  // One context for every group (rows group-major, each group's copies of the batch); a layer
  // run on fewer groups takes its first rows.
  ForwardInputs rin;
  if (cache.in.attention_mask.defined())
    rin.attention_mask = cache.in.attention_mask.to(ctx.device).repeat({G * copies, 1});
  rin.positions_from_mask = cache.in.positions_from_mask;
  AttentionContext actx = make_attention_context(config, rin, G * R, Ss, spec.dtype, ctx.device, P);
  actx.kernels = w.kernels;
  at::Tensor x;
  if (joined > 0) {
    where = "resume: receiving stage " + std::to_string(coord.stage - 1) + " activations";
    x = at::empty({joined * R, Ss, H}, at::TensorOptions().dtype(spec.dtype).device(ctx.device));
    recv(ctx, x, int(ctx.rank - plan.stage_size()), 0);
  }
  // Groups whose layer is < `upto` join: their edited layer output is appended.
  auto join = [&](int64_t upto) {
    for (; joined < G && layers[size_t(joined)] < upto; ++joined) {
      const int64_t L = layers[size_t(joined)];
      where = "resume: steering layer " + std::to_string(L);
      const at::Tensor e = edit(size_t(joined), cache.suffix_out.at(L));
      if (e.dim() != 3 || e.size(0) != R || e.size(1) != Ss || e.size(2) != H)
        throw std::invalid_argument("resume: the edit of layer " + std::to_string(L) + " returned " +
                                    std::to_string(e.dim()) + "-d " + std::to_string(e.numel()) +
                                    " elements, expected [" + std::to_string(R) + ", " + std::to_string(Ss) + ", " +
                                    std::to_string(H) + "]");
      x = x.defined() ? at::cat({x, e}, 0) : e;
    }
  };
  for (const LayerWeights& lw : w.layers) {
    join(lw.index);
    if (!x.defined()) continue;  // no group has joined yet
    where = "resume: layer " + std::to_string(lw.index);
    const LayerKv& kv = cache.kv.at(lw.index);  // [B, ...]: shared by every row of the same example
    x = decoder_layer_forward(lw, config, w.attn_layout, x, first_rows(actx, x.size(0)), impl_->comm, &kv).hidden;
  }
  join(last + 1);
  if (!last_stage()) {
    if (x.defined()) {
      where = "resume: sending to stage " + std::to_string(coord.stage + 1);
      send(ctx, x.contiguous(), int(ctx.rank + plan.stage_size()), 0);
    }
    where = "done";
    return {};
  }
  // The head on the last column, head_rows rows at a time ([rows, V] logits are the large part).
  where = "resume: lm_head";
  const at::Tensor cols = columns.defined() ? columns.to(ctx.device, at::kLong) : at::Tensor();
  std::vector<at::Tensor> parts;
  for (int64_t r0 = 0; r0 < G * R; r0 += head_rows) {
    const int64_t n = std::min(head_rows, G * R - r0);
    at::Tensor lg = final_logits(w, config, x.narrow(0, r0, n).narrow(1, Ss - 1, 1), impl_->comm).reshape({n, -1});
    parts.push_back(cols.defined() ? lg.gather(1, cols.narrow(0, r0, n)) : lg);
  }
  where = "done";
  return parts.size() == 1 ? parts[0] : at::cat(parts, 0);
}

bool torchrun_job() {
  if (!launched_by_torchrun()) return false;
  const char* w = std::getenv("WORLD_SIZE");
  return w && std::atoi(w) > 1;
}

std::string share_from_rank0(const std::string& value) {
  if (!torchrun_job()) return value;
  std::string out = value;
  LaunchOptions lo;
  lo.timeout = std::chrono::milliseconds(300000);
  const RankOutcome o = run_env_rank(read_env_rank(), [&](RankContext& ctx) {
    if (ctx.rank == 0) store_set(ctx, "sc/shared", value);
    else out = wait_and_get(ctx, "sc/shared", lo.timeout);
  }, lo);
  if (!o.ok) throw std::runtime_error("sharing rank 0's result with the other torchrun processes failed: " + o.error);
  return out;
}

void require_gpu_memory(const ModelConfig& c, const ParallelPlan& p, at::ScalarType dtype, const std::vector<int>& devices,
                        const std::vector<int64_t>& ranks) {
  ParallelPlan pd = p;
  pd.dtype = from_scalar_type(dtype);
  const std::vector<RankMemory> mem = estimate_memory(c, pd);
  for (size_t i = 0; i < devices.size() && i < ranks.size(); ++i) {
    const auto [free, total] = cuda_memory(devices[i]);
    if (free < 0) continue;  // unknown: nothing to check
    const RankMemory& m = mem[size_t(ranks[i])];
    const int64_t need = m.total_bytes(pd.shard_only_loading);
    if (need <= free) continue;
    char text[400];
    std::snprintf(text, sizeof text,
                  "%s: rank %lld needs about %.1f GiB on its GPU (weights or loading peak plus activations, %s) but "
                  "GPU %d has %.1f GiB free of %.1f GiB; add ranks, use a smaller dtype or model, or "
                  "--ignore-memory-estimate to run anyway",
                  p.describe().c_str(), (long long)ranks[i], double(need) / (1 << 30), c10::toString(dtype), devices[i],
                  double(free) / (1 << 30), double(total) / (1 << 30));
    throw PlanError("memory", c.name.empty() ? c.source : c.name, text);
  }
}

std::vector<RankOutcome> run_sessions(const ModelConfig& c, const ParallelPlan& p, const RunSpec& spec,
                                      const SessionFn& fn, std::vector<LoadStats>* stats,
                                      std::vector<std::string>* where) {
  p.validate();
  if (p.dp > 1) throw PlanError("--dp", std::to_string(p.dp), "data-parallel replicas are independent; run with dp=1");
  if (p.ep > 1 && !c.is_moe()) throw PlanError("--ep", std::to_string(p.ep), "expert parallelism needs a MoE model");
  require_forward_support(c);
  const int world = int(p.world_size());
  const bool kept = weights_kept(c, p, spec);  // this launch reuses weights already in memory
  if (spec.check_memory && !kept && spec.backend != "nccl") {
    int64_t need = launch_host_bytes(c, p, spec.dtype);
    if (world > 1 && launched_by_torchrun()) {  // the ranks on this host: LOCAL_WORLD_SIZE of them
      const char* local = std::getenv("LOCAL_WORLD_SIZE");
      const int64_t here = local ? std::max<int64_t>(1, std::atoll(local)) : 1;
      need = need / world * std::min<int64_t>(here, world);
    }
    const int64_t have = host_available_bytes();
    if (have > 0 && need > have) {
      char text[400];
      std::snprintf(text, sizeof text,
                    "%s on %d CPU rank(s) of this host needs about %.1f GiB (weights or loading peak plus activations "
                    "per rank, %s, summed) but the host has %.1f GiB available; use a smaller model or dtype, or "
                    "--ignore-memory-estimate to run anyway",
                    p.describe().c_str(), world, double(need) / (1 << 30), c10::toString(spec.dtype),
                    double(have) / (1 << 30));
      throw PlanError("memory", c.name.empty() ? c.source : c.name, text);
    }
  }
  if (stats) stats->assign(size_t(world), LoadStats{});
  if (where) where->assign(size_t(world), "starting");
  // Open (and validate) the checkpoint once, before any rank starts: a bad file is an input error.
  std::shared_ptr<Checkpoint> ckpt;
  if (!spec.checkpoint.empty()) {
    ckpt = std::make_shared<Checkpoint>(Checkpoint::open(spec.checkpoint));
    summarize_checkpoint(c, spec.checkpoint).require_loadable();  // a mismatch is bad input, not a rank failure
  }
  LaunchOptions lo = spec.launch;
  lo.backend = spec.backend;
  // Under torchrun (RANK, WORLD_SIZE, ... set) a launch of more than one rank runs this process's
  // rank only; the others are the other processes. One-rank launches (the reference) stay local.
  const bool torchrun = world > 1 && launched_by_torchrun();
  std::optional<EnvRank> env;
  if (torchrun) {
    env = read_env_rank();
    const bool fewer_ok = spec.allow_fewer_ranks_than_processes && env->world > world;
    if (env->world != world && !fewer_ok)
      throw PlanError("WORLD_SIZE", std::to_string(env->world),
                      p.describe() + " needs " + std::to_string(world) +
                          " ranks (max(tp, ep) x pp); start torchrun with --nproc-per-node " + std::to_string(world));
    if (env->rank >= world) {  // this process sits the launch out (see RunSpec)
      skip_env_run(*env);
      return {};
    }
    env->world = world;
  }
  if (!torchrun) validate_launch(world, lo, /*threads=*/true);  // an impossible device first, in one line
  {  // a dtype the device cannot compute (float16 matmuls on LibTorch 1.13's CPU): one line, before loading
    const at::Device dev = spec.backend == "nccl"
                               ? at::Device(at::kCUDA, static_cast<c10::DeviceIndex>(lo.first_gpu + (env ? env->local_rank : 0)))
                               : at::Device(at::kCPU);
    try {
      const at::Tensor one = at::ones({2, 2}, at::TensorOptions().dtype(spec.dtype).device(dev));
      (void)at::matmul(one, one);
    } catch (const std::exception& e) {
      std::string why = e.what();
      why = why.substr(0, why.find('\n'));
      throw PlanError("--dtype", dtype_torch_name(from_scalar_type(spec.dtype)), "not computable on " + dev.str() + ": " + why);
    }
  }
  if (spec.check_memory && !kept && spec.backend == "nccl") {  // the GPUs this launch uses, before any loading
    std::vector<int> devices;
    std::vector<int64_t> ranks;
    if (torchrun) {
      devices.push_back(lo.first_gpu + env->local_rank);
      ranks.push_back(env->rank);
    } else {
      for (int r = 0; r < world; ++r) devices.push_back(lo.first_gpu + r), ranks.push_back(r);
    }
    require_gpu_memory(c, p, spec.dtype, devices, ranks);
  }
  CpuThreadShare share(torchrun ? 1 : world, spec.backend != "nccl");
  try {  // an unknown or unavailable kernel set is bad input, reported before any rank starts
    parse_kernels(spec.kernels, at::Device(spec.backend == "nccl" ? at::kCUDA : at::kCPU), spec.dtype);
  } catch (const std::invalid_argument& e) {
    throw PlanError("--kernels", spec.kernels, e.what());
  }
  // Loading progress over every rank: bytes kept so far against the predicted weight bytes (the
  // checker's estimate); the phase ends when the last rank has loaded.
  double weight_bytes = 0;
  if (spec.progress) {
    ParallelPlan pd = p;
    pd.dtype = from_scalar_type(spec.dtype);
    for (const RankMemory& m : estimate_memory(c, pd)) weight_bytes += double(m.weight_bytes);
  }
  if (spec.on_checked) spec.on_checked();
  PhaseProgress load_progress(spec, ckpt ? "loading weights" : "generating random weights", world, weight_bytes);
  std::atomic<int> loaded{0};
  // HF's load-time refusal of the plan (checks/checker.h): every rank raises it on its own, before
  // any group exists (the world group included), so that no rank is left waiting for a peer that
  // refused and every rank reports HF's text as its own.
  lo.before_world = [&](int rank) {
    if (where) (*where)[size_t(rank)] = "validating the plan";
    if (const LoadOutcome v = predict_hf_load(c, p); !v.ok) throw std::runtime_error(v.error_text);
  };
  RankFn rank_fn = [&](RankContext& ctx) {
    torch::NoGradGuard ng;
    RankSession session(ctx, c, p, spec);
    auto& impl = *session.impl_;
    impl.spec = spec;
    auto to_int = [](const std::vector<int64_t>& v) { return std::vector<int>(v.begin(), v.end()); };
    std::string* w_where = where ? &(*where)[size_t(ctx.rank)] : nullptr;
    if (w_where) *w_where = "creating process groups";
    impl.tp = new_group(ctx, to_int(tp_group_ranks(p, ctx.rank)), "tp");
    impl.stage = new_group(ctx, to_int(stage_group_ranks(p, ctx.rank)), "stage");
    impl.comm.tp = &impl.tp;
    impl.comm.stage = &impl.stage;
    if (w_where) *w_where = "loading weights";
    LoadOptions o;
    o.dtype = spec.dtype;
    o.device = ctx.device;
    o.full_tensor_reads = spec.full_tensor_reads;
    if (spec.progress) o.on_tensor = [&](uint64_t bytes) { load_progress.add(double(bytes), 0.99); };
    const Kernels kernels = parse_kernels(spec.kernels, ctx.device, spec.dtype);
    o.stack_experts = kernels.grouped_experts;
    LoadStats st;
    const std::string key = spec.keep_weights ? kept_prefix(c, p, spec) + std::to_string(ctx.rank) : std::string();
    bool reused = false;
    if (spec.keep_weights) {
      std::lock_guard<std::mutex> g(kept_mu);
      if (auto it = kept_weights.find(key); it != kept_weights.end()) {
        impl.w = it->second;  // the same tensors (shared storage), already prepared
        reused = true;
      }
    }
    if (!reused) {
      const auto t_load = std::chrono::steady_clock::now();
      impl.w = ckpt ? load_weights(*ckpt, c, p, ctx.rank, o, &st) : random_weights(c, p, ctx.rank, spec.seed, o);
      if (!ckpt) st.bytes_kept = st.peak_bytes_held = impl.w.nbytes();
      prepare_kernels(impl.w, kernels);
      if (ctx.device.is_cuda()) torch::cuda::synchronize(ctx.device.index());  // generation runs on the GPU
      st.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_load).count();
      if (spec.keep_weights) {
        std::lock_guard<std::mutex> g(kept_mu);
        kept_weights[key] = impl.w;
      }
    }
    if (stats) (*stats)[size_t(ctx.rank)] = st;
    if (++loaded == world) load_progress.finish();
    try {
      fn(session);
    } catch (...) {
      if (w_where) *w_where = session.where;
      throw;
    }
    if (w_where) *w_where = session.where;
  };
  if (torchrun) {
    RankOutcome mine = run_env_rank(*env, rank_fn, lo);
    std::vector<RankOutcome> out{mine};
    // Rank 0 reports for the job: every other rank's own error, as the threads backend gives them.
    for (const auto& [r, text] : mine.peer_errors) {
      RankOutcome o;
      o.rank = r;
      o.own_error = text;
      o.error = "rank " + std::to_string(r) + " failed: " + text;
      o.first_failed_rank = mine.first_failed_rank;
      o.first_error = mine.first_error;
      if (where && size_t(r) < where->size()) (*where)[size_t(r)] = "";
      out.push_back(o);
    }
    return out;
  }
  return run_ranks(world, rank_fn, lo);
}


int64_t launch_host_bytes(const ModelConfig& c, const ParallelPlan& p, at::ScalarType dtype) {
  ParallelPlan pd = p;
  pd.dtype = from_scalar_type(dtype);
  int64_t total = 0;
  for (const RankMemory& m : estimate_memory(c, pd)) total += m.total_bytes(pd.shard_only_loading);
  return total;
}

int64_t host_available_bytes() {
  std::FILE* f = std::fopen("/proc/meminfo", "r");
  if (!f) return -1;
  char line[256];
  int64_t kib = -1;
  while (std::fgets(line, sizeof line, f))
    if (std::sscanf(line, "MemAvailable: %lld kB", reinterpret_cast<long long*>(&kib)) == 1) break;
  std::fclose(f);
  return kib > 0 ? kib * 1024 : -1;
}

Captures run_reference(const ModelConfig& c, const RunSpec& spec, const RunInputs& in, double* ms) {
  ParallelPlan one;
  one.dtype = from_scalar_type(spec.dtype);
  Captures cap;
  CaptureSpec all;
  all.all_layers = true;
  all.router = spec.capture_router;
  PhaseProgress progress(spec, "reference forward", 1, forward_steps(c, one, in.input_ids.size(0)));
  auto outcomes = run_sessions(c, one, spec, [&](RankSession& s) {
    s.observe(true);
    auto o = s.forward(in, all, progress.layer_steps());
    s.observe(false);
    cap.layer_out = o.layer_out;
    cap.attn_out = o.attn_out;
    cap.router_logits = o.router_logits;
    cap.topk_ids = o.topk_ids;
    cap.logits = o.logits;
    cap.ranks.push_back(s.observation(o));
    cap.weights = std::make_shared<const ModelWeights>(s.weights());
    if (ms && spec.timing_repeats > 0) {
      std::vector<double> t;
      CaptureSpec none;
      for (int i = 0; i < spec.timing_repeats; ++i) {
        auto t0 = Clock::now();
        auto r = s.forward(in, none);
        if (r.logits.is_cuda()) r.logits.cpu();
        t.push_back(ms_since(t0));
      }
      std::sort(t.begin(), t.end());
      *ms = t[t.size() / 2];
    }
  });
  if (!all_ok(outcomes)) throw std::runtime_error("reference run failed: " + describe_failures(outcomes));
  return to_cpu(std::move(cap));
}

PlanRun run_plan(const ModelConfig& c, const ParallelPlan& p, const RunSpec& spec, const RunInputs& in,
                 const Captures* reference) {
  PlanRun run;
  RunResult& r = run.result;
  r.model = spec.checkpoint.empty() ? c.name + " (random weights, seed " + std::to_string(spec.seed) + ")" : spec.checkpoint;
  r.plan = p;
  r.backend = spec.backend;
  r.device = spec.backend == "nccl" ? "cuda" : "cpu";

  std::mutex mu;
  Captures got;
  double fwd_ms = 0;
  std::vector<LoadStats> stats;
  std::vector<std::string> where;
  CaptureSpec all;
  all.all_layers = true;
  all.router = spec.capture_router;
  got.ranks.resize(size_t(p.world_size()));
  PhaseProgress progress(spec, "sharded forward", p.world_size(), forward_steps(c, p, in.input_ids.size(0)));
  // Under torchrun this process runs one rank: the others send what they observed to rank 0, which
  // computes the reference, compares and publishes the verdict before any rank leaves the store.
  const bool torchrun = p.world_size() > 1 && launched_by_torchrun();
  const auto long_wait = std::max(spec.launch.timeout, std::chrono::milliseconds(600000));
  bool compared = false;
  Captures ref_local;
  run.outcomes = run_sessions(c, p, spec, [&](RankSession& s) {
    s.observe(true);  // every rank records its taps: the comparison checks every rank
    auto o = s.forward(in, all, progress.layer_steps());
    s.observe(false);
    if (spec.timing_repeats > 0) {
      std::vector<double> t;
      CaptureSpec none;
      for (int i = 0; i < spec.timing_repeats; ++i) {
        barrier(s.ctx);
        auto t0 = Clock::now();
        s.forward(in, none);
        barrier(s.ctx);
        t.push_back(ms_since(t0));
      }
      std::sort(t.begin(), t.end());
      if (s.ctx.rank == 0) fwd_ms = t[t.size() / 2];
    }
    RankObservation ob = s.observation(o);
    if (torchrun && s.ctx.rank != 0) {
      store_set(s.ctx, "sc/observation/" + std::to_string(s.ctx.rank), pack_observation(ob, s.reports() ? &o : nullptr));
      const std::string verdict = wait_and_get(s.ctx, "sc/verdict", long_wait);
      for (Verdict v : {Verdict::Match, Verdict::BenignRouterFlip, Verdict::Mismatch, Verdict::Error})
        if (verdict == verdict_name(v)) r.verdict = v;
      r.summary = "compared and reported by rank 0: " + verdict;
      run.follower = true;
      return;
    }
    std::lock_guard<std::mutex> g(mu);
    got.ranks[size_t(s.ctx.rank)] = std::move(ob);
    if (s.reports()) {
      for (auto& [k, v] : o.layer_out) got.layer_out[k] = v.cpu();
      for (auto& [k, v] : o.attn_out) got.attn_out[k] = v.cpu();
      for (auto& [k, v] : o.router_logits) got.router_logits[k] = v.cpu();
      for (auto& [k, v] : o.topk_ids) got.topk_ids[k] = v.cpu();
      if (o.logits.defined()) got.logits = o.logits.cpu();
    }
    if (torchrun) {  // rank 0: every other rank's observation, the comparison, then the verdict
      for (int k = 1; k < s.ctx.world; ++k)
        unpack_observation(wait_and_get(s.ctx, "sc/observation/" + std::to_string(k), spec.launch.timeout), k,
                           rank_coord(p, k).stage_rank == 0, got);
      if (!reference) {
        ref_local = run_reference(c, spec, in, spec.timing_repeats > 0 ? &r.reference_ms : nullptr);
        reference = &ref_local;
      }
      compare_captures(c, p, *reference, got, in.attention_mask, tolerance_for(spec.dtype), r);
      compared = true;
      store_set(s.ctx, "sc/verdict", verdict_name(r.verdict));
    }
  }, &stats, &where);
  if (run.outcomes.empty()) {  // torchrun: this process sat the launch out (RunSpec)
    run.follower = true;
    r.summary = "not part of this launch (" + p.describe() + " runs on the first " + std::to_string(p.world_size()) +
                " processes)";
    return run;
  }
  if (run.follower) return run;
  for (const auto& st : stats) {
    r.load_peak_bytes.push_back(int64_t(st.peak_bytes_held));
    r.bytes_read.push_back(int64_t(st.bytes_read));
  }
  r.forward_ms = fwd_ms;
  if (fwd_ms > 0) r.tokens_per_s = double(in.input_ids.numel()) / (fwd_ms / 1000.0);

  if (!all_ok(run.outcomes)) {
    r.verdict = Verdict::Error;
    for (const auto& o : run.outcomes) {
      if (o.ok) continue;
      RankError e;
      e.rank = o.rank;
      e.where = where.empty() ? "" : where[size_t(o.rank)];
      e.what = clean_exception_text((o.own_error.empty() ? o.error : o.own_error).c_str());
      r.errors.push_back(e);
    }
    r.summary = "error: " + describe_failures(run.outcomes);
    // torchrun: rank 0 reports every rank's error (RankOutcome::peer_errors); the others only exit.
    if (torchrun && run.outcomes.front().rank != 0) run.follower = true;
    return run;
  }
  if (compared) {
    run.captures = std::move(got);
    return run;
  }
  // The reference only when the sharded run completed (a failing plan costs only its own run).
  if (!reference) {
    ref_local = run_reference(c, spec, in, spec.timing_repeats > 0 ? &r.reference_ms : nullptr);
    reference = &ref_local;
  }
  compare_captures(c, p, *reference, got, in.attention_mask, tolerance_for(spec.dtype), r);
  run.captures = std::move(got);
  return run;
}

}  // namespace sc
