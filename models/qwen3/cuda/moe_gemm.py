"""Grouped expert GEMMs of the fused MoE path (Kernels::moe_gemm), in Triton for Hopper (sm_90a).

Compiled ahead of time into the C++ build by moe_gemm_aot.py (cubins launched through the CUDA
driver by moe_gemm.cpp); nothing here runs at run time. The rows are the token-expert pairs
already grouped by expert (fused.cu sort_pairs + gather_rows); `tiles` lists each expert's
BLOCK_M-row tiles as (expert, first row, expert's end row), made on the device by
fused.cu moe_tiles, with their count in n_tiles (no host synchronisation).

A tile reads BLOCK_M rows through a TMA descriptor from its first row on; rows past the expert's
end belong to the next expert (or lie past the tensor, where TMA reads zeros) and are not stored.
One program per SM walks the tiles expert by expert, so that the programs running at once share
the expert's weights in L2.

Plain (SWIGLU False; the one variant the build compiles, for both projections): out [rows, N] =
A B^T, B [El * N, K] (gate_up: N = 2I, then fused.cu silu_mul_weight; down: N = H).
SWIGLU (kept for tools/gpu/check_moe_gemm.py, slower than plain + silu_mul_weight at every routing
timed): B is the stacked [gate; up] weights [El * 2I, H]; each tile computes gate and up for the
same BLOCK_N columns and stores silu(gate) * up * routing weight [rows, I], with the arithmetic of
fused.cu silu_mul_weight on bf16-rounded gate and up (bit-identical to the unfused path).
"""
import triton
import triton.language as tl
from triton.language.extra import libdevice


@triton.jit
def moe_gemm(a_desc, b_desc, out_ptr, tiles_ptr, n_tiles_ptr, pair_of_row_ptr, weights_ptr,
             N, stride_out, b_rows_per_expert, up_offset, K, programs,
             BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, SWIGLU: tl.constexpr, WS: tl.constexpr = False):
    num_n = N // BLOCK_N
    total = tl.load(n_tiles_ptr) * num_n
    for tile in range(tl.program_id(0), total, programs):
        mt = tile // num_n
        nt = tile % num_n
        e = tl.load(tiles_ptr + 3 * mt)
        r0 = tl.load(tiles_ptr + 3 * mt + 1)
        rend = tl.load(tiles_ptr + 3 * mt + 2)
        brow = e * b_rows_per_expert + nt * BLOCK_N
        acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
        if SWIGLU:
            acc_up = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
        for k in tl.range(0, K, BLOCK_K, warp_specialize=WS):
            a = a_desc.load([r0, k])
            acc = tl.dot(a, b_desc.load([brow, k]).T, acc)
            if SWIGLU:
                acc_up = tl.dot(a, b_desc.load([brow + up_offset, k]).T, acc_up)
        rows = r0 + tl.arange(0, BLOCK_M)
        cols = nt * BLOCK_N + tl.arange(0, BLOCK_N)
        valid = rows < rend
        if SWIGLU:
            g = acc.to(tl.bfloat16).to(tl.float32)
            u = acc_up.to(tl.bfloat16).to(tl.float32)
            pair = tl.load(pair_of_row_ptr + rows, mask=valid, other=0)
            w = tl.load(weights_ptr + pair, mask=valid, other=0.0).to(tl.float32)
            res = (tl.math.div_rn(g, 1.0 + libdevice.exp(-g)) * u * w[:, None]).to(tl.bfloat16)
        else:
            res = acc.to(tl.bfloat16)
        tl.store(out_ptr + rows[:, None].to(tl.int64) * stride_out + cols[None, :], res, mask=valid[:, None])
