"""Probe: which of at::_grouped_mm's two sm90 CUTLASS kernels suits the Qwen3-MoE expert GEMMs?

torch 2.11 picks the kernel from the mean group size: rows / groups <= 128 (or N <= 128) gives the
ping-pong 64 x 128 x 128 tile, anything larger the cooperative 128 x 256 x 64 tile
(aten/src/ATen/native/cuda/GroupMM.cu). Top-8 of 128 experts over 6592 tokens gives ~412 rows per
expert, so every expert's last 128-row tile is on average ~80 % full and the cooperative kernel is
used. This script times both kernels on the same problem. The ping-pong kernel is reached without
copying weights: the expert weights are viewed with R slots per expert (group stride = expert
stride / R, so slot R*e is expert e exactly and the R-1 slots between are never given rows), and
the offsets give each expert's rows to its first slot.

    python3 experiments/gpu/probe_grouped_tiles.py [--tokens 6592] [--hidden 4096] [--inter 1536]

Prints each variant's time and TFLOP/s and checks the outputs are equal.
"""
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools", "gpu"))
from probe_util import problem_args, random_routing, timed  # noqa: E402




def spread(w, slots):
    """[E, N, K] weights viewed as [(E - 1) * slots + 1, N, K]; slot slots*e is expert e (the view
    stops at the last expert's first slot so that it stays inside the storage)."""
    E, N, K = w.shape
    assert w.is_contiguous() and (N * K) % slots == 0
    return w.as_strided(((E - 1) * slots + 1, N, K), (N * K // slots, K, 1))


def spread_offsets(offs, slots):
    """Expert e's end row at slot slots*e and again at each of its empty slots after it."""
    return offs.repeat_interleave(slots)[: (offs.numel() - 1) * slots + 1]


def main():
    a = problem_args(__doc__)
    T, H, I, E, K = a.tokens, a.hidden, a.inter, a.experts, a.topk
    dev = "cuda"
    torch.manual_seed(0)
    P = T * K
    ids, counts, offs = random_routing(T, E, K)
    print(f"{T} tokens top-{K} of {E}: rows per expert min {int(counts.min())} mean {P / E:.0f} max {int(counts.max())}")
    for name, n, k in (("gate_up", 2 * I, H), ("down", H, I)):
        w = torch.randn(E, n, k, device=dev, dtype=torch.bfloat16) * 0.02  # [E, N, K], HF's layout
        xs = torch.randn(P, k, device=dev, dtype=torch.bfloat16)
        flops = 2.0 * P * n * k
        ref = torch._grouped_mm(xs, w.transpose(1, 2), offs)
        t0 = timed(lambda: torch._grouped_mm(xs, w.transpose(1, 2), offs))
        print(f"{name} [{P} x {k}] x [{E} x {k} x {n}]: cooperative 128x256x64 {t0:.3f} ms = {flops / t0 / 1e9:.0f} TFLOP/s")
        for slots in (4, 8):
            if P / ((E - 1) * slots + 1) > 128:
                continue
            ws, os_ = spread(w, slots), spread_offsets(offs, slots)
            out = torch._grouped_mm(xs, ws.transpose(1, 2), os_)
            same = torch.equal(out, ref)
            diff = (out.float() - ref.float()).abs().max().item()
            t = timed(lambda: torch._grouped_mm(xs, ws.transpose(1, 2), os_))
            print(f"  ping-pong 64x128x128 via {slots} slots per expert: {t:.3f} ms = {flops / t / 1e9:.0f} TFLOP/s "
                  f"({t0 / t:.2f}x), equal to cooperative: {same} (max |diff| {diff:.2e})")


if __name__ == "__main__":
    main()
