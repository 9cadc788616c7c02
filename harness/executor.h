// Sharded execution: run one ParallelPlan on real ranks (c10d Gloo threads on CPU, NCCL on GPUs),
// the same forward code at world size 1 as the reference, and compare.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <ATen/ATen.h>

#include "layout/plan.h"
#include "checks/run_result.h"
#include "harness/compare.h"
#include "harness/process_group.h"
#include "models/config.h"
#include "families/decoder/model.h"
#include "families/decoder/stage.h"
#include "families/decoder/weights.h"

namespace sc {

struct RunInputs {
  at::Tensor input_ids;       // [B, S] int64
  at::Tensor attention_mask;  // [B, S] (optional; 0 = padding)
  bool positions_from_mask = false;  // HF generate-style positions for left padding
};
// Seeded random token ids in [0, vocab) of shape [batch, seq]; with left_padding (default) rows
// 1.. have 0 .. seq / 2 padding columns on the left (attention_mask, HF generate-style positions).
RunInputs random_inputs(const ModelConfig& c, int64_t batch, int64_t seq, uint64_t seed, bool left_padding = true);

struct RunSpec {
  std::string checkpoint;          // HF checkpoint folder / file; "" = seeded random weights
  uint64_t seed = 1234;            // random weights
  at::ScalarType dtype = at::kFloat;
  std::string backend = "gloo";    // "gloo" (threads on CPU) | "nccl" (thread per GPU)
  // Timeouts and shape checks. grace: after one rank fails, how long the others may keep computing
  // outside a collective before they are reported hung; long enough that every rank reaches its
  // own error (each rank's LibTorch text is reported).
  LaunchOptions launch = [] {
    LaunchOptions o;
    o.grace = std::chrono::milliseconds(60000);
    return o;
  }();
  bool full_tensor_reads = false;  // emulate HF's EP loading for the peak-memory measurement
  int timing_repeats = 0;          // > 0: time the sharded and reference forwards (median)
  bool capture_router = true;
  // Kernel set of every rank and of the reference (ops/kernels.h: "eager", "best", or
  // e.g. "sdpa+grouped_experts"); checked before any rank starts (PlanError when unavailable).
  std::string kernels = "eager";
  // Before any rank starts, the launch's predicted memory (the checker's per-rank model: weights
  // or loading peak, plus activations, in `dtype`) is checked against what the host has
  // (MemAvailable) for ranks that share this host's memory (CPU); PlanError with the numbers.
  bool check_memory = true;
  // Progress of long phases ("loading weights (8 ranks)", done, total), e.g. cli::ProgressLine.
  std::function<void(const std::string& phase, double done, double total)> progress;
  // Called once the launch's checks (plan, device, dtype, memory, kernels) have passed, before any
  // rank starts or any weight is read (steer prints its header here, so that a refusal stays the
  // only line). Not called for a process that sits the launch out under torchrun.
  std::function<void()> on_checked;
  // Under torchrun, a plan of fewer ranks than the launched processes runs on RANK < its world and
  // the other processes sit it out (repro's TP=4 fix among 8 processes). Off: a WORLD_SIZE that is
  // not the plan's is a PlanError (run).
  bool allow_fewer_ranks_than_processes = false;
  // Keep each rank's weights after the launch, for the next launch of the same model, plan and
  // weights in this process (steer: the extraction, then the sweep, load or generate them once);
  // that launch then skips loading and its memory check. release_kept_weights() frees them.
  bool keep_weights = false;
};

// Frees the weights launches with RunSpec::keep_weights kept.
void release_kept_weights();

// The host memory a launch of `p` on CPU ranks needs (bytes; the checker's per-rank estimate
// summed over ranks) and what this host has available (MemAvailable; -1 when unknown).
int64_t launch_host_bytes(const ModelConfig& c, const ParallelPlan& p, at::ScalarType dtype);
int64_t host_available_bytes();

// Free memory of the GPUs a launch of `p` uses against the checker's per-rank estimate (weights or
// loading peak, plus activations, in `dtype`): PlanError with the numbers when a rank does not fit.
// `devices`: the CUDA devices, one per rank in rank order (threads) or this process's only.
void require_gpu_memory(const ModelConfig& c, const ParallelPlan& p, at::ScalarType dtype, const std::vector<int>& devices,
                        const std::vector<int64_t>& ranks);

// ---- torchrun: one job across processes ----

// Whether this process is one of several torchrun processes (RANK / WORLD_SIZE > 1).
bool torchrun_job();
// Every process calls it; the value rank 0 passes is returned on every process (through the job's
// store). Outside torchrun it returns `value`.
std::string share_from_rank0(const std::string& value);
// Named tensors as one byte string (a JSON index, then torch::save), to send through the store.
std::string pack_tensors(const std::vector<std::pair<std::string, at::Tensor>>& named);
std::vector<std::pair<std::string, at::Tensor>> unpack_tensors(const std::string& bytes);
// The store of a launch: set a key, and wait for one (a failed peer or the timeout ends the wait).
void store_set(RankContext& ctx, const std::string& key, const std::string& value);
std::string wait_and_get(RankContext& ctx, const std::string& key, std::chrono::milliseconds timeout);

// The single-device reference (world size 1, local collectives), on `device`.
Captures run_reference(const ModelConfig& c, const RunSpec& spec, const RunInputs& in, double* ms = nullptr);

// ---- sessions: many forwards inside one launch (steering extraction, timing) ----

struct RankSessionImpl;
// One rank's view of the sharded model: its weight slices, its groups and the forward across the
// pipeline. Every rank of the plan runs the same calls in the same order (SPMD).
class RankSession {
 public:
  RankContext& ctx;
  const ModelConfig& config;
  const ParallelPlan& plan;
  RankCoord coord;
  // Runs one forward of `in` over the whole pipeline (micro-batched as the plan says). Returns what
  // this rank holds: captures of its stage's layers (positions as `capture` says) and, on the last
  // stage, the logits. `intervene` (optional) is called on every layer output this rank computes,
  // before it is passed on (steering: add a vector at some positions).
  // (families/decoder/stage.h: the same stage code runs the in-process ranks.)
  using Output = StageOutput;
  using Intervention = sc::Intervention;
  Output forward(const RunInputs& in, const CaptureSpec& capture, const Intervention& intervene = nullptr);
  // Observation (harness/localise.h): while on, forward() records this rank's taps (probe.h), and
  // the fault hooks of fault_hooks.h may fire; observation() returns what was recorded (CPU).
  void observe(bool on);
  RankObservation observation(const Output& o) const;

