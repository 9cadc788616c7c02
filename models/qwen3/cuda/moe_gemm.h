// The grouped expert GEMMs of Kernels::moe_gemm: Triton kernels (moe_gemm.py) compiled ahead of
// time for sm_90a (moe_gemm_aot.py, run by CMake where Triton is importable), loaded and launched
// here through the CUDA driver API. Torch-free: raw device pointers, the stream as void*.
// Built only with the fused kernels and Triton (SC_HAVE_MOE_GEMM); bfloat16 only.
//
// Rows are the P token-expert pairs grouped by local expert (cuda/fused.h sort_pairs and
// gather_rows); `tiles` is the tile table of moe_tiles (fused.h) for block_m rows.
#pragma once
#include <cstddef>
#include <cstdint>

namespace sc::cuda {

// One compiled kernel (generated table, moe_gemm_aot.py).
struct MoeGemmTma {
  int swizzle, elem_size, elem_type;  // CUtensorMapSwizzle, bytes, CUtensorMapDataType
  int box[2];                         // rows, columns of one TMA box
};
struct MoeGemmImage {
  const char* variant;  // "gemm"
  const char* kernel;   // entry name in the cubin
  const unsigned char* cubin;
  size_t cubin_size;
  int shared;       // dynamic shared memory, bytes
  int num_warps;
  const char* params;  // the launch parameters: T (CUtensorMap), i32, i64, p (pointer), 0 (null pointer)
  MoeGemmTma tma[2];   // a_desc, b_desc
  int block_m, block_n, block_k;
  bool swiglu;
  const char* args;  // the kernel's run-time arguments by name, in order (the launcher checks them)
};
extern const MoeGemmImage kMoeGemmImages[];
extern const int kNumMoeGemmImages;

// Whether the kernels can run on device `dev` (-1: the current one): compute capability 9.0, as
// the cubins are sm_90a.
bool moe_gemm_usable(int dev = -1);
// Rows per tile of both kernels (the tile table is shared).
int moe_gemm_block_m();
// Whether the widths suit the kernel (H, 2I multiples of its column tile, H, I of its k step; row
// strides 16-element aligned).
bool moe_gemm_fits(int64_t H, int64_t I);

// gu [P, 2I] = xs gate_up^T for the tiles' rows; xs [P, H], gate_up [El, 2I, H]. Throws
// std::runtime_error naming the kernel and the CUDA error.
void moe_gemm_gate_up(const void* xs, int64_t P, int64_t H, const void* gate_up, int64_t El, int64_t I,
                      const int32_t* tiles, const int32_t* n_tiles, void* gu, void* stream);
// y [P, H] = hidden down^T for the tiles' rows; hidden [P, I], down [El, H, I].
void moe_gemm_down(const void* hidden, int64_t P, int64_t I, const void* down, int64_t El, int64_t H,
                   const int32_t* tiles, const int32_t* n_tiles, void* y, void* stream);

}  // namespace sc::cuda
