"""Probe: expert GEMMs as one dense batched GEMM over a padded [E, cap, K] layout.

Under top-8 of 128 experts with near-uniform routing (shardcheck's random weights), every expert
gets ~412 of 52736 rows and the busiest ~480. at::_grouped_mm's cooperative 128 x 256 tiles then
spend ~20 % of their work on the empty part of each expert's last tile. A strided-batched GEMM
over rows padded to a capacity cap >= the busiest count lets cuBLAS choose its tiles for M = cap.
This script times that, in both orientations (tokens as M, or as N), against _grouped_mm, and a
dense GEMM of the same useful work as the ceiling.

    python3 experiments/gpu/probe_padded_bmm.py [--tokens 6592] [--hidden 4096] [--inter 1536]
        [--sweep N [--cap-from C]] [--only gate_up|down]

Findings (H200, torch 2.11, 2026-11-30; five runs; the same GEMM moves by up to 20 % between runs):
- gate_up (N 3072, K 4096): padded is slower at every cap from 484 to 560 (0.76 - 0.98 x).
- down (N 4096, K 1536): 0.74 - 1.36 x depending on cap (cuBLAS's choice of kernel; 488 gave
  1.17 - 1.29 x in three runs, 0.95 x in a fourth); 30B widths 1.06 - 1.41 x.
- Wired into the layer (the down GEMM padded when that computes no more rows than _grouped_mm's
  tiles; counts read on the host while the gate_up GEMM ran), random weights: 0.13 ms less kernel
  time per 235B layer (5.21 against 5.34 ms), within the end-to-end run-to-run spread. On HF's
  layer 0 (HF's initialisation and input) routing is uneven (rows per expert 271 / 412 / 645, where
  random weights give 342 / 412 / 481), so padding to the busiest expert never pays there, as it
  would not under a trained router. Not kept: it needs a host sync per MoE layer for a gain only
  near-uniform routing sees.
"""
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools", "gpu"))
from probe_util import problem_args, random_routing, timed  # noqa: E402


def main():
    a = problem_args(__doc__, [("--sweep", int, 0, "time this many capacities from the largest count up, in steps of 8"),
                               ("--cap-from", int, 0, "first capacity of --sweep (default: the largest count)"),
                               ("--only", str, "", "gate_up or down (default: both)")])
    T, H, I, E, K = a.tokens, a.hidden, a.inter, a.experts, a.topk
    torch.manual_seed(0)
    P = T * K
    ids, counts, offs = random_routing(T, E, K)
    mx = int(counts.max())
    print(f"{T} tokens top-{K} of {E}: rows per expert min {int(counts.min())} mean {P / E:.0f} max {mx}")
    for name, n, k in (("gate_up", 2 * I, H), ("down", H, I)):
        if a.only and name != a.only:
            continue
        w = torch.randn(E, n, k, device="cuda", dtype=torch.bfloat16) * 0.02  # [E, N, K], HF's layout
        xs = torch.randn(P, k, device="cuda", dtype=torch.bfloat16)
        flops = 2.0 * P * n * k
        tg = timed(lambda: torch._grouped_mm(xs, w.transpose(1, 2), offs))
        td = timed(lambda: xs @ w[0].t())
        print(f"{name}: grouped_mm {tg:.3f} ms {flops / tg / 1e9:.0f} TFLOP/s | dense [{P}x{k}]x[{k}x{n}] {td:.3f} ms "
              f"{flops / td / 1e9:.0f}")
        first = a.cap_from or -(-mx // 8) * 8
        caps = range(first, first + 8 * a.sweep, 8) if a.sweep else \
            sorted({mx, -(-mx // 8) * 8, -(-mx // 16) * 16, -(-mx // 64) * 64, -(-mx // 128) * 128})
        for cap in caps:
            xp = torch.randn(E, cap, k, device="cuda", dtype=torch.bfloat16)
            out = torch.empty(E, cap, n, device="cuda", dtype=torch.bfloat16)
            t1 = timed(lambda: torch.bmm(xp, w.transpose(1, 2), out=out))
            outt = torch.empty(E, n, cap, device="cuda", dtype=torch.bfloat16)
            t2 = timed(lambda: torch.bmm(w, xp.transpose(1, 2), out=outt))
            xpt = xp.transpose(1, 2).contiguous()  # [E, K, cap]
            t3 = timed(lambda: torch.bmm(w, xpt, out=outt))
            split = ""
            if name == "gate_up":  # gate and up halves as two batched GEMMs (other cuBLAS tiles)
                h1 = torch.empty(E, cap, n // 2, device="cuda", dtype=torch.bfloat16)
                h2 = torch.empty_like(h1)
                wg, wu = w[:, : n // 2], w[:, n // 2:]
                t4 = timed(lambda: (torch.bmm(xp, wg.transpose(1, 2), out=h1), torch.bmm(xp, wu.transpose(1, 2), out=h2)))
                split = f" | gate, up apart {t4:.3f} ms (x{tg / t4:.2f})"
            print(f"  cap {cap}: tokens as M {t1:.3f} ms ({flops / t1 / 1e9:.0f} useful TFLOP/s, x{tg / t1:.2f}) | "
                  f"tokens as N {t2:.3f} ms (x{tg / t2:.2f}) | tokens as N, K-major {t3:.3f} ms (x{tg / t3:.2f}){split}")


if __name__ == "__main__":
    main()
