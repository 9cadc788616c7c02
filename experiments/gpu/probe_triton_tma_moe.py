"""Probe: a Triton grouped GEMM with Hopper TMA loads (host tensor descriptors) and 64-row tiles
against at::_grouped_mm (CUTLASS cooperative 128 x 256 x 64) at the Qwen3-MoE expert widths.

The rows are already sorted by expert (as our gather kernel leaves them). Each expert's rows are cut
into BLOCK_M tiles; a tile reads BLOCK_M rows from its expert's first row on (rows past the expert's
end belong to the next expert or lie past the tensor, which TMA fills with zeros) and stores only
the expert's own rows. 64-row tiles waste less of each expert's last tile than 128-row ones (~412
rows per expert: 448 against 512 rows computed). Persistent (one program per SM, tiles in expert
order so that concurrent tiles share the expert's weights in L2) and one-program-per-tile variants.

    python3 experiments/gpu/probe_triton_tma_moe.py [--hidden 4096] [--inter 1536]
"""
import os
import sys

import torch
import triton
import triton.language as tl
from triton.tools.tensor_descriptor import TensorDescriptor

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools", "gpu"))
from probe_util import problem_args, random_routing, timed  # noqa: E402


@triton.jit
def grouped_tma(a_desc, b_desc, c_ptr, tile_expert, tile_row0, tile_rowend, n_mtiles, N, K, stride_cm,
                BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, PROGRAMS: tl.constexpr,
                PERSISTENT: tl.constexpr):
    num_n = N // BLOCK_N
    total = n_mtiles * num_n
    start = tl.program_id(0)
    step = PROGRAMS if PERSISTENT else total
    for tile in range(start, total, step):
        mt = tile // num_n
        nt = tile % num_n
        e = tl.load(tile_expert + mt)
        r0 = tl.load(tile_row0 + mt)
        rend = tl.load(tile_rowend + mt)
        acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
        for k in range(0, K, BLOCK_K):
            a = a_desc.load([r0, k])
            b = b_desc.load([e * N + nt * BLOCK_N, k])
            acc = tl.dot(a, b.T, acc)
        rows = r0 + tl.arange(0, BLOCK_M)
        cols = nt * BLOCK_N + tl.arange(0, BLOCK_N)
        tl.store(c_ptr + rows[:, None].to(tl.int64) * stride_cm + cols[None, :], acc.to(tl.bfloat16),
                 mask=rows[:, None] < rend)


def tiles(counts, block_m):
    starts = torch.cumsum(counts, 0) - counts
    e_list, r0, rend = [], [], []
    for e, (s, n) in enumerate(zip(starts.tolist(), counts.tolist())):
        for m in range(0, n, block_m):
            e_list.append(e)
            r0.append(s + m)
            rend.append(s + n)
    mk = lambda v: torch.tensor(v, dtype=torch.int32, device="cuda")
    return mk(e_list), mk(r0), mk(rend), len(e_list)




def main():
    a = problem_args(__doc__)
    T, H, I, E, K = a.tokens, a.hidden, a.inter, a.experts, a.topk
    P = T * K
    torch.manual_seed(0)
    ids, counts, offs = random_routing(T, E, K)
    sms = torch.cuda.get_device_properties(0).multi_processor_count
    for name, n, k in (("gate_up", 2 * I, H), ("down", H, I)):
        w = torch.randn(E, n, k, device="cuda", dtype=torch.bfloat16) * 0.02
        xs = torch.randn(P, k, device="cuda", dtype=torch.bfloat16)
        flops = 2.0 * P * n * k
        ref = torch._grouped_mm(xs, w.transpose(1, 2), offs)
        t0 = timed(lambda: torch._grouped_mm(xs, w.transpose(1, 2), offs))
        print(f"{name}: _grouped_mm {t0:.3f} ms = {flops / t0 / 1e9:.0f} TFLOP/s", flush=True)
        w2 = w.view(E * n, k)
        for bm, bn, bk, warps, stages in ((64, 256, 64, 4, 4), (64, 128, 64, 4, 4), (128, 256, 64, 8, 3),
                                          (128, 128, 64, 8, 4), (64, 256, 64, 4, 3), (128, 256, 64, 8, 4)):
            if n % bn:
                continue
            te, tr0, tre, nm = tiles(counts, bm)
            a_desc = TensorDescriptor.from_tensor(xs, [bm, bk])
            b_desc = TensorDescriptor.from_tensor(w2, [bn, bk])
            out = torch.empty(P, n, device="cuda", dtype=torch.bfloat16)
            for persistent in (True, False):
                progs = sms if persistent else nm * (n // bn)

                def run():
                    grouped_tma[(progs,)](a_desc, b_desc, out, te, tr0, tre, nm, n, k, out.stride(0),
                                          BLOCK_M=bm, BLOCK_N=bn, BLOCK_K=bk, PROGRAMS=progs, PERSISTENT=persistent,
                                          num_warps=warps, num_stages=stages)
                try:
                    t = timed(run)
                except Exception as ex:  # e.g. shared memory
                    print(f"  {bm}x{bn}x{bk} w{warps} s{stages} persistent={persistent}: {type(ex).__name__}: {str(ex)[:120]}")
                    continue
                diff = ((out.float() - ref.float()) ** 2).sum().item() / (ref.float() ** 2).sum().item()
                print(f"  triton TMA {bm}x{bn}x{bk} w{warps} s{stages} persistent={persistent}: {t:.3f} ms = "
                      f"{flops / t / 1e9:.0f} TFLOP/s ({t0 / t:.2f}x), NMSE vs _grouped_mm {diff:.1e}", flush=True)


if __name__ == "__main__":
    main()
