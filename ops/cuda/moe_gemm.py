"""Grouped expert GEMM of the fused MoE path (Kernels::moe_gemm), in Triton for Hopper (sm_90a).

Compiled ahead of time into the C++ build by moe_gemm_aot.py (cubins launched through the CUDA
driver by moe_gemm.cpp); nothing here runs at run time. One kernel serves both projections:
out [rows, N] = A B^T with B [El * N, K] (gate_up: N = 2I, then fused.cu silu_mul_weight; down:
N = H).

The rows are the token-expert pairs grouped by expert in the padded layout of fused.cu sort_pairs
(pad = BLOCK_M): every expert's rows start at a multiple of BLOCK_M, so a tile holds rows of one
expert only and the rows between an expert's end and the next multiple are padding (zeros, written
by fused.cu zero_padding_rows; their results are never read). `tiles` lists the tiles as (expert,
first row, expert's end row), made on the device by fused.cu moe_tiles, with their count in
n_tiles (no host synchronisation).

A tile reads A and B through TMA descriptors and stores through one (whole tiles, no row mask: the
reason for the padded layout), in two column halves of BLOCK_N / 2 (a smaller staging buffer, so
four pipeline stages fit in shared memory). One program per SM walks the tiles expert by expert, so
that the programs running at once share the expert's weights in L2, and the tile loop is flattened
into the k loop, so that the next tile's loads are issued while this tile is stored.
"""
import triton
import triton.language as tl


@triton.jit
def moe_gemm(a_desc, b_desc, c_desc, tiles_ptr, n_tiles_ptr, N, b_rows_per_expert, K, programs,
             BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr):
    num_n = N // BLOCK_N
    total = tl.load(n_tiles_ptr) * num_n
    k_tiles = tl.cdiv(K, BLOCK_K)
    for tile in tl.range(tl.program_id(0), total, programs, flatten=True):
        mt = tile // num_n
        nt = tile % num_n
        e = tl.load(tiles_ptr + 3 * mt)
        r0 = tl.load(tiles_ptr + 3 * mt + 1)
        brow = e * b_rows_per_expert + nt * BLOCK_N
        acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
        for ki in range(k_tiles):
            k = ki * BLOCK_K
            acc = tl.dot(a_desc.load([r0, k]), b_desc.load([brow, k]).T, acc)
        halves = tl.permute(tl.reshape(acc, (BLOCK_M, 2, BLOCK_N // 2)), (0, 2, 1))
        left, right = tl.split(halves)
        c_desc.store([r0, nt * BLOCK_N], left.to(tl.bfloat16))
        c_desc.store([r0, nt * BLOCK_N + BLOCK_N // 2], right.to(tl.bfloat16))
