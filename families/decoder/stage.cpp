#include "families/decoder/stage.h"

#include <algorithm>

#include <ATen/core/grad_mode.h>

#include "checks/sharding.h"

namespace sc {

StageOutput run_stage(const ModelWeights& w, const ModelConfig& c, const ParallelPlan& p, int64_t stage,
                      const ForwardInputs& in, Comm& comm, const CaptureSpec& capture, const StageTransport& io,
                      const Intervention& intervene, std::string* where) {
  at::NoGradGuard no_grad;
  auto at_ = [&](const std::string& s) {
    if (where) *where = s;
  };
  const at::Tensor& batch_ref = in.input_ids.defined() ? in.input_ids : in.hidden_states;
  const int64_t B = batch_ref.size(0), S = batch_ref.size(1), H = c.hidden_size;
  const int64_t mb = std::max<int64_t>(1, std::min<int64_t>(p.micro_batches, B));
  const bool first = stage == 0, last = stage == p.pp - 1;
  // Compute dtype and device: the weights'.
  const at::Tensor& some_weight = w.layers.empty() ? w.lm_head : w.layers.front().input_norm;
  const at::ScalarType dtype = some_weight.scalar_type();
  const at::Device device = some_weight.device();
  const int64_t first_layer = w.layers.empty() ? -1 : w.layers.front().index;
  const at::Tensor positions = capture.positions.defined() ? capture.positions.to(device) : at::Tensor();
  auto keep = [](const at::Tensor& t, const at::Tensor& pos) { return pos.defined() ? select_positions(t, pos) : t; };
  // Micro-batch m's outputs are appended after those of m - 1 (the fault hook assembles them in reverse).
  const bool reversed = last && fault(comm, faults::Kind::MicroBatchOrder) != nullptr;
  auto append = [&](at::Tensor& dst, const at::Tensor& part) {
    if (!dst.defined()) {
      dst = part;
    } else {
      dst = reversed ? at::cat({part, dst}, 0) : at::cat({dst, part}, 0);
    }
  };
  StageOutput out;
  for (int64_t m = 0; m < mb; ++m) {
    auto [b0, b1] = chunk_range(B, mb, m);
    if (b1 <= b0) continue;
    ForwardInputs part;
    part.positions_from_mask = in.positions_from_mask;
    if (in.input_ids.defined()) part.input_ids = in.input_ids.slice(0, b0, b1);
    if (in.attention_mask.defined()) {
      const bool wrong_rows = m > 0 && fault(comm, faults::Kind::MicroBatchMask) != nullptr;
      part.attention_mask = wrong_rows ? in.attention_mask.slice(0, 0, b1 - b0) : in.attention_mask.slice(0, b0, b1);
    }
    if (in.position_ids.defined())
      part.position_ids = in.position_ids.size(0) == 1 ? in.position_ids : in.position_ids.slice(0, b0, b1);
    if (!first && fault(comm, faults::Kind::StagePositions)) part.positions_from_mask = false;
    AttentionContext actx = make_attention_context(c, part, b1 - b0, S, dtype, device);
    actx.kernels = w.kernels;
    if (comm.probe && first_layer >= 0) {
      const at::Tensor pos = default_position_ids(part, b1 - b0, S, device);
      comm.probe->record_at(first_layer, Tap::AttnMask, actx.mask.expand({b1 - b0, 1, S, S}).select(1, 0));
      comm.probe->record_at(first_layer, Tap::Positions, pos.expand({b1 - b0, S}));
    }
    at::Tensor x;
    if (in.hidden_states.defined()) {
      x = in.hidden_states.slice(0, b0, b1);
    } else if (first) {
      at_("embedding");
      x = embed_tokens(w, part.input_ids);
    } else {
      at_("receiving stage " + std::to_string(stage - 1) + " activations");
      x = at::empty({b1 - b0, S, H}, at::TensorOptions().dtype(dtype).device(device));
      io.recv(x, m);
    }
    const at::Tensor pos = positions.defined() ? positions.slice(0, b0, b1) : at::Tensor();
    for (const LayerWeights& lw : w.layers) {
      at_("layer " + std::to_string(lw.index));
      LayerOutput lo = decoder_layer_forward(lw, c, w.attn_layout, x, actx, comm);
      x = lo.hidden;
      if (intervene) intervene(lw.index, x, b0);
      if (capture.wants_layer(lw.index)) {
        append(out.layer_out[lw.index], keep(x, pos));
        append(out.attn_out[lw.index], keep(lo.attn_residual, pos));
      }
      if (capture.router && lo.routing.logits.defined()) {
        const int64_t b = x.size(0);
        append(out.router_logits[lw.index], keep(lo.routing.logits.reshape({b, S, -1}), pos));
        append(out.topk_ids[lw.index], keep(lo.routing.ids.reshape({b, S, -1}), pos));
      }
    }
    if (io.keep_hidden) append(out.hidden, x);
    if (!last) {
      at_("sending to stage " + std::to_string(stage + 1));
      if (io.send) io.send(x.contiguous(), m);
    } else if (w.has_head()) {
      at_("lm_head");
      append(out.logits, final_logits(w, c, pos.defined() ? select_positions(x, pos) : x, comm));
    }
  }
  at_("done");
  return out;
}

}  // namespace sc
