// Which implementation of the heavy parts a forward uses. The default (all false) is the reference
// path: HF eager numerics, every LibTorch version, every device (model.h). The fast kernels exist
// only where LibTorch provides them (torch >= 2.x headers, CUDA at run time); asking for one that
// is not available throws std::invalid_argument naming it, so a benchmark never silently measures
// the wrong path.
//   sdpa            attention core through at::scaled_dot_product_attention (flash attention with
//                   is_causal when the batch has no padding; the additive mask otherwise), GQA
//                   without materialising repeat_kv. Same math as eager, other summation order.
//   grouped_experts routed experts as two grouped GEMMs (at::_grouped_mm) over the local experts
//                   stacked at load (prepare_kernels), token-expert pairs sorted by expert on the
//                   device, no host synchronisation; the routing weight scales the down
//                   projection's input; top-k rows unsorted and summed with fp32 accumulation
//                   (deterministic).
//                   bfloat16 only (the CUTLASS kernel); other dtypes, and layers with more than
//                   1023 local experts (_grouped_mm's group limit), keep the per-expert loop.
//   fused_norm      RMSNorm through at::rms_norm (one kernel where LibTorch fuses it); rounds once
//                   where HF rounds twice (normalised value cast, then times the weight).
//   fused           our CUDA kernels (ops/cuda/fused.cu, built where nvcc and a CUDA
//                   LibTorch are found): q/k RMSNorm + RoPE in place on the projection output,
//                   residual add + post-attention RMSNorm, router softmax + top-k, and with
//                   grouped_experts the expert grouping (one counting-sort kernel), row gather,
//                   SiLU * up * routing weight and the fp32 combine around the two grouped GEMMs.
//                   bfloat16 and float; fp32 arithmetic inside, one rounding per output.
//   moe_gemm        with grouped_experts + fused: the two expert GEMMs are our Triton kernel
//                   (cuda/moe_gemm.py, compiled ahead of time where Triton is importable at
//                   configure time; sm_90a: H100 / H200) instead of at::_grouped_mm: persistent,
//                   TMA loads and stores, tiles walked expert by expert from a table built on the
//                   device, over a padded row layout (each expert's rows from a multiple of the
//                   128-row tile on, padding rows zeroed). Same values as without it. bfloat16;
//                   widths that do not fit its tiles keep _grouped_mm. Part of `best` where
//                   compiled and usable: on an H200 its GEMMs are 5 - 10 % faster than
//                   _grouped_mm's (tools/gpu/check_moe_gemm.py --time [--skew]) and the 235B layer
//                   0.3 ms faster (bench/results/gpu_layer.md).
#pragma once
#include <string>

#include <ATen/ATen.h>

namespace sc {

struct Kernels {
  bool sdpa = false;
  bool grouped_experts = false;
  bool fused_norm = false;
  bool fused = false;
  bool moe_gemm = false;
  bool any() const { return sdpa || grouped_experts || fused_norm || fused || moe_gemm; }
};

// Compiled in (LibTorch headers provide the op).
bool sdpa_compiled();
bool grouped_mm_compiled();
bool fused_norm_compiled();
bool fused_compiled();
bool moe_gemm_compiled();

// The fastest set usable for weights of `dtype` on `device` (all false on CPU and under 1.13).
Kernels best_kernels(at::Device device, at::ScalarType dtype);
// Throws std::invalid_argument naming the first requested kernel that is unavailable there.
void require_kernels(const Kernels& k, at::Device device, at::ScalarType dtype);
// "eager", or a '+'-joined list such as "sdpa+grouped_experts".
std::string describe(const Kernels& k);
// Parses "auto" (best on CUDA, eager on CPU: the default of run and steer) | "eager" | "best" | a
// '+'- or ','-joined subset of {sdpa, grouped_experts, fused_norm, fused, moe_gemm}.
Kernels parse_kernels(const std::string& s, at::Device device, at::ScalarType dtype);

}  // namespace sc
