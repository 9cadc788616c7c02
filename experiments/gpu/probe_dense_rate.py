"""Probe: where the expert GEMM (ops/cuda/moe_gemm.py) loses against cuBLAS. Times, in
alternation (medians), at the Qwen3-235B-A22B expert widths (6592 tokens, top-8 of 128):

- cuBLAS on the padded row count as one dense GEMM (one expert's weights): the dense rate;
- our kernel on the same dense problem (a tile table of one expert): Triton's per-tile rate;
- our kernel on the grouped padded layout (the layer's case), and with 2-CTA clusters;

so that the grouped kernel's gap splits into Triton's tile rate against cuBLAS's and the cost of
walking 128 experts' weights. Rates count the FLOPs computed (padding rows included).

    python3 experiments/gpu/probe_dense_rate.py [--skew S]
"""
import os
import sys

import torch
from triton.tools.tensor_descriptor import TensorDescriptor

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools", "gpu"))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "ops", "cuda"))
from probe_util import med, padded_layout, problem_args, random_routing, runs  # noqa: E402
from moe_gemm import moe_gemm  # noqa: E402


def main():
    a = problem_args(__doc__, [("--skew", float, 0.0, "uneven expert loads (probe_util.random_routing)")])
    T, H, I, E, K = a.tokens, a.hidden, a.inter, a.experts, a.topk
    P = T * K
    torch.manual_seed(0)
    _, counts, _ = random_routing(T, E, K, a.skew)
    sms = torch.cuda.get_device_properties(0).multi_processor_count
    bm, bn, bk = 128, 256, 64
    dest, table, n_tab, Pp = padded_layout(counts, bm)
    n_tiles = torch.tensor([n_tab], dtype=torch.int32, device="cuda")
    dense_table = torch.tensor([[0, r, Pp] for r in range(0, Pp, bm)], dtype=torch.int32, device="cuda").view(-1)
    n_dense = torch.tensor([Pp // bm], dtype=torch.int32, device="cuda")
    print(f"rows {P}, padded {Pp} (+{100.0 * (Pp - P) / P:.1f} %)", flush=True)
    for name, n, k in (("gate_up", 2 * I, H), ("down", H, I)):
        w = torch.randn(E, n, k, device="cuda", dtype=torch.bfloat16) * 0.02
        xp = torch.zeros(Pp, k, device="cuda", dtype=torch.bfloat16)
        xp[dest] = torch.randn(P, k, device="cuda", dtype=torch.bfloat16)
        y = torch.empty(Pp, n, device="cuda", dtype=torch.bfloat16)
        a_d = TensorDescriptor.from_tensor(xp, [bm, bk])
        b_d = TensorDescriptor.from_tensor(w.view(E * n, k), [bn, bk])
        c_d = TensorDescriptor.from_tensor(y, [bm, bn // 2])
        w0 = w[0]
        names, fns = [], []

        def add(label, f):
            if runs(label, f, 200):
                names.append(label)
                fns.append(f)

        add("cuBLAS dense (padded rows)", lambda: torch.mm(xp, w0.t(), out=y))
        for ctas in (1, 2):
            add(f"ours dense ctas={ctas}", lambda ctas=ctas: moe_gemm[(sms,)](
                a_d, b_d, c_d, dense_table, n_dense, n, n, k, sms, BLOCK_M=bm, BLOCK_N=bn, BLOCK_K=bk,
                num_warps=8, num_stages=4, num_ctas=ctas))
            add(f"ours grouped ctas={ctas}", lambda ctas=ctas: moe_gemm[(sms,)](
                a_d, b_d, c_d, table, n_tiles, n, n, k, sms, BLOCK_M=bm, BLOCK_N=bn, BLOCK_K=bk,
                num_warps=8, num_stages=4, num_ctas=ctas))
        times = med(fns)
        flops = 2.0 * Pp * n * k
        for nm, ms in zip(names, times):
            print(f"  {name:8s} {nm:30s} {ms:.3f} ms = {flops / ms / 1e9:4.0f} TFLOP/s computed", flush=True)


if __name__ == "__main__":
    main()
