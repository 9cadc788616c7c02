// LibTorch entry points of the fused CUDA kernels (Kernels::fused; kernels in cuda/fused.cu).
// Compiled in where CMake found nvcc and a CUDA LibTorch (fused_compiled()); elsewhere every call
// throws std::logic_error (require_kernels refuses `fused` before any forward gets here).
// Inputs: CUDA tensors of bfloat16 or float, all of one dtype; shapes as named.
#pragma once
#include <cstdint>
#include <utility>

#include <vector>

#include <ATen/ATen.h>

namespace sc::fused {

bool compiled();
// Our Triton grouped expert GEMMs (Kernels::moe_gemm, cuda/moe_gemm.h) are compiled in; usable on
// `device` (a compute capability 9.0 GPU); fit hidden H and expert width I (else experts() keeps
// _grouped_mm for that layer).
bool moe_gemm_compiled();
bool moe_gemm_usable(at::Device device);
bool moe_gemm_fits(int64_t H, int64_t I);

// Sizes the kernels handle; outside them the forward keeps the LibTorch ops for that part
// (route_topk: experts and top-k; experts: local experts and top-k). kMaxLocalExperts is
// at::_grouped_mm's limit on groups (torch 2.11 takes at most 1023, "Can't process more than 1024
// groups", checked on an H200), which bounds the whole grouped path (kernels.h grouped_experts).
constexpr int64_t kMaxRouterExperts = 1024, kMaxTopK = 32, kMaxLocalExperts = 1023;

// In place on x [B, S, heads, D] (last dimension contiguous, any row stride; the q or k
// projection output viewed per head): RMSNorm over D times weight [D], then RoPE with cos / sin
// [1 or B, S, D].
void head_norm_rope_(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& cos, const at::Tensor& sin,
                     double eps);

// {a + b, RMSNorm(a + b) * w} over the last dimension.
std::pair<at::Tensor, at::Tensor> add_rms_norm(const at::Tensor& a, const at::Tensor& b, const at::Tensor& w,
                                               double eps);

// Router softmax (fp32) + top-k from logits [T, E]: {ids [T, K] int64, weights [T, K] logits' dtype}.
std::pair<at::Tensor, at::Tensor> route_topk(const at::Tensor& logits, int64_t K, bool norm_topk_prob);
// cuda::random_fill into a new float32 tensor of `shape` (outer * mid * inner elements) on the CUDA
// `device`: the counter-hash random values of random_weights in one kernel.
at::Tensor random_fill(const std::vector<int64_t>& shape, int64_t outer, int64_t mid, int64_t inner, int64_t extent,
                       int64_t begin, uint64_t key, float scale, float offset, at::Device device);

// The token-expert pairs of ids [T, K] (global expert ids) grouped by local expert (global ids
// [first_expert, first_expert + El)), in one counting-sort pass on the device. Expert e's rows start
// at the end of expert e - 1 rounded up to a multiple of `pad` (1: contiguous, at::_grouped_mm's
// layout; moe_gemm's tile height: the padded layout of our expert GEMM). Rows inside one expert are
// in no fixed order.
struct PairLayout {
  at::Tensor offs;         // [El] int32: each expert's end row (its first: offs[e - 1] rounded up to pad)
  at::Tensor row_of_pair;  // [T K] int32: the row of pair t K + slot, -1 for another rank's expert
  at::Tensor pair_of_row;  // [rows] int32: the pair of each row, -1 for padding and unused rows
  int64_t rows = 0;        // the buffers' row count, enough for any routing: T K + El (pad - 1) (T K if 0 or pad 1)
};
PairLayout group_pairs(const at::Tensor& ids, int64_t El, int64_t first_expert, int pad);

// Routed experts over the stacked local experts gate_up [El, 2I, H], down [El, H, I] (global ids
// first_expert ..): pairs grouped by expert in one kernel, rows gathered, the two grouped GEMMs
// (at::_grouped_mm), SiLU * up * routing weight fused, each token's rows summed in fp32.
// With moe_gemm (bfloat16, widths that fit its tiles: moe_gemm_fits) the two GEMMs are ours
// (cuda/moe_gemm.h); same values (the GEMMs accumulate in the same order).
// x [T, H], ids / weights [T, K]; returns [T, H] (zero rows for tokens routed only elsewhere).
at::Tensor experts(const at::Tensor& x, const at::Tensor& ids, const at::Tensor& weights, const at::Tensor& gate_up,
                   const at::Tensor& down, int64_t first_expert, bool moe_gemm = false);

}  // namespace sc::fused
