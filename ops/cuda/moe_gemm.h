// The grouped expert GEMMs of Kernels::moe_gemm: Triton kernels (moe_gemm.py) compiled ahead of
// time for sm_90a (moe_gemm_aot.py, run by CMake where Triton is importable), loaded and launched
// here through the CUDA driver API. Torch-free: raw device pointers, the stream as void*.
// Built only with the fused kernels and Triton (SC_HAVE_MOE_GEMM); bfloat16 only.
//
// Rows are the token-expert pairs grouped by local expert in the padded layout of cuda/fused.h
// sort_pairs with pad = moe_gemm_block_m() (each expert's rows from a multiple of it on, padding
// rows zeroed by zero_padding_rows); `tiles` is the tile table of moe_tiles for the same block.
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
  MoeGemmTma tma[3];   // a_desc, b_desc, c_desc
  int block_m, block_n, block_k;
  const char* args;  // the kernel's run-time arguments by name, in order (the launcher checks them)
};
extern const MoeGemmImage kMoeGemmImages[];
extern const int kNumMoeGemmImages;

// Whether the kernels can run on device `dev` (-1: the current one): compute capability 9.0, as
// the cubins are sm_90a.
bool moe_gemm_usable(int dev = -1);
// Rows per tile, and the pad of the row layout the kernel needs (fused.h sort_pairs).
int moe_gemm_block_m();
// Whether the widths suit the kernel (H, 2I multiples of its column tile, H, I of its k step; row
// strides 16-element aligned).
bool moe_gemm_fits(int64_t H, int64_t I);

// gu [rows, 2I] = xs gate_up^T for the tiles' rows; xs [rows, H], gate_up [El, 2I, H]; rows: the
// buffers' row count (at least the padded layout's). Throws std::runtime_error naming the kernel
// and the CUDA error.
void moe_gemm_gate_up(const void* xs, int64_t rows, int64_t H, const void* gate_up, int64_t El, int64_t I,
                      const int32_t* tiles, const int32_t* n_tiles, void* gu, void* stream);
// y [rows, H] = hidden down^T for the tiles' rows; hidden [rows, I], down [El, H, I].
void moe_gemm_down(const void* hidden, int64_t rows, int64_t I, const void* down, int64_t El, int64_t H,
                   const int32_t* tiles, const int32_t* n_tiles, void* y, void* stream);

}  // namespace sc::cuda