  // ---- prefix cache: many forwards of one batch that differ only in columns >= split ----
  // (steering sweeps: a steering vector added at layer L from the instruction end onward changes
  // neither the columns before it, at any layer, nor any column up to layer L's output.)
  struct PrefixCache {
    int64_t split = 0;  // first column that resume() recomputes
    RunInputs in;       // the batch
    std::map<int64_t, LayerKv> kv;             // this rank's layers: keys / values of columns < split
    std::map<int64_t, at::Tensor> suffix_out;  // this rank's layers: output at columns >= split [B, S - split, H]
  };
  // One full forward of `in` over the pipeline (the whole batch as one micro-batch) that keeps,
  // for every layer this rank runs, the KV cache of the columns < split and the layer output at
  // the columns >= split. split in [0, S - 1].
  PrefixCache prefill(const RunInputs& in, int64_t split);
  // Recomputes the columns >= split for several steered layers in one pass (a wavefront): group g
  // starts from layer layers[g]'s cached output changed by `edit(g, suffix_out)`, which maps the
  // [B, S - split, H] cached output to [copies * B, S - split, H] (rows copy-major: row = copy * B
  // + i; it runs on the ranks of the stage holding layers[g]). Each group joins the pass right after
  // its layer, so every later layer runs once over all the groups that have joined (rows
  // group-major: row = g * copies * B + copy * B + i), attending to the cached prefix keys / values
  // shared by every copy (attention_forward's shared-prefix path: no copy of the cache). Then the
  // head at the last column, `head_rows` rows at a time. `layers` ascending, without repeats.
  // Returns, on the last stage, the logits [G * copies * B, V], or with `columns` ([G * copies * B,
  // K] int64 vocab ids, on any device) only those: [G * copies * B, K]; elsewhere undefined.
  using SuffixEdit = std::function<at::Tensor(size_t group, const at::Tensor& suffix_out)>;
  at::Tensor resume(const PrefixCache& cache, const std::vector<int64_t>& layers, int64_t copies,
                    const SuffixEdit& edit, const at::Tensor& columns = {}, int64_t head_rows = 4096);

  // True on the ranks whose captures are reported (stage rank 0 of each stage).
  bool reports() const { return coord.stage_rank == 0; }
  bool last_stage() const { return coord.stage == plan.pp - 1; }
  const ModelWeights& weights() const;
  std::string where;  // what the rank is doing (for error reports)

  RankSession(RankContext& ctx, const ModelConfig& c, const ParallelPlan& p, const RunSpec& spec);
  ~RankSession();

 private:
  friend std::vector<RankOutcome> run_sessions(const ModelConfig&, const ParallelPlan&, const RunSpec&,
                                               const std::function<void(RankSession&)>&, std::vector<LoadStats>*,
                                               std::vector<std::string>*);
  std::unique_ptr<RankSessionImpl> impl_;
};
using SessionFn = std::function<void(RankSession&)>;
// Launches p.world_size() ranks (threads), builds each rank's session (weights, groups) and runs fn.
// Load statistics are returned per rank in `stats` when given.
std::vector<RankOutcome> run_sessions(const ModelConfig& c, const ParallelPlan& p, const RunSpec& spec,
                                      const SessionFn& fn, std::vector<LoadStats>* stats = nullptr,
                                      std::vector<std::string>* where = nullptr);

struct PlanRun {
  // Under torchrun (one rank per process): rank 0 compares and reports; on the other ranks
  // follower is true and result holds only the verdict rank 0 published.
  bool follower = false;
  RunResult result;
  std::vector<RankOutcome> outcomes;  // one per rank
  Captures captures;                  // what the sharded run produced (stage rank 0 of each stage)
};

// Runs `p` on p.world_size() ranks and compares with `reference` (computed when null).
PlanRun run_plan(const ModelConfig& c, const ParallelPlan& p, const RunSpec& spec, const RunInputs& in,
                 const Captures* reference = nullptr);

}  // namespace sc
