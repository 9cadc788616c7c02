// Fused CUDA kernels of the fast path (Kernels::fused, ops/kernels.h). Torch-free: raw
// device pointers, the element type as an enum, the stream as void* (a cudaStream_t); each call
// returns 0 or the cudaError_t of the launch. Built only where CMake finds nvcc and a CUDA
// LibTorch (SC_HAVE_CUDA_KERNELS); the LibTorch wrappers are in ops/fused_ops.cpp.
//
// Shapes use T tokens (B * S rows), K routed experts per token, P = T * K (token, slot) pairs with
// pair p = t * K + slot, El local experts, H hidden, I expert intermediate, D head dim.
// Arithmetic is fp32 inside every kernel with one rounding to the element type per output
// (HF's eager modules round after each op; see the tolerances in tests/torch/test_gpu.cpp).
#pragma once
#include <cstdint>

namespace sc::cuda {

enum class Elem : int { f32 = 0, bf16 = 1 };

// In place on x, viewed as T rows (row stride `row_stride` elements) of `heads` heads of D
// contiguous elements: per head RMSNorm over D (fp32, eps) times weight[D], then rotary embedding
// with HF's rotate_half pairing (j, j + D/2). cos / sin are [cos_batches, S, D] (contiguous);
// token t = b * S + s reads row (cos_batches == 1 ? 0 : b) * S + s. D even, D <= 1024.
int head_norm_rope(Elem e, void* x, int64_t T, int64_t S, int64_t row_stride, int heads, int D,
                   const void* weight, const void* cos, const void* sin, int64_t cos_batches, float eps,
                   void* stream);

// h = a + b (rounded to the element type), n = RMSNorm(h) * w; rows of H contiguous elements.
int add_rms_norm(Elem e, const void* a, const void* b, const void* w, void* h, void* n, int64_t rows, int64_t H,
                 float eps, void* stream);

// Router top-k from logits [T, E] (E <= 1024): softmax in fp32, the K largest in descending order
// (the lower expert id first on equal probabilities; K <= 32), renormalised to sum 1 when `norm`;
// ids [T, K] int64, weights [T, K] in the element type.
int route_topk(Elem e, const void* logits, int64_t T, int E, int K, bool norm, int64_t* ids, void* weights,
               void* stream);

// shardcheck's counter-hash random values (families/decoder/weights.h random_weights), float32:
// out[r, i] for rows r in [0, outer * mid), i in [0, inner) is element
// ((r / mid) * extent + begin + r % mid) * inner + i of the full tensor, u = the top 24 bits of
// splitmix64(key + index * 0x9e3779b97f4a7c15) mapped to [-1, 1), value = offset + scale * u
// (two roundings, as the host computes it).
int random_fill(float* out, int64_t outer, int64_t mid, int64_t inner, int64_t extent, int64_t begin, uint64_t key,
                float scale, float offset, void* stream);

// Rows of the pair buffers in the layout of sort_pairs with `pad`: enough for any routing.
inline int64_t padded_rows(int64_t P, int El, int pad) { return P + (P > 0 && pad > 1 ? int64_t(El) * (pad - 1) : 0); }

// Groups the P pairs by local expert (global ids [first, first + El), El <= 8192). Expert e's rows
// start at the end of expert e - 1 rounded up to a multiple of `pad` (pad 1: contiguous, the layout
// of at::_grouped_mm; pad = moe_gemm_block_m(): the padded layout of the Triton expert GEMM, whose
// tiles then hold one expert's rows each). offs [El] int32: each expert's end row (its first row is
// offs[e - 1] rounded up to pad); row_of_pair [P]: the row of each pair (-1 for another rank's
// expert); pair_of_row [padded_rows(P, El, pad)]: the pair of each row (-1 for padding rows and rows
// past the last local one); workspace: El + 1 int32. Rows inside one expert are in no fixed order
// (each row's GEMM result does not depend on its position, so the layer output is deterministic).
int sort_pairs(const int64_t* ids, int64_t P, int64_t first, int El, int pad, int32_t* offs, int32_t* row_of_pair,
               int32_t* pair_of_row, int32_t* workspace, void* stream);

// The tile table of the grouped expert GEMMs (moe_gemm.h) from sort_pairs' offs [El] and pad:
// each local expert's rows cut into block_m-row tiles, (expert, first row, expert's end row) per
// tile in tiles [max_tiles, 3], expert by expert, and their count in *n_tiles. max_tiles >=
// ceil(P / block_m) + El always suffices; El <= 8192.
int moe_tiles(const int32_t* offs, int El, int pad, int block_m, int64_t max_tiles, int32_t* tiles, int32_t* n_tiles,
              void* stream);

// Zeros of the padding rows of a buffer in sort_pairs' layout with `pad` (rows of row_bytes bytes):
// the rows a tile of the Triton expert GEMM reads past its expert's end. Nothing to do for pad 1.
int zero_padding_rows(const int32_t* offs, int El, int pad, int64_t row_bytes, void* buf, void* stream);

// xs[row_of_pair[t K + slot]] = x[t] for the pairs with a local row (each token's row read once);
// x [T, H], xs [rows of sort_pairs' layout, H], K <= 64.
int gather_rows(Elem e, const void* x, int64_t H, const int32_t* row_of_pair, int64_t T, int K, void* xs,
                void* stream);

// hidden[r, i] = silu(gu[r, i]) * gu[r, I + i] * weights[pair_of_row[r]] for the rows r < rows
// that hold a pair (the others are left as they are); gu [rows, 2I], hidden [rows, I], weights [P]
// (the routing weights in pair order).
int silu_mul_weight(Elem e, const void* gu, int64_t rows, int64_t I, const int32_t* pair_of_row, const void* weights,
                    void* hidden, void* stream);

// out[t] = sum over slots of y[row_of_pair[t K + slot]] (fp32 accumulation in slot order; rows
// of -1 skipped), y [rows of sort_pairs' layout, H], out [T, H].
int combine_rows(Elem e, const void* y, int64_t T, int K, int64_t H, const int32_t* row_of_pair, void* out,
                 void* stream);

// cudaGetErrorString of a code returned above.
const char* error_string(int code);

}  // namespace sc::cuda
