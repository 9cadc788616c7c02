// tensor_signature (comm.h).
#include "families/decoder/comm.h"

#include <cctype>

#include "models/errors.h"

namespace sc {

std::string tensor_signature(const at::Tensor& t) {
  if (!t.defined()) return "undefined";
  std::string dt = c10::toString(t.scalar_type());
  for (auto& c : dt) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return shape_str(t.sizes().vec()) + " " + dt;
}

}  // namespace sc

namespace sc {

const char* tap_name(Tap t) {
  switch (t) {
    case Tap::Positions: return "rotary positions";
    case Tap::AttnMask: return "attention mask";
    case Tap::LayerIn: return "layer input";
    case Tap::AttnIn: return "input_layernorm output";
    case Tap::QProj: return "q_proj output";
    case Tap::KProj: return "k_proj output";
    case Tap::VProj: return "v_proj output";
    case Tap::QNorm: return "q_norm output";
    case Tap::KNorm: return "k_norm output";
    case Tap::QRope: return "q after RoPE";
    case Tap::KRope: return "k after RoPE";
    case Tap::AttnHeads: return "attention heads (before o_proj)";
    case Tap::OPartial: return "o_proj partial sum (before all_reduce)";
    case Tap::AttnOut: return "attention output (after all_reduce)";
    case Tap::MlpIn: return "post_attention_layernorm output";
    case Tap::RouterLogits: return "router logits";
    case Tap::TopK: return "router top-k";
    case Tap::TopKWeights: return "routing weights";
    case Tap::ExpertsPartial: return "routed experts partial sum (before all_reduce)";
    case Tap::ExpertsOut: return "routed experts output (after all_reduce)";
    case Tap::SharedExpert: return "shared expert output (gated)";
    case Tap::MlpPartial: return "dense MLP partial sum (before all_reduce)";
    case Tap::MlpOut: return "dense MLP output (after all_reduce)";
    case Tap::LayerOut: return "layer output";
    case Tap::FinalNorm: return "final norm output";
    case Tap::LmHeadShard: return "lm_head vocab shard";
    case Tap::Logits: return "logits (after the vocab gather)";
    case Tap::Count: break;
  }
  return "?";
}

std::map<std::pair<int64_t, int>, at::Tensor> Probe::stitched() const {
  std::map<std::pair<int64_t, int>, at::Tensor> out;
  for (const auto& [key, v] : parts) {
    std::vector<at::Tensor> cpu;
    for (const auto& t : v) cpu.push_back(t.cpu());
    out[key] = cpu.size() == 1 ? cpu[0] : at::cat(cpu, 0);
  }
  return out;
}

}  // namespace sc
