"""Probe: a lower bound for one Qwen3-MoE layer's time made of cuBLAS GEMMs alone.

The layer's GEMMs at their useful sizes (no expert padding, no routing: the expert FLOPs as two
dense GEMMs of all token-expert pairs against one expert's weights, so even fewer weight bytes than
128 experts), run in the layer's order with nothing else: q, k, v, o, router, gate_up, down. Times
the sequence per call (synchronised after each) and back to back (10 calls, one synchronisation),
as `shardcheck bench` times a layer, with the GPU's SM clock and power sampled by nvidia-smi. Our
layer adds attention and its memory-bound kernels (their bandwidth floor ~0.45 ms at 235B widths)
to whatever this takes.

    python3 experiments/gpu/probe_layer_bound.py [--hidden 4096 --heads 64 --kv-heads 4 --inter 1536]
                                           [--seconds 4]
"""
import os
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools", "gpu"))
from probe_util import Clocks, clocks_text, layer_gemms, problem_args  # noqa: E402


def main():
    a = problem_args(__doc__, [("--heads", int, 64, "query heads"), ("--kv-heads", int, 4, "KV heads"),
                               ("--head-dim", int, 128, "head width"), ("--seconds", float, 4.0,
                                                                        "how long each timing runs")])
    T, H, I, E, K = a.tokens, a.hidden, a.inter, a.experts, a.topk
    layer, tflop = layer_gemms(T, H, a.heads, a.kv_heads, a.head_dim, E, K, I)
    flops = tflop * 1e12

    def run(n_calls, per_call, seconds):
        ts = []
        deadline = time.time() + seconds
        while time.time() < deadline:
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            for _ in range(n_calls):
                layer()
                if per_call:
                    torch.cuda.synchronize()
            torch.cuda.synchronize()
            ts.append((time.perf_counter() - t0) / n_calls * 1e3)
        ts.sort()
        return ts[len(ts) // 2]

    for _ in range(5):
        layer()
    torch.cuda.synchronize()
    print(f"{T} tokens, hidden {H}, heads {a.heads}/{a.kv_heads}, experts {E} top-{K}, moe {I}: "
          f"{flops / 1e12:.2f} TFLOP of GEMMs per layer", flush=True)
    for label, n_calls, per_call, seconds in (("per call", 1, True, 0.15), ("per call", 1, True, a.seconds),
                                              ("back to back (10 calls)", 10, False, 0.15),
                                              ("back to back (10 calls)", 10, False, a.seconds)):
        with Clocks() as clocks:
            ms = run(n_calls, per_call, seconds)
        print(f"GEMMs of one layer, {label}, {seconds:.2f} s: {ms:.3f} ms = {flops / ms / 1e9:.0f} TFLOP/s; "
              f"{clocks_text(clocks.summary)}", flush=True)
        time.sleep(3)


if __name__ == "__main__":
    main()
