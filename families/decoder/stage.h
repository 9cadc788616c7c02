// One rank's pipeline stage over a batch: micro-batches (chunk_range of the batch, so sizes may
// differ by one), each micro-batch's attention context (its mask rows, its positions), the
// activations received from the previous stage and sent to the next, the stage's layers with
// captures and steering interventions, and the head on the last stage. The c10d harness
// (harness/executor.h, RankSession::forward) and the in-process ranks (local_ranks.h) both run
// this code; they differ only in how activations travel between stages (StageTransport).
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <string>

#include <ATen/ATen.h>

#include "layout/plan.h"
#include "models/config.h"
#include "families/decoder/comm.h"
#include "families/decoder/model.h"
#include "families/decoder/weights.h"

namespace sc {

struct StageTransport {
  // Stage > 0: fills x ([rows of micro-batch m, S, H], allocated by the caller) with the
  // previous stage's output for micro-batch m.
  std::function<void(at::Tensor& x, int64_t m)> recv;
  // Not the last stage: passes micro-batch m's output on.
  std::function<void(const at::Tensor& x, int64_t m)> send;
  bool keep_hidden = false;  // StageOutput::hidden is filled (the in-process ranks feed it on)
};

struct StageOutput {
  std::map<int64_t, at::Tensor> layer_out;      // [B, S or P, H] residual after layer l
  std::map<int64_t, at::Tensor> attn_out;       // [B, S or P, H] residual after layer l's attention
  std::map<int64_t, at::Tensor> router_logits;  // [B, S or P, E]
  std::map<int64_t, at::Tensor> topk_ids;       // [B, S or P, k]
  at::Tensor logits;                            // last stage: [B, S or P, V]
  at::Tensor hidden;                            // keep_hidden: [B, S, H] the stage's output
};

// Called on every layer output this rank computes, before it is passed on (steering).
using Intervention = std::function<void(int64_t layer, at::Tensor& hidden, int64_t batch_offset)>;

// Runs this rank's stage (w holds its layers; stage = its pipeline stage) over `in` in
// p.micro_batches micro-batches. `where` (optional) names what the rank is doing, for error reports.
StageOutput run_stage(const ModelWeights& w, const ModelConfig& c, const ParallelPlan& p, int64_t stage,
                      const ForwardInputs& in, Comm& comm, const CaptureSpec& capture, const StageTransport& io,
                      const Intervention& intervene = nullptr, std::string* where = nullptr);

}  // namespace sc
