"""Probe: the expert GEMM with two tile heights in one expert-ordered pass. Rows are laid out from
multiples of 64 (sort_pairs with pad 64); each expert's rows are cut into 128-row tiles, and its
last rows into one 64-row tile when at most 64 remain (else one more 128-row tile). The padding
rows computed fall from 15 - 22 % (128-row tiles) to ~8 %, while every tile of an expert still runs
next to the others, sharing the expert's weights in L2 (a separate pass for the short tiles would
read half the experts' weights from memory again).

Against the production kernel (ops/cuda/moe_gemm.py, 128-row tiles, pad 128) at the
Qwen3-235B-A22B expert widths, in alternation; outputs checked against _grouped_mm.

    python3 experiments/gpu/probe_mixed_tiles.py [--skew S]
"""
import os
import sys

import torch
import triton
import triton.language as tl
from triton.tools.tensor_descriptor import TensorDescriptor

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools", "gpu"))
from probe_util import med, padded_layout, problem_args, random_routing, runs  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "ops", "cuda"))
from moe_gemm import moe_gemm  # noqa: E402


@triton.jit
def _tile(a_desc, b_desc, c_desc, r0, brow, col0, K, BM: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr):
    acc = tl.zeros((BM, BN), dtype=tl.float32)
    for k in range(0, K, BK):
        acc = tl.dot(a_desc.load([r0, k]), b_desc.load([brow, k]).T, acc)
    halves = tl.permute(tl.reshape(acc, (BM, 2, BN // 2)), (0, 2, 1))
    left, right = tl.split(halves)
    c_desc.store([r0, col0], left.to(tl.bfloat16))
    c_desc.store([r0, col0 + BN // 2], right.to(tl.bfloat16))


@triton.jit
def mixed_gemm(a_desc, a64_desc, b_desc, c_desc, c64_desc, tiles_ptr, n_tiles_ptr, N, b_rows_per_expert, K, programs,
               BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, FLATTEN: tl.constexpr):
    num_n = N // BLOCK_N
    total = tl.load(n_tiles_ptr) * num_n
    for tile in tl.range(tl.program_id(0), total, programs, flatten=FLATTEN):
        mt = tile // num_n
        nt = tile % num_n
        e = tl.load(tiles_ptr + 3 * mt)
        r0 = tl.load(tiles_ptr + 3 * mt + 1)
        short = tl.load(tiles_ptr + 3 * mt + 2)
        brow = e * b_rows_per_expert + nt * BLOCK_N
        if short:
            _tile(a64_desc, b_desc, c64_desc, r0, brow, nt * BLOCK_N, K, 64, BLOCK_N, BLOCK_K)
        else:
            _tile(a_desc, b_desc, c_desc, r0, brow, nt * BLOCK_N, K, 128, BLOCK_N, BLOCK_K)


def mixed_layout(counts):
    """Rows from multiples of 64 (probe_util.padded_layout); tiles (expert, first row, short) expert by
    expert; the rows the tiles compute."""
    dest, _, _, rows = padded_layout(counts, 64)
    padded = (counts + 63) // 64 * 64
    pstart = torch.cumsum(padded, 0) - padded
    table, computed = [], 0
    for e, (s, n) in enumerate(zip(pstart.tolist(), counts.tolist())):
        r = 0
        while r < n:
            short = n - r <= 64
            table += [e, s + r, int(short)]
            r += 64 if short else 128
            computed += 64 if short else 128
    return dest, torch.tensor(table, dtype=torch.int32, device=counts.device), len(table) // 3, rows + 64, computed


def main():
    a = problem_args(__doc__, [("--skew", float, 0.0, "uneven expert loads (probe_util.random_routing)")])
    T, H, I, E, K = a.tokens, a.hidden, a.inter, a.experts, a.topk
    P = T * K
    torch.manual_seed(0)
    ids, counts, offs = random_routing(T, E, K, a.skew)
    sms = torch.cuda.get_device_properties(0).multi_processor_count
    d128, t128, n128, rows128 = padded_layout(counts, 128)
    dmix, tmix, nmix, rowsmix, computed = mixed_layout(counts)
    print(f"{T} tokens, skew {a.skew}: rows per expert min {int(counts.min())} mean {P / E:.0f} max {int(counts.max())}; "
          f"rows computed: 128-row tiles {rows128} (+{100.0 * (rows128 - P) / P:.1f} %), mixed {computed} "
          f"(+{100.0 * (computed - P) / P:.1f} %, {int((tmix.view(-1, 3)[:, 2] == 1).sum())} short tiles)", flush=True)
    nt128 = torch.tensor([n128], dtype=torch.int32, device="cuda")
    ntmix = torch.tensor([nmix], dtype=torch.int32, device="cuda")
    for name, N, Kd in (("gate_up", 2 * I, H), ("down", H, I)):
        w = torch.randn(E, N, Kd, device="cuda", dtype=torch.bfloat16) * 0.02
        x = torch.randn(P, Kd, device="cuda", dtype=torch.bfloat16)
        ref = torch._grouped_mm(x, w.transpose(1, 2), offs)
        flops = 2.0 * P * N * Kd
        b = TensorDescriptor.from_tensor(w.view(E * N, Kd), [256, 64])
        x128 = torch.zeros(rows128, Kd, device="cuda", dtype=torch.bfloat16)
        x128[d128] = x
        y128 = torch.empty(rows128, N, device="cuda", dtype=torch.bfloat16)
        xm = torch.zeros(rowsmix, Kd, device="cuda", dtype=torch.bfloat16)
        xm[dmix] = x
        ym = torch.empty(rowsmix, N, device="cuda", dtype=torch.bfloat16)
        a128, c128 = TensorDescriptor.from_tensor(x128, [128, 64]), TensorDescriptor.from_tensor(y128, [128, 128])
        am, am64 = TensorDescriptor.from_tensor(xm, [128, 64]), TensorDescriptor.from_tensor(xm, [64, 64])
        cm, cm64 = TensorDescriptor.from_tensor(ym, [128, 128]), TensorDescriptor.from_tensor(ym, [64, 128])
        names = ["production (128-row tiles)"]
        fns = [lambda: moe_gemm[(sms,)](a128, b, c128, t128, nt128, N, N, Kd, sms, BLOCK_M=128, BLOCK_N=256, BLOCK_K=64,
                                        num_warps=8, num_stages=4)]
        outs = [lambda: y128[d128]]
        for flatten, stages in ((False, 4), (True, 4), (False, 3)):
            def f(flatten=flatten, stages=stages):
                mixed_gemm[(sms,)](am, am64, b, cm, cm64, tmix, ntmix, N, N, Kd, sms, BLOCK_N=256, BLOCK_K=64,
                                   FLATTEN=flatten, num_warps=8, num_stages=stages)
            label = f"mixed 128 / 64{' flatten' if flatten else ''} s{stages}"
            if not runs(f"{name} {label}", f):
                continue
            names.append(label)
            fns.append(f)
            outs.append(lambda: ym[dmix])
        times = med(fns)
        for i, (nm, ms) in enumerate(zip(names, times)):
            fns[i]()
            torch.cuda.synchronize()
            eq = torch.equal(outs[i](), ref)
            print(f"  {name:8s} {nm:32s} {ms:.3f} ms = {flops / ms / 1e9:4.0f} TFLOP/s {'equal' if eq else 'DIFFERS'}", flush=True)


if __name__ == "__main__":
    main()
